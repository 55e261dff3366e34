//! Property tests: every record decodes to what was encoded, and no parser
//! panics on arbitrary bytes.

use fota_format::op::parse_extent;
use fota_format::patch::{unzigzag, write_varint, zigzag, MAX_VARINT_LEN};
use fota_format::{
    Codec, Extent, Header, Label, Manifest, Mode, OpContext, OpHead, OpHeader, OpKind, Package,
    PatchDecoder, Profile, HEADER_LEN, MAX_MANIFEST_LEN, MAX_OP_HEAD_LEN, MIN_MANIFEST_LEN,
};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = Label> {
    "[a-zA-Z0-9._-]{0,32}".prop_map(|s| Label::new(&s).unwrap())
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        (label(), label(), label(), any::<u64>()),
        (
            1u32..=4096,
            0u64..(1 << 40),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        ),
        (any::<bool>(), 0u64..(1 << 30)),
    )
        .prop_map(
            |(
                (device_class, from_version, to_version, security_counter),
                (seg, source_size, s, t, f, r),
                (ab, target_size),
            )| {
                let segment_size = seg * 256;
                let segments = target_size.div_ceil(u64::from(segment_size)) as u32;
                let mode = if ab { Mode::AB } else { Mode::InPlace };
                // In place adds stash ops and scratch slots.
                let (stashes, scratch_slots) = if ab {
                    (0, 0)
                } else {
                    (u32::from(t[0] % 4), u32::from(t[1]))
                };
                // Some packages carry an XFORM op in front.
                let xform_len = if r[0] & 1 == 0 {
                    0
                } else {
                    8 + u32::from(r[1]) * 8
                };
                // Some carry a STREAMS op before it.
                let streams_len = if r[0] & 2 == 0 {
                    0
                } else {
                    96 + u32::from(r[2]) * 40
                };
                let op_count =
                    segments + stashes + u32::from(xform_len != 0) + u32::from(streams_len != 0);
                let op_auth = match mode == Mode::AB && f[1] & 1 == 1 {
                    true => fota_format::OpAuth::Signature,
                    false => fota_format::OpAuth::Chain,
                };
                let profile = if f[0] & 1 == 0 {
                    Profile::Zstd
                } else {
                    Profile::Tiny
                };
                Manifest {
                    device_class,
                    from_version,
                    to_version,
                    security_counter,
                    mode,
                    profile,
                    segment_size,
                    source_size,
                    source_sha256: s,
                    target_size,
                    target_sha256: t,
                    op_count,
                    // A/B packages are often signed whole (version 3: no
                    // chain head on the wire).
                    op_auth,
                    first_op_sha256: match op_auth {
                        fota_format::OpAuth::Chain if op_count != 0 => f,
                        _ => [0; 32],
                    },
                    release_notes_sha256: r,
                    scratch_slots,
                    xform_len,
                    streams_len,
                }
            },
        )
}

