//! A package that diffs compressed streams decompressed needs the host
//! applier: the device refuses it from its manifest, before any write.

mod common;

use common::{ab_setup, key, opts};
use fota_agent::sim::SimFlash;
use fota_agent::{Buffers, Error};
use fota_format::Mode;
use fota_generator::streams::synth::stream_pair;

#[test]
fn a_package_with_a_stream_table_is_refused_before_any_write() {
    let (old, new) = stream_pair(40_000, 3);
    let o = opts(Mode::AB, 1024);
    let out = fota_generator::diff(&old, &new, &key(), &o).unwrap();
    assert!(out.streams.is_some(), "the stream stage applies");
    let keys = [key().verifying_key()];
    let setup = ab_setup(&old, &new, &out.package, &keys, 1024, 4);
    let mut flash: SimFlash = setup.fresh_flash();
    let mut work = vec![0u8; fota_agent::work_len(4, 1) + 256];
    let (mut w, mut ov, mut s) = (vec![0u8; 64], vec![0u8; 64], vec![0u32; 4]);
    let mut source = fota_agent::SlicePackage(&out.package);
    let err = fota_agent::block_on(fota_agent::apply(
        &mut flash,
        &mut source,
        &setup.config,
        Buffers {
            work: &mut work,
            written: &mut w,
            overwritten: &mut ov,
            slots: &mut s,
        },
    ))
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Package(fota_format::Error::InvalidField { offset: 96, what, found })
                if what.contains("host applier") && found > 0
        ),
        "{err:?}"
    );
    assert_eq!(flash.ops, 0);
    // Made without the stage, the same pair updates on the device.
    let plain = fota_generator::DiffOptions {
        decompress: false,
        ..o
    };
    let out = fota_generator::diff(&old, &new, &key(), &plain).unwrap();
    assert!(out.streams.is_none());
    let setup = ab_setup(&old, &new, &out.package, &keys, 1024, 4);
    let report = setup.single_cuts("no-decompress", 1, 1).unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
}
