//! The reference transform end to end on the host: packages of synthetic
//! Cortex-M firmware pairs apply bit-exactly (every `diff` self-checks
//! through the host applier) in every profile and mode, and the transform
//! pays for itself where code moved.

mod common;

use fota_format::{Mode, OpKind, Package, Profile};
use fota_generator::xform::synth::{aarch64_pair, firmware_pair, x86_64_pair};
use fota_generator::{diff, Arch, DiffOptions};
use proptest::prelude::*;

fn opts(profile: Profile, mode: Mode, arch: Arch) -> DiffOptions {
    DiffOptions {
        threads: 1,
        profile,
        mode,
        arch,
        segment_size: if mode == Mode::AB {
            4096
        } else {
            fota_generator::DEFAULT_SEGMENT_SIZE
        },
        ..DiffOptions::default()
    }
}

#[test]
fn moved_code_costs_far_less_with_the_transform() {
    for (arch, (old, new)) in [
        (Arch::Auto, firmware_pair(400, 4, 11)),
        (Arch::Auto, aarch64_pair(400, 4, 11)),
        (Arch::X86_64, x86_64_pair(400, 4, 11)),
    ] {
        moved_code_pair(&old, &new, arch);
    }
}

fn moved_code_pair(old: &[u8], new: &[u8], arch: Arch) {
    let (old, new) = (old.to_vec(), new.to_vec());
    let key = common::key(1);
    for profile in [Profile::Zstd, Profile::Tiny] {
        for mode in [Mode::AB, Mode::InPlace] {
            let with = diff(&old, &new, &key, &opts(profile, mode, arch)).unwrap();
            let without = diff(&old, &new, &key, &opts(profile, mode, Arch::None)).unwrap();
            let x = with.xform.expect("the transform applies");
            assert!(x.breakpoints >= 2, "{x:?}");
            if arch == Arch::Auto {
                let other = with.other_len.expect("both ways built") as f64;
                let exact = without.package.len() as f64;
                match profile {
                    Profile::Tiny => assert_eq!(other, exact),
                    // The zstd profile sizes the losing way with fast
                    // coding only: an estimate near the full coding.
                    Profile::Zstd => {
                        assert!((0.9..1.6).contains(&(other / exact)), "{other} vs {exact}")
                    }
                }
            }
            assert_eq!(without.xform, None);
            let ratio = with.package.len() as f64 / without.package.len() as f64;
            println!(
                "{profile:?} {mode:?}: {} vs {} bytes ({ratio:.3}), {x:?}",
                with.package.len(),
                without.package.len()
            );
            assert!(ratio < 0.7, "{profile:?} {mode:?}: {ratio:.3}");
            // Op 0 is the transform, announced by the manifest.
            let pkg = Package::parse(&with.package).unwrap();
            let m = pkg.manifest_unverified().unwrap();
            let first = pkg.ops_unverified().unwrap().next().unwrap().unwrap();
            assert_eq!(first.header.kind, OpKind::Xform);
            // The op carries the map varint-coded; the manifest says how
            // much RAM it expands to.
            let mut ram = vec![0u8; m.xform_len as usize];
            let n = fota_format::xform::expand(first.payload, 0, &mut ram).unwrap();
            assert_eq!(n, ram.len());
            assert!(first.header.payload_len < m.xform_len);
            fota_format::Xform::parse(&ram, 0).unwrap();
        }
    }
}

#[test]
fn a_package_without_gain_is_made_without_the_transform() {
    // Data that is no firmware: no layout, no transform, nothing tried.
    let old: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut new = old.clone();
    new[1000] ^= 1;
    let out = diff(&old, &new, &common::key(1), &DiffOptions::default()).unwrap();
    assert_eq!((out.xform, out.other_len), (None, None));
    // An identical pair: the transform costs its payload and gains nothing.
    let (old, _) = firmware_pair(100, 0, 3);
    let out = diff(&old, &old, &common::key(1), &DiffOptions::default()).unwrap();
    assert_eq!(out.xform, None);
    assert!(out.other_len.is_some());
}