/// An op head that round-trips: the header's fields that are not on the
/// wire agree with its context (SPEC §2.3), with its extents and context.
fn op_head() -> impl Strategy<Value = (OpHeader, Vec<Extent>, OpContext)> {
    (
        (0usize..8, 0u8..4, any::<u8>(), 1usize..=16),
        (
            any::<u32>(),
            any::<u32>(),
            1u32..=4096,
            0u64..(1 << 40),
            any::<u32>(),
        ),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        ),
        proptest::collection::vec((0u64..(1 << 40), 1u64..(1 << 31)), 16),
    )
        .prop_map(
            |(
                (kind, codec, fill, n_extents),
                (payload, decoded, seg, target_size, slot),
                (ab, last, one_segment, chained),
                (d, s, n, t),
                raw_extents,
            )| {
                let kind = OpKind::ALL[kind];
                // Often a target of one segment, whose op is at index 0 and
                // whose segment hash is the target's (not on the wire).
                let (target_size, slot) = match one_segment {
                    true => (target_size % (u64::from(seg) * 256 + 1), slot % 2),
                    false => (target_size, slot),
                };
                let ctx = OpContext {
                    mode: if ab { Mode::AB } else { Mode::InPlace },
                    segment_size: seg * 256,
                    target_size,
                    target_sha256: t,
                    last,
                    chained,
                };
                let codec = match kind {
                    OpKind::Patch | OpKind::New => Codec::from_u8(codec).unwrap(),
                    _ => Codec::Stored,
                };
                let n_extents = match kind {
                    OpKind::Copy | OpKind::Patch => n_extents,
                    OpKind::Stash => 1,
                    _ => 0,
                };
                let mut extents = Vec::new();
                let mut end = 0u64;
                for &(gap, len) in raw_extents.iter().take(n_extents) {
                    extents.push(Extent {
                        offset: end + gap,
                        len,
                    });
                    end += gap + len;
                }
                let segment = !matches!(kind, OpKind::Xform | OpKind::Streams);
                let dst_offset = if segment {
                    u64::from(slot) * u64::from(ctx.segment_size)
                } else {
                    0
                };
                let dst_len = match kind {
                    OpKind::Stash => extents[0].len as u32,
                    OpKind::Xform | OpKind::Streams => 0,
                    _ => {
                        (target_size.saturating_sub(dst_offset)).min(ctx.segment_size.into()) as u32
                    }
                };
                let bound = fota_format::op::max_patch_decoded_len(dst_len);
                let payload_len = match (kind, codec) {
                    (OpKind::New, Codec::Stored) => dst_len,
                    (OpKind::Patch, Codec::Stored) => (u64::from(payload) % (bound + 1)) as u32,
                    (OpKind::Patch | OpKind::New, _) => payload,
                    (OpKind::Xform | OpKind::Streams, _) => payload.max(1),
                    _ => 0,
                };
                let decoded_len = match (kind, codec) {
                    (OpKind::Patch, Codec::Zstd | Codec::Lzma) => {
                        (u64::from(decoded) % (bound + 1)) as u32
                    }
                    (OpKind::New, _) | (OpKind::Patch, Codec::Tiny) => dst_len,
                    _ => payload_len,
                };
                let header = OpHeader {
                    kind,
                    codec,
                    fill_value: if kind == OpKind::Fill { fill } else { 0 },
                    extent_count: extents.len() as u16,
                    payload_len,
                    decoded_len,
                    dst_offset,
                    dst_len,
                    dst_sha256: match segment {
                        false => [0; 32],
                        true if kind != OpKind::Stash
                            && dst_offset == 0
                            && target_size <= u64::from(ctx.segment_size) =>
                        {
                            t
                        }
                        true => d,
                    },
                    src_sha256: match kind {
                        OpKind::Stash => d,
                        OpKind::Copy | OpKind::Patch if !ab => s,
                        _ => [0; 32],
                    },
                    next_op_sha256: if last || !chained { [0; 32] } else { n },
                };
                (header, extents, ctx)
            },
        )
}

