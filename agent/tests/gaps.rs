//! Patches whose diff comes as a gap list and the bytes between the gaps
//! (LZMA payload layout 3, the generator's coding of large diffs): the
//! device rebuilds the plain diff, resumes bit-exact after any single
//! power cut, and refuses a gap list that runs past its bytes before it
//! writes the segment.

mod common;

use common::{ab_setup, assert_refused_before_writing, key, one_lzma_patch_package};
use fota_format::lzma_payload::{
    gap_diff, literals_follow_source, patch_payload_len, write_gaps_table, DictWindow, StreamEntry,
    LAYOUT_PATCH_GAPS,
};
use fota_format::patch::{write_varint, MAX_VARINT_LEN};
use fota_format::Codec;

const SEG: usize = 4096;

/// An old segment, and a new one that changes a 32-bit word every 300
/// bytes (a relinked pointer table): a diff of long zero runs.
fn pair() -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..SEG).map(|i| (i * 7 % 251) as u8).collect();
    let mut new = old.clone();
    for at in (40..SEG - 4).step_by(300) {
        new[at] = new[at].wrapping_add(0x10);
        new[at + 1] = new[at + 1].wrapping_add(1);
    }
    (old, new)
}

/// A one-op A/B package of `old` → `new` whose PATCH payload is layout 3
/// with stored streams: one record copying the whole segment, its diff as
/// `gaps` over `kept`.
fn package(old: &[u8], new: &[u8], gaps: &[u8], kept: &[u8], diff: &[u8]) -> Vec<u8> {
    let mut ctrl = Vec::new();
    for v in [SEG as u64, 0, 0] {
        let mut buf = [0u8; MAX_VARINT_LEN];
        let n = write_varint(v, &mut buf);
        ctrl.extend_from_slice(&buf[..n]);
    }
    let stored = |n: usize| StreamEntry {
        props: None,
        unpacked_len: n,
        packed_len: n,
    };
    let mut payload = Vec::new();
    write_gaps_table(
        &[
            stored(ctrl.len()),
            stored(gaps.len()),
            stored(kept.len()),
            stored(0),
        ],
        DictWindow::default(),
        &mut payload,
    );
    for part in [&ctrl[..], gaps, kept] {
        payload.extend_from_slice(part);
    }
    assert_eq!(payload[0], LAYOUT_PATCH_GAPS);
    assert!(!literals_follow_source(Codec::Lzma, &payload));
    one_lzma_patch_package(old, new, payload, patch_payload_len(&ctrl, diff, &[]), SEG)
}

fn diff_of(old: &[u8], new: &[u8]) -> Vec<u8> {
    old.iter()
        .zip(new)
        .map(|(o, n)| n.wrapping_sub(*o))
        .collect()
}

#[test]
fn every_single_cut_resumes_bit_exact_with_a_gapped_diff() {
    let (old, new) = pair();
    let diff = diff_of(&old, &new);
    let (gaps, kept) = gap_diff(&diff, 96, 4);
    assert!(!gaps.is_empty() && kept.len() < SEG / 4, "{}", kept.len());
    let pkg = package(&old, &new, &gaps, &kept, &diff);
    let keys = [key().verifying_key()];
    for write in [1usize, 16] {
        let setup = ab_setup(&old, &new, &pkg, &keys, SEG as u64, write);
        let mut flash = setup.fresh_flash();
        setup.run(&mut flash).unwrap();
        assert!(setup.is_done(&flash));
        let report = setup.single_cuts("gaps", 1, 3).unwrap();
        assert!(report.failures.is_empty(), "{:#?}", report.failures);
        // Every erase, program and journal step of the clean run is cut.
        assert!(report.clean_ops >= 4, "{report:?}");
        assert_eq!(report.cuts_tried[0], report.clean_ops, "{report:?}");
    }
}

#[test]
fn a_gap_list_past_its_bytes_is_refused_before_the_segment_is_written() {
    let (old, new) = pair();
    let diff = diff_of(&old, &new);
    let (_, kept) = gap_diff(&diff, 96, 4);
    // One gap that takes one byte more than the gapped diff holds.
    let mut gaps = Vec::new();
    for v in [kept.len() as u64 + 1, 8] {
        let mut buf = [0u8; MAX_VARINT_LEN];
        let n = write_varint(v, &mut buf);
        gaps.extend_from_slice(&buf[..n]);
    }
    let pkg = package(&old, &new, &gaps, &kept, &diff);
    assert_refused_before_writing(
        &old,
        &new,
        &pkg,
        SEG,
        "a gap list of varint pairs within the gapped diff",
    );
}
