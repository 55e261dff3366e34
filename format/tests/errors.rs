//! Every error variant formats to one lower-case line naming what was
//! expected, and the specific checks raise the variant they should.

use fota_format::{Error, Label};

#[test]
fn every_variant_formats_on_one_line() {
    let l = Label::new("class-a").unwrap();
    let all = [
        Error::Truncated {
            offset: 1,
            needed: 2,
            available: 0,
            what: "x",
        },
        Error::BadMagic { found: [0; 8] },
        Error::UnsupportedVersion {
            found: 2,
            supported: 1,
        },
        Error::BadLength {
            offset: 1,
            what: "x",
            expected: 2,
            found: 3,
        },
        Error::NonZeroReserved { offset: 5 },
        Error::InvalidField {
            offset: 1,
            what: "x",
            found: 9,
        },
        Error::InvalidText {
            offset: 1,
            what: "x",
        },
        Error::UnknownKey { key_id: [0xab; 8] },
        Error::BadSignature,
        Error::OpHashMismatch {
            op_index: 1,
            offset: 400,
        },
        Error::TrailingBytes {
            offset: 1,
            count: 2,
        },
        Error::OpLayout {
            op_index: 0,
            offset: 1,
            what: "x",
            expected: 1,
            found: 2,
        },
        Error::DeviceClassMismatch {
            package: l,
            device: Label::new("class-b").unwrap(),
        },
        Error::SecurityCounterTooLow {
            package: 1,
            device: 2,
        },
        Error::SourceSizeMismatch {
            expected: 1,
            found: 2,
        },
        Error::SourceHashMismatch,
        Error::SourceExtentHashMismatch { op_index: 3 },
        Error::SegmentHashMismatch {
            op_index: 3,
            dst_offset: 4096,
        },
        Error::TargetHashMismatch,
        Error::PatchMalformed {
            op_index: 0,
            offset: 7,
            what: "x",
        },
        Error::PatchReadOutsideExtents {
            op_index: 0,
            src_offset: 9,
            len: 3,
        },
        Error::PayloadCodec {
            op_index: 0,
            what: "x",
        },
    ];
    for e in all {
        let text = e.to_string();
        assert!(!text.is_empty() && !text.contains('\n'), "{e:?}: {text}");
        assert!(!text.chars().next().unwrap().is_uppercase(), "{text}");
    }
    assert!(Error::BadMagic {
        found: *b"\x7fELF\x02\x01\x01\x00"
    }
    .to_string()
    .contains("7f 45 4c 46"));
    assert!(Error::UnknownKey { key_id: [0xab; 8] }
        .to_string()
        .contains("ab ab"));
    let dc = Error::DeviceClassMismatch {
        package: l,
        device: Label::new("class-b").unwrap(),
    }
    .to_string();
    assert!(dc.contains("class-a") && dc.contains("class-b"), "{dc}");
}

#[test]
fn labels_refuse_what_does_not_fit() {
    assert!(Label::new(&"x".repeat(33)).is_err());
    assert!(Label::new("a\0b").is_err());
    let mut bad = [0u8; 32];
    bad[0] = b'a';
    bad[2] = b'b'; // text after the padding
    assert!(Label::from_bytes(bad).is_none());
    let mut bad_utf8 = [0u8; 32];
    bad_utf8[0] = 0xff;
    assert!(Label::from_bytes(bad_utf8).is_none());
    assert!(Label::new("").unwrap().is_empty());
}