proptest! {
    #[test]
    fn header_round_trips(ops_len in any::<u64>(), key_id in any::<[u8; 8]>(), sig in proptest::collection::vec(any::<u8>(), 64), chained in any::<bool>()) {
        let manifest_len = (MIN_MANIFEST_LEN + (ops_len as usize) % (MAX_MANIFEST_LEN - MIN_MANIFEST_LEN + 1)) as u32;
        let op_auth = if chained { fota_format::OpAuth::Chain } else { fota_format::OpAuth::Signature };
        let h = Header { op_auth, manifest_len, ops_len, key_id, signature: sig.try_into().unwrap() };
        prop_assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    }

    #[test]
    fn manifest_round_trips(m in manifest()) {
        prop_assert_eq!(Manifest::parse_with(&m.to_bytes(), m.op_auth).unwrap(), m);
    }

    #[test]
    fn op_head_round_trips((header, extents, ctx) in op_head(), at in any::<u32>(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let wire = header.encode(&extents, &ctx);
        prop_assert!(wire.len() <= MAX_OP_HEAD_LEN);
        // The payload follows the head: parsing stops where the head ends.
        let mut bytes = wire.to_vec();
        bytes.extend_from_slice(&tail);
        let head = OpHead::parse(&bytes, at.into(), &ctx).unwrap();
        prop_assert_eq!(head.header, header);
        prop_assert_eq!(head.extents.as_slice(), extents.as_slice());
        prop_assert_eq!(head.len, wire.len());
        // Every proper prefix is refused as truncated, never misread.
        for cut in 0..wire.len() {
            let truncated = matches!(OpHead::parse(&wire[..cut], 0, &ctx), Err(fota_format::Error::Truncated { .. }));
            prop_assert!(truncated, "cut at {}", cut);
        }
    }

    #[test]
    fn extent_round_trips(offset in 0u64..(1 << 62), len in 1u64..(1 << 40)) {
        let e = Extent { offset, len };
        prop_assert_eq!(parse_extent(&e.to_bytes(), 0).unwrap(), e);
    }

    #[test]
    fn labels_round_trip(s in "[^\u{0}]{0,8}") {
        let l = Label::new(&s).unwrap();
        prop_assert_eq!(l.as_str(), s.as_str());
        prop_assert_eq!(Label::from_bytes(*l.as_bytes()), Some(l));
    }

    #[test]
    fn varints_and_zigzag_round_trip(v in any::<u64>(), s in any::<i64>()) {
        let mut buf = [0u8; MAX_VARINT_LEN];
        let n = write_varint(v, &mut buf);
        prop_assert!((1..=MAX_VARINT_LEN).contains(&n));
        prop_assert_eq!(unzigzag(zigzag(s)), s);
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = Header::parse(&bytes);
        // What parses has one encoding: it encodes back to its own bytes.
        for auth in [fota_format::OpAuth::Chain, fota_format::OpAuth::Signature] {
            if let Ok(m) = Manifest::parse_with(&bytes, auth) {
                prop_assert_eq!(&m.to_bytes()[..], &bytes[..]);
            }
        }
        for (mode, chained) in [(Mode::AB, true), (Mode::InPlace, true), (Mode::AB, false)] {
            for (last, target_size) in [(false, 1 << 20), (true, 1 << 20), (true, 4000)] {
                let ctx = OpContext { mode, segment_size: 4096, target_size, target_sha256: [0; 32], last, chained };
                if let Ok(head) = OpHead::parse(&bytes, 0, &ctx) {
                    let wire = head.header.encode(head.extents.as_slice(), &ctx);
                    prop_assert_eq!(&wire[..], &bytes[..head.len]);
                }
            }
        }
        let _ = parse_extent(&bytes, 0);
        if let Ok(p) = Package::parse(&bytes) {
            let _ = p.manifest_unverified();
            if let Ok(ops) = p.ops_unverified() {
                for op in ops {
                    if op.is_err() { break; }
                }
            }
        }
    }

    #[test]
    fn package_parse_survives_a_valid_header_before_garbage(ops_len in 0u64..600, tail in proptest::collection::vec(any::<u8>(), 0..900)) {
        let h = Header { op_auth: fota_format::OpAuth::Chain, manifest_len: MIN_MANIFEST_LEN as u32 + 50, ops_len, key_id: [1; 8], signature: [2; 64] };
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(p) = Package::parse(&bytes) {
            prop_assert_eq!(bytes.len() as u64, (HEADER_LEN + MIN_MANIFEST_LEN + 50) as u64 + ops_len);
            if let Ok(ops) = p.ops_unverified() {
                for op in ops {
                    if op.is_err() { break; }
                }
            }
        }
    }

    #[test]
    fn patch_decoder_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..300),
                                  dst_len in 0u64..500, chunk in 1usize..64) {
        let extents = [Extent { offset: 0, len: 1 << 20 }];
        if let Ok(mut d) = PatchDecoder::new(0, &payload, 100, dst_len, &extents) {
            let mut produced = 0u64;
            let mut buf = vec![0u8; chunk];
            while let Some(step) = d.next() {
                match step {
                    Ok(fota_format::PatchStep::Add { len, .. }) => {
                        let mut left = len;
                        while left > 0 {
                            let n = left.min(chunk as u64) as usize;
                            if d.add_diff(&mut buf[..n]).is_err() { break; }
                            left -= n as u64;
                        }
                        produced += len;
                    }
                    Ok(fota_format::PatchStep::Literal(b)) => produced += b.len() as u64,
                    Err(_) => break,
                }
            }
            prop_assert!(produced <= dst_len);
        }
    }
}

