//! The tiny payload (SPEC.md §5b): the worked example and its refusals, the
//! command encoder, and the streaming decoder on arbitrary input (never a
//! panic, never output past the segment, same verdict however the payload
//! is chunked).

use fota_format::tiny::{TinyCommand, DECODER_STATE_LEN, MAX_COMMAND_HEADER_LEN};
use fota_format::{Error, Extent, TinyDecoder, TinyStep};
use proptest::prelude::*;

/// Source image of the examples: byte i = i mod 256.
fn source(i: u64) -> u8 {
    i as u8
}

/// Decodes `payload`, fed in chunks whose sizes cycle through `chunks`,
/// into the segment (source from [`source`]).
fn decode(
    payload: &[u8],
    dst_offset: u64,
    dst_len: u64,
    extents: &[Extent],
    chunks: &[usize],
) -> Result<Vec<u8>, Error> {
    let mut d = TinyDecoder::new(7, dst_offset, dst_len);
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    // Bytes handed over but not yet consumed are handed again (as a caller
    // with a fixed buffer would keep them).
    let mut avail_end = 0;
    loop {
        if avail_end <= pos {
            let c = chunks[k % chunks.len()].max(1);
            k += 1;
            avail_end = (pos + c).min(payload.len());
        }
        let input = &payload[pos..avail_end];
        let (used, step) = d.step(input, extents)?;
        assert!(used <= input.len());
        pos += used;
        match step {
            TinyStep::NeedInput => {
                assert_eq!(used, input.len(), "NeedInput consumes all input");
                if pos == payload.len() {
                    break;
                }
            }
            TinyStep::End => break,
            TinyStep::Literal { len } => {
                assert!(len >= 1 && len <= used);
                out.extend_from_slice(&payload[pos - len..pos]);
            }
            TinyStep::AddSource { src, len } => {
                assert!(len >= 1 && len <= used);
                assert!(extents.iter().any(|e| e.contains(src, len as u64)));
                for i in 0..len {
                    out.push(source(src + i as u64).wrapping_add(payload[pos - len + i]));
                }
            }
            TinyStep::CopySource { src, len } => {
                assert!(len >= 1);
                assert!(extents.iter().any(|e| e.contains(src, len)));
                out.extend((0..len).map(|i| source(src + i)));
            }
            TinyStep::CopyOutput { back, len } => {
                assert!(back >= 1 && back as usize <= out.len());
                let from = out.len() - back as usize;
                for i in 0..len as usize {
                    out.push(out[from + i]);
                }
            }
        }
        assert!(out.len() as u64 <= dst_len, "output past dst_len");
        assert_eq!(out.len() as u64, d.produced());
    }
    d.finish(payload.len() as u64)?;
    assert_eq!(out.len() as u64, dst_len);
    Ok(out)
}

const EXAMPLE: [u8; 18] = [
    0x01, 0xaa, 0xbb, 0x81, 0x20, 0x21, 0x03, 0x05, 0x60, 0x00, 0xcc, 0x42, 0x09, 0x00, 0xfe, 0x00,
    0x00, 0xdd,
];
const EXTENT: Extent = Extent {
    offset: 0x110,
    len: 8,
};
const SEGMENT: [u8; 12] = [
    0xaa, 0xbb, 0x10, 0x11, 0x15, 0x18, 0x14, 0xcc, 0x10, 0x0f, 0x12, 0xdd,
];

fn malformed(offset: u64) -> Error {
    Error::PatchMalformed {
        op_index: 7,
        offset,
        what: "",
    }
}

/// Compares errors ignoring `what`.
fn same(a: &Error, b: &Error) -> bool {
    match (a, b) {
        (
            Error::PatchMalformed {
                op_index: i,
                offset: o,
                ..
            },
            Error::PatchMalformed {
                op_index: j,
                offset: p,
                ..
            },
        ) => i == j && o == p,
        _ => a == b,
    }
}

#[track_caller]
fn refused(payload: &[u8], dst_len: u64, extents: &[Extent], want: Error) {
    for chunk in [1, 2, 5, 300] {
        let got = decode(payload, 0x100, dst_len, extents, &[chunk]).unwrap_err();
        assert!(same(&got, &want), "chunk {chunk}: {got:?}, want {want:?}");
    }
}

#[test]
fn decoder_state_is_64_bytes_or_less() {
    const { assert!(DECODER_STATE_LEN <= 64) };
    assert_eq!(DECODER_STATE_LEN, std::mem::size_of::<TinyDecoder>());
}

