//! In-place packages: diff then apply gives back the new image, the op
//! order passes the format's in-place simulator, stashes stay within the
//! scratch, and the planner falls back to NEW when scratch runs out.

mod common;

use common::{diff_and_apply, firmware_pair, key, small_opts, Rng};
use fota_format::op::OpKind;
use fota_format::{Mode, Package};
use fota_generator::plan::PlannedOp;
use fota_generator::{diff, inplace, DiffOptions, DiffOutput};
use proptest::prelude::*;

/// In place on 1 KiB erase blocks (so segments are 1 KiB), `slots` slots of scratch.
fn in_place(slots: Option<u64>) -> DiffOptions {
    DiffOptions {
        mode: Mode::InPlace,
        erase_size: 1024,
        scratch_size: slots.map(|n| n * 1024),
        ..small_opts()
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// The package's ops as the planner's type, for the simulator.
fn planned_ops(package: &[u8]) -> (fota_format::Manifest, Vec<PlannedOp>) {
    let pkg = Package::parse(package).unwrap();
    let m = pkg.manifest_unverified().unwrap();
    let ops = pkg
        .ops_unverified()
        .unwrap()
        .map(|op| {
            let op = op.unwrap();
            let h = op.header;
            PlannedOp {
                kind: h.kind,
                codec: h.codec,
                fill_value: h.fill_value,
                dst_offset: h.dst_offset,
                dst_len: h.dst_len,
                extents: op.extents.as_slice().to_vec(),
                payload: op.payload.to_vec(),
                decoded_len: h.decoded_len,
            }
        })
        .collect();
    (m, ops)
}

fn count(out: &DiffOutput, kind: OpKind) -> u64 {
    out.by_kind
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, s)| s.ops)
}

/// Diffs in place, applies, and checks the package against the simulator
/// and the figures the generator reported.
fn round_trip(old: &[u8], new: &[u8], opts: &DiffOptions) -> DiffOutput {
    let out = diff_and_apply(old, new, opts, 3);
    let stats = out.in_place.expect("in-place figures");
    let (m, ops) = planned_ops(&out.package);
    assert_eq!(m.mode, Mode::InPlace);
    let high_water = inplace::simulate(&m, &ops).unwrap();
    assert_eq!(high_water, stats.stash_high_water);
    assert!(stats.stash_high_water <= m.scratch_slots);
    assert_eq!(m.scratch_slots, stats.scratch_slots);
    assert!(m.scratch_slots <= stats.scratch_slots_available);
    assert_eq!(count(&out, OpKind::Stash), stats.stash_ops);
    assert_eq!(
        ops.iter().filter(|o| o.kind == OpKind::Stash).count() as u64,
        stats.stash_ops
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_pairs_round_trip_in_place(old in proptest::collection::vec(0u8..8, 0..6000),
                                           new in proptest::collection::vec(0u8..8, 0..6000),
                                           slots in 1u64..4) {
        let opts = DiffOptions { self_check: false, segment_size: 256, erase_size: 256, scratch_size: Some(slots * 256), ..in_place(None) };
        round_trip(&old, &new, &opts);
    }

    #[test]
    fn edited_firmware_round_trips_in_place(seed in any::<u64>(),
                                            edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..20),
                                            slots in 1u64..5) {
        let (old, mut new) = firmware_pair(12_000, seed);
        for (pos, byte, what) in edits {
            let pos = usize::from(pos) % (new.len() + 1);
            match what {
                0 => new.insert(pos, byte),
                1 if pos < new.len() => { new.remove(pos); }
                _ if pos < new.len() => new[pos] = byte,
                _ => {}
            }
        }
        round_trip(&old, &new, &DiffOptions { self_check: false, ..in_place(Some(slots)) });
    }

    #[test]
    fn moved_blocks_round_trip_in_place(seed in any::<u64>(), from in 0usize..20, to in 0usize..20,
                                        len in 1usize..6000, slots in 1u64..4) {
        // A run of code cut out and put back elsewhere: everything between
        // moves up or down.
        let old = random(20 * 1024, seed);
        let (from, len) = (from * 1000, len.min(20 * 1024 - from * 1000));
        let mut new = old.clone();
        let moved: Vec<u8> = new.drain(from..from + len).collect();
        let to = (to * 1000).min(new.len());
        new.splice(to..to, moved);
        round_trip(&old, &new, &DiffOptions { self_check: false, ..in_place(Some(slots)) });
    }
}

#[test]
fn code_moving_up_or_down_is_ordered_without_cycles() {
    let old = random(32 * 1024, 5);
    // Insert 100 bytes at the front: everything moves up.
    let mut up = random(100, 6);
    up.extend_from_slice(&old);
    // Remove 100 bytes at the front: everything moves down.
    let down = old[100..].to_vec();
    for new in [up, down] {
        let out = round_trip(&old, &new, &in_place(Some(1)));
        let stats = out.in_place.unwrap();
        // A shift is a chain, not a cycle: each segment needs only a stash
        // of itself, one at a time, and nothing falls back.
        assert_eq!(stats.stash_high_water, 1);
        assert_eq!(stats.replanned_ops, 0);
        assert!(out.package.len() < 16 * 1024, "{}", out.package.len());
    }
}