#[test]
fn manifest_rules_raise_their_errors() {
    use fota_format::Manifest;
    let m = manifest();
    assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
    // A/B: one op per segment. In place: at least one per segment (stash
    // ops come on top), and only in-place packages have scratch slots.
    let ab = Manifest {
        mode: fota_format::Mode::AB,
        ..m
    };
    for op_count in [1, 3] {
        assert!(matches!(
            Manifest::parse(&Manifest { op_count, ..ab }.to_bytes()),
            Err(Error::BadLength { offset: 288, .. })
        ));
    }
    assert_eq!(
        Manifest::parse(
            &Manifest {
                scratch_slots: 1,
                ..ab
            }
            .to_bytes()
        ),
        Err(Error::InvalidField {
            offset: 360,
            what: "scratch slots (none for A/B)",
            found: 1
        })
    );
    let in_place = Manifest {
        mode: fota_format::Mode::InPlace,
        scratch_slots: 2,
        ..m
    };
    assert!(Manifest::parse(
        &Manifest {
            op_count: 3,
            ..in_place
        }
        .to_bytes()
    )
    .is_ok());
    assert!(matches!(
        Manifest::parse(
            &Manifest {
                op_count: 1,
                ..in_place
            }
            .to_bytes()
        ),
        Err(Error::BadLength { offset: 288, .. })
    ));
    // An empty target has no chain head.
    let empty = Manifest {
        target_size: 0,
        op_count: 0,
        ..m
    };
    assert_eq!(
        Manifest::parse(&empty.to_bytes()),
        Err(Error::NonZeroReserved { offset: 296 })
    );
    let empty = Manifest {
        first_op_sha256: [0; 32],
        ..empty
    };
    assert!(Manifest::parse(&empty.to_bytes()).is_ok());
    // Segment sizes: multiples of 256 from 256 B to 256 MiB.
    for bad in [0u32, 255, 300, (1 << 28) + 256] {
        let b = Manifest {
            segment_size: bad,
            ..m
        };
        assert!(
            matches!(
                Manifest::parse(&b.to_bytes()),
                Err(Error::InvalidField { offset: 204, .. })
            ),
            "{bad}"
        );
    }
    let mut bytes = m.to_bytes();
    bytes[104] = 7; // mode
    assert!(matches!(
        Manifest::parse(&bytes),
        Err(Error::InvalidField { offset: 200, .. })
    ));
    let mut bytes = m.to_bytes();
    bytes[106] = 1; // reserved
    assert_eq!(
        Manifest::parse(&bytes),
        Err(Error::NonZeroReserved { offset: 202 })
    );
}

#[test]
fn parsers_take_any_base_offset_without_overflow() {
    use fota_format::op::parse_extent;
    use fota_format::OpHeader;
    for at in [u64::MAX, u64::MAX - 3, u64::MAX - 127] {
        assert!(OpHeader::parse(&[1, 9], at).is_err());
        assert!(OpHeader::parse(&[1], at).is_err());
        assert!(OpHeader::parse(&[0xff; 128], at).is_err());
        assert!(parse_extent(&[0; 16], at).is_err());
    }
}

#[test]
fn op_chain_state_moves_only_when_an_op_passes() {
    use fota_format::{Codec, Manifest, Mode, OpChain, OpHeader, OpKind};
    let m = Manifest {
        mode: Mode::AB,
        segment_size: 256,
        source_size: 0,
        target_size: 256,
        op_count: 1,
        first_op_sha256: [7; 32],
        ..manifest()
    };
    let op = OpHeader {
        kind: OpKind::Fill,
        codec: Codec::Stored,
        fill_value: 1,
        extent_count: 0,
        payload_len: 0,
        decoded_len: 0,
        dst_offset: 0,
        dst_len: 256,
        dst_sha256: [0; 32],
        src_sha256: [0; 32],
        next_op_sha256: [9; 32], // the last op must link to nothing
    };
    let mut chain = OpChain::new(&m);
    assert_eq!(
        chain.check(&op, &[], &[7; 32], 368),
        Err(Error::NonZeroReserved { offset: 464 })
    );
    assert_eq!(chain.next_index(), 0);
    assert!(!chain.is_complete());
    assert!(matches!(
        chain.check(&op, &[], &[8; 32], 368),
        Err(Error::OpHashMismatch { op_index: 0, .. })
    ));
    let good = OpHeader {
        next_op_sha256: [0; 32],
        ..op
    };
    chain.check(&good, &[], &[7; 32], 368).unwrap();
    assert!(chain.is_complete());
}

/// A valid two-segment manifest for the rule tests.
fn manifest() -> fota_format::Manifest {
    fota_format::Manifest {
        device_class: Label::EMPTY,
        from_version: Label::EMPTY,
        to_version: Label::EMPTY,
        security_counter: 0,
        mode: fota_format::Mode::InPlace,
        profile: fota_format::Profile::Zstd,
        segment_size: 4096,
        source_size: 10,
        source_sha256: [0; 32],
        target_size: 8192,
        target_sha256: [0; 32],
        op_count: 2,
        first_op_sha256: [1; 32],
        release_notes_sha256: [0; 32],
        scratch_slots: 0,
        xform_len: 0,
        streams_len: 0,
    }
}
