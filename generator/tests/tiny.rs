//! The tiny profile end to end: the encoder's streams decode (fed in
//! chunks of any size) to the segment they code, and `diff --profile tiny`
//! packages apply back to the new image.

mod common;

use common::{diff_and_apply, firmware_pair, key, small_opts};
use fota_format::{Codec, Extent, OpKind, Package, Profile, TinyDecoder, TinyStep};
use fota_generator::matcher::{find_blocks, MatchParams};
use fota_generator::suffix::SuffixIndex;
use fota_generator::tiny::encode_segment;
use fota_generator::{diff, DiffOptions, NoProgress};
use proptest::prelude::*;

fn tiny_opts() -> DiffOptions {
    DiffOptions {
        profile: Profile::Tiny,
        ..small_opts()
    }
}

/// Decodes `payload` as a device would: a buffer refilled with chunks of
/// the sizes in `chunks` (cycled), source bytes read from `old`.
fn decode_chunked(
    payload: &[u8],
    old: &[u8],
    dst_offset: u64,
    dst_len: u64,
    extents: &[Extent],
    chunks: &[usize],
) -> fota_format::Result<Vec<u8>> {
    let mut d = TinyDecoder::new(0, dst_offset, dst_len);
    let mut out: Vec<u8> = Vec::new();
    let (mut pos, mut end, mut k) = (0usize, 0usize, 0usize);
    loop {
        if end <= pos {
            end = (pos + chunks[k % chunks.len()]).min(payload.len());
            k += 1;
        }
        let input = &payload[pos..end];
        let (used, step) = d.step(input, extents)?;
        pos += used;
        match step {
            TinyStep::NeedInput if pos == payload.len() => break,
            TinyStep::NeedInput => {}
            TinyStep::End => break,
            TinyStep::Literal { len } => out.extend_from_slice(&payload[pos - len..pos]),
            TinyStep::AddSource { src, len } => {
                let s = src as usize;
                for (o, d) in old[s..s + len].iter().zip(&payload[pos - len..pos]) {
                    out.push(o.wrapping_add(*d));
                }
            }
            TinyStep::CopySource { src, len } => {
                out.extend_from_slice(&old[src as usize..(src + len) as usize]);
            }
            TinyStep::CopyOutput { back, len } => {
                let from = out.len() - back as usize;
                for i in 0..len as usize {
                    out.push(out[from + i]);
                }
            }
        }
        assert!(out.len() as u64 <= dst_len);
    }
    d.finish(payload.len() as u64)?;
    Ok(out)
}

/// One extent covering every read, so the decoder checks containment.
fn cover(reads: &[(u64, u64)]) -> Vec<Extent> {
    let lo = reads.iter().map(|r| r.0).min();
    let hi = reads.iter().map(|r| r.0 + r.1).max();
    match (lo, hi) {
        (Some(lo), Some(hi)) => vec![Extent {
            offset: lo,
            len: hi - lo,
        }],
        _ => Vec::new(),
    }
}

/// A pair with edits applied to a firmware-like image.
fn edited(seed: u64, len: usize, edits: &[(u16, u8, u8)]) -> (Vec<u8>, Vec<u8>) {
    let (old, mut new) = firmware_pair(len, seed);
    for &(pos, byte, what) in edits {
        let pos = usize::from(pos) % (new.len() + 1);
        match what {
            0 => new.insert(pos, byte),
            1 if pos < new.len() => {
                new.remove(pos);
            }
            _ if pos < new.len() => new[pos] = byte,
            _ => {}
        }
    }
    (old, new)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn segments_round_trip_in_any_chunking(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..30),
        seg in 1usize..9,
        chunks in proptest::collection::vec(1usize..=300, 1..6),
    ) {
        let (old, new) = edited(seed, 3000, &edits);
        let index = SuffixIndex::build(&old).unwrap();
        let blocks = find_blocks(&index, &new, MatchParams::default(), &NoProgress);
        let seg = seg * 256;
        for start in (0..new.len()).step_by(seg) {
            let end = (start + seg).min(new.len());
            for (blocks, source) in [(&blocks[..], Some(&index)), (&[][..], None)] {
                let s = encode_segment(&old, &new, blocks, start, end, source);
                if source.is_none() {
                    prop_assert!(s.reads.is_empty());
                }
                let extents = cover(&s.reads);
                let got = decode_chunked(&s.payload, &old, start as u64, (end - start) as u64, &extents, &chunks).unwrap();
                prop_assert_eq!(&got[..], &new[start..end]);
            }
        }
    }

    #[test]
    fn random_segments_round_trip(
        old in proptest::collection::vec(0u8..6, 0..2000),
        new in proptest::collection::vec(0u8..6, 1..2000),
        chunks in proptest::collection::vec(1usize..=300, 1..6),
    ) {
        let index = SuffixIndex::build(&old).unwrap();
        let blocks = find_blocks(&index, &new, MatchParams::default(), &NoProgress);
        let s = encode_segment(&old, &new, &blocks, 0, new.len(), Some(&index));
        let extents = cover(&s.reads);
        let got = decode_chunked(&s.payload, &old, 0, new.len() as u64, &extents, &chunks).unwrap();
        prop_assert_eq!(got, new);
    }

    #[test]
    fn corrupt_streams_are_refused_or_exact(
        seed in any::<u64>(),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in any::<usize>(),
        chunks in proptest::collection::vec(1usize..=300, 1..6),
    ) {
        let (old, new) = firmware_pair(2048, seed);
        let index = SuffixIndex::build(&old).unwrap();
        let blocks = find_blocks(&index, &new, MatchParams::default(), &NoProgress);
        let s = encode_segment(&old, &new, &blocks, 0, 1024, Some(&index));
        let extents = cover(&s.reads);
        let cut = cut % s.payload.len();
        prop_assert!(decode_chunked(&s.payload[..cut], &old, 0, 1024, &extents, &chunks).is_err());
        let mut bad = s.payload.clone();
        for (at, x) in flips {
            let at = at % bad.len();
            bad[at] ^= x;
        }
        // Any verdict but a panic; accepted output is exactly the segment
        // length (`decode_chunked` asserts it never passes it).
        if let Ok(out) = decode_chunked(&bad, &old, 0, 1024, &extents, &chunks) {
            prop_assert_eq!(out.len(), 1024);
        }
    }

    #[test]
    fn tiny_packages_round_trip(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 0..20),
        seg in 1u32..6,
    ) {
        let (old, new) = edited(seed, 6000, &edits);
        round_trip(&old, &new, &DiffOptions { segment_size: seg * 256, self_check: false, ..tiny_opts() });
    }
}

