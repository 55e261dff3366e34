//! Every way a package, a key or a source image can be wrong is refused with
//! its own error, and the host applier returns nothing on refusal.

mod common;

use common::{firmware_pair, key, small_opts};
use fota_format::op::{Codec, Extent, OpKind};
use fota_format::{Error, Label, Manifest, Mode, OpAuth, Package};
use fota_generator::plan::PlannedOp;
use fota_generator::write::write_package;
use fota_generator::{apply, diff, DeviceIdentity, DiffOptions};

struct Fixture {
    old: Vec<u8>,
    new: Vec<u8>,
    package: Vec<u8>,
}

/// A package of several ops, signed whole (format version 3) or, with
/// `chain`, hash-chained (version 2).
fn fixture_with(chain: bool) -> Fixture {
    let (old, new) = firmware_pair(6000, 3);
    let opts = DiffOptions {
        device_class: Label::new("acme-sensor-v2").unwrap(),
        security_counter: 5,
        chain,
        ..small_opts()
    };
    let package = diff(&old, &new, &key(1), &opts).unwrap().package;
    Fixture { old, new, package }
}

fn fixture() -> Fixture {
    fixture_with(false)
}

fn device() -> DeviceIdentity {
    DeviceIdentity {
        device_class: Label::new("acme-sensor-v2").unwrap(),
        security_counter: 5,
    }
}

fn try_apply(f: &Fixture, package: &[u8]) -> Result<Vec<u8>, Error> {
    apply(&f.old, package, &[key(1).verifying_key()], &device())
}

#[test]
fn the_fixture_applies() {
    let f = fixture();
    assert_eq!(try_apply(&f, &f.package).unwrap(), f.new);
    let kinds = fota_format::Package::parse(&f.package)
        .unwrap()
        .ops_unverified()
        .unwrap()
        .count();
    assert!(kinds >= 5, "want several ops, got {kinds}");
}

#[test]
fn truncation_at_every_length_is_refused_as_truncated() {
    let f = fixture();
    for len in 0..f.package.len() {
        match try_apply(&f, &f.package[..len]) {
            Err(Error::Truncated { .. }) => {}
            other => panic!("truncated to {len} bytes: {other:?}"),
        }
    }
    let mut longer = f.package.clone();
    longer.push(0);
    assert!(matches!(
        try_apply(&f, &longer),
        Err(Error::TrailingBytes { count: 1, .. })
    ));
}

#[test]
fn every_single_bit_flip_is_refused_by_the_check_for_its_region() {
    for chain in [true, false] {
        every_bit_flip_is_refused(chain);
    }
}

fn every_bit_flip_is_refused(chain: bool) {
    let f = fixture_with(chain);
    let header = *Package::parse(&f.package).unwrap().header();
    let ops_start = header.ops_offset() as usize;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for byte in 0..f.package.len() {
        for bit in 0..8 {
            let mut p = f.package.clone();
            p[byte] ^= 1 << bit;
            let err = try_apply(&f, &p).expect_err("a flipped package must be refused");
            let ok = match byte {
                0..8 => matches!(err, Error::BadMagic { .. }),
                // Versions 2 and 3 are one bit apart; the version is
                // signed.
                8..10 => matches!(err, Error::UnsupportedVersion { .. } | Error::BadSignature),
                10..12 => matches!(err, Error::BadLength { .. }),
                // The manifest length moves where the op section starts.
                12..16 => matches!(
                    err,
                    Error::BadLength { .. } | Error::Truncated { .. } | Error::TrailingBytes { .. }
                ),
                16..24 => matches!(
                    err,
                    Error::Truncated { .. } | Error::TrailingBytes { .. } | Error::BadLength { .. }
                ),
                24..32 => matches!(err, Error::UnknownKey { .. }),
                32..96 => matches!(err, Error::BadSignature),
                b if b < ops_start => matches!(err, Error::BadSignature),
                // Op bytes signed whole: the signature catches it before
                // any op is parsed.
                _ if !chain => matches!(err, Error::BadSignature),
                // Op bytes: the chain catches it, or the head no longer
                // parses (a kind or codec unknown, a length out of bounds
                // or running past the op section).
                _ => matches!(
                    err,
                    Error::OpHashMismatch { .. }
                        | Error::Truncated { .. }
                        | Error::InvalidField { .. }
                        | Error::BadLength { .. }
                ),
            };
            assert!(ok, "flip of bit {bit} in byte {byte}: unexpected {err:?}");
            *counts.entry(variant_name(&err)).or_default() += 1;
        }
    }
    // Every region was exercised.
    let chain_check = ["OpHashMismatch"].into_iter().filter(|_| chain);
    for v in [
        "BadMagic",
        "UnsupportedVersion",
        "BadLength",
        "UnknownKey",
        "BadSignature",
    ]
    .into_iter()
    .chain(chain_check)
    {
        assert!(counts.contains_key(v), "{v} never raised: {counts:?}");
    }
}

