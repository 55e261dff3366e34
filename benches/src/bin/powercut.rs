//! `powercut`: R1 of the agent on the corpus (issue 6's "full matrix as a
//! bench command").
//!
//! For every selected pair of `corpus/pairs.tsv` and `corpus/mcu/pairs.tsv`
//! in `corpus/cache/pairs` (and the bundled sample with `--with-sample`)
//! whose images are at most `--max-bytes`, an A/B and an in-place package
//! are made for each geometry (segments = erase blocks), and the agent's
//! power-cut campaign runs on the simulated flash: the clean update, then
//! a cut at every program and erase in each of the four ways (not done,
//! done, torn program, torn erase) and a resume. Every run must end
//! bit-exact; a failure prints the replay id that `fota sim --replay`
//! reruns. Also asserted: image blocks erased at most once in a clean run
//! (R6) and a resume redoing at most the interrupted op (R3, in place).
//! The last table is R5: in-place package size against A/B, per pair.
//!
//! ```text
//! cargo run -p fota-benches --release --bin powercut -- --with-sample [--matrix full]
//! ```

#[path = "../compare/corpus.rs"]
mod corpus;
#[path = "../compare/tsv.rs"]
mod tsv;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use fota_agent::sim::{fit, CampaignReport, Setup};
use fota_agent::Config;
use fota_format::{Label, Mode, Profile};

