//! Refusals that depend on the device rather than the package: a layout
//! that does not fit, buffers too small, and an unfinished in-place update
//! of another package. Each is a typed error with no flash write.

mod common;

use common::{ab_setup, in_place_setup, key, opts, pair};
use fota_agent::sim::CutVariant;
use fota_agent::{Error, Layout, Range, Slots};
use fota_format::Mode;

fn layout_err(e: &Error) -> &'static str {
    match e {
        Error::Layout { what, .. } => what,
        other => panic!("not a layout error: {other:?}"),
    }
}

#[test]
fn layouts_that_do_not_fit_are_refused_before_any_write() {
    let (old, new) = pair(6 * 1024, 8);
    let keys = [key().verifying_key()];
    let ab = fota_generator::diff(&old, &new, &key(), &opts(Mode::AB, 1024))
        .unwrap()
        .package;
    let base = ab_setup(&old, &new, &ab, &keys, 1024, 4);
    let Slots::AB { source, target } = base.layout.slots else {
        unreachable!()
    };
    let journal = base.layout.journal;
    let cases = [
        (
            Layout {
                journal: Range::new(journal.start, 1024),
                ..base.layout
            },
            "journal erase blocks",
        ),
        (
            Layout {
                slots: Slots::AB {
                    source,
                    target: Range::new(target.start - 1024, target.len),
                },
                ..base.layout
            },
            "not overlapping",
        ),
        (
            Layout {
                slots: Slots::AB {
                    source,
                    target: Range::new(target.start + 100, target.len - 1024),
                },
                ..base.layout
            },
            "erase-block bounds",
        ),
        (
            Layout {
                slots: Slots::AB {
                    source,
                    target: Range::new(target.start, 1024),
                },
                ..base.layout
            },
            "target slot length",
        ),
        (
            Layout {
                slots: Slots::InPlace {
                    image: source,
                    scratch: Range::new(target.start, 2048),
                },
                ..base.layout
            },
            "package mode",
        ),
    ];
    for (layout, want) in cases {
        let mut setup = base.clone();
        setup.layout = layout;
        setup.config.layout = layout;
        let mut flash = setup.fresh_flash();
        let e = setup.run(&mut flash).unwrap_err();
        assert!(layout_err(&e).contains(want), "{want}: {e:?}");
        assert_eq!(flash.ops, 0, "{want}");
    }

    // A work buffer smaller than three chunks.
    let mut flash = base.fresh_flash();
    let mut work = [0u8; 100];
    let e = fota_agent::block_on(fota_agent::apply(
        &mut flash,
        &mut fota_agent::SlicePackage(&ab),
        &base.config,
        fota_agent::Buffers {
            work: &mut work,
            written: &mut [],
            overwritten: &mut [],
            slots: &mut [],
        },
    ))
    .unwrap_err();
    assert_eq!(layout_err(&e), "work buffer length");
    assert_eq!(flash.ops, 0);
}

#[test]
fn an_unfinished_in_place_update_refuses_another_package_until_it_ends() {
    let (old, new) = pair(8 * 1024, 9);
    let (_, other_new) = pair(8 * 1024, 10);
    let keys = [key().verifying_key()];
    let first = fota_generator::diff(&old, &new, &key(), &opts(Mode::InPlace, 1024))
        .unwrap()
        .package;
    let second = fota_generator::diff(&old, &other_new, &key(), &opts(Mode::InPlace, 1024))
        .unwrap()
        .package;
    let a = in_place_setup(&old, &new, &first, &keys, 1024, 4, 4);
    let b = in_place_setup(&old, &other_new, &second, &keys, 1024, 4, 4);
    // Cut the first update halfway.
    let (_, trace) = a.golden().unwrap();
    let mut flash = a.fresh_flash();
    flash.cut_at(trace.len() as u64 / 2, CutVariant::NotDone, 1);
    assert!(a.run(&mut flash).is_err());
    flash.power_on();
    let before = flash.bytes().to_vec();
    let e = b.run(&mut flash).unwrap_err();
    assert!(matches!(e, Error::UnfinishedOtherUpdate { .. }), "{e:?}");
    assert_eq!(flash.bytes(), &before[..], "the refusal wrote nothing");
    // The right package still finishes it; then the other may start.
    a.run(&mut flash).unwrap();
    assert!(a.is_done(&flash));
}
