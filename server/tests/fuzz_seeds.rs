//! Replays the fuzz seed corpus (`server/fuzz/corpus/<target>/`) through
//! the same code the fuzz targets run, so every seed and every regression
//! input is checked by a plain `cargo test`, without nightly or libFuzzer.

use std::fs;
use std::path::PathBuf;

#[path = "../fuzz/src/lib.rs"]
mod exercise;

/// Every file of `server/fuzz/corpus/<target>/`, sorted.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

#[test]
fn mmc_seeds() {
    let seeds = seeds("mmc");
    for (_, data) in &seeds {
        exercise::mmc(data);
    }
    // The well-formed seeds still parse (a schema change that breaks them
    // shows here first).
    use fota_server::iota::mmc::{Mmc, MmcResult};
    let parsed = seeds
        .iter()
        .filter(|(_, d)| Mmc::parse(d).is_ok() || MmcResult::parse(d).is_ok())
        .count();
    assert_eq!(parsed, 5, "of {} seeds", seeds.len());
}

#[test]
fn download_registry_and_handset_seeds() {
    for (_, d) in seeds("dd") {
        exercise::dd(&d);
    }
    for (_, d) in seeds("notify") {
        exercise::notify(&d);
    }
    for (_, d) in seeds("csv") {
        exercise::csv(&d);
    }
    for (name, d) in seeds("archive") {
        exercise::archive(&d);
        let ok = fota_server::registry::archive::read(&d[..]).is_ok();
        assert_eq!(ok, name == "good.jsonl.gz", "{name}");
    }
    for (_, d) in seeds("handset") {
        exercise::handset(&d);
    }
}

#[test]
fn ddi_and_swu_seeds() {
    let ddi = seeds("ddi");
    for (_, d) in &ddi {
        exercise::ddi(d);
    }
    // The captured swupdate bodies still parse.
    let feedback = ddi
        .iter()
        .filter(|(_, d)| fota_server::ddi::Feedback::parse(d).is_ok())
        .count();
    assert_eq!(feedback, 5, "of {} seeds", ddi.len());
    for (name, d) in seeds("swu") {
        exercise::swu(&d);
        assert!(fota_server::artifacts::cpio_members(&d).is_ok(), "{name}");
    }
}

#[test]
fn mender_seeds() {
    let seeds = seeds("mender");
    for (_, d) in &seeds {
        exercise::mender(d);
    }
    // The captured client documents still parse.
    let status = seeds
        .iter()
        .filter(|(_, d)| fota_server::mender::Status::parse(d).is_ok())
        .count();
    let inventory = seeds
        .iter()
        .filter(|(_, d)| fota_server::mender::parse_inventory(d).is_ok())
        .count();
    assert_eq!((status, inventory), (1, 1), "of {} seeds", seeds.len());
}
