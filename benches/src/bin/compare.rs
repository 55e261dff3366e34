//! `compare`: fota against the peer delta tools on the corpus pairs.
//!
//! For every pair of `corpus/pairs.tsv` and `corpus/mcu/pairs.tsv` that is in
//! `corpus/cache/pairs/<name>/{old,new}`, each tool creates a patch, applies it
//! with its own applier, and the output is checked against the new image.
//! Writes `runs.tsv`, `summary.md` and `sizes.svg` to the output folder and
//! prints the summary. Exits non-zero when any tool's output is wrong.
//! See benches/README.md.

#[path = "../compare/chart.rs"]
mod chart;
#[path = "../compare/corpus.rs"]
mod corpus;
#[path = "../compare/measure.rs"]
mod measure;
#[path = "../compare/runner.rs"]
mod runner;
#[path = "../compare/stats.rs"]
mod stats;
#[path = "../compare/tools.rs"]
mod tools;
#[path = "../compare/tsv.rs"]
mod tsv;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use corpus::{abs, find_root};
use runner::{PairFiles, Record, Status};

/// fota vs peer delta tools (bsdiff, xdelta3, zstd, detools, HDiffPatch).
#[derive(Parser, Debug)]
#[command(name = "compare")]
struct Args {
    /// Only pairs of this category.
    #[arg(long)]
    category: Option<String>,
    /// Only pairs whose name matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pair: Option<String>,
    /// Output folder (default: target/compare under the workspace root).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Per-run timeout in seconds (create and apply each).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Record tools that are not installed as skipped instead of failing.
    #[arg(long)]
    skip_missing: bool,
    /// Pair lists to read instead of corpus/pairs.tsv and corpus/mcu/pairs.tsv.
    #[arg(long = "pairs", value_name = "TSV")]
    pair_lists: Vec<PathBuf>,
    /// Also build the bundled sample (corpus/sample) and compare it as pair `sample-sensord`.
    #[arg(long)]
    with_sample: bool,
    /// Copy sizes.svg and summary.md into this folder (e.g. benches/results).
    #[arg(long, value_name = "DIR")]
    readme_assets: Option<PathBuf>,
    /// Keep the patches in OUT/scratch (deleted after each pair otherwise).
    #[arg(long)]
    keep: bool,
    /// fota binary to use (default: `cargo build --release -p fota`, target/release/fota).
    #[arg(long, value_name = "PATH")]
    fota: Option<PathBuf>,
    /// Python venv holding detools and hdiffpatch (default: target/peers-venv).
    #[arg(long, value_name = "DIR")]
    venv: Option<PathBuf>,
    /// Workspace root (default: found from the current folder).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

fn is_elf(p: &Path) -> bool {
    use std::io::Read;
    let mut m = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut m))
        .map(|_| &m == b"\x7fELF")
        .unwrap_or(false)
}

