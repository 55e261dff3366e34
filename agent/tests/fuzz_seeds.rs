//! R12: replays the `resume` fuzz seeds (`agent/fuzz/corpus/resume/`)
//! through the same code the fuzz target runs, so every seed and every
//! regression input found by fuzzing is checked by a plain `cargo test`,
//! without nightly or libFuzzer. The exercise code lives in the fuzz crate
//! and is included here as a module.
//!
//! The fixtures and seeds are regenerated (after a format or generator
//! change) by two ignored tests, in this order, each with
//! `FOTA_WRITE_FUZZ_SEEDS=1`:
//! `cargo test -p fota-agent --test fuzz_seeds regenerate_fixtures -- --ignored`
//! then the same with `regenerate_seeds` (it reads the fixtures compiled in,
//! so it must be built after the first wrote them).

mod common;

use std::fs;
use std::path::PathBuf;

use fota_agent::sim::{CutVariant, Rng, TraceOp};
use fota_format::Mode;

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod exercise;

use exercise::{Input, Patch};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file of `agent/fuzz/corpus/resume/`, sorted, with its name.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus/resume");
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
fn resume_seeds() {
    let (mut prefix, mut refused) = (0, 0);
    for (name, data) in seeds() {
        let outcome = exercise::resume(&data).unwrap_or_else(|| panic!("{name}: too short"));
        // Every R1 prefix state, junk in unwritten journal slots included,
        // resumes bit-exact (resume() itself asserts it; the count here
        // shows the seeds still are what their names say).
        if name.starts_with("prefix-") {
            assert!(outcome.input.reachable(), "{name}");
            assert!(outcome.result.is_ok(), "{name}: {:?}", outcome.result);
            prefix += 1;
        } else {
            println!("{name}: {:?}", outcome.result);
            refused += usize::from(outcome.result.is_err());
        }
    }
    assert!(prefix > 40, "{prefix} prefix seeds");
    assert!(refused > 0, "no garbage seed is refused");
}

#[test]
fn inputs_round_trip() {
    let input = Input {
        in_place: true,
        k: 513,
        cut: Some((CutVariant::TornErase, 99)),
        patches: vec![
            Patch::Bytes {
                region: 2,
                offset: 7,
                data: vec![1, 2, 3],
            },
            Patch::Record {
                slot: 3,
                kind: 0x82,
                seq: 9,
                next_op: 4,
                pkg_offset: 0x8001,
                chain: 2,
            },
            Patch::Fill {
                region: 1,
                offset: 0,
                len: 300,
                value: 0,
            },
            Patch::Junk {
                n: 1,
                data: vec![0xa5; 64],
            },
        ],
    };
    assert_eq!(Input::parse(&input.to_bytes()), Some(input));
    assert_eq!(Input::parse(&[0; 11]), None);
}

fn write_enabled() -> bool {
    if std::env::var_os("FOTA_WRITE_FUZZ_SEEDS").is_none() {
        println!("set FOTA_WRITE_FUZZ_SEEDS=1 to write");
        return false;
    }
    true
}

/// Writes `agent/fuzz/fixtures/`: a 2 KiB pair and its tiny-profile A/B
/// and in-place packages, 256-byte segments.
#[test]
#[ignore = "writes the fuzz fixtures; see the module docs"]
fn regenerate_fixtures() {
    if !write_enabled() {
        return;
    }
    let (old, new) = common::pair(2048, 31);
    let dir = fuzz_dir().join("fixtures");
    fs::write(dir.join("old.bin"), &old).unwrap();
    fs::write(dir.join("new.bin"), &new).unwrap();
    for (mode, file) in [(Mode::AB, "ab.fota"), (Mode::InPlace, "ip.fota")] {
        let o = common::tiny_opts(mode, exercise::ERASE as u32);
        let pkg = fota_generator::diff(&old, &new, &common::key(), &o)
            .unwrap()
            .package;
        fs::write(dir.join(file), pkg).unwrap();
    }
}