/// The compact heads' lengths: what the common ops cost on the wire, and
/// the longest head meeting its bound.
#[test]
fn op_head_lengths() {
    let ctx = |mode, last| OpContext {
        chained: true,
        mode,
        segment_size: 4096,
        target_size: 1 << 30,
        target_sha256: [9; 32],
        last,
    };
    let h = OpHeader {
        kind: OpKind::Fill,
        codec: Codec::Stored,
        fill_value: 0xff,
        extent_count: 0,
        payload_len: 0,
        decoded_len: 0,
        dst_offset: 4096,
        dst_len: 4096,
        dst_sha256: [1; 32],
        src_sha256: [0; 32],
        next_op_sha256: [0; 32],
    };
    // Kind, fill value, segment index, segment hash.
    assert_eq!(h.encode(&[], &ctx(Mode::AB, true)).len(), 1 + 1 + 1 + 32);
    assert_eq!(
        h.encode(&[], &ctx(Mode::AB, false)).len(),
        1 + 1 + 1 + 32 + 32
    );
    let patch = OpHeader {
        kind: OpKind::Patch,
        codec: Codec::Lzma,
        fill_value: 0,
        extent_count: 1,
        payload_len: 300,
        decoded_len: 5000,
        ..h
    };
    let one = [Extent {
        offset: 0,
        len: 8192,
    }];
    // Kind, extent count, payload and decoded lengths, index, hash, extent.
    assert_eq!(
        patch.encode(&one, &ctx(Mode::AB, true)).len(),
        1 + 1 + 2 + 2 + 1 + 32 + 1 + 2
    );
    // In place adds the source hash.
    assert_eq!(
        patch.encode(&one, &ctx(Mode::InPlace, true)).len(),
        1 + 1 + 2 + 2 + 1 + 32 + 32 + 1 + 2
    );
    let big = OpHeader {
        payload_len: u32::MAX,
        decoded_len: u32::MAX,
        dst_offset: u64::from(u32::MAX) * 4096,
        dst_len: 0,
        extent_count: 16,
        ..patch
    };
    // Gaps and lengths of 2^58 take 9 bytes each; sixteen such extents
    // end at 2^63.
    let widest: Vec<Extent> = (0..16)
        .map(|i| Extent {
            offset: (i * 2 + 1) << 58,
            len: 1 << 58,
        })
        .collect();
    let wire = big.encode(&widest, &ctx(Mode::InPlace, false));
    assert_eq!(wire.len(), 1 + 1 + 3 * 5 + 3 * 32 + 16 * 18);
    // The bound also covers 10-byte varints, which only values past 2^63 need.
    assert_eq!(MAX_OP_HEAD_LEN, wire.len() + 32);
    // A target of one segment: the op's segment hash is the target's.
    let one = OpContext {
        target_size: 4000,
        ..ctx(Mode::AB, true)
    };
    let whole = OpHeader {
        dst_offset: 0,
        dst_len: 4000,
        dst_sha256: [9; 32],
        ..h
    };
    let wire = whole.encode(&[], &one);
    assert_eq!(wire.len(), 1 + 1 + 1);
    let back = OpHead::parse(&wire, 0, &one).unwrap();
    assert_eq!(back.header, whole);
}