fn variant_name(e: &Error) -> &'static str {
    match e {
        Error::BadMagic { .. } => "BadMagic",
        Error::UnsupportedVersion { .. } => "UnsupportedVersion",
        Error::BadLength { .. } => "BadLength",
        Error::UnknownKey { .. } => "UnknownKey",
        Error::BadSignature => "BadSignature",
        Error::OpHashMismatch { .. } => "OpHashMismatch",
        Error::Truncated { .. } => "Truncated",
        Error::TrailingBytes { .. } => "TrailingBytes",
        _ => "other",
    }
}

#[test]
fn a_wrong_public_key_is_refused() {
    let f = fixture();
    let err = apply(&f.old, &f.package, &[key(9).verifying_key()], &device()).unwrap_err();
    assert!(matches!(err, Error::UnknownKey { .. }), "{err:?}");
    // Among several trusted keys, the right one is found by its id.
    let out = apply(
        &f.old,
        &f.package,
        &[key(9).verifying_key(), key(1).verifying_key()],
        &device(),
    )
    .unwrap();
    assert_eq!(out, f.new);
}

#[test]
fn a_wrong_source_image_is_refused_before_any_op() {
    let f = fixture();
    let mut other = f.old.clone();
    other[100] ^= 1;
    let trusted = [key(1).verifying_key()];
    assert_eq!(
        apply(&other, &f.package, &trusted, &device()).unwrap_err(),
        Error::SourceHashMismatch
    );
    let shorter = &f.old[..f.old.len() - 1];
    assert!(matches!(
        apply(shorter, &f.package, &trusted, &device()),
        Err(Error::SourceSizeMismatch { .. })
    ));
    assert!(matches!(
        apply(&f.new, &f.package, &trusted, &device()),
        Err(Error::SourceSizeMismatch { .. }) | Err(Error::SourceHashMismatch)
    ));
}

#[test]
fn another_device_class_and_a_rollback_are_refused() {
    let f = fixture();
    let trusted = [key(1).verifying_key()];
    let other = DeviceIdentity {
        device_class: Label::new("acme-sensor-v3").unwrap(),
        security_counter: 5,
    };
    assert!(matches!(
        apply(&f.old, &f.package, &trusted, &other),
        Err(Error::DeviceClassMismatch { .. })
    ));
    let newer = DeviceIdentity {
        security_counter: 6,
        ..device()
    };
    assert!(matches!(
        apply(&f.old, &f.package, &trusted, &newer),
        Err(Error::SecurityCounterTooLow {
            package: 5,
            device: 6
        })
    ));
    // An unspecified class accepts any package (a host tool's default).
    assert_eq!(
        apply(&f.old, &f.package, &trusted, &DeviceIdentity::default()).unwrap(),
        f.new
    );
}

// Packages below are signed and chained correctly but break one layout or
// content rule, so only that rule's check can refuse them. They keep the
// hash chain (format version 2), whose links are among the rules.

fn manifest(old: &[u8], new: &[u8], segment_size: u32, mode: Mode) -> Manifest {
    Manifest {
        op_auth: OpAuth::Chain,
        ..fota_generator::write::image_manifest(old, new, segment_size, mode)
    }
}

fn new_op(dst_offset: u64, bytes: &[u8]) -> PlannedOp {
    PlannedOp {
        kind: OpKind::New,
        codec: Codec::Stored,
        fill_value: 0,
        dst_offset,
        dst_len: bytes.len() as u32,
        extents: vec![],
        payload: bytes.to_vec(),
        decoded_len: bytes.len() as u32,
    }
}

fn signed(old: &[u8], new: &[u8], ops: &[PlannedOp], mode: Mode) -> Vec<u8> {
    write_package(manifest(old, new, 256, mode), ops, old, new, &key(1)).unwrap()
}

