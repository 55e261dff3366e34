//! Payload coding round trips: whatever coding the generator picks for a
//! payload (zstd frame, LZMA streams in either layout, stored), the
//! format's decoders give the payload back byte for byte. The LZMA streams
//! come from liblzma and are decoded by `fota_format::lzma`, so this is
//! also a differential test of that decoder.

use fota_format::lzma_payload::patch_payload;
use fota_format::Codec;
use fota_generator::apply::decode_coded;
use fota_generator::payload::{code_bytes, code_patch, Coded};
use proptest::prelude::*;

/// The decoded payload of `c` (checked against its declared length).
fn decode(c: &Coded, dst_len: usize) -> Vec<u8> {
    let n = c.decoded_len as usize;
    decode_coded(0, c.codec, &c.payload, n, dst_len).unwrap()
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
        let c = code_patch(&refs, &diff, 19, quick).unwrap();
        prop_assert_eq!(decode(&c, diff.len()), parts.concat());
    }
}

#[test]
fn a_large_patch_takes_the_patch_layout() {
    // Recompiled code: a changed byte in every word. Above the size where
    // every coding is tried (a sparse form over 256 KiB), the patch layout
    // is the one used.
    let diff: Vec<u8> = (0..400_000u32)
        .map(|i| match i % 4 {
            0 => (i / 4 % 7 + 1) as u8,
            _ => 0,
        })
        .collect();
    let ctrl = vec![0x80, 0x92, 0x12, 0, 0];
    let parts = sparse_parts(&ctrl, &diff, b"");
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let c = code_patch(&refs, &diff, 19, false).unwrap();
    assert_eq!(c.codec, Codec::Lzma);
    assert_eq!(c.payload[0], fota_format::lzma_payload::LAYOUT_PATCH);
    assert_eq!(decode(&c, diff.len()), parts.concat());
}
