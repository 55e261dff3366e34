//! Patches whose literals are coded after the op's source (LZMA payload
//! layout 2, a preset dictionary): the device decodes them once it has
//! gathered the source, resumes bit-exact after any single power cut, and
//! refuses one whose dictionary window lies outside the source before it
//! writes the segment.

mod common;

use common::{ab_setup, assert_refused_before_writing, key, one_lzma_patch_package, opts};
use fota_agent::sim::Rng;
use fota_format::lzma_payload::literals_follow_source;
use fota_format::{Mode, Package};

/// Thumb-like code, and a newer build of it made of short pieces of the
/// old (8 to 40 bytes from anywhere) between new instructions, as a
/// recompile with other register choices and inlining makes: no long
/// block matches, but LZMA finds the pieces in the old image.
fn rebuilt_code(words: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let ops = [0xb5u8, 0xbd, 0x46, 0x68, 0xf7, 0x20];
    let old: Vec<u8> = (0..words)
        .flat_map(|_| [rng.below(24) as u8, ops[rng.below(6) as usize]])
        .collect();
    let mut new = Vec::new();
    while new.len() < old.len() {
        let len = 8 + 2 * rng.below(17) as usize;
        let at = 2 * rng.below((old.len() - len) as u64 / 2) as usize;
        new.extend_from_slice(&old[at..at + len]);
        new.extend_from_slice(&[rng.below(24) as u8, ops[rng.below(6) as usize]]);
    }
    (old, new)
}

/// Indices of the ops whose LZMA literals follow the op's source (layout
/// 2, or 3 with a window).
fn dictionary_ops(package: &[u8]) -> Vec<u32> {
    Package::parse(package)
        .unwrap()
        .ops_unverified()
        .unwrap()
        .map(|op| op.unwrap())
        .filter(|op| literals_follow_source(op.header.codec, op.payload))
        .map(|op| op.index)
        .collect()
}

#[test]
fn every_single_cut_resumes_bit_exact_with_literals_after_the_source() {
    let (old, new) = rebuilt_code(8 * 1024, 11);
    let keys = [key().verifying_key()];
    let o = opts(Mode::AB, 4096);
    let pkg = fota_generator::diff(&old, &new, &key(), &o)
        .unwrap()
        .package;
    assert!(
        !dictionary_ops(&pkg).is_empty(),
        "some op codes its literals after the source"
    );
    for write in [1usize, 16] {
        let setup = ab_setup(&old, &new, &pkg, &keys, 4096, write);
        let report = setup.single_cuts("dictionary", 1, 3).unwrap();
        assert!(report.failures.is_empty(), "{:#?}", report.failures);
        assert!(report.clean_ops >= 4, "{report:?}");
    }
}

#[test]
fn a_dictionary_window_past_the_source_is_refused_before_the_segment_is_written() {
    use fota_format::lzma_payload::{patch_payload_len, write_dict_table, DictWindow, StreamEntry};
    const SEG: usize = 4096;
    let old: Vec<u8> = (0..SEG).map(|i| (i * 7 % 251) as u8).collect();
    let new: Vec<u8> = (0..SEG).map(|i| (i * 13 % 241) as u8).collect();
    // One record of all literals; stored streams, so only the window is wrong.
    let ctrl = [0u8, 0x80, (SEG >> 7) as u8, 0];
    let stored = |n: usize| StreamEntry {
        props: None,
        unpacked_len: n,
        packed_len: n,
    };
    let mut payload = Vec::new();
    let window = DictWindow {
        offset: 1,
        len: SEG,
    };
    write_dict_table(
        &[stored(ctrl.len()), stored(0), stored(SEG)],
        window,
        &mut payload,
    );
    payload.extend_from_slice(&ctrl);
    payload.extend_from_slice(&new);
    let pkg = one_lzma_patch_package(
        &old,
        &new,
        payload,
        patch_payload_len(&ctrl, &[], &new),
        SEG,
    );
    assert_refused_before_writing(
        &old,
        &new,
        &pkg,
        SEG,
        "a dictionary window inside the op's source",
    );
}
