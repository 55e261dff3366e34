//! diff then apply gives back the new image, for any pair, and the package
//! does not depend on the thread count.

mod common;

use common::{diff_and_apply, firmware_pair, key, small_opts};
use fota_generator::{diff, DiffOptions};
use proptest::prelude::*;

fn round_trip(old: &[u8], new: &[u8], opts: &DiffOptions) -> Vec<u8> {
    diff_and_apply(old, new, opts, 1).package
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_pairs_round_trip(old in proptest::collection::vec(0u8..8, 0..3000),
                                  new in proptest::collection::vec(0u8..8, 0..3000),
                                  seg in 1u32..6) {
        let opts = DiffOptions { segment_size: seg * 256, self_check: false, ..small_opts() };
        round_trip(&old, &new, &opts);
    }

    #[test]
    fn edited_pairs_round_trip(seed in any::<u64>(), edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..20)) {
        let (old, mut new) = firmware_pair(6000, seed);
        for (pos, byte, what) in edits {
            let pos = usize::from(pos) % (new.len() + 1);
            match what {
                0 => new.insert(pos, byte),
                1 if pos < new.len() => { new.remove(pos); }
                _ if pos < new.len() => new[pos] = byte,
                _ => {}
            }
        }
        round_trip(&old, &new, &DiffOptions { self_check: false, ..small_opts() });
    }
}

#[test]
fn edge_cases_round_trip() {
    let (old, new) = firmware_pair(5000, 9);
    let opts = small_opts();
    round_trip(&[], &new, &opts);
    round_trip(&old, &[], &opts);
    round_trip(&[], &[], &opts);
    round_trip(&old, &old, &opts);
    round_trip(&old, &vec![0xFF; 4096], &opts);
    round_trip(&[1], &[1, 2], &opts);
}

#[test]
fn similar_images_give_small_packages() {
    let (old, new) = firmware_pair(200_000, 5);
    let pkg = round_trip(
        &old,
        &new,
        &DiffOptions {
            threads: 0,
            ..DiffOptions::default()
        },
    );
    // The inserted block is 4,000 random bytes; the rest should cost little.
    assert!(pkg.len() < 12_000, "package is {} bytes", pkg.len());
}

#[test]
fn package_is_identical_for_any_thread_count() {
    // Larger than one matcher chunk (1 MiB), several segments.
    let (old, new) = firmware_pair(2_500_000, 77);
    let opts = |threads| DiffOptions {
        threads,
        segment_size: 512 * 1024,
        level: 3,
        ..DiffOptions::default()
    };
    let k = key(2);
    let one = diff(&old, &new, &k, &opts(1)).unwrap();
    let two = diff(&old, &new, &k, &opts(2)).unwrap();
    let three = diff(&old, &new, &k, &opts(3)).unwrap();
    assert_eq!(one.threads, 1);
    assert_eq!(two.threads, 2);
    assert!(one.package == two.package && two.package == three.package);
}

#[test]
fn bad_options_are_refused() {
    let k = key(1);
    for seg in [0u32, 100, 255, 257, 1 << 29] {
        let e = diff(
            b"a",
            b"b",
            &k,
            &DiffOptions {
                segment_size: seg,
                ..DiffOptions::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("--segment-size"), "{e}");
    }
    for level in [0, 23, -1] {
        let e = diff(
            b"a",
            b"b",
            &k,
            &DiffOptions {
                level,
                ..DiffOptions::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("--level"), "{e}");
    }
}
