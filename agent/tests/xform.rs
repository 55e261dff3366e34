//! Packages with a reference transform (an XFORM op) on the device: every
//! single power cut resumes bit-exact in both modes and codecs, and a
//! transform the device cannot hold, or one that was tampered with, is
//! refused before anything is written.

mod common;

use common::{ab_setup, in_place_setup, key, opts, tiny_opts};
use fota_agent::sim::SimFlash;
use fota_agent::Error;
use fota_format::{Error as FormatError, Mode, OpAuth, OpKind, Package};
use fota_generator::xform::synth::{aarch64_pair, firmware_pair, x86_64_pair};
use fota_generator::{Arch, DiffOptions};

fn package(o: &DiffOptions) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    package_of(firmware_pair(120, 3, 21), Arch::Thumb, o)
}

fn package_of(
    pair: (Vec<u8>, Vec<u8>),
    arch: Arch,
    o: &DiffOptions,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (old, new) = pair;
    let o = DiffOptions { arch, ..o.clone() };
    let out = fota_generator::diff(&old, &new, &key(), &o).unwrap();
    assert!(out.xform.is_some(), "the transform applies");
    (old, new, out.package)
}

#[test]
fn every_single_cut_resumes_bit_exact_through_the_transform() {
    let keys = [key().verifying_key()];
    for (name, o) in [
        ("ab-tiny", tiny_opts(Mode::AB, 1024)),
        ("ab-zstd", opts(Mode::AB, 1024)),
        ("in-place-tiny", tiny_opts(Mode::InPlace, 1024)),
        ("in-place-zstd", opts(Mode::InPlace, 1024)),
    ] {
        for (isa, (old, new, pkg)) in [
            ("thumb2", package(&o)),
            (
                "aarch64",
                package_of(aarch64_pair(60, 3, 4), Arch::Aarch64, &o),
            ),
            (
                "x86_64",
                package_of(x86_64_pair(60, 3, 6), Arch::X86_64, &o),
            ),
        ] {
            let name = &format!("{name}-{isa}");
            for write in [1usize, 16] {
                let setup = match o.mode {
                    Mode::AB => ab_setup(&old, &new, &pkg, &keys, 1024, write),
                    Mode::InPlace => in_place_setup(&old, &new, &pkg, &keys, 1024, write, 4),
                };
                let report = setup.single_cuts(name, 1, 5).unwrap();
                println!("{name} write {write}: {report:?}");
                assert!(report.failures.is_empty(), "{name}: {:#?}", report.failures);
                assert!(report.clean_ops > 10, "{name}: {report:?}");
                assert!(report.max_rework_ops <= 1, "{name}: {report:?}");
            }
        }
    }
}

#[test]
fn a_work_buffer_without_room_for_the_transform_is_refused_before_any_write() {
    let (old, new, pkg) = package(&tiny_opts(Mode::AB, 1024));
    let keys = [key().verifying_key()];
    let setup = ab_setup(&old, &new, &pkg, &keys, 1024, 4);
    let mut flash: SimFlash = setup.fresh_flash();
    let m = Package::parse(&pkg).unwrap().manifest_unverified().unwrap();
    let need = fota_agent::work_len_for(4, 1, m.xform_len);
    assert_eq!(
        need,
        fota_agent::work_len(4, 1) + 256 + m.xform_len as usize
    );
    let mut source = fota_agent::SlicePackage(&pkg);
    let err = common::run_from(&setup, &mut flash, &mut source, need - 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Layout {
                expected,
                found,
                ..
            } if expected == need as u64 && found == need as u64 - 1
        ),
        "{err:?}"
    );
    assert_eq!(flash.ops, 0);
}

/// Both ways to authenticate the transform: its hash in the chain
/// (`chain`), or the signature over the whole op section.
#[test]
fn a_changed_transform_is_refused_before_any_write() {
    for chain in [true, false] {
        a_changed_transform_is_refused(chain);
    }
}

fn a_changed_transform_is_refused(chain: bool) {
    let (old, new, pkg) = package(&DiffOptions {
        chain,
        ..tiny_opts(Mode::AB, 1024)
    });
    let op_refused = |err: &Error| match chain {
        true => matches!(
            err,
            Error::Package(FormatError::OpHashMismatch { op_index: 0, .. })
        ),
        false => matches!(err, Error::Package(FormatError::BadSignature)),
    };
    let keys = [key().verifying_key()];
    let parsed = Package::parse(&pkg).unwrap();
    let op0 = parsed.ops_unverified().unwrap().next().unwrap().unwrap();
    assert_eq!(op0.header.kind, OpKind::Xform);
    let payload_at = op0.payload_offset as usize;
    let payload_len = op0.header.payload_len as usize;
    let run = |at: usize, flip: u8| {
        let mut bad = pkg.clone();
        bad[at] ^= flip;
        let setup = ab_setup(&old, &new, &bad, &keys, 1024, 4);
        let mut flash = setup.fresh_flash();
        let err = setup.run(&mut flash).unwrap_err();
        assert_eq!(flash.ops, 0, "written after a change at {at}");
        err
    };
    // A changed payload byte is a changed op, whatever the change makes
    // of the wire form (a varint too long, a count too large, bytes after
    // the last breakpoint): the hash is checked before that is said.
    for k in (0..payload_len).step_by(payload_len.div_ceil(24).max(1)) {
        for flip in [0x10, 0x80, 0xff] {
            let err = run(payload_at + k, flip);
            assert!(op_refused(&err), "payload byte {k} ^ {flip:#x}: {err:?}");
        }
    }
    // A changed head may not even delimit the op: it is refused as a head
    // (with a chain; without one, the signature fails first).
    let err = run(op0.offset as usize + 20, 0x10);
    assert!(
        op_refused(&err)
            || matches!(
                err,
                Error::Package(
                    FormatError::OpHashMismatch { op_index: 0, .. }
                        | FormatError::OpLayout { op_index: 0, .. }
                        | FormatError::BadLength { .. }
                        | FormatError::InvalidField { .. }
                )
            ),
        "{err:?}"
    );
}