/// diff, then apply; checks the package is profile tiny with only stored
/// and tiny payloads.
fn round_trip(old: &[u8], new: &[u8], opts: &DiffOptions) -> Vec<u8> {
    let k = key(3);
    let out = diff_and_apply(old, new, opts, 3);
    let pkg = Package::parse(&out.package)
        .unwrap()
        .verify(&[k.verifying_key()])
        .unwrap();
    assert_eq!(pkg.manifest().profile, opts.profile);
    for op in pkg.ops() {
        let op = op.unwrap();
        match opts.profile {
            Profile::Tiny => assert_ne!(op.header.codec, Codec::Zstd),
            Profile::Zstd => assert_ne!(op.header.codec, Codec::Tiny),
        }
    }
    out.package
}

#[test]
fn tiny_edge_cases_round_trip() {
    let (old, new) = firmware_pair(5000, 9);
    let opts = tiny_opts();
    round_trip(&[], &new, &opts);
    round_trip(&old, &[], &opts);
    round_trip(&[], &[], &opts);
    round_trip(&old, &old, &opts);
    round_trip(&old, &vec![0xFF; 4096], &opts);
    round_trip(&[1], &[1, 2], &opts);
    round_trip(&[], &vec![7u8; 3000], &opts);
}

#[test]
fn tiny_packages_use_patch_and_new_and_are_deterministic() {
    let (old, new) = firmware_pair(100_000, 11);
    let opts = |threads| DiffOptions {
        threads,
        segment_size: 4096,
        ..tiny_opts()
    };
    let one = round_trip(&old, &new, &opts(1));
    let two = round_trip(&old, &new, &opts(2));
    assert_eq!(one, two, "the package does not depend on the thread count");
    let k = key(3);
    let pkg = Package::parse(&one)
        .unwrap()
        .verify(&[k.verifying_key()])
        .unwrap();
    let tiny_patches = pkg
        .ops()
        .map(|op| op.unwrap())
        .filter(|op| op.header.kind == OpKind::Patch && op.header.codec == Codec::Tiny)
        .count();
    assert!(tiny_patches > 0);
    // The inserted block is 2,000 random bytes; the rest should cost little.
    assert!(one.len() < 12_000, "package is {} bytes", one.len());
    let zstd = diff(
        &old,
        &new,
        &k,
        &DiffOptions {
            profile: Profile::Zstd,
            ..opts(1)
        },
    )
    .unwrap();
    println!(
        "firmware_pair(100000): tiny {} bytes, zstd {} bytes",
        one.len(),
        zstd.package.len()
    );
}

#[test]
fn a_new_segment_is_stored_when_tiny_does_not_pay() {
    // Incompressible bytes and an empty source: NEW stored.
    let mut rng = common::Rng(77);
    let new: Vec<u8> = (0..1000).map(|_| rng.next() as u8).collect();
    let k = key(3);
    let out = diff(&[], &new, &k, &tiny_opts()).unwrap();
    let pkg = Package::parse(&out.package)
        .unwrap()
        .verify(&[k.verifying_key()])
        .unwrap();
    let op = pkg.ops().next().unwrap().unwrap();
    assert_eq!(
        (op.header.kind, op.header.codec),
        (OpKind::New, Codec::Stored)
    );
}
