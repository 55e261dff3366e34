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
            Err(Error::BadLength {
                offset: OP_COUNT_AT,
                ..
            })
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
            offset: SCRATCH_AT,
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
        Err(Error::BadLength {
            offset: OP_COUNT_AT,
            ..
        })
    ));
    // An empty target has no ops, so no chain head on the wire: 32 bytes
    // where it would be are trailing bytes.
    let empty = Manifest {
        target_size: 0,
        op_count: 0,
        op_auth: fota_format::OpAuth::Chain,
        first_op_sha256: [0; 32],
        ..m
    };
    let bytes = empty.to_bytes().to_vec();
    assert_eq!(Manifest::parse(&bytes), Ok(empty));
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[1; 32]);
    assert_eq!(
        Manifest::parse(&longer),
        Err(Error::TrailingBytes {
            offset: (96 + bytes.len()) as u64,
            count: 32
        })
    );
    // Segment sizes: multiples of 256 from 256 B to 256 MiB.
    for bad in [0u32, 255, 300, (1 << 28) + 256] {
        let b = Manifest {
            segment_size: bad,
            ..m
        };
        assert!(
            matches!(
                Manifest::parse(&b.to_bytes()),
                Err(Error::InvalidField { offset: 102, .. })
            ),
            "{bad}"
        );
    }
    let mut bytes = m.to_bytes().to_vec();
    bytes[4] = 7; // mode
    assert!(matches!(
        Manifest::parse(&bytes),
        Err(Error::InvalidField { offset: 100, .. })
    ));
    let mut bytes = m.to_bytes().to_vec();
    bytes[79] = 2; // flags: only bit 0 (release notes) is defined
    assert_eq!(
        Manifest::parse(&bytes),
        Err(Error::NonZeroReserved { offset: 175 })
    );
    // A label longer than 32 bytes, and one with a NUL or bad UTF-8.
    let mut bytes = m.to_bytes().to_vec();
    bytes[0] = 33;
    assert!(matches!(
        Manifest::parse(&bytes),
        Err(Error::BadLength { offset: 96, .. })
    ));
    for text in [&b"a\0"[..], &[0xff, b'a']] {
        let mut bytes = vec![text.len() as u8];
        bytes.extend_from_slice(text);
        bytes.extend_from_slice(&m.to_bytes()[1..]);
        assert_eq!(
            Manifest::parse(&bytes),
            Err(Error::InvalidText {
                offset: 96,
                what: "device class"
            })
        );
    }
    // The release-notes flag with an all-zero hash: "none" has one
    // encoding, the flag clear.
    let mut bytes = m.to_bytes().to_vec();
    bytes[79] = 1;
    bytes.extend_from_slice(&[0; 32]);
    assert!(matches!(
        Manifest::parse(&bytes),
        Err(Error::InvalidField { offset: 208, .. })
    ));
    // No op (so no chain head) but release notes: their hash follows the
    // flags byte directly.
    let notes = Manifest {
        target_size: 0,
        op_count: 0,
        op_auth: fota_format::OpAuth::Chain,
        first_op_sha256: [0; 32],
        release_notes_sha256: [5; 32],
        ..m
    };
    let bytes = notes.to_bytes();
    assert_eq!(bytes.len(), 79 + 32);
    assert_eq!(Manifest::parse(&bytes), Ok(notes));
    // A manifest length outside the bounds names the bound it missed.
    for (len, bound) in [
        (
            fota_format::MIN_MANIFEST_LEN - 1,
            fota_format::MIN_MANIFEST_LEN,
        ),
        (
            fota_format::MAX_MANIFEST_LEN + 1,
            fota_format::MAX_MANIFEST_LEN,
        ),
    ] {
        let h = fota_format::Header {
            op_auth: fota_format::OpAuth::Chain,
            manifest_len: len as u32,
            ops_len: 0,
            key_id: [0; 8],
            signature: [0; 64],
        };
        assert!(matches!(
            fota_format::Header::parse(&h.to_bytes()),
            Err(Error::BadLength { offset: 12, expected, .. }) if expected == bound as u64
        ));
    }
    // A varint with a trailing zero group (two encodings of one value).
    let mut bytes = m.to_bytes().to_vec();
    bytes[3] = 0x80; // security counter 0 as `80 00`
    bytes.insert(4, 0x00);
    assert!(matches!(
        Manifest::parse(&bytes),
        Err(Error::InvalidField { offset: 99, .. })
    ));
    // A varint past 64 bits (the tenth byte above 1), and one of eleven
    // bytes: refused at its first byte.
    for tail in [&[0x02][..], &[0x80, 0x01]] {
        let mut bytes = m.to_bytes().to_vec();
        let mut counter = vec![0xff; 9];
        counter.extend_from_slice(tail);
        bytes.splice(3..4, counter);
        assert!(matches!(
            Manifest::parse(&bytes),
            Err(Error::InvalidField {
                offset: 99,
                found: u64::MAX,
                ..
            })
        ));
    }
    // Every proper prefix is refused as truncated.
    let bytes = m.to_bytes();
    for cut in 0..bytes.len() {
        assert!(
            matches!(Manifest::parse(&bytes[..cut]), Err(Error::Truncated { .. })),
            "cut at {cut}"
        );
    }
}