#[test]
fn a_segment_swap_needs_a_stash() {
    let (x, y) = (random(1024, 1), random(1024, 2));
    let old = [x.clone(), y.clone()].concat();
    let new = [y, x].concat();
    let out = round_trip(&old, &new, &in_place(Some(1)));
    let stats = out.in_place.unwrap();
    assert_eq!(stats.stash_ops, 1);
    assert_eq!(stats.stash_high_water, 1);
    assert_eq!(count(&out, OpKind::Copy), 2);
    assert_eq!(count(&out, OpKind::New), 0);
}

#[test]
fn too_little_scratch_falls_back_to_new() {
    // Two interleaved swaps (0 <-> 2, 1 <-> 3) need two stashes live at once.
    let segs: Vec<Vec<u8>> = (0..4).map(|i| random(1024, 10 + i)).collect();
    let old = segs.concat();
    let new = [&segs[2], &segs[3], &segs[0], &segs[1]]
        .map(|s| s.as_slice())
        .concat();
    let roomy = round_trip(&old, &new, &in_place(Some(2)));
    let r = roomy.in_place.unwrap();
    assert_eq!(
        (r.stash_ops, r.stash_high_water, r.replanned_ops),
        (2, 2, 0)
    );
    assert_eq!(count(&roomy, OpKind::Copy), 4);

    let tight = round_trip(&old, &new, &in_place(Some(1)));
    let t = tight.in_place.unwrap();
    assert_eq!(t.stash_high_water, 1);
    assert_eq!(t.replanned_ops, 1);
    assert_eq!(count(&tight, OpKind::New), 1);
    assert!(tight.package.len() > roomy.package.len());
}

#[test]
fn identical_images_are_all_skip() {
    let (old, _) = firmware_pair(10_000, 3);
    let out = round_trip(&old, &old, &in_place(None));
    let stats = out.in_place.unwrap();
    assert_eq!(count(&out, OpKind::Skip), 10);
    assert_eq!((stats.stash_ops, stats.scratch_slots), (0, 0));
    assert_eq!(out.by_kind.iter().map(|(_, s)| s.ops).sum::<u64>(), 10);
}

#[test]
fn growing_and_shrinking_images_round_trip() {
    let (old, new) = firmware_pair(20_000, 8);
    let mut grown = new.clone();
    grown.extend_from_slice(&random(5000, 9));
    let shrunk = new[..9000].to_vec();
    for (a, b) in [
        (&old, &grown),
        (&grown, &old),
        (&old, &shrunk),
        (&shrunk, &old),
    ] {
        round_trip(a, b, &in_place(None));
    }
    // Edge cases: empty sides, one byte, a short last segment.
    round_trip(&[], &new, &in_place(None));
    round_trip(&old, &[], &in_place(None));
    round_trip(&[], &[], &in_place(None));
    round_trip(&[1], &[1, 2], &in_place(None));
    round_trip(&old[..1500], &old[..1400], &in_place(None));
}

#[test]
fn unchanged_segments_are_skipped_around_an_edit() {
    let old = random(16 * 1024, 4);
    let mut new = old.clone();
    new[5000] ^= 0xFF;
    let out = round_trip(&old, &new, &in_place(None));
    assert_eq!(count(&out, OpKind::Skip), 15);
    // The edited segment reads itself: one stash.
    assert_eq!(out.in_place.unwrap().stash_ops, 1);
}

#[test]
fn in_place_package_is_identical_for_any_thread_count() {
    let (old, new) = firmware_pair(300_000, 12);
    let opts = |threads| DiffOptions {
        threads,
        ..in_place(Some(2))
    };
    let k = key(2);
    let one = diff(&old, &new, &k, &opts(1)).unwrap();
    let two = diff(&old, &new, &k, &opts(2)).unwrap();
    assert!(one.package == two.package);
}