#[test]
fn a_close_call_is_coded_both_ways_and_the_smaller_kept() {
    // A two-function AArch64 pair: the transform saves about its own cost,
    // so the fast estimates are close and both ways are coded in full.
    let (old, new) = aarch64_pair(2, 1, 0);
    let key = common::key(4);
    let out = diff(&old, &new, &key, &DiffOptions::default()).unwrap();
    let only = |arch| {
        let o = DiffOptions {
            arch,
            ..DiffOptions::default()
        };
        diff(&old, &new, &key, &o).unwrap().package.len()
    };
    let (raw, with) = (only(Arch::None), only(Arch::Aarch64));
    assert_eq!(out.package.len(), raw.min(with));
    assert_eq!(out.xform.is_some(), with < raw);
    // The other way's size is exact, not an estimate.
    assert_eq!(out.other_len, Some(raw.max(with)));
}

#[test]
fn thread_count_does_not_change_the_package() {
    let (old, new) = firmware_pair(200, 3, 5);
    let key = common::key(2);
    let mut o = opts(Profile::Tiny, Mode::AB, Arch::Auto);
    let one = diff(&old, &new, &key, &o).unwrap().package;
    o.threads = 2;
    assert_eq!(diff(&old, &new, &key, &o).unwrap().package, one);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn transformed_packages_apply(
        functions in 8usize..120,
        edits in 0usize..6,
        seed in any::<u64>(),
        tiny in any::<bool>(),
        in_place in any::<bool>(),
        isa in 0u8..3,
    ) {
        let ((old, new), arch) = match isa {
            0 => (firmware_pair(functions, edits, seed), Arch::Thumb),
            1 => (aarch64_pair(functions, edits, seed), Arch::Aarch64),
            _ => (x86_64_pair(functions, edits, seed), Arch::X86_64),
        };
        let profile = if tiny { Profile::Tiny } else { Profile::Zstd };
        let mode = if in_place { Mode::InPlace } else { Mode::AB };
        // diff applies the package to `old` and compares with `new`.
        let out = diff(&old, &new, &common::key(3), &opts(profile, mode, arch)).unwrap();
        prop_assert!(out.xform.is_some());
        prop_assert_eq!(out.other_len, None);
    }
}

#[test]
fn the_map_fits_the_ram_the_device_lends() {
    let (old, new) = firmware_pair(300, 6, 17);
    let key = common::key(4);
    let free = diff(
        &old,
        &new,
        &key,
        &opts(Profile::Tiny, Mode::AB, Arch::Thumb),
    )
    .unwrap();
    let need = Package::parse(&free.package)
        .unwrap()
        .manifest_unverified()
        .unwrap()
        .xform_len;
    assert!(free.xform.unwrap().breakpoints > 2);
    // Room for two breakpoints fewer: the map is cut, the package still applies.
    let budget = need - 16;
    let o = DiffOptions {
        xform_ram: Some(budget),
        ..opts(Profile::Tiny, Mode::AB, Arch::Thumb)
    };
    let cut = diff(&old, &new, &key, &o).unwrap();
    let m = Package::parse(&cut.package)
        .unwrap()
        .manifest_unverified()
        .unwrap();
    assert!(m.xform_len <= budget, "{} > {budget}", m.xform_len);
    assert_eq!(
        cut.xform.unwrap().breakpoints,
        free.xform.unwrap().breakpoints - 2
    );
    // No room for the ranges themselves: no transform.
    let o = DiffOptions {
        xform_ram: Some(16),
        ..opts(Profile::Tiny, Mode::AB, Arch::Thumb)
    };
    let none = diff(&old, &new, &key, &o).unwrap();
    assert_eq!(none.xform, None);
}
