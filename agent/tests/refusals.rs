//! R8 and R10: a package or source that fails any check is refused with a
//! typed error before the first program or erase.

mod common;

use common::{ab_setup, key, opts, pair};
use fota_agent::Error;
use fota_format::{Error as FormatError, Label, Mode};

fn package() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (old, new) = pair(6 * 1024, 3);
    let pkg = fota_generator::diff(&old, &new, &key(), &opts(Mode::AB, 1024))
        .unwrap()
        .package;
    (old, new, pkg)
}

#[test]
fn every_single_bit_flip_is_refused_before_any_write() {
    let (old, new, pkg) = package();
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
        // Header/manifest flips fail before the journal's Begin.
        if bit < ops_at * 8 {
            writes_before_refusal += flash.ops;
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