#[test]
fn in_place_options_default_and_refuse() {
    let k = key(1);
    let (old, new) = firmware_pair(300_000, 4);
    // Default in place: 4 KiB segments, scratch max(8 KiB, 2 % of 303 KB).
    let opts = DiffOptions {
        mode: Mode::InPlace,
        level: 3,
        ..DiffOptions::default()
    };
    assert_eq!(opts.effective_segment_size(), 4096);
    assert_eq!(opts.scratch_slots(4096, 1000, 1000).unwrap(), 2);
    assert_eq!(opts.scratch_slots(4096, 300_000, 303_000).unwrap(), 2);
    assert_eq!(
        opts.scratch_slots(4096, 3_000_000, 1_000).unwrap(),
        60_000 / 4096
    );
    let out = round_trip(&old, &new, &opts);
    let (m, _) = planned_ops(&out.package);
    assert_eq!(m.segment_size, 4096);
    // A/B keeps its default.
    assert_eq!(DiffOptions::default().effective_segment_size(), 4 << 20);
    assert_eq!(
        DiffOptions {
            mode: Mode::InPlace,
            erase_size: 128,
            ..DiffOptions::default()
        }
        .effective_segment_size(),
        256
    );

    let refused = |o: DiffOptions, option: &str, what: &str| {
        let e = diff(b"abc", b"abd", &k, &o).unwrap_err().to_string();
        assert!(e.contains(option) && e.contains(what), "{e}");
    };
    refused(
        DiffOptions {
            segment_size: 6144,
            ..opts.clone()
        },
        "--segment-size",
        "erase blocks",
    );
    refused(
        DiffOptions {
            scratch_size: Some(4095),
            ..opts.clone()
        },
        "--scratch-size",
        "at least one",
    );
    refused(
        DiffOptions {
            erase_size: 0,
            ..opts.clone()
        },
        "--erase-size",
        "from 1",
    );
    refused(
        DiffOptions {
            scratch_size: Some(1 << 20),
            ..DiffOptions::default()
        },
        "--scratch-size",
        "in-place",
    );
}

/// Package size in place against A/B on one synthetic firmware pair, at
/// the A/B default segment and at the in-place one (`--nocapture` shows it).
#[test]
fn in_place_costs_against_ab() {
    let (old, new) = firmware_pair(1 << 20, 21);
    let k = key(4);
    let base = DiffOptions {
        level: 19,
        threads: 0,
        ..DiffOptions::default()
    };
    let ab = diff(&old, &new, &k, &base).unwrap();
    let ab_small = diff(
        &old,
        &new,
        &k,
        &DiffOptions {
            segment_size: 4096,
            ..base.clone()
        },
    )
    .unwrap();
    let ip = round_trip(
        &old,
        &new,
        &DiffOptions {
            mode: Mode::InPlace,
            ..base
        },
    );
    let s = ip.in_place.unwrap();
    println!(
        "firmware_pair(1 MiB): A/B 4 MiB segments {} B, A/B 4 KiB segments {} B, in place 4 KiB {} B \
         ({} stash ops = {} B, high-water {} of {} slots, {} re-planned)",
        ab.package.len(),
        ab_small.package.len(),
        ip.package.len(),
        s.stash_ops,
        count(&ip, OpKind::Stash) * 144,
        s.stash_high_water,
        s.scratch_slots_available,
        s.replanned_ops
    );
    // In place may not cost more than the A/B package at the same segment
    // size plus its stashes and the SKIP headers A/B does not have.
    let skip_bytes = count(&ip, OpKind::Skip) * 128;
    let stash_bytes = s.stash_ops * 144;
    assert!(
        ip.package.len() as u64 <= ab_small.package.len() as u64 + skip_bytes + stash_bytes + 1024,
        "{} vs {}",
        ip.package.len(),
        ab_small.package.len()
    );
}

/// A few bytes of each segment matched far away (a shared constant, a
/// repeated instruction sequence) tie its op to that far segment; with
/// code shifted by an insertion, such stray reads close cycles that two
/// scratch slots cannot break. Dropping the light reads keeps in place
/// close to A/B with the same segments.
#[test]
fn stray_light_reads_do_not_blow_up_the_plan() {
    let old = random(48 * 1024, 77);
    let segs = old.len() / 1024;
    let mut new = old.clone();
    new.splice(100..100, random(37, 78));
    new.truncate(old.len());
    for k in 0..segs {
        // 24 bytes of a far source segment in every target segment.
        let far = ((k + segs / 2) % segs) * 1024 + 300;
        let at = k * 1024 + 600;
        let piece = old[far..far + 24].to_vec();
        new[at..at + 24].copy_from_slice(&piece);
    }
    let k = key(5);
    // Both keep the op hash chain, so only the mode differs.
    let ab_opts = DiffOptions {
        chain: true,
        ..small_opts()
    };
    let ab = diff(&old, &new, &k, &ab_opts).unwrap();
    let ip = round_trip(&old, &new, &in_place(Some(2)));
    let s = ip.in_place.unwrap();
    println!(
        "shifted + stray reads: A/B {} B, in place {} B ({} stashes, {} re-planned)",
        ab.package.len(),
        ip.package.len(),
        s.stash_ops,
        s.replanned_ops
    );
    // Each segment reads itself (the shift), so each costs a STASH op
    // (144 B) here; beyond those, in place stays within 30 % of A/B (the
    // dropped far matches, 48 x 24 B, become literals). Keeping every
    // read, 45 ops are re-coded without their own segment: 3.4 x A/B.
    let overhead = s.stash_ops * 144 + count(&ip, OpKind::Skip) * 128;
    let rest = ip.package.len() as u64 - overhead;
    assert!(
        rest * 10 <= ab.package.len() as u64 * 13,
        "in place {} B ({rest} B without stash and skip ops) vs A/B {} B",
        ip.package.len(),
        ab.package.len()
    );
}
