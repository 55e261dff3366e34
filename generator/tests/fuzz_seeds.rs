//! Replays the fuzz seed corpus (`generator/fuzz/corpus/<target>/`)
//! through the code the fuzz targets run, so every seed and regression
//! input is checked by a plain `cargo test`.

use std::fs;
use std::path::PathBuf;

#[path = "../fuzz/src/lib.rs"]
mod exercise;

/// Runs every seed of `target` through `run`: the `from-` ones must be
/// accepted, the `hand-bad-` ones refused.
fn replay(target: &str, run: fn(&[u8]) -> Option<bool>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = run(&fs::read(&path).unwrap());
        // Streams and parses made by coders are accepted, the bad ones not.
        if name.starts_with("from-") {
            assert_eq!(outcome, Some(true), "{name}");
        } else if name.starts_with("hand-bad-") {
            assert_eq!(outcome, Some(false), "{name}");
        }
        n += 1;
    }
    assert!(n >= 4, "seeds in {}", dir.display());
}

#[test]
fn lzma_seeds() {
    replay("lzma", exercise::lzma);
}

#[test]
fn deflate_seeds() {
    replay("deflate", exercise::deflate);
}

#[test]
fn lzma2_seeds() {
    replay("lzma2", exercise::lzma2);
}