/// Signs an edited package again, so that only the edit is wrong with it:
/// a hash-chained package's chain head becomes the hash of op 0's bytes
/// `op0`; a version-3 signature covers the edited op section.
fn sign_again(pkg: &mut [u8], op0: std::ops::Range<usize>) {
    use sha2::{Digest, Sha256};
    let (auth, ops_at) = {
        let h = Package::parse(pkg).unwrap();
        (h.header().op_auth, h.header().ops_offset() as usize)
    };
    let ops_sha256: Option<[u8; 32]> = match auth {
        OpAuth::Chain => {
            let mut m = fota_format::Manifest::parse_with(&pkg[96..ops_at], auth).unwrap();
            m.first_op_sha256 = Sha256::digest(&pkg[op0]).into();
            pkg[96..ops_at].copy_from_slice(m.to_bytes().as_slice());
            None
        }
        OpAuth::Signature => Some(Sha256::digest(&pkg[ops_at..]).into()),
    };
    let signed: [u8; 24] = pkg[..24].try_into().unwrap();
    let signature = fota_format::sign::sign(&key(), &signed, &pkg[96..ops_at], ops_sha256.as_ref());
    pkg[32..96].copy_from_slice(&signature);
}

/// A transform that is signed (its hash is the manifest's chain head) but
/// whose wire form the agent cannot read is refused with the payload
/// offset, before anything is written: the hash is no excuse to act on it.
#[test]
fn a_signed_transform_the_agent_cannot_read_is_refused_before_any_write() {
    let (old, new, pkg) = package(&tiny_opts(Mode::AB, 1024));
    let keys = [key().verifying_key()];
    let parsed = Package::parse(&pkg).unwrap();
    let op0 = parsed.ops_unverified().unwrap().next().unwrap().unwrap();
    let (start, payload_at) = (op0.offset as usize, op0.payload_offset as usize);
    let end = payload_at + op0.header.payload_len as usize;
    let mut bad = pkg.clone();
    // The breakpoint count, first varint after the fixed part, made huge.
    let mut hit = None;
    for k in payload_at..end {
        let mut probe = bad.clone();
        probe[k] = 0xff;
        sign_again(&mut probe, start..end);
        let setup = ab_setup(&old, &new, &probe, &keys, 1024, 4);
        let mut flash = setup.fresh_flash();
        let err = setup.run(&mut flash).unwrap_err();
        assert_eq!(flash.ops, 0, "written after a change at {k}");
        if let Error::Package(FormatError::InvalidField { offset, what, .. }) = err {
            if what.starts_with("xform payload chunk") {
                assert!(
                    (payload_at as u64..end as u64).contains(&offset),
                    "{offset}"
                );
                hit = Some(k);
                bad = probe;
                break;
            }
        }
    }
    assert!(
        hit.is_some(),
        "some byte of the wire form is unreadable when 0xff"
    );
    assert!(Package::parse(&bad).is_ok());
}

/// An XFORM head whose payload length runs past the end of the package is
/// refused as truncated, before its payload is read or anything written.
/// The package is cut inside that payload and signed again, so that its
/// header and manifest still verify.
#[test]
fn an_xform_payload_past_the_package_end_is_refused_as_truncated() {
    let (old, new, pkg) = package(&tiny_opts(Mode::AB, 1024));
    let keys = [key().verifying_key()];
    let parsed = Package::parse(&pkg).unwrap();
    let ops_at = parsed.header().ops_offset() as usize;
    let op0 = parsed.ops_unverified().unwrap().next().unwrap().unwrap();
    assert_eq!(op0.header.kind, OpKind::Xform);
    let cut = op0.payload_offset as usize + 1;
    let mut bad = pkg[..cut].to_vec();
    bad[16..24].copy_from_slice(&((cut - ops_at) as u64).to_le_bytes());
    sign_again(&mut bad, op0.offset as usize..cut);
    let setup = ab_setup(&old, &new, &bad, &keys, 1024, 4);
    let mut flash = setup.fresh_flash();
    let err = setup.run(&mut flash).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Package(FormatError::Truncated { offset, what: "op", .. })
                if offset == op0.offset
        ),
        "{err:?}"
    );
    assert_eq!(flash.ops, 0);
}
