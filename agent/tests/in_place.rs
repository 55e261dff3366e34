//! In-place updates: STASH, reads from scratch, SKIP, and every single cut.

mod common;

use common::{in_place_setup, key};
use fota_format::op::{Codec, Extent, OpKind};
use fota_format::{Label, Manifest, Mode};
use fota_generator::plan::PlannedOp;
use fota_generator::write::{image_manifest, write_package};

const SEG: u64 = 1024;

fn op(kind: OpKind, dst: u64, extents: Vec<Extent>, payload: Vec<u8>) -> PlannedOp {
    let len = payload.len() as u32;
    PlannedOp {
        kind,
        codec: Codec::Stored,
        fill_value: 0,
        dst_offset: dst,
        dst_len: if kind == OpKind::New { len } else { SEG as u32 },
        extents,
        decoded_len: len,
        payload,
    }
}

fn seg(i: u64) -> Extent {
    Extent {
        offset: i * SEG,
        len: SEG,
    }
}

/// Old image of 8 segments; the new one swaps segments 0 and 1, keeps 2–5,
/// and has new bytes in 6–7: a cycle broken by a stash, skips, and NEWs.
fn swap_case() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..8 * SEG).map(|i| (i * 31 % 251) as u8).collect();
    let mut new = old.clone();
    new[..SEG as usize].copy_from_slice(&old[SEG as usize..2 * SEG as usize]);
    new[SEG as usize..2 * SEG as usize].copy_from_slice(&old[..SEG as usize]);
    for b in &mut new[6 * SEG as usize..] {
        *b = b.wrapping_mul(3);
    }
    let s = SEG as usize;
    let ops = vec![
        op(OpKind::Stash, 0, vec![seg(0)], vec![]),
        op(OpKind::Copy, 0, vec![seg(1)], vec![]),
        op(OpKind::Copy, SEG, vec![seg(0)], vec![]),
        op(OpKind::Skip, 2 * SEG, vec![], vec![]),
        op(OpKind::Skip, 3 * SEG, vec![], vec![]),
        op(OpKind::Skip, 4 * SEG, vec![], vec![]),
        op(OpKind::Skip, 5 * SEG, vec![], vec![]),
        op(OpKind::New, 6 * SEG, vec![], new[6 * s..7 * s].to_vec()),
        op(OpKind::New, 7 * SEG, vec![], new[7 * s..].to_vec()),
    ];
    let m = Manifest {
        device_class: Label::new("test-board").unwrap(),
        scratch_slots: 1,
        ..image_manifest(&old, &new, SEG as u32, Mode::InPlace)
    };
    let pkg = write_package(m, &ops, &old, &new, &key()).unwrap();
    (old, new, pkg)
}

#[test]
fn stash_skip_and_new_apply_in_place() {
    let (old, new, pkg) = swap_case();
    let keys = [key().verifying_key()];
    let setup = in_place_setup(&old, &new, &pkg, &keys, SEG, 4, 2);
    let mut flash = setup.fresh_flash();
    setup.run(&mut flash).unwrap();
    assert!(setup.is_done(&flash));
    // Unchanged segments are never erased; changed ones once.
    let counts = flash.erase_counts();
    assert_eq!(&counts[2..6], &[0, 0, 0, 0]);
    assert!(counts[..8].iter().all(|&c| c <= 1), "{counts:?}");
}

#[test]
fn in_place_every_single_cut_resumes_bit_exact() {
    let (old, new, pkg) = swap_case();
    let keys = [key().verifying_key()];
    for write in [1usize, 8] {
        let setup = in_place_setup(&old, &new, &pkg, &keys, SEG, write, 2);
        let report = setup.single_cuts("swap", 1, 7).unwrap();
        println!("write {write}: {report:?}");
        assert!(report.failures.is_empty(), "{:#?}", report.failures);
        assert!(report.max_erases_clean <= 1);
    }
}

/// In place, each op's source bytes are hashed before anything is erased:
/// a stash slot that changed while the power was off is refused at the op
/// that reads it (`SourceExtentHashMismatch`), before that op erases its
/// segment.
#[test]
fn a_stash_changed_before_a_resume_is_refused_before_its_reader_erases() {
    let (old, new, pkg) = swap_case();
    let keys = [key().verifying_key()];
    let setup = in_place_setup(&old, &new, &pkg, &keys, SEG, 4, 2);
    let (_, trace) = setup.golden().unwrap();
    // The state just before segment 0 is first erased: the stash of
    // segment 0 is done and committed, nothing of the image is written.
    let k = trace
        .iter()
        .position(|op| matches!(op, fota_agent::sim::TraceOp::Erase { from: 0, .. }))
        .expect("segment 0 is rewritten");
    let mut flash = setup.fresh_flash();
    for op in &trace[..k] {
        flash.apply_op(op);
    }
    // One bit of the stashed copy of segment 0 (scratch slot 0) flips.
    let slot0 = setup.layout.scratch().start;
    let byte = flash.bytes()[slot0 as usize + 100];
    flash.load(slot0 + 100, &[byte ^ 0x10]);
    flash.reset_counters();
    let err = setup.run(&mut flash).unwrap_err();
    // Op 2 (COPY into segment 1 from the stash) reads it; op 1 (COPY of
    // segment 1 into segment 0) runs first and is fine.
    assert_eq!(
        err,
        fota_agent::Error::Package(fota_format::Error::SourceExtentHashMismatch { op_index: 2 })
    );
    assert_eq!(flash.erase_counts()[1], 0, "segment 1 was not erased");
    assert!(!setup.is_done(&flash));
}