/// Writes the seeds of `agent/fuzz/corpus/resume/`, keeping `regress-*`:
/// - `prefix-<mode>-k<k>-<cut>`: the state after every k ops of the clean
///   run, op k cut in a variant that applies to it (in turn), and random
///   bytes in one never-written journal slot (must resume bit-exact);
/// - `garbage-*`: forged records, random journal, target or scratch
///   bytes at a few points (any typed answer).
#[test]
#[ignore = "writes the fuzz seeds; see the module docs"]
fn regenerate_seeds() {
    if !write_enabled() {
        return;
    }
    let dir = fuzz_dir().join("corpus/resume");
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("prefix-") || name.starts_with("garbage-") {
            fs::remove_file(path).unwrap();
        }
    }
    let mut rng = Rng::new(12);
    let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    let mut written = 0;
    for in_place in [false, true] {
        let fx = exercise::fixture(in_place);
        let mode = if in_place { "ip" } else { "ab" };
        let ops = fx.trace.len();
        for k in 0..=ops {
            let variants: Vec<Option<CutVariant>> = match fx.trace.get(k) {
                Some(op) => vec![
                    Some(CutVariant::NotDone),
                    Some(CutVariant::Done),
                    Some(if matches!(op, TraceOp::Erase { .. }) {
                        CutVariant::TornErase
                    } else {
                        CutVariant::TornProgram
                    }),
                    None,
                ],
                None => vec![None],
            };
            let cut = variants[k % variants.len()];
            let input = Input {
                in_place,
                k: k as u16,
                cut: cut.map(|v| (v, k as u64 * 31 + 5)),
                patches: vec![Patch::Junk {
                    n: k as u8,
                    data: bytes(64),
                }],
            };
            let name = format!(
                "prefix-{mode}-k{k:03}-{}",
                cut.map_or("none", CutVariant::name)
            );
            fs::write(dir.join(name), input.to_bytes()).unwrap();
            written += 1;
        }
        let mid = (ops / 2) as u16;
        let n_ops = (fx.op_offsets.len() - 1) as u16;
        let record = |next_op: u16, kind: u8, seq: u32| Patch::Record {
            slot: 7,
            kind,
            seq,
            next_op,
            pkg_offset: next_op,
            chain: next_op as u8,
        };
        let garbage = [
            // Progress claiming three ops more than were done.
            ("skip-ahead", mid, vec![record(n_ops / 2 + 3, 2, 1000)]),
            // Finished in the middle of the update.
            ("finished-early", mid, vec![record(n_ops / 2, 3, 1000)]),
            // Another package's unfinished update.
            ("foreign-id", mid, vec![record(1, 0x82, 1000)]),
            // Progress back at op 0 after half the update.
            ("rewind", mid, vec![record(0, 2, 1000)]),
            // A record with an offset inside an op.
            (
                "bad-offset",
                mid,
                vec![Patch::Record {
                    slot: 7,
                    kind: 2,
                    seq: 1000,
                    next_op: 1,
                    pkg_offset: 0x8000 | 200,
                    chain: 1,
                }],
            ),
            (
                "journal-random",
                mid,
                vec![
                    Patch::Bytes {
                        region: 0,
                        offset: 0,
                        data: bytes(255),
                    },
                    Patch::Bytes {
                        region: 0,
                        offset: 255,
                        data: bytes(255),
                    },
                ],
            ),
            (
                "target-random",
                mid,
                vec![Patch::Bytes {
                    region: 2,
                    offset: 300,
                    data: bytes(200),
                }],
            ),
            (
                "region1-zeros",
                mid,
                vec![Patch::Fill {
                    region: 1,
                    offset: 0,
                    len: 600,
                    value: 0,
                }],
            ),
            (
                "target-erased",
                ops as u16,
                vec![Patch::Fill {
                    region: 2,
                    offset: 0,
                    len: 4096,
                    value: 0xff,
                }],
            ),
        ];
        for (what, k, patches) in garbage {
            let input = Input {
                in_place,
                k,
                cut: None,
                patches,
            };
            fs::write(dir.join(format!("garbage-{mode}-{what}")), input.to_bytes()).unwrap();
            written += 1;
        }
    }
    println!("{written} seeds written to {}", dir.display());
}