/// Package offsets of the op count and scratch slots in [`manifest`]'s
/// encoding: empty labels (3 B), counter 0, mode and profile (3 B),
/// segment size 4096 (2 B), source size 10 (1 B) and hash, target size
/// 8192 (2 B) and hash, then the op count.
const OP_COUNT_AT: u64 = 96 + 3 + 3 + 2 + 1 + 32 + 2 + 32;
const SCRATCH_AT: u64 = OP_COUNT_AT + 3;

#[test]
fn op_heads_raise_their_errors() {
    use fota_format::{Codec, Mode, OpContext, OpHead, OpHeader, OpKind};
    let ctx = OpContext {
        mode: Mode::AB,
        segment_size: 4096,
        target_size: 1 << 20,
        target_sha256: [0; 32],
        last: true,
        chained: true,
    };
    let parse = |b: &[u8]| OpHead::parse(b, 1000, &ctx);
    // Unknown kind (low nibble), unknown codec (high nibble), a codec on
    // a kind without payload.
    for (byte, what) in [
        (0x09, "op kind"),
        (0x00, "op kind"),
        (0x42, "op codec"),
        (0x11, "op codec"),
    ] {
        match parse(&[byte, 0, 0]) {
            Err(Error::InvalidField {
                offset: 1000,
                what: w,
                ..
            }) => {
                assert!(w.starts_with(what), "{byte:#x}: {w}")
            }
            other => panic!("{byte:#x}: {other:?}"),
        }
    }
    // Extent count 0 and 17.
    for n in [0u8, 17] {
        assert!(matches!(
            parse(&[0x01, n]),
            Err(Error::BadLength { offset: 1001, .. })
        ));
    }
    // An empty xform payload.
    assert!(matches!(
        parse(&[0x07, 0]),
        Err(Error::BadLength { offset: 1001, .. })
    ));
    let h = OpHeader {
        kind: OpKind::Patch,
        codec: Codec::Zstd,
        fill_value: 0,
        extent_count: 1,
        payload_len: 10,
        decoded_len: 100,
        dst_offset: 0,
        dst_len: 4096,
        dst_sha256: [3; 32],
        src_sha256: [0; 32],
        next_op_sha256: [0; 32],
    };
    let extent = [fota_format::Extent { offset: 5, len: 7 }];
    let good = h.encode(&extent, &ctx).to_vec();
    assert_eq!(parse(&good).unwrap().header, h);
    // A patch decoding past 3 x segment + 1 KiB: byte 3 is the decoded length.
    let big = OpHeader {
        decoded_len: 3 * 4096 + 1025,
        ..h
    };
    assert!(matches!(
        parse(&big.encode(&extent, &ctx)),
        Err(Error::BadLength { offset: 1003, .. })
    ));
    // A stored patch: its decoded length is its payload length (byte 2).
    let stored = OpHeader {
        codec: Codec::Stored,
        payload_len: 3 * 4096 + 1025,
        decoded_len: 3 * 4096 + 1025,
        ..h
    };
    assert!(matches!(
        parse(&stored.encode(&extent, &ctx)),
        Err(Error::BadLength { offset: 1002, .. })
    ));
    // An empty extent: its length is the head's last byte.
    let mut empty = good.clone();
    *empty.last_mut().unwrap() = 0;
    assert!(matches!(
        parse(&empty),
        Err(Error::InvalidField {
            what: "extent length (non-zero, no overflow)",
            ..
        })
    ));
    // A STASH extent longer than 4 GiB (it is the stash's length), and an
    // extent gap past 2^64: both named at their field.
    let in_place = OpContext {
        mode: Mode::InPlace,
        ..ctx
    };
    let mut stash = vec![0x06, 0x00];
    stash.extend_from_slice(&[7; 32]);
    stash.push(0x00); // gap 0
    stash.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]); // len 2^32
    assert!(matches!(
        OpHead::parse(&stash, 1000, &in_place),
        Err(Error::InvalidField { offset: 1035, what, .. }) if what.starts_with("stash extent length")
    ));
    let two = [
        fota_format::Extent {
            offset: u64::MAX - 10,
            len: 5,
        },
        fota_format::Extent { offset: 0, len: 1 },
    ];
    let copy = OpHeader {
        kind: OpKind::Copy,
        codec: Codec::Stored,
        extent_count: 2,
        payload_len: 0,
        decoded_len: 0,
        ..h
    };
    // The second gap wraps: encoded as offset - previous end, mod 2^64.
    let wire = copy.encode(&two, &ctx);
    // The second extent's gap (6) and length (1) take a byte each.
    let gap_at = 1000 + wire.len() as u64 - 2;
    assert!(matches!(
        parse(&wire),
        Err(Error::InvalidField { offset, what: "extent gap (the offset fits 64 bits)", .. }) if offset == gap_at
    ));
    // A stored new op must hold the whole segment.
    let new = OpHeader {
        kind: OpKind::New,
        codec: Codec::Stored,
        extent_count: 0,
        payload_len: 4095,
        decoded_len: 4096,
        ..h
    };
    assert!(matches!(
        parse(&new.encode(&[], &ctx)),
        Err(Error::BadLength { offset: 1001, .. })
    ));
}