/// The LZMA payload codec: stored streams round trip through the table in
/// both layouts, and no byte string makes the decoder panic or allocate
/// beyond its declared lengths (the lengths here stay small).
#[cfg(feature = "lzma")]
mod lzma {
    use fota_format::lzma::Props;
    use fota_format::lzma_payload::{
        decode, gap_diff, patch_payload, sparse_diff, write_gaps_table, write_table, DictWindow,
        StreamEntry, LAYOUT_BYTES, LAYOUT_PATCH, STORED,
    };
    use fota_format::patch::{write_varint, MAX_VARINT_LEN};
    use fota_format::Error;
    use proptest::prelude::*;

    /// A payload of `layout` framing `streams`: (props byte, unpacked
    /// length, packed bytes) each.
    fn framed(layout: u8, streams: &[(u8, usize, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let entries: Vec<StreamEntry> = streams
            .iter()
            .map(|(props, unpacked_len, packed)| StreamEntry {
                props: Props::from_byte(*props),
                unpacked_len: *unpacked_len,
                packed_len: packed.len(),
            })
            .collect();
        write_table(layout, &entries, &mut out);
        streams.iter().for_each(|s| out.extend_from_slice(&s.2));
        out
    }

    /// A payload of `layout` with `parts` stored.
    fn stored(layout: u8, parts: &[Vec<u8>]) -> Vec<u8> {
        let streams: Vec<_> = parts.iter().map(|p| (STORED, p.len(), p.clone())).collect();
        framed(layout, &streams)
    }

    /// A table that frames its streams, over random stream bytes: the
    /// LZMA decoder sees garbage.
    fn well_framed() -> impl Strategy<Value = Vec<u8>> {
        (
            0u8..4,
            prop::collection::vec(
                (
                    prop::sample::select(vec![0x5d_u8, 0, 0x66, 0xff, 0xe1]),
                    0usize..2000,
                    prop::collection::vec(any::<u8>(), 0..120),
                ),
                1..5,
            ),
        )
            .prop_map(|(layout, streams)| {
                // A stored stream's unpacked length is its packed length.
                let streams: Vec<_> = streams
                    .into_iter()
                    .map(|(props, n, data)| match props {
                        STORED => (props, data.len(), data),
                        _ => (props, n, data),
                    })
                    .collect();
                framed(layout, &streams)
            })
    }

    proptest! {
        #[test]
        fn stored_streams_round_trip(parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..=8)) {
            let coded = stored(LAYOUT_BYTES, &parts);
            let whole = parts.concat();
            prop_assert_eq!(decode(3, &coded, whole.len(), 0, &[]).unwrap(), whole);
        }

        #[test]
        fn stored_patch_streams_re_sparsify(
            ctrl in prop::collection::vec(any::<u8>(), 0..20),
            diff in prop::collection::vec(prop::sample::select(vec![0u8, 0, 0, 1, 0x80]), 0..400),
            extra in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            let coded = stored(LAYOUT_PATCH, &[ctrl.clone(), diff.clone(), extra.clone()]);
            let sparse = patch_payload(&ctrl, &diff, &extra);
            prop_assert_eq!(decode(3, &coded, sparse.len(), diff.len(), &[]).unwrap(), sparse);
        }

        /// A diff cut into gaps and kept bytes (any run length, gap
        /// length and alignment) decodes to the same PATCH payload as the
        /// whole diff, and no gap is shorter than asked or misaligned.
        #[test]
        fn gapped_diffs_decode_to_the_plain_patch(
            runs in prop::collection::vec((0usize..300, prop::collection::vec(any::<u8>(), 0..6)), 0..30),
            min_gap in 0usize..120,
            align in 0usize..9,
            ctrl in prop::collection::vec(any::<u8>(), 0..20),
            extra in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut diff = Vec::new();
            for (zeros, values) in &runs {
                diff.extend(std::iter::repeat_n(0u8, *zeros));
                diff.extend_from_slice(values);
            }
            let (gaps, kept) = gap_diff(&diff, min_gap, align);
            prop_assert!(kept.len() <= diff.len());
            // Each gap: at least min_gap (and align) zeros, a multiple of align.
            let mut values = Vec::new();
            let (mut v, mut shift) = (0usize, 0);
            for b in &gaps {
                v |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    values.push(v);
                    (v, shift) = (0, 0);
                }
            }
            prop_assert_eq!(values.len() % 2, 0);
            let align = align.max(1);
            for zeros in values.iter().skip(1).step_by(2) {
                // From a run of at least min_gap (and align) zeros.
                prop_assert!(*zeros >= align && zeros % align == 0);
                prop_assert!(zeros + align > min_gap.max(align));
            }
            let entries: Vec<StreamEntry> = [&ctrl, &gaps, &kept, &extra]
                .iter()
                .map(|p| StreamEntry { props: None, unpacked_len: p.len(), packed_len: p.len() })
                .collect();
            let mut coded = Vec::new();
            write_gaps_table(&entries, DictWindow::default(), &mut coded);
            for p in [&ctrl, &gaps, &kept, &extra] {
                coded.extend_from_slice(p);
            }
            let whole = patch_payload(&ctrl, &diff, &extra);
            prop_assert_eq!(decode(1, &coded, whole.len(), diff.len(), &[]).unwrap(), whole);
        }

        #[test]
        fn sparse_streams_are_the_maximal_runs_of_the_diff(
            runs in prop::collection::vec((0usize..90, prop::collection::vec(1u8..=255, 1..6)), 0..40),
            trailing in 0usize..40,
            ctrl in prop::collection::vec(any::<u8>(), 0..20),
            extra in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut diff = Vec::new();
            // Adjacent value runs join into one maximal run.
            let mut expected: Vec<(usize, Vec<u8>)> = Vec::new();
            for (zeros, values) in &runs {
                diff.extend(std::iter::repeat_n(0u8, *zeros));
                diff.extend_from_slice(values);
                match expected.last_mut() {
                    Some(last) if *zeros == 0 => last.1.extend_from_slice(values),
                    _ => expected.push((*zeros, values.clone())),
                }
            }
            diff.extend(std::iter::repeat_n(0u8, trailing));
            let varints = |ns: &mut dyn Iterator<Item = usize>| {
                let mut out = Vec::new();
                for n in ns {
                    let mut buf = [0u8; MAX_VARINT_LEN];
                    let k = write_varint(n as u64, &mut buf);
                    out.extend_from_slice(&buf[..k]);
                }
                out
            };
            let zero_runs = varints(&mut expected.iter().map(|r| r.0));
            let value_runs = varints(&mut expected.iter().map(|r| r.1.len()));
            let values: Vec<u8> = expected.iter().flat_map(|r| r.1.iter().copied()).collect();
            let [z, r, v] = sparse_diff(&diff);
            prop_assert_eq!(&z, &zero_runs);
            prop_assert_eq!(&r, &value_runs);
            prop_assert_eq!(&v, &values);
            // The whole payload: five lengths, then the five streams.
            let lens = [ctrl.len(), z.len(), r.len(), v.len(), extra.len()];
            let mut whole = varints(&mut lens.into_iter());
            for part in [&ctrl, &z, &r, &v, &extra] {
                whole.extend_from_slice(part);
            }
            prop_assert_eq!(patch_payload(&ctrl, &diff, &extra), whole);
        }

        #[test]
        fn arbitrary_payloads_are_refused_with_an_offset_inside(
            coded in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                well_framed(),
            ],
            decoded_len in 0usize..5000,
            dst_len in 0usize..5000,
        ) {
            // Layout 2 reads its dictionary window from the op's source.
            let source: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
            match decode(3, &coded, decoded_len, dst_len, &source) {
                Ok(out) => prop_assert_eq!(out.len(), decoded_len),
                Err(Error::LzmaPayload { op_index, offset, .. }) => {
                    prop_assert_eq!(op_index, 3);
                    prop_assert!(offset <= coded.len() as u64);
                }
                Err(Error::PayloadCodec { op_index, .. }) => prop_assert_eq!(op_index, 3),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