fn cell<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn write_runs(path: &Path, records: &[Record]) -> Result<()> {
    let mut s = String::from(
        "pair\tcategory\ttool\tvariant\told_bytes\tnew_bytes\tpatch_bytes\tcreate_s\tcreate_rss_kb\tapply_s\tapply_rss_kb\tok\n",
    );
    for r in records {
        s += &format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.pair,
            r.category,
            r.tool,
            r.variant,
            r.old_bytes,
            r.new_bytes,
            cell(r.patch_bytes),
            cell(r.create_s.map(|x| format!("{x:.3}"))),
            cell(r.create_rss_kb),
            cell(r.apply_s.map(|x| format!("{x:.3}"))),
            cell(r.apply_rss_kb),
            r.status.text()
        );
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

fn skipped(p: &tsv::Pair, tool: &str, variant: &str, why: String) -> Record {
    Record {
        pair: p.name.clone(),
        category: p.category.clone(),
        tool: tool.into(),
        variant: variant.into(),
        old_bytes: p.old_bytes,
        new_bytes: p.new_bytes,
        patch_bytes: None,
        create_s: None,
        create_rss_kb: None,
        apply_s: None,
        apply_rss_kb: None,
        status: Status::Skipped(why),
    }
}

fn run() -> Result<bool> {
    let args = Args::parse();
    let started = Instant::now();
    let root = match &args.root {
        Some(r) => abs(r)?,
        None => find_root()?,
    };
    let out = match &args.out {
        Some(o) => abs(o)?,
        None => root.join("target/compare"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let filter = args
        .pair
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--pair is not a valid regular expression")?;

    // Pairs.
    let selection = corpus::Selection {
        category: args.category.clone(),
        pair: filter,
        lists: args.pair_lists.clone(),
        sample_dir: args.with_sample.then(|| out.join("sample")),
    };
    let corpus::Found {
        files,
        missing: missing_pairs,
    } = corpus::select(&root, &selection)?;
    let mut records: Vec<Record> = Vec::new();
    for p in &missing_pairs {
        records.push(skipped(
            p,
            "-",
            "-",
            "pair not in corpus/cache/pairs (run corpus/fetch)".into(),
        ));
    }
    if !missing_pairs.is_empty() {
        eprintln!(
            "skipped {} pair(s) not in corpus/cache/pairs: {} -- run corpus/fetch to get them",
            missing_pairs.len(),
            missing_pairs
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if files.is_empty() {
        bail!("no pair to compare (none cached or none matches the filters)");
    }

    // Tools.
    let fota = match &args.fota {
        Some(f) => abs(f)?,
        None => {
            let st = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
                .args(["build", "--release", "-q", "-p", "fota"])
                .current_dir(&root)
                .status()
                .context("running cargo build -p fota")?;
            if !st.success() {
                bail!("cargo build --release -p fota failed");
            }
            root.join("target/release/fota")
        }
    };
    let keys = out.join("keys");
    if !keys.join("fota.key").is_file() {
        let o = Command::new(&fota)
            .arg("keygen")
            .arg(&keys)
            .output()
            .with_context(|| format!("running {}", fota.display()))?;
        if !o.status.success() {
            bail!("fota keygen failed: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let toolset = tools::Toolset {
        fota,
        key: keys.join("fota.key"),
        pubkey: keys.join("fota.pub"),
        venv: match &args.venv {
            Some(v) => abs(v)?,
            None => root.join("target/peers-venv"),
        },
        hdiff_script: root.join("benches/peers/hdiffpatch_cli.py"),
    };
    if !measure::have_gnu_time() {
        eprintln!("note: /usr/bin/time (Debian package `time`) is missing: peak RSS not measured; see benches/install-peers.sh");
    }
    let missing = tools::missing_tools(&toolset);
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|(t, why)| format!("  {t}: {why}"))
            .collect::<Vec<_>>()
            .join("\n");
        if !args.skip_missing {
            bail!("peer tools missing:\n{list}\ninstall them with `bash benches/install-peers.sh` (or pass --skip-missing)");
        }
        eprintln!("peer tools missing, recorded as skipped:\n{list}");
    }

    // Runs.
    let timeout = Duration::from_secs(args.timeout);
    let work_root = out.join("scratch");
    for (p, old, new) in &files {
        eprintln!(
            "== {} ({}, {} -> {} bytes)",
            p.name, p.category, p.old_bytes, p.new_bytes
        );
        let info = tools::PairInfo {
            arch: p.arch.clone(),
            elf: is_elf(old) && is_elf(new),
            max_bytes: p.old_bytes.max(p.new_bytes),
        };
        let (variants, na) = tools::variants(&toolset, &info);
        let (run_these, absent): (Vec<_>, Vec<_>) = variants
            .into_iter()
            .partition(|v| !missing.iter().any(|(t, _)| *t == v.tool));
        for v in absent {
            records.push(skipped(p, &v.tool, &v.variant, "tool not installed".into()));
        }
        for n in na {
            records.push(skipped(p, &n.tool, &n.variant, n.reason));
        }
        let pair = PairFiles {
            name: p.name.clone(),
            category: p.category.clone(),
            old: old.clone(),
            new: new.clone(),
        };
        let work = work_root.join(&p.name);
        let recs = runner::run_pair(&pair, &run_these, &work, timeout, |r| {
            eprintln!(
                "   {:<12} {:<20} {:>10} B  create {:>8}  apply {:>8}  {}",
                r.tool,
                r.variant,
                cell(r.patch_bytes),
                cell(r.create_s.map(|x| format!("{x:.2}s"))),
                cell(r.apply_s.map(|x| format!("{x:.2}s"))),
                r.status.text()
            );
        })?;
        records.extend(recs);
        if !args.keep {
            let _ = std::fs::remove_dir_all(&work);
        }
        // Keep runs.tsv current while long comparisons go on.
        write_runs(&out.join("runs.tsv"), &records)?;
    }

    // Reports.
    write_runs(&out.join("runs.tsv"), &records)?;
    let summary = stats::summarize(
        &records
            .iter()
            .filter(|r| r.tool != "-")
            .cloned()
            .collect::<Vec<_>>(),
    );
    let md = format!(
        "# fota vs peer tools\n\nGeometric means over the pairs of each category; ratios below 1 favour fota. \
         Sizes use fota with 2 threads (its package is identical with 1).\n\n{}",
        summary.markdown()
    );
    std::fs::write(out.join("summary.md"), &md)?;
    chart::draw(&summary.sizes, &out.join("sizes.svg"))?;
    if let Some(dir) = &args.readme_assets {
        std::fs::create_dir_all(dir)?;
        for f in ["sizes.svg", "summary.md"] {
            std::fs::copy(out.join(f), dir.join(f))
                .with_context(|| format!("copying {f} to {}", dir.display()))?;
        }
    }
    let mut so = std::io::stdout().lock();
    writeln!(so, "\n{}", summary.text())?;
    writeln!(
        so,
        "wrote {}/{{runs.tsv,summary.md,sizes.svg}} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    )?;
    let failures: Vec<&Record> = records.iter().filter(|r| r.status.is_failure()).collect();
    for r in &failures {
        eprintln!(
            "FAILED: tool {} on pair {}: {}",
            r.label(),
            r.pair,
            r.status.text()
        );
    }
    Ok(failures.is_empty())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: some tool did not reproduce the new image (see above and runs.tsv)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