#[test]
fn parsers_take_any_base_offset_without_overflow() {
    use fota_format::op::parse_extent;
    use fota_format::{Mode, OpContext, OpHead};
    let ctx = OpContext {
        mode: Mode::InPlace,
        segment_size: 4096,
        target_size: 1 << 20,
        target_sha256: [0; 32],
        last: false,
        chained: true,
    };
    for at in [u64::MAX, u64::MAX - 3, u64::MAX - 127] {
        assert!(OpHead::parse(&[1, 9], at, &ctx).is_err());
        assert!(OpHead::parse(&[1], at, &ctx).is_err());
        assert!(OpHead::parse(&[0xff; 128], at, &ctx).is_err());
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
        op_auth: fota_format::OpAuth::Chain,
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
        // The last op links to nothing (its head has no field for it;
        // a header built in memory is still refused).
        next_op_sha256: [9; 32],
    };
    let mut chain = OpChain::new(&m);
    assert_eq!(
        chain.check(&op, &[], &[7; 32], 368),
        Err(Error::NonZeroReserved { offset: 368 })
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
        op_auth: fota_format::OpAuth::Chain,
        first_op_sha256: [1; 32],
        release_notes_sha256: [0; 32],
        scratch_slots: 0,
        xform_len: 0,
        streams_len: 0,
    }
}
