//! Replays the `omadm` fuzz target's seed corpus
//! (`server/fuzz/corpus/omadm/`) through the same code the target runs, so
//! every seed and regression input is checked by a plain `cargo test`.
//! `OMADM_BLESS=1` (re)writes the WBXML seeds from the golden XML messages.

use std::fs;
use std::path::PathBuf;

use fota_server::omadm::{wbxml, xml};

#[path = "../fuzz/src/omadm.rs"]
mod exercise;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/omadm")
}

#[test]
fn omadm_seeds() {
    let dir = corpus();
    if std::env::var("OMADM_BLESS").is_ok() {
        let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/omadm_golden");
        for entry in fs::read_dir(golden).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&path).unwrap();
            let msg = xml::parse(&bytes).unwrap();
            fs::write(dir.join(format!("{name}.xml")), &bytes).unwrap();
            fs::write(dir.join(format!("{name}.wbxml")), wbxml::write(&msg)).unwrap();
        }
    }
    let mut seeds: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 20, "{} seeds", seeds.len());
    for (_, data) in &seeds {
        exercise::omadm(data);
    }
    // The well-formed seeds still parse (a model change that breaks them
    // shows here first).
    for (name, data) in &seeds {
        if name.ends_with(".xml") && !name.starts_with("bad-") {
            xml::parse(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        if name.ends_with(".wbxml") && !name.starts_with("bad-") {
            wbxml::parse(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
