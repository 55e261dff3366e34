//! R5: what in place costs. For each pair, the package size in place
//! against A/B (with the same erase-block segments, and with the default
//! segments), the stash ops and the scratch used; then median and max.
//!
//! ```text
//! cargo run --release -p fota-generator --example inplace_cost -- [--erase N] [--max-bytes N] [PAIR_DIR...]
//! ```
//!
//! A PAIR_DIR holds `old` and `new`; without any, every pair under
//! `corpus/cache/pairs` (see `corpus/fetch`) whose new image is at most
//! `--max-bytes` (default 1 MiB) is used.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use fota_format::{Mode, Profile};
use fota_generator::{diff, DiffOptions};

fn main() {
    let mut erase = 4096u32;
    let mut max_bytes = 1u64 << 20;
    let mut profile = Profile::Zstd;
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--erase" => erase = args.next().and_then(|v| v.parse().ok()).expect("--erase N"),
            "--max-bytes" => {
                max_bytes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--max-bytes N")
            }
            "--tiny" => profile = Profile::Tiny,
            _ => dirs.push(a.into()),
        }
    }
    if dirs.is_empty() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus/cache/pairs");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        found.sort();
        dirs = found
            .into_iter()
            .filter(|d| std::fs::metadata(d.join("new")).is_ok_and(|m| m.len() <= max_bytes))
            .collect();
    }
    let key = SigningKey::from_bytes(&[1; 32]);
    let base = DiffOptions {
        level: 19,
        profile,
        ..DiffOptions::default()
    };
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>7} {:>7} {:>6} {:>8}",
        "pair", "A/B dflt", "A/B seg", "in place", "vs seg", "vs dflt", "stash", "scratch"
    );
    let (mut vs_seg, mut vs_default) = (Vec::new(), Vec::new());
    for d in &dirs {
        let (Ok(old), Ok(new)) = (std::fs::read(d.join("old")), std::fs::read(d.join("new")))
        else {
            eprintln!("{}: no old/new, skipped", d.display());
            continue;
        };
        let run = |opts: DiffOptions| diff(&old, &new, &key, &opts).expect("diff");
        let ab_default = run(base.clone());
        let ab_seg = run(DiffOptions {
            segment_size: erase,
            ..base.clone()
        });
        let ip = run(DiffOptions {
            mode: Mode::InPlace,
            erase_size: erase,
            ..base.clone()
        });
        let stats = ip.in_place.expect("in-place stats");
        let r_seg = ip.package.len() as f64 / ab_seg.package.len() as f64;
        let r_def = ip.package.len() as f64 / ab_default.package.len() as f64;
        vs_seg.push(r_seg);
        vs_default.push(r_def);
        let scratch = u64::from(stats.scratch_slots) * u64::from(erase);
        println!(
            "{:<36} {:>10} {:>10} {:>10} {:>7.3} {:>7.3} {:>6} {:>7.2}%",
            d.file_name().unwrap_or_default().to_string_lossy(),
            ab_default.package.len(),
            ab_seg.package.len(),
            ip.package.len(),
            r_seg,
            r_def,
            stats.stash_ops,
            100.0 * scratch as f64 / old.len().max(new.len()) as f64
        );
    }
    for (what, mut v) in [
        ("vs A/B same segments", vs_seg),
        ("vs A/B default", vs_default),
    ] {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "in place {what}: median {:.3}, max {:.3} over {} pairs",
            v[v.len() / 2],
            v[v.len() - 1],
            v.len()
        );
    }
}
