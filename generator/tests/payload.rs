//! Payload coding round trips: whatever coding the generator picks for a
//! payload (zstd frame, LZMA streams in any layout, stored), the
//! format's decoders give the payload back byte for byte. The LZMA streams
//! come from liblzma and are decoded by `fota_format::lzma`, so this is
//! also a differential test of that decoder.

use fota_format::lzma_payload::patch_payload;
use fota_format::lzma_payload::{LAYOUT_PATCH_DICT, LAYOUT_PATCH_GAPS};
use fota_format::Codec;
use fota_generator::apply::decode_coded;
use fota_generator::payload::{code_bytes, code_literal_patch, code_patch, Coded};
use proptest::prelude::*;

/// The decoded payload of `c` (checked against its declared length).
fn decode(c: &Coded, dst_len: usize) -> Vec<u8> {
    decode_over(c, dst_len, &[])
}

/// The decoded payload of `c`, whose op reads `source`.
fn decode_over(c: &Coded, dst_len: usize, source: &[u8]) -> Vec<u8> {
    let n = c.decoded_len as usize;
    decode_coded(0, c.codec, &c.payload, n, dst_len, source).unwrap()
}

/// Thumb-like code: 16-bit words from a small set of opcodes with varying
/// operands, so a newer build repeats pieces of an older one.
fn code(max_words: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![0xb5u8, 0xbd, 0x46, 0x68, 0xf7, 0x20]),
            0u8..24,
        ),
        0..max_words,
    )
    .prop_map(|words| words.into_iter().flat_map(|(op, arg)| [arg, op]).collect())
}

/// Bytes that compress somewhat: runs and repeats of a small alphabet, as
/// in patch streams, mixed with noise.
fn compressible(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            (any::<u8>(), 1usize..40).prop_map(|(b, n)| vec![b; n]),
            prop::collection::vec(0u8..4, 1..60),
            prop::collection::vec(any::<u8>(), 1..20),
        ],
        0..max,
    )
    .prop_map(|chunks| chunks.concat())
}

/// A plain diff: mostly zeros, some small values.
fn plain_diff(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => Just(0u8),
            1 => any::<u8>(),
            1 => prop::sample::select(vec![1u8, 4, 0xfc, 0xff]),
        ],
        0..max,
    )
}

/// The parts of the sparse PATCH payload of `ctrl`, `diff` and `extra` as
/// the planner hands them over: the length prefix, then the five streams.
fn sparse_parts(ctrl: &[u8], diff: &[u8], extra: &[u8]) -> Vec<Vec<u8>> {
    let whole = patch_payload(ctrl, diff, extra);
    let mut pos = 0;
    let mut lens = Vec::new();
    for _ in 0..5 {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let b = whole[pos];
            pos += 1;
            v |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        lens.push(v);
    }
    let mut parts = vec![whole[..pos].to_vec()];
    for len in lens {
        parts.push(whole[pos..pos + len].to_vec());
        pos += len;
    }
    assert_eq!(pos, whole.len());
    parts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn coded_bytes_decode_back(
        parts in prop::collection::vec(compressible(40), 1..4),
        level in prop::sample::select(vec![1, 19]),
        quick in any::<bool>(),
    ) {
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let c = code_bytes(&refs, level, quick).unwrap();
        prop_assert_eq!(decode(&c, 0), parts.concat());
        // A coding is only kept when it is smaller than the bytes.
        if c.codec != Codec::Stored {
            prop_assert!(c.payload.len() < parts.concat().len());
        }
    }

    #[test]
    fn coded_patches_decode_to_the_sparse_payload(
        ctrl in compressible(6),
        diff in plain_diff(3000),
        extra in compressible(10),
        quick in any::<bool>(),
    ) {
        let parts = sparse_parts(&ctrl, &diff, &extra);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let c = code_patch(&refs, &diff, 19, quick, None).unwrap();
        prop_assert_eq!(decode(&c, diff.len()), parts.concat());
    }

    #[test]
    fn patches_coded_after_their_source_decode_over_it(
        source in code(3000),
        ctrl in compressible(6),
        diff in plain_diff(2000),
        extra in code(2000),
    ) {
        let parts = sparse_parts(&ctrl, &diff, &extra);
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let c = code_patch(&refs, &diff, 19, false, Some(&source)).unwrap();
        prop_assert_eq!(decode_over(&c, diff.len(), &source), parts.concat());
    }

    #[test]
    fn literal_patches_decode_over_their_source(
        source in code(3000),
        new in code(3000),
    ) {
        let ctrl = [0u8, 0x80 | (new.len() & 0x7f) as u8, (new.len() >> 7) as u8, 0];
        let Some(c) = code_literal_patch(&ctrl, &new, &source).unwrap() else {
            prop_assert!(new.is_empty());
            return Ok(());
        };
        prop_assert_eq!(c.payload[0], LAYOUT_PATCH_DICT);
        let decoded = decode_over(&c, new.len(), &source);
        prop_assert_eq!(decoded, patch_payload(&ctrl, &[], &new));
        // A shorter source cannot hold the window: refused.
        if !source.is_empty() {
            let mut other = source.clone();
            other.pop();
            let n = c.decoded_len as usize;
            let r = decode_coded(0, c.codec, &c.payload, n, new.len(), &other);
            prop_assert!(r.is_err(), "a window past the source is refused");
        }
    }
}