/// The agent's power-cut campaign on the corpus pairs.
#[derive(Parser, Debug)]
#[command(name = "powercut")]
struct Args {
    /// Only pairs of this category.
    #[arg(long)]
    category: Option<String>,
    /// Only pairs whose name matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pair: Option<String>,
    /// Pair lists to read instead of corpus/pairs.tsv and corpus/mcu/pairs.tsv.
    #[arg(long = "pairs", value_name = "TSV")]
    pair_lists: Vec<PathBuf>,
    /// Also build the bundled sample (corpus/sample) and run it as pair `sample-sensord`.
    #[arg(long)]
    with_sample: bool,
    /// Workspace root (default: found from the current folder).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Skip pairs with an image larger than this.
    #[arg(long, value_name = "BYTES", default_value_t = 128 * 1024)]
    max_bytes: u64,
    /// Geometries: `quick` (two) or `full` (R11: erase 256 B, 4 KiB and
    /// 128 KiB x write 1, 4, 8, 32 x erased 0xFF, 0x00).
    #[arg(long, value_enum, default_value = "quick")]
    matrix: Matrix,
    /// Codec profiles of the packages.
    #[arg(long, value_enum, default_value = "tiny")]
    profile: ProfileArg,
    /// Cut every Nth op only (1: every op).
    #[arg(long, value_name = "N", default_value_t = 1)]
    stride: usize,
    /// Cases run at once (default: the machine's cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Matrix {
    Quick,
    Full,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProfileArg {
    Tiny,
    Zstd,
    Both,
}

/// One flash shape: erase block, program unit, read unit, erased value.
#[derive(Debug, Clone, Copy)]
struct Flash {
    erase: u64,
    write: usize,
    read: usize,
    erased: u8,
}

impl Matrix {
    fn geometries(self) -> Vec<Flash> {
        match self {
            Matrix::Quick => vec![
                Flash {
                    erase: 4096,
                    write: 4,
                    read: 1,
                    erased: 0xff,
                },
                Flash {
                    erase: 1024,
                    write: 8,
                    read: 4,
                    erased: 0x00,
                },
            ],
            Matrix::Full => {
                let mut v = Vec::new();
                for erase in [256, 4096, 128 * 1024] {
                    for write in [1, 4, 8, 32] {
                        for erased in [0xff, 0x00] {
                            v.push(Flash {
                                erase,
                                write,
                                read: 1,
                                erased,
                            });
                        }
                    }
                }
                v
            }
        }
    }
}

/// One campaign: a pair, a package, a flash.
struct Case {
    pair: usize,
    mode: Mode,
    profile: Profile,
    flash: Flash,
}

impl Case {
    fn name(&self, pairs: &[(tsv::Pair, Vec<u8>, Vec<u8>)]) -> String {
        format!(
            "{}/{}/{}/e{}w{}r{}/{:02x}",
            pairs[self.pair].0.name,
            match self.mode {
                Mode::AB => "ab",
                Mode::InPlace => "in-place",
            },
            match self.profile {
                Profile::Tiny => "tiny",
                _ => "zstd",
            },
            self.flash.erase,
            self.flash.write,
            self.flash.read,
            self.flash.erased
        )
    }
}

/// What one case found.
struct Row {
    name: String,
    package: usize,
    report: CampaignReport,
    seconds: f64,
}

fn key() -> ed25519_dalek::SigningKey {
    fota_benches::bench_key()
}

/// The package of a case (made once per pair, mode, profile and erase
/// size, whatever the program unit and erased value).
type Packages = Mutex<std::collections::HashMap<(usize, bool, bool, u64), std::sync::Arc<Vec<u8>>>>;

fn package(
    cache: &Packages,
    pairs: &[(tsv::Pair, Vec<u8>, Vec<u8>)],
    c: &Case,
) -> Result<std::sync::Arc<Vec<u8>>> {
    let k = (
        c.pair,
        c.mode == Mode::AB,
        c.profile == Profile::Tiny,
        c.flash.erase,
    );
    if let Some(p) = cache.lock().expect("the cache lock").get(&k) {
        return Ok(p.clone());
    }
    let (_, old, new) = &pairs[c.pair];
    let opts = fota_generator::DiffOptions {
        threads: 1,
        segment_size: c.flash.erase as u32,
        erase_size: c.flash.erase as u32,
        profile: c.profile,
        mode: c.mode,
        device_class: Label::new("bench-board").context("device class")?,
        ..Default::default()
    };
    let pkg = fota_generator::diff(old, new, &key(), &opts)
        .with_context(|| format!("{}: the generator", c.name(pairs)))?
        .package;
    let p = std::sync::Arc::new(pkg);
    cache.lock().expect("the cache lock").insert(k, p.clone());
    Ok(p)
}

fn run_case(
    cache: &Packages,
    pairs: &[(tsv::Pair, Vec<u8>, Vec<u8>)],
    c: &Case,
    stride: usize,
) -> Result<Row> {
    let started = Instant::now();
    let name = c.name(pairs);
    let pkg = package(cache, pairs, c)?;
    let (_, old, new) = &pairs[c.pair];
    let manifest = fota_format::Package::parse(&pkg)
        .and_then(|p| p.manifest_unverified())
        .with_context(|| format!("{name}: the package's manifest"))?;
    let (geometry, layout) = fit(
        &manifest,
        c.flash.erase,
        c.flash.write,
        c.flash.read,
        c.flash.erased,
    )
    .map_err(|why| anyhow::anyhow!("{name}: {why}"))?;
    let keys = [key().verifying_key()];
    let setup = Setup {
        geometry,
        initial: vec![(layout.source().start, old.clone())],
        layout,
        package: &pkg,
        config: Config {
            layout,
            trusted: &keys,
            device_class: Label::new("bench-board").context("device class")?,
            security_counter: 0,
        },
        expected: new,
    };
    let report = setup
        .single_cuts(&name, stride, 0x5eed)
        .map_err(|e| anyhow::anyhow!("{name}: the update fails without a cut: {e}"))?;
    Ok(Row {
        name,
        package: pkg.len(),
        report,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn run() -> Result<bool> {
    let args = Args::parse();
    let started = Instant::now();
    let root = match &args.root {
        Some(r) => corpus::abs(r)?,
        None => corpus::find_root()?,
    };
    let work = root.join("target/powercut");
    let selection = corpus::Selection {
        category: args.category.clone(),
        pair: args
            .pair
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .context("--pair is not a valid regular expression")?,
        lists: args.pair_lists.clone(),
        sample_dir: args.with_sample.then(|| work.join("sample")),
    };
    let found = corpus::select(&root, &selection)?;
    if !found.missing.is_empty() {
        eprintln!(
            "skipped {} pair(s) not in corpus/cache/pairs (run corpus/fetch)",
            found.missing.len()
        );
    }
    let mut pairs = Vec::new();
    for (p, old, new) in found.files {
        if p.old_bytes.max(p.new_bytes) > args.max_bytes {
            eprintln!(
                "skipped {}: {} bytes, over --max-bytes {}",
                p.name,
                p.old_bytes.max(p.new_bytes),
                args.max_bytes
            );
            continue;
        }
        let old = std::fs::read(&old).with_context(|| old.display().to_string())?;
        let new = std::fs::read(&new).with_context(|| new.display().to_string())?;
        pairs.push((p, old, new));
    }
    if pairs.is_empty() {
        bail!("no pair to run (none cached, none small enough, or none matches the filters)");
    }
    let profiles: &[Profile] = match args.profile {
        ProfileArg::Tiny => &[Profile::Tiny],
        ProfileArg::Zstd => &[Profile::Zstd],
        ProfileArg::Both => &[Profile::Tiny, Profile::Zstd],
    };
    let mut cases = Vec::new();
    for pair in 0..pairs.len() {
        for &profile in profiles {
            for mode in [Mode::AB, Mode::InPlace] {
                for flash in args.matrix.geometries() {
                    cases.push(Case {
                        pair,
                        mode,
                        profile,
                        flash,
                    });
                }
            }
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    println!(
        "powercut: {} pair(s), {} case(s), every {} op(s) cut 4 ways, {threads} thread(s)",
        pairs.len(),
        cases.len(),
        args.stride.max(1)
    );
    let cache = Packages::default();
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<(usize, Result<Row>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = cases.get(i) else { break };
                let row = run_case(&cache, &pairs, c, args.stride.max(1));
                if let Ok(r) = &row {
                    eprintln!(
                        "  {} {} cuts, {} failures, {:.1} s",
                        r.name,
                        r.report.cuts_tried.iter().sum::<u64>(),
                        r.report.failures.len(),
                        r.seconds
                    );
                }
                rows.lock().expect("the rows lock").push((i, row));
            });
        }
    });
    let mut rows = rows.into_inner().expect("the rows lock");
    rows.sort_by_key(|(i, _)| *i);
    let mut ok = true;
    println!(
        "{:<52} {:>8} {:>6} {:>26} {:>5} {:>6} {:>7} {:>6} {:>7}",
        "case", "package", "ops", "cuts nd/d/tp/te", "fail", "image", "scratch", "rework", "secs"
    );
    let (mut total_cuts, mut total_failures) = (0u64, 0usize);
    for (i, row) in &rows {
        let r = match row {
            Ok(r) => r,
            Err(e) => {
                println!("{:<52} error: {e:#}", cases[*i].name(&pairs));
                ok = false;
                continue;
            }
        };
        let rep = &r.report;
        let c = rep.cuts_tried;
        println!(
            "{:<52} {:>8} {:>6} {:>26} {:>5} {:>6} {:>7} {:>6} {:>7.1}",
            r.name,
            r.package,
            rep.clean_ops,
            format!("{}/{}/{}/{}", c[0], c[1], c[2], c[3]),
            rep.failures.len(),
            rep.max_target_erases_clean,
            rep.max_scratch_erases_clean,
            rep.max_rework_ops,
            r.seconds
        );
        for f in rep.failures.iter().take(5) {
            println!("    replay: {f}");
        }
        total_cuts += c.iter().sum::<u64>();
        total_failures += rep.failures.len();
        // R6: an image block is erased at most once in a clean update;
        // R3: a resume redoes at most the op the cut interrupted.
        if !rep.failures.is_empty() || rep.max_target_erases_clean > 1 {
            ok = false;
        }
        if cases[*i].mode == Mode::InPlace && rep.max_rework_ops > 1 {
            println!("    R3: a resume redid {} ops", rep.max_rework_ops);
            ok = false;
        }
    }
    println!(
        "{} cases, {total_cuts} cuts, {total_failures} failures, {:.0} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    r5_table(&pairs, &cases, &rows);
    Ok(ok)
}

/// R5: in-place package bytes against A/B for the same pair, profile and
/// segments (the first geometry), with the median and the maximum.
fn r5_table(
    pairs: &[(tsv::Pair, Vec<u8>, Vec<u8>)],
    cases: &[Case],
    rows: &[(usize, Result<Row>)],
) {
    let size = |pair: usize, mode: Mode, profile: Profile, erase: u64| {
        rows.iter().find_map(|(i, r)| {
            let c = &cases[*i];
            let r = r.as_ref().ok()?;
            (c.pair == pair && c.mode == mode && c.profile == profile && c.flash.erase == erase)
                .then_some(r.package)
        })
    };
    let Some(first) = cases.first() else { return };
    let mut ratios = Vec::new();
    println!(
        "R5 ({} B segments): {:<40} {:>8} {:>9} {:>7}",
        first.flash.erase, "pair", "A/B", "in-place", "ratio"
    );
    for (pair, (p, _, _)) in pairs.iter().enumerate() {
        let (ab, ip) = (
            size(pair, Mode::AB, first.profile, first.flash.erase),
            size(pair, Mode::InPlace, first.profile, first.flash.erase),
        );
        if let (Some(ab), Some(ip)) = (ab, ip) {
            let ratio = ip as f64 / ab as f64;
            ratios.push(ratio);
            println!("    {:<56} {ab:>8} {ip:>9} {ratio:>7.3}", p.name);
        }
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let max = ratios[ratios.len() - 1];
        println!(
            "R5: in-place / A/B package size over {} pair(s): median {median:.3}, max {max:.3}",
            ratios.len()
        );
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("powercut: failures (replay ids above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("powercut: {e:#}");
            ExitCode::from(2)
        }
    }
}