#[test]
fn spec_worked_example() {
    for chunk in 1..=20 {
        let out = decode(&EXAMPLE, 0x100, 12, &[EXTENT], &[chunk]).unwrap();
        assert_eq!(out, SEGMENT, "chunk {chunk}");
    }
    let out = decode(
        &[0x03, 0x61, 0x62, 0x63, 0x64, 0xa3, 0x03],
        0,
        8,
        &[],
        &[300],
    );
    assert_eq!(out.unwrap(), b"abcdabcd");
    let out = decode(&[0x00, 0x61, 0xa6, 0x00], 0, 8, &[], &[1]);
    assert_eq!(out.unwrap(), b"aaaaaaaa");
}

#[test]
fn spec_worked_example_refusals() {
    refused(&EXAMPLE, 11, &[EXTENT], malformed(16));
    refused(&EXAMPLE, 13, &[EXTENT], malformed(18));
    refused(&EXAMPLE[..17], 12, &[EXTENT], malformed(17));
    let mut longer = EXAMPLE.to_vec();
    longer.push(0);
    refused(&longer, 12, &[EXTENT], malformed(18));
    let mut tag6 = EXAMPLE;
    tag6[3] = 0xc1;
    refused(&tag6, 12, &[EXTENT], malformed(3));
    refused(
        &EXAMPLE,
        12,
        &[Extent {
            offset: 0x110,
            len: 4,
        }],
        Error::PatchReadOutsideExtents {
            op_index: 7,
            src_offset: 0x114,
            len: 1,
        },
    );
    let mut long_delta = EXAMPLE[..4].to_vec();
    long_delta.extend_from_slice(&[0xa0, 0x00]);
    long_delta.extend_from_slice(&EXAMPLE[5..]);
    refused(&long_delta, 12, &[EXTENT], malformed(3));
    refused(
        &EXAMPLE,
        12,
        &[],
        Error::PatchReadOutsideExtents {
            op_index: 7,
            src_offset: 0x110,
            len: 2,
        },
    );
}

#[test]
fn other_refusals() {
    // A back reference before the segment start.
    refused(&[0x00, 0x61, 0xa0, 0x01], 8, &[], malformed(2));
    // Back reference with the largest argument (back would overflow).
    let mut p = vec![0x00, 0x61, 0xa0];
    p.extend_from_slice(&[0xff; 9]);
    p.push(0x01);
    refused(&p, 8, &[], malformed(2));
    // An 11-byte varint, and a 10th byte above 1.
    let mut p = vec![0x1f];
    p.extend_from_slice(&[0x80; 10]);
    p.push(0x00);
    refused(&p, u64::MAX, &[], malformed(0));
    let mut p = vec![0x1f];
    p.extend_from_slice(&[0xff; 9]);
    p.push(0x02);
    refused(&p, u64::MAX, &[], malformed(0));
    // 32 + (2^64 - 1) overflows.
    let mut p = vec![0x1f];
    p.extend_from_slice(&[0xff; 9]);
    p.push(0x01);
    refused(&p, u64::MAX, &[], malformed(0));
    // A cursor moved below 0 (COPY_AT at dst_offset 0x100, delta -0x101).
    let mut buf = [0u8; MAX_COMMAND_HEADER_LEN];
    let n = TinyCommand::CopySource {
        delta: -0x101,
        len: 1,
    }
    .encode(&mut buf)
    .unwrap();
    refused(&buf[..n], 1, &[EXTENT], malformed(0));
    // A source range ending past 2^64 - 1.
    let n = TinyCommand::CopySource {
        delta: 1,
        len: 1 << 40,
    }
    .encode(&mut buf)
    .unwrap();
    let mut d = TinyDecoder::new(7, u64::MAX - (1 << 30), u64::MAX);
    let err = d.step(&buf[..n], &[EXTENT]).unwrap_err();
    assert!(same(&err, &malformed(0)), "{err:?}");
    // ... and the decoder stays refused.
    assert!(d.step(&[0x00, 0x00], &[]).is_err());
    // An empty payload for a non-empty segment; a payload for an empty one.
    refused(&[], 1, &[], malformed(0));
    refused(&[0x00, 0x61], 0, &[], malformed(0));
}