#[test]
fn new_code_coded_after_the_old_is_smaller() {
    // The new build reorders and edits the old one's functions: a stream
    // coded after the old image finds their pieces there.
    let ops = [0xb5u8, 0xbd, 0x46, 0x68, 0xf7, 0x20];
    let mut x = 0x2545_f491u32;
    let old: Vec<u8> = (0..20_000)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            [(x % 24) as u8, ops[(x >> 8) as usize % ops.len()]]
        })
        .collect();
    let mut new = Vec::new();
    for (i, chunk) in old.chunks(600).enumerate().rev() {
        new.extend_from_slice(chunk);
        new.extend_from_slice(&[i as u8, 0x20, 0x46, 0xbd]);
    }
    let ctrl = [0u8, 0, 0, 0];
    let with = code_literal_patch(&ctrl, &new, &old).unwrap().unwrap();
    let alone = code_bytes(&[&new], 19, false).unwrap();
    assert!(
        with.payload.len() * 4 < alone.payload.len(),
        "{} after the source, {} alone",
        with.payload.len(),
        alone.payload.len()
    );
    assert_eq!(
        decode_over(&with, new.len(), &old),
        patch_payload(&ctrl, &[], &new)
    );
    // Past SOURCE_DICT_MAX, no such coding is made.
    let big = vec![0u8; fota_generator::payload::SOURCE_DICT_MAX + 1];
    assert!(code_literal_patch(&ctrl, &new, &big).unwrap().is_none());
}

#[test]
fn a_large_patch_takes_the_gapped_patch_layout() {
    // Recompiled code: a changed byte in every word. Above the size where
    // every coding is tried (a sparse form over 256 KiB), the patch layout
    // with gaps is the one used (here with no gap: no long zero run).
    let diff: Vec<u8> = (0..400_000u32)
        .map(|i| match i % 4 {
            0 => (i / 4 % 7 + 1) as u8,
            _ => 0,
        })
        .collect();
    let ctrl = vec![0x80, 0x92, 0x12, 0, 0];
    let parts = sparse_parts(&ctrl, &diff, b"");
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let c = code_patch(&refs, &diff, 19, false, None).unwrap();
    assert_eq!(c.codec, Codec::Lzma);
    assert_eq!(c.payload[0], LAYOUT_PATCH_GAPS);
    assert_eq!(decode(&c, diff.len()), parts.concat());
}
