//! R8 and R10: a package or source that fails any check is refused with a
//! typed error before the first program or erase.

mod common;

use common::{ab_setup, key, opts, pair};
use fota_agent::Error;
use fota_format::{Error as FormatError, Label, Mode};

fn package() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    package_with(false)
}

/// An A/B package of several ops, signed whole (format version 3) or, with
/// `chain`, hash-chained (version 2).
fn package_with(chain: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (old, new) = pair(6 * 1024, 3);
    let o = fota_generator::DiffOptions {
        chain,
        ..opts(Mode::AB, 1024)
    };
    let pkg = fota_generator::diff(&old, &new, &key(), &o)
        .unwrap()
        .package;
    (old, new, pkg)
}

/// A hash-chained package refuses a changed op when it reads it (the
/// header and manifest before any write); one signed whole refuses any
/// changed byte before any write.
#[test]
fn every_single_bit_flip_is_refused_before_any_write() {
    for chain in [true, false] {
        every_bit_flip_is_refused(chain);
    }
}

fn every_bit_flip_is_refused(chain: bool) {
    let (old, new, pkg) = package_with(chain);
    assert!(pkg.len() <= 64 * 1024);
    let keys = [key().verifying_key()];
    let mut writes_before_refusal = 0u64;
    let mut refused = 0u64;
    // Every bit of the header, manifest and first op; then every 7th bit.
    let ops_at = fota_format::Package::parse(&pkg)
        .unwrap()
        .header()
        .ops_offset() as usize;
    let bits = pkg.len() * 8;
    let dense = (ops_at + 256) * 8;
    for bit in (0..bits).filter(|b| *b < dense || b % 7 == 0) {
        let mut bad = pkg.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let setup = ab_setup(&old, &new, &bad, &keys, 1024, 4);
        let mut flash = setup.fresh_flash();
        let before = flash.bytes()[..old.len()].to_vec();
        let result = setup.run(&mut flash);
        let err = result.expect_err("a flipped bit must be refused");
        assert!(matches!(err, Error::Package(_)), "bit {bit}: {err:?}");
        refused += 1;
        // The source slot is never written.
        assert_eq!(&flash.bytes()[..old.len()], &before[..]);
        // Header/manifest flips fail before the journal's Begin; without
        // a chain, op flips too, at the signature.
        if bit < ops_at * 8 || !chain {
            writes_before_refusal += flash.ops;
        }
        if bit >= ops_at * 8 && !chain {
            assert!(
                matches!(err, Error::Package(FormatError::BadSignature)),
                "bit {bit}: {err:?}"
            );
        }
    }
    assert_eq!(writes_before_refusal, 0);
    assert!(refused > 1000);
}

#[test]
fn truncation_at_every_length_is_refused_with_no_write() {
    let (old, new, pkg) = package();
    let keys = [key().verifying_key()];
    for len in 0..pkg.len() {
        let setup = ab_setup(&old, &new, &pkg[..len], &keys, 1024, 4);
        let mut flash = setup.fresh_flash();
        let err = setup.run(&mut flash).unwrap_err();
        assert!(matches!(err, Error::Package(_)), "len {len}: {err:?}");
        assert_eq!(flash.ops, 0, "len {len}");
    }
}

#[test]
fn wrong_key_class_counter_and_source_are_refused_with_no_write() {
    let (old, new, pkg) = package();
    let other = [ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key()];
    let keys = [key().verifying_key()];
    let setup = ab_setup(&old, &new, &pkg, &other, 1024, 4);
    let mut flash = setup.fresh_flash();
    assert!(matches!(
        setup.run(&mut flash),
        Err(Error::Package(FormatError::UnknownKey { .. }))
    ));
    assert_eq!(flash.ops, 0);

    let mut setup = ab_setup(&old, &new, &pkg, &keys, 1024, 4);
    setup.config.device_class = Label::new("other-board").unwrap();
    let mut flash = setup.fresh_flash();
    assert!(matches!(
        setup.run(&mut flash),
        Err(Error::Package(FormatError::DeviceClassMismatch { .. }))
    ));
    assert_eq!(flash.ops, 0);

    let mut setup = ab_setup(&old, &new, &pkg, &keys, 1024, 4);
    setup.config.security_counter = 1;
    let mut flash = setup.fresh_flash();
    assert!(matches!(
        setup.run(&mut flash),
        Err(Error::Package(FormatError::SecurityCounterTooLow { .. }))
    ));
    assert_eq!(flash.ops, 0);

    // R10: a flipped bit in any source block the update uses.
    let setup = ab_setup(&old, &new, &pkg, &keys, 1024, 4);
    for block in 0..old.len() / 1024 {
        let mut flash = setup.fresh_flash();
        let mut bad = old.clone();
        bad[block * 1024 + 5] ^= 0x10;
        flash.load(0, &bad);
        assert!(matches!(
            setup.run(&mut flash),
            Err(Error::Package(FormatError::SourceHashMismatch))
        ));
        assert_eq!(flash.ops, 0, "block {block}");
    }
}