#[test]
fn command_encoder_boundaries() {
    let mut buf = [0u8; MAX_COMMAND_HEADER_LEN];
    let enc = |c: TinyCommand, buf: &mut [u8; MAX_COMMAND_HEADER_LEN]| {
        let n = c.encode(buf).unwrap();
        buf[..n].to_vec()
    };
    assert_eq!(enc(TinyCommand::Literal { len: 1 }, &mut buf), [0x00]);
    assert_eq!(enc(TinyCommand::Literal { len: 31 }, &mut buf), [0x1e]);
    assert_eq!(
        enc(TinyCommand::Literal { len: 32 }, &mut buf),
        [0x1f, 0x00]
    );
    assert_eq!(
        enc(TinyCommand::Literal { len: 32 + 128 }, &mut buf),
        [0x1f, 0x80, 0x01]
    );
    assert_eq!(
        enc(TinyCommand::AddSource { delta: 0, len: 2 }, &mut buf),
        [0x21]
    );
    assert_eq!(
        enc(TinyCommand::AddSource { delta: -1, len: 2 }, &mut buf),
        [0x41, 0x01]
    );
    assert_eq!(
        enc(TinyCommand::CopySource { delta: 0, len: 40 }, &mut buf),
        [0x7f, 0x08]
    );
    assert_eq!(
        enc(
            TinyCommand::CopyOutput {
                back: 1,
                len: u64::MAX
            },
            &mut buf
        ),
        [0xbf, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00]
    );
    assert_eq!(
        enc(
            TinyCommand::CopySource {
                delta: i64::MIN,
                len: u64::MAX
            },
            &mut buf
        )
        .len(),
        MAX_COMMAND_HEADER_LEN
    );
    assert_eq!(TinyCommand::Literal { len: 0 }.encode(&mut buf), None);
    assert_eq!(
        TinyCommand::CopyOutput { back: 0, len: 3 }.encode(&mut buf),
        None
    );
}

/// A random valid command sequence for a segment at `dst_offset` 0x100
/// over one extent [0, 4096), with its expected output.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    proptest::collection::vec((0u8..4, 1u64..80, any::<u16>(), any::<u8>()), 0..40).prop_map(
        |cmds| {
            let (mut payload, mut out) = (Vec::new(), Vec::new());
            let mut cursor = 0x100u64;
            let mut buf = [0u8; MAX_COMMAND_HEADER_LEN];
            for (kind, len, r, fill) in cmds {
                let cmd = match kind {
                    0 => TinyCommand::Literal { len },
                    1 | 2 => {
                        let src = u64::from(r) % (4096 - len);
                        let delta = src as i64 - cursor as i64;
                        cursor = src + len;
                        for i in 0..len {
                            let b = source(src + i);
                            out.push(if kind == 1 { b } else { b.wrapping_add(fill) });
                        }
                        if kind == 1 {
                            TinyCommand::CopySource { delta, len }
                        } else {
                            TinyCommand::AddSource { delta, len }
                        }
                    }
                    _ if out.is_empty() => continue,
                    _ => {
                        let back = 1 + u64::from(r) % out.len() as u64;
                        let from = out.len() - back as usize;
                        for i in 0..len as usize {
                            out.push(out[from + i]);
                        }
                        TinyCommand::CopyOutput { back, len }
                    }
                };
                let n = cmd.encode(&mut buf).unwrap();
                payload.extend_from_slice(&buf[..n]);
                match kind {
                    0 => {
                        let lit: Vec<u8> = (0..len).map(|i| fill ^ i as u8).collect();
                        payload.extend_from_slice(&lit);
                        out.extend_from_slice(&lit);
                    }
                    2 => payload.extend(std::iter::repeat_n(fill, len as usize)),
                    _ => {}
                }
            }
            (payload, out)
        },
    )
}

const WIDE: Extent = Extent {
    offset: 0,
    len: 4096,
};

proptest! {
    #[test]
    fn encoded_commands_decode(
        (payload, out) in stream(),
        chunks in proptest::collection::vec(1usize..=300, 1..8),
    ) {
        let got = decode(&payload, 0x100, out.len() as u64, &[WIDE], &chunks).unwrap();
        prop_assert_eq!(got, out);
    }

    #[test]
    fn truncations_and_corruptions_are_refused_or_exact(
        (payload, out) in stream(),
        chunks in proptest::collection::vec(1usize..=300, 1..8),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let dst_len = out.len() as u64;
        if !payload.is_empty() {
            let cut = cut % payload.len();
            prop_assert!(decode(&payload[..cut], 0x100, dst_len, &[WIDE], &chunks).is_err());
            let mut bad = payload.clone();
            for (at, x) in flips {
                let at = at % bad.len();
                bad[at] ^= x.max(1);
            }
            // `decode` asserts output never passes dst_len, and a verdict
            // that does not depend on the chunking.
            let a = decode(&bad, 0x100, dst_len, &[WIDE], &chunks);
            let b = decode(&bad, 0x100, dst_len, &[WIDE], &[1]);
            prop_assert_eq!(a.is_ok(), b.is_ok());
            if let (Ok(a), Ok(b)) = (&a, &b) {
                prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        dst_len in 0u64..300,
        dst_offset in any::<u64>(),
        chunks in proptest::collection::vec(1usize..=300, 1..8),
    ) {
        let extents = [Extent { offset: dst_offset.saturating_sub(64), len: 128 }];
        let a = decode(&payload, dst_offset, dst_len, &extents, &chunks);
        let b = decode(&payload, dst_offset, dst_len, &extents, &[300]);
        prop_assert_eq!(a.is_ok(), b.is_ok());
    }
}
