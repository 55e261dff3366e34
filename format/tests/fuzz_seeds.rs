//! Replays the fuzz seed corpus (`format/fuzz/corpus/<target>/`) through the
//! same code the fuzz targets run, so every seed and every regression input
//! found by fuzzing is checked by a plain `cargo test`, without nightly or
//! libFuzzer. The exercise code lives in the fuzz crate and is included
//! here as a module.

use std::fs;
use std::path::PathBuf;

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod exercise;

/// Every file of `format/fuzz/corpus/<target>/`, sorted, with its name.
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
fn parse_package_seeds() {
    let mut intact = 0;
    for (name, data) in seeds("parse_package") {
        let outcome = exercise::parse_package(&data);
        // Untouched packages from `fota diff` (signed with the fuzzing key)
        // must verify and walk; if this fails after a format change,
        // regenerate the seeds with format/fuzz/make_seeds.py.
        if name.starts_with("pkg-") {
            assert_eq!(
                outcome,
                Some(true),
                "{name}: a generated package no longer verifies"
            );
            intact += 1;
        }
    }
    assert!(intact > 0, "no pkg-* seeds");
}

#[test]
fn patch_decoder_seeds() {
    for (name, data) in seeds("patch_decoder") {
        let outcome = exercise::patch_decoder(&data);
        // Patches taken from real packages and the hand-made good ones decode;
        // the hand-made bad ones and contract breaches are refused.
        if name.starts_with("from-")
            || (name.starts_with("hand-") && !name.contains("-bad-") && !name.contains("-misuse-"))
        {
            assert!(matches!(outcome, Some(Ok(_))), "{name}: {outcome:?}");
        } else if name.starts_with("hand-") {
            assert!(matches!(outcome, Some(Err(_))), "{name}: {outcome:?}");
        }
    }
}

#[test]
fn tiny_decoder_seeds() {
    for (name, data) in seeds("tiny_decoder") {
        let outcome = exercise::tiny_decoder(&data);
        // Streams taken from real packages and the hand-made good ones
        // decode; the hand-made bad ones are refused.
        if name.starts_with("from-") || (name.starts_with("hand-") && !name.contains("-bad-")) {
            assert!(matches!(outcome, Some(Ok(_))), "{name}: {outcome:?}");
        } else if name.starts_with("hand-") {
            assert!(matches!(outcome, Some(Err(_))), "{name}: {outcome:?}");
        }
    }
}

#[test]
fn repair_makes_a_mutated_package_verify() {
    // The `parse_package` target re-signs and re-chains mutated packages so
    // that mutations reach the op rules; check that repair works on a
    // package whose op bytes were changed.
    let seed = |wanted: &str| {
        seeds("parse_package")
            .into_iter()
            .find(|(name, _)| name == wanted)
            .unwrap_or_else(|| panic!("a {wanted} seed"))
            .1
    };
    // Format v3: the signature covers the ops, so a changed payload byte
    // breaks only the signature.
    let pkg = seed("pkg-moved-block-s1024-l19");
    assert_eq!(&pkg[8..10], &[3, 0]);
    let payload_at = fota_format::Package::parse(&pkg)
        .unwrap()
        .ops_unverified()
        .unwrap()
        .map(|op| op.unwrap())
        .find(|op| !op.payload.is_empty())
        .expect("an op with a payload")
        .payload_offset as usize;
    let mut mutated = pkg.clone();
    mutated[payload_at] ^= 0x55;
    assert_eq!(exercise::parse_package(&mutated), Some(false));
    let fixed = exercise::repair(&mutated).unwrap();
    assert_eq!(exercise::parse_package(&fixed), Some(true));
    assert_eq!(exercise::repair(&pkg).unwrap(), pkg);
    // Format v2, hash-chained.
    let pkg = seed("pkg-moved-block-s1024-l19-chain");
    let mut mutated = pkg.clone();
    // A byte of op 0's next_op_sha256: breaks only the hash chain. Op
    // heads vary in length, so find it from op 0's head: that hash ends
    // the head's encoding without its extents.
    let header = fota_format::Header::parse(&pkg).unwrap();
    let ops_at = header.ops_offset() as usize;
    let manifest = fota_format::Manifest::parse(&pkg[fota_format::HEADER_LEN..ops_at]).unwrap();
    let ctx = fota_format::OpContext::new(&manifest, 0);
    assert!(!ctx.last, "op 0 of the seed is not its last op");
    let head = fota_format::OpHead::parse(&pkg[ops_at..], ops_at as u64, &ctx).unwrap();
    let next_op_sha256_end = ops_at + head.header.encode(&[], &ctx).len();
    mutated[next_op_sha256_end - 1] ^= 0x55;
    assert_eq!(exercise::parse_package(&mutated), Some(false));
    let fixed = exercise::repair(&mutated).unwrap();
    assert_eq!(exercise::parse_package(&fixed), Some(true));
    assert_eq!(
        exercise::repair(&pkg).unwrap(),
        pkg,
        "repair of an intact package is the identity"
    );
}

#[test]
fn xform_seeds() {
    for (name, data) in seeds("xform") {
        let outcome = exercise::xform(&data);
        // Payloads written by the generator parse; hand-made bad ones do not.
        if name.starts_with("from-") {
            assert_eq!(outcome, Some(true), "{name}");
        } else if name.starts_with("hand-bad-") {
            assert_eq!(outcome, Some(false), "{name}");
        }
    }
}

#[test]
fn stream_table_seeds() {
    for (name, data) in seeds("stream_table") {
        let outcome = exercise::stream_table(&data);
        // Tables of real packages parse; the hand-made bad ones are refused.
        if name.starts_with("from-") {
            assert_eq!(outcome, Some(true), "{name}");
        } else if name.starts_with("hand-bad-") {
            assert_eq!(outcome, Some(false), "{name}");
        }
    }
}

#[cfg(feature = "lzma")]
#[test]
fn lzma_payload_seeds() {
    let (mut accepted, mut refused) = (0, 0);
    for (name, data) in seeds("lzma_payload") {
        let outcome = exercise::lzma_payload(&data);
        // Payloads of real packages and the hand-made good ones decode; the
        // hand-made bad ones are refused with their offset.
        if name.starts_with("from-") || (name.starts_with("hand-") && !name.contains("-bad-")) {
            assert_eq!(outcome, Some(true), "{name}");
            accepted += 1;
        } else if name.starts_with("hand-bad-") {
            assert_eq!(outcome, Some(false), "{name}");
            refused += 1;
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} from-, {refused} hand-bad- seeds"
    );
}