/// A/B ops carry no source hash: the whole source slot is hashed before the
/// first op and again before a resume. A source that changed while the
/// power was off is refused before the journal restarts, with no write.
#[test]
fn an_ab_source_changed_before_a_resume_is_refused_with_no_write() {
    let (old, new, pkg) = package();
    let keys = [key().verifying_key()];
    let setup = ab_setup(&old, &new, &pkg, &keys, 1024, 4);
    let (_, trace) = setup.golden().unwrap();
    let mut flash = setup.fresh_flash();
    for op in &trace[..trace.len() / 2] {
        flash.apply_op(op);
    }
    flash.load(10, &[old[10] ^ 1]);
    flash.reset_counters();
    let err = setup.run(&mut flash).unwrap_err();
    assert_eq!(err, Error::Package(FormatError::SourceHashMismatch));
    assert_eq!(flash.ops, 0);
}

/// A package signed whole (format version 3) is read to its end before
/// its signature is checked: a read that fails there stops the update
/// with the offset read, before the first program or erase; and
/// `read_manifest` says the same.
#[test]
fn a_package_unreadable_in_its_op_section_is_refused_before_any_write() {
    let (old, new, pkg) = package();
    let parsed = fota_format::Package::parse(&pkg).unwrap();
    assert_eq!(parsed.header().op_auth, fota_format::OpAuth::Signature);
    // Inside the op section, and past the first read of the header and
    // manifest (381 bytes at most).
    let ops_at = parsed.header().ops_offset();
    let fail_from = (ops_at + (pkg.len() as u64 - ops_at) / 2).max(400);
    assert!(fail_from < pkg.len() as u64);
    let keys = [key().verifying_key()];
    let setup = ab_setup(&old, &new, &pkg, &keys, 1024, 4);
    let mut flash = setup.fresh_flash();
    let mut source = common::TestPackage::failing_from(&pkg, fail_from);
    let err = common::run_from(
        &setup,
        &mut flash,
        &mut source,
        fota_agent::work_len_for(4, 1, 0),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::PackageRead { offset, .. } if (ops_at..fail_from).contains(&offset)),
        "{err:?}"
    );
    assert_eq!(flash.ops, 0);
    let err = fota_agent::block_on(fota_agent::read_manifest(&mut source, &keys)).unwrap_err();
    assert!(matches!(err, Error::PackageRead { .. }), "{err:?}");
    // Readable, the same package's manifest verifies.
    let mut whole = common::TestPackage::new(&pkg);
    let (m, _) = fota_agent::block_on(fota_agent::read_manifest(&mut whole, &keys)).unwrap();
    assert_eq!(m.op_auth, fota_format::OpAuth::Signature);
}

/// A version-3 package signed by no trusted key is refused at its key id,
/// before its op section is read for the signature.
#[test]
fn a_v3_package_of_an_unknown_key_is_refused_before_its_ops_are_read() {
    let (old, new, pkg) = package();
    let ops_at = fota_format::Package::parse(&pkg)
        .unwrap()
        .header()
        .ops_offset();
    let others = [ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key()];
    let setup = ab_setup(&old, &new, &pkg, &others, 1024, 4);
    let mut flash = setup.fresh_flash();
    // Any read of the op section fails: the refusal must come first.
    let mut source = common::TestPackage::failing_from(&pkg, ops_at.max(400) + 1);
    let work = fota_agent::work_len_for(4, 1, 0);
    let err = common::run_from(&setup, &mut flash, &mut source, work).unwrap_err();
    assert!(
        matches!(err, Error::Package(FormatError::UnknownKey { .. })),
        "{err:?}"
    );
    let err = fota_agent::block_on(fota_agent::read_manifest(&mut source, &others)).unwrap_err();
    assert!(
        matches!(err, Error::Package(FormatError::UnknownKey { .. })),
        "{err:?}"
    );
    assert_eq!(flash.ops, 0);
}

/// A byte after the last op, inside a signed version-3 op section (so the
/// signature holds), is refused with the offset after the last op, as the
/// host applier refuses it.
#[test]
fn a_signed_byte_after_the_last_op_is_refused() {
    use sha2::{Digest, Sha256};
    let (old, new, pkg) = package();
    let mut bad = pkg.clone();
    bad.push(0);
    let ops_len = u64::from_le_bytes(bad[16..24].try_into().unwrap()) + 1;
    bad[16..24].copy_from_slice(&ops_len.to_le_bytes());
    let ops_at = fota_format::Package::parse(&bad)
        .unwrap()
        .header()
        .ops_offset() as usize;
    let digest: [u8; 32] = Sha256::digest(&bad[ops_at..]).into();
    let signed: [u8; 24] = bad[..24].try_into().unwrap();
    let signature = fota_format::sign::sign(&key(), &signed, &bad[96..ops_at], Some(&digest));
    bad[32..96].copy_from_slice(&signature);
    let keys = [key().verifying_key()];
    let setup = ab_setup(&old, &new, &bad, &keys, 1024, 4);
    let mut flash = setup.fresh_flash();
    let err = setup.run(&mut flash).unwrap_err();
    let end = pkg.len() as u64;
    assert!(
        matches!(err, Error::Package(FormatError::TrailingBytes { offset, count: 1 }) if offset == end),
        "{err:?}"
    );
    let host = fota_generator::apply(&old, &bad, &keys, &Default::default()).unwrap_err();
    assert!(
        matches!(host, FormatError::TrailingBytes { offset, count: 1 } if offset == end),
        "{host:?}"
    );
}