fn refuse(old: &[u8], package: &[u8]) -> Error {
    apply(
        old,
        package,
        &[key(1).verifying_key()],
        &DeviceIdentity::default(),
    )
    .unwrap_err()
}

#[test]
fn crafted_packages_fail_the_specific_check() {
    let old: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    let new: Vec<u8> = (0..512u32).map(|i| (i * 3) as u8).collect();
    let good = [new_op(0, &new[..256]), new_op(256, &new[256..])];
    assert_eq!(
        apply(
            &old,
            &signed(&old, &new, &good, Mode::AB),
            &[key(1).verifying_key()],
            &DeviceIdentity::default()
        )
        .unwrap(),
        new
    );

    // Reordered A/B ops.
    let swapped = [good[1].clone(), good[0].clone()];
    let e = refuse(&old, &signed(&old, &new, &swapped, Mode::AB));
    assert!(
        matches!(e, Error::OpLayout { what, .. } if what.contains("segment order")),
        "{e:?}"
    );

    // A segment written twice (and so another never) in an in-place
    // package, where any order is legal.
    let dup = [good[0].clone(), good[0].clone()];
    let e = refuse(&old, &signed(&old, &new, &dup, Mode::InPlace));
    assert!(
        matches!(e, Error::OpLayout { what, .. } if what.contains("each written once")),
        "{e:?}"
    );

    // An extra op, and a missing one: the op count is one per segment in
    // A/B; in place (where stash ops come on top) the extra op writes a
    // segment twice.
    let three = [good[0].clone(), good[1].clone(), good[1].clone()];
    let e = refuse(&old, &signed(&old, &new, &three, Mode::AB));
    assert!(
        matches!(e, Error::BadLength { what, .. } if what.contains("op count")),
        "{e:?}"
    );
    let e = refuse(&old, &signed(&old, &new, &three, Mode::InPlace));
    assert!(
        matches!(e, Error::OpLayout { what, .. } if what.contains("each written once")),
        "{e:?}"
    );
    let e = refuse(&old, &signed(&old, &new, &good[..1], Mode::AB));
    assert!(
        matches!(e, Error::BadLength { what, .. } if what.contains("op count")),
        "{e:?}"
    );

    // SKIP in an A/B package.
    let skip = PlannedOp {
        kind: OpKind::Skip,
        payload: vec![],
        decoded_len: 0,
        ..good[0].clone()
    };
    let e = refuse(
        &old,
        &signed(&old, &new, &[skip, good[1].clone()], Mode::AB),
    );
    assert!(
        matches!(e, Error::OpLayout { what, .. } if what.contains("skip")),
        "{e:?}"
    );

    // A segment of the wrong length: its length is the segment's (not on
    // the wire), so the writer, which reads every head back, refuses a
    // stored NEW op of 200 bytes for a 256-byte segment; a decoder refuses
    // such a head at its payload length (format/tests/errors.rs).
    let short = new_op(0, &new[..200]);
    let e = write_package(
        manifest(&old, &new, 256, Mode::AB),
        &[short, good[1].clone()],
        &old,
        &new,
        &key(1),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            fota_generator::Error::SelfCheck(Error::BadLength { what, found: 200, .. })
                if what.contains("whole segment")
        ),
        "{e:?}"
    );

    // COPY reading past the end of the source.
    let copy = PlannedOp {
        kind: OpKind::Copy,
        extents: vec![Extent {
            offset: 900,
            len: 256,
        }],
        payload: vec![],
        decoded_len: 0,
        ..good[0].clone()
    };
    // The writer itself refuses such an op...
    let ops = [copy, good[1].clone()];
    assert!(write_package(
        manifest(&old, &new, 256, Mode::AB),
        &ops,
        &old,
        &new,
        &key(1)
    )
    .is_err());
    // ...so hash it against a longer buffer than the manifest declares.
    let mut longer = old.clone();
    longer.resize(2048, 0);
    let pkg = write_package(
        manifest(&old, &new, 256, Mode::AB),
        &ops,
        &longer,
        &new,
        &key(1),
    )
    .unwrap();
    let e = refuse(&old, &pkg);
    assert!(
        matches!(e, Error::OpLayout { what, .. } if what.contains("inside the source")),
        "{e:?}"
    );

    // A segment whose content is not what the op promises (write_package
    // hashes the real target, the payload says otherwise).
    let mut wrong = good[0].clone();
    wrong.payload[10] ^= 0xff;
    let e = refuse(
        &old,
        &signed(&old, &new, &[wrong.clone(), good[1].clone()], Mode::AB),
    );
    assert_eq!(
        e,
        Error::SegmentHashMismatch {
            op_index: 0,
            dst_offset: 0
        }
    );

    // Ops are applied on all threads, but errors come out in op order: the
    // first bad segment, before a later one and before a later op whose
    // link is broken.
    let mut wrong1 = good[1].clone();
    wrong1.payload[10] ^= 0xff;
    let e = refuse(
        &old,
        &signed(&old, &new, &[wrong.clone(), wrong1], Mode::AB),
    );
    assert!(
        matches!(e, Error::SegmentHashMismatch { op_index: 0, .. }),
        "{e:?}"
    );
    let mut broken = signed(&old, &new, &[wrong.clone(), good[1].clone()], Mode::AB);
    *broken.last_mut().unwrap() ^= 1;
    let e = refuse(&old, &broken);
    assert!(
        matches!(e, Error::SegmentHashMismatch { op_index: 0, .. }),
        "{e:?}"
    );
    // With op 0 sound, the broken link of op 1 is what is reported.
    let mut broken = signed(&old, &new, &good, Mode::AB);
    *broken.last_mut().unwrap() ^= 1;
    let e = refuse(&old, &broken);
    assert!(
        matches!(e, Error::OpHashMismatch { op_index: 1, .. }),
        "{e:?}"
    );

    // A zstd payload that decodes to more than it declares (a bomb).
    let bomb = zstd::bulk::compress(&vec![0u8; 100_000], 3).unwrap();
    let mut big = good[0].clone();
    big.codec = Codec::Zstd;
    big.payload = bomb;
    let e = refuse(&old, &signed(&old, &new, &[big, good[1].clone()], Mode::AB));
    assert!(
        matches!(e, Error::PayloadCodec { op_index: 0, .. }),
        "{e:?}"
    );

    // A PATCH that reads outside its declared extents.
    let mut streams = fota_generator::plan::PatchStreams::default();
    streams.push_record(300, 300, vec![0u8; 256], &[]);
    let patch = PlannedOp {
        kind: OpKind::Patch,
        extents: vec![Extent {
            offset: 0,
            len: 256,
        }],
        payload: streams.into_payload(),
        ..good[0].clone()
    };
    let patch = PlannedOp {
        decoded_len: patch.payload.len() as u32,
        ..patch
    };
    let e = refuse(
        &old,
        &signed(&old, &new, &[patch, good[1].clone()], Mode::AB),
    );
    assert!(
        matches!(
            e,
            Error::PatchReadOutsideExtents {
                src_offset: 300,
                ..
            }
        ),
        "{e:?}"
    );

    // A zstd payload followed by a second frame, or a skippable frame.
    for extra in [
        zstd::bulk::compress(b"x", 3).unwrap(),
        vec![0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0],
    ] {
        let mut two = good[0].clone();
        two.codec = Codec::Zstd;
        two.payload = zstd::bulk::compress(&new[..256], 3).unwrap();
        two.payload.extend_from_slice(&extra);
        let e = refuse(&old, &signed(&old, &new, &[two, good[1].clone()], Mode::AB));
        assert!(
            matches!(e, Error::PayloadCodec { what, .. } if what.contains("exactly one")),
            "{e:?}"
        );
    }

    // The whole target does not match the manifest.
    let mut other_new = new.clone();
    other_new[0] ^= 1;
    let pkg = write_package(
        manifest(&old, &other_new, 256, Mode::AB),
        &good,
        &old,
        &new,
        &key(1),
    )
    .unwrap();
    assert_eq!(refuse(&old, &pkg), Error::TargetHashMismatch);
}

#[test]
fn in_place_ops_read_the_image_as_it_is_now() {
    let a: Vec<u8> = (0..256u32).map(|i| (i * 5) as u8).collect();
    let b: Vec<u8> = (0..256u32).map(|i| (i * 11 + 1) as u8).collect();
    let old = [a.clone(), b.clone()].concat();
    let copy = |dst: u64, src: u64| PlannedOp {
        kind: OpKind::Copy,
        codec: Codec::Stored,
        fill_value: 0,
        dst_offset: dst,
        dst_len: 256,
        extents: vec![Extent {
            offset: src,
            len: 256,
        }],
        payload: vec![],
        decoded_len: 0,
    };
    let stash = |slot: u64, src: u64| PlannedOp {
        kind: OpKind::Stash,
        ..copy(slot * 256, src)
    };
    let skip = |dst: u64| PlannedOp {
        kind: OpKind::Skip,
        extents: vec![],
        ..copy(dst, 0)
    };
    let apply_with = |new: &[u8], ops: &[PlannedOp], scratch_slots: u32| {
        let m = Manifest {
            scratch_slots,
            ..manifest(&old, new, 256, Mode::InPlace)
        };
        let pkg = write_package(m, ops, &old, new, &key(1)).unwrap();
        apply(
            &old,
            &pkg,
            &[key(1).verifying_key()],
            &DeviceIdentity::default(),
        )
    };
    // B|B: segment 1 is read before anything overwrites it, then kept.
    let new = [b.clone(), b.clone()].concat();
    assert_eq!(
        apply_with(&new, &[copy(0, 256), skip(256)], 0).unwrap(),
        new
    );
    // B|A needs a cycle broken: reading segment 0 after op 0 overwrote it
    // is refused by its layout, before anything is written...
    let new = [b.clone(), a.clone()].concat();
    let e = apply_with(&new, &[copy(0, 256), copy(256, 0)], 0).unwrap_err();
    assert!(
        matches!(e, Error::OpLayout { op_index: 1, what, .. } if what.contains("stashed")),
        "{e:?}"
    );
    // ...and works with segment 0 stashed first: later reads of it come
    // from the scratch slot.
    let swap = [stash(0, 0), copy(0, 256), copy(256, 0)];
    assert_eq!(apply_with(&new, &swap, 1).unwrap(), new);
    // The stash slot must exist in the manifest.
    let e = apply_with(&new, &swap, 0).unwrap_err();
    assert!(
        matches!(e, Error::OpLayout { op_index: 0, what, .. } if what.contains("slot")),
        "{e:?}"
    );
    // An op may not read its own segment unless it was stashed: a power
    // cut halfway would destroy its input.
    let new = [a.clone(), b.clone()].concat();
    let e = apply_with(&new, &[copy(0, 0), skip(256)], 0).unwrap_err();
    assert!(
        matches!(e, Error::OpLayout { op_index: 0, what, .. } if what.contains("stashed")),
        "{e:?}"
    );
    assert_eq!(
        apply_with(&new, &[stash(0, 0), copy(0, 0), skip(256)], 1).unwrap(),
        new
    );
    // Stashing a segment that is already overwritten is refused.
    let e = apply_with(&new, &[copy(0, 0), stash(0, 0), skip(256)], 1).unwrap_err();
    assert!(matches!(e, Error::OpLayout { .. }), "{e:?}");
    // A stash counts toward the op count but writes no segment: a package
    // whose ops cover fewer segments than the target has is refused.
    let new = [b.clone(), b.clone()].concat();
    let e = apply_with(&new, &[stash(0, 256), copy(0, 256)], 1).unwrap_err();
    assert!(
        matches!(e, Error::OpLayout { what, .. } if what.contains("every target segment")),
        "{e:?}"
    );
    // A stash slot reused while its first content is still needed.
    let new = [b.clone(), a.clone()].concat();
    let reuse = [stash(0, 0), stash(0, 256), copy(0, 256), copy(256, 0)];
    let e = apply_with(&new, &reuse, 1).unwrap_err();
    assert!(
        matches!(e, Error::OpLayout { op_index: 3, what, .. } if what.contains("stashed")),
        "{e:?}"
    );
}

/// An in-place package keeps the hash chain: asked to sign its ops whole
/// (format version 3, A/B only), the writer refuses and names the option.
#[test]
fn an_in_place_package_signed_whole_is_refused() {
    let old = vec![1u8; 512];
    let new = vec![2u8; 512];
    let m = Manifest {
        op_auth: OpAuth::Signature,
        ..manifest(&old, &new, 256, Mode::InPlace)
    };
    let ops = [new_op(0, &new[..256]), new_op(256, &new[256..])];
    let e = write_package(m, &ops, &old, &new, &key(1)).unwrap_err();
    assert!(
        matches!(
            &e,
            fota_generator::Error::Option {
                option: "--chain",
                ..
            }
        ),
        "{e}"
    );
}
