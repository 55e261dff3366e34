//! What the fuzz targets do with their input, shared with the seed replay
//! test `format/tests/fuzz_seeds.rs`, which includes this file as a module
//! (`#[path = "../fuzz/src/lib.rs"]`). So: no libfuzzer-sys here, and no
//! dependency but `fota-format` and `sha2` (a dependency of `fota-format`).
//!
//! Every function here must return normally on any input. Besides "no
//! panic", the asserts check what the parsers promise: an op the chain
//! accepts lies inside the manifest's images, a patch reads only its
//! extents and produces exactly its segment, and `PatchDecoder` agrees
//! with a naive reference decoder ([`reference_patch`]) byte for byte;
//! likewise `TinyDecoder`, fed in chunks of any size, agrees with
//! [`reference_tiny`].

use std::sync::OnceLock;

use fota_format::op::parse_extent;
use fota_format::sign::{key_id, sign};
use fota_format::{
    Codec, Extent, Header, Label, Manifest, Mode, Op, OpContext, OpHead, OpKind, Package,
    PatchDecoder, PatchStep, SigningKey, TinyDecoder, TinyStep, VerifyingKey, EXTENT_LEN,
    HEADER_LEN, SIGNED_HEADER_LEN,
};
use sha2::{Digest, Sha256};

/// Seed of the fuzzing key pair. TEST KEY, PUBLIC ON PURPOSE: the seed
/// packages in `corpus/` are signed with it so that `verify` succeeds on
/// them, and [`repair`] re-signs mutated packages with it.
pub const FUZZ_KEY_SEED: [u8; 32] = [
    0x23, 0x72, 0x57, 0xed, 0x17, 0xf4, 0x95, 0x1c, 0x06, 0x30, 0xfe, 0xa0, 0xf0, 0x05, 0x34, 0xfe,
    0x48, 0xaa, 0x86, 0xa5, 0xde, 0x17, 0x09, 0x5f, 0x16, 0x21, 0xe6, 0x55, 0x48, 0xa7, 0xb8, 0xc0,
];

/// Largest source chunk handed to `add_diff`.
pub const MAX_CHUNK: usize = 4096;

/// Largest segment the `patch_decoder` target asks for (keeps execs fast).
pub const MAX_FUZZ_DST_LEN: u64 = 1 << 20;

fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&FUZZ_KEY_SEED))
}

/// The one trusted key of the `parse_package` target.
pub fn verifying_key() -> VerifyingKey {
    signing_key().verifying_key()
}

// ---------------------------------------------------------------- packages

/// The `parse_package` target: parse, verify, walk every op, decode every
/// stored PATCH payload against a zero source image. When the signature or
/// the hash chain does not hold (any mutation breaks them), the same bytes
/// are also run again with the chain and signature recomputed (see
/// [`repair`]) so that mutations reach the op layout rules and the patch
/// decoder, which a fuzzer could never reach through sha256.
///
/// Returns `None` when the bytes do not frame as a package, else whether
/// they verified with the fuzzing key and their whole op chain held.
pub fn parse_package(data: &[u8]) -> Option<bool> {
    let intact = check_package(data)?;
    if !intact {
        if let Some(fixed) = repair(data) {
            check_package(&fixed);
        }
    }
    Some(intact)
}

/// Runs one package; `None` when it does not even frame, else whether the
/// signature verified and the whole op chain held.
fn check_package(data: &[u8]) -> Option<bool> {
    let pkg = Package::parse(data).ok()?;
    assert_eq!(pkg.header().package_len(), Some(data.len() as u64));

    let trusted = [verifying_key()];
    let verified_ops = match pkg.verify(&trusted) {
        Ok(vp) => {
            let _ = vp.check_device(&Label::EMPTY, 0);
            let _ = vp.check_device(&vp.manifest().device_class, vp.manifest().security_counter);
            let _ = vp.check_source(&[]);
            Some(walk_count(vp.ops()))
        }
        Err(_) => None,
    };

    let manifest = pkg.manifest_unverified();
    let ops = pkg.ops_unverified();
    assert_eq!(
        manifest.is_ok(),
        ops.is_ok(),
        "manifest_unverified and ops_unverified disagree"
    );
    let (Ok(manifest), Ok(mut ops)) = (manifest, ops) else {
        assert!(
            verified_ops.is_none(),
            "verify accepted a manifest that does not parse"
        );
        return Some(false);
    };
    let mut count = 0u32;
    let mut chain_ok = true;
    for op in ops.by_ref() {
        match op {
            Ok(op) => {
                assert_eq!(op.index, count, "ops come in index order");
                check_op(&manifest, &op);
                count += 1;
            }
            Err(_) => {
                chain_ok = false;
                break;
            }
        }
    }
    assert!(
        ops.next().is_none(),
        "the op iterator is fused after its end or an error"
    );
    if chain_ok {
        assert_eq!(
            count, manifest.op_count,
            "a complete chain has op_count ops"
        );
    }
    if let Some(v) = verified_ops {
        assert_eq!(
            v,
            (count, chain_ok),
            "verified and unverified walks disagree"
        );
    }
    Some(verified_ops.is_some() && chain_ok)
}

fn walk_count<'a>(ops: impl Iterator<Item = fota_format::Result<Op<'a>>>) -> (u32, bool) {
    let mut n = 0;
    for op in ops {
        if op.is_err() {
            return (n, false);
        }
        n += 1;
    }
    (n, true)
}

/// What the chain promises about an accepted op, then its payload decoded.
fn check_op(m: &Manifest, op: &Op<'_>) {
    let h = &op.header;
    // The leading ops write nothing: their payload is all there is.
    match h.kind {
        OpKind::Streams => {
            assert_eq!(op.index, 0, "the stream table is op 0");
            assert_eq!(h.payload_len, m.streams_len);
            let _ = stream_table_of(op.payload, m.source_size, m.target_size);
            return;
        }
        OpKind::Xform => {
            assert!(op.index < m.leading_ops(), "the xform op leads");
            let mut whole = vec![0u8; m.xform_len as usize];
            if let Ok(n) = fota_format::xform::expand(op.payload, 0, &mut whole) {
                let _ = fota_format::Xform::parse(&whole[..n], 0);
            }
            return;
        }
        _ => {}
    }
    let seg = u64::from(m.segment_size);
    assert!(
        h.dst_offset % seg == 0 && h.dst_offset < m.target_size,
        "{h:?}"
    );
    assert_eq!(u64::from(h.dst_len), m.segment_len(h.dst_offset / seg));
    if m.mode == Mode::AB {
        assert_eq!(h.dst_offset, u64::from(op.index - m.leading_ops()) * seg);
        assert_ne!(h.kind, OpKind::Skip);
    }
    assert_eq!(op.payload.len() as u64, u64::from(h.payload_len));
    assert_eq!(op.extents.as_slice().len(), usize::from(h.extent_count));
    let mut prev_end = 0u64;
    for e in op.extents.as_slice() {
        assert!(
            e.len > 0 && e.offset >= prev_end,
            "extents sorted and disjoint: {e:?}"
        );
        prev_end = e.end().expect("accepted extents do not overflow");
        assert!(prev_end <= m.source_size, "extent inside the source: {e:?}");
    }
    assert!(op.extents.total_len() <= m.source_size);
    let patch_run = PatchRun {
        op_index: op.index,
        dst_offset: h.dst_offset,
        dst_len: h.dst_len.into(),
        extents: op.extents.as_slice(),
        source_size: Some(m.source_size),
        source: zero_source,
        misuse: Misuse::None,
    };
    match (h.kind, h.codec) {
        (OpKind::Copy, _) => assert_eq!(op.extents.total_len(), u64::from(h.dst_len)),
        (OpKind::New, Codec::Stored) => assert_eq!(op.payload.len() as u64, u64::from(h.dst_len)),
        (OpKind::Patch, Codec::Stored) => {
            let _ = run_patch(&patch_run, op.payload, || MAX_CHUNK, None);
        }
        #[cfg(feature = "lzma")]
        (OpKind::Patch | OpKind::New, Codec::Lzma) => {
            let (decoded_len, dst_len) = (h.decoded_len as usize, h.dst_len as usize);
            // No source image here: a dictionary window is refused.
            let decoded =
                fota_format::lzma_payload::decode(op.index, op.payload, decoded_len, dst_len, &[]);
            if let Ok(d) = decoded {
                assert_eq!(d.len(), decoded_len, "an accepted payload has its length");
                if h.kind == OpKind::Patch {
                    let _ = run_patch(&patch_run, &d, || MAX_CHUNK, None);
                }
            }
        }
        // Output is kept for back references: bound it as the target does.
        (OpKind::Patch | OpKind::New, Codec::Tiny) if u64::from(h.dst_len) <= MAX_FUZZ_DST_LEN => {
            let run = TinyRun {
                op_index: op.index,
                dst_offset: h.dst_offset,
                dst_len: h.dst_len.into(),
                extents: op.extents.as_slice(),
                source: zero_source,
            };
            let _ = run_tiny(&run, op.payload, || 256, None);
        }
        _ => {}
    }
}

/// A copy of `data` (whose header must parse) with every op's
/// `next_op_sha256`, the manifest's `first_op_sha256` (in a hash-chained
/// package), the key id and the signature recomputed with the fuzzing key. Ops are delimited by their
/// heads (SPEC §2.3) from the start of the op section up to the first head
/// that does not parse; heads and manifest are re-encoded, which gives
/// back their own bytes but for the hashes. When the manifest does not
/// parse, only the signature is redone. `None` when `data` is too short.
pub fn repair(data: &[u8]) -> Option<Vec<u8>> {
    let header = Header::parse(data).ok()?;
    let ops_start = usize::try_from(header.ops_offset()).ok()?;
    let manifest = data.get(HEADER_LEN..ops_start)?;
    let mut out = data.to_vec();
    if let Ok(mut m) = Manifest::parse_with(manifest, header.op_auth) {
        let mut heads = Vec::new();
        let mut pos = ops_start;
        for index in 0..m.op_count {
            let ctx = OpContext::new(&m, index);
            let Ok(head) = OpHead::parse(&out[pos..], pos as u64, &ctx) else {
                break;
            };
            let Some(end) = usize::try_from(head.total_len())
                .ok()
                .and_then(|len| pos.checked_add(len))
                .filter(|&end| end <= out.len())
            else {
                break;
            };
            heads.push((pos, end, head, ctx));
            pos = end;
        }
        let mut next = [0u8; 32];
        for (start, end, head, ctx) in heads.iter().rev() {
            let h = fota_format::OpHeader {
                next_op_sha256: if ctx.last || !ctx.chained {
                    [0; 32]
                } else {
                    next
                },
                ..head.header
            };
            // A parsed head encodes back to its own bytes but for the
            // link (which has the same length).
            let wire = h.encode(head.extents.as_slice(), ctx);
            assert_eq!(wire.len(), head.len, "a head re-encodes to its length");
            out[*start..*start + head.len].copy_from_slice(&wire);
            next = Sha256::digest(&out[*start..*end]).into();
        }
        if !heads.is_empty() {
            m.first_op_sha256 = next;
            let wire = m.to_bytes();
            assert_eq!(
                wire.len(),
                manifest.len(),
                "a manifest re-encodes to its length"
            );
            out[HEADER_LEN..ops_start].copy_from_slice(&wire);
        }
    }
    let key = signing_key();
    out[SIGNED_HEADER_LEN..SIGNED_HEADER_LEN + 8].copy_from_slice(&key_id(&key.verifying_key()));
    let mut signed_header = [0u8; SIGNED_HEADER_LEN];
    signed_header.copy_from_slice(&out[..SIGNED_HEADER_LEN]);
    // A version-3 signature covers the op section's hash.
    let ops_sha256: Option<[u8; 32]> = match header.op_auth {
        fota_format::OpAuth::Chain => None,
        fota_format::OpAuth::Signature => Some(Sha256::digest(out.get(ops_start..)?).into()),
    };
    let signature = sign(
        key,
        &signed_header,
        &out[HEADER_LEN..ops_start],
        ops_sha256.as_ref(),
    );
    out[SIGNED_HEADER_LEN + 8..HEADER_LEN].copy_from_slice(&signature);
    Some(out)
}

// ------------------------------------------------------------------ patches

/// How the `patch_decoder` target breaks the `add_diff` contract on purpose
/// (the decoder must refuse, not panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misuse {
    /// Follow the contract.
    None,
    /// Pass one source byte more than the first Add step asks for.
    OverfeedFirstAdd,
    /// Ask for the next step without passing the first Add's bytes.
    SkipFirstAdd,
}

/// Input layout of the `patch_decoder` target.
///
/// ```text
/// [0]       low 5 bits: extent count (mod 17); bits 5-6: misuse (1 overfeed, 2 skip)
/// [1]       seed of the chunk sizes given to add_diff
/// [2..10]   dst_offset, u64 LE
/// [10..14]  dst_len, u32 LE, reduced mod MAX_FUZZ_DST_LEN + 1
/// 16 B each extents as fixed records (offset u64 LE, len u64 LE), unchecked
/// rest      the decoded PATCH payload
/// ```
pub struct PatchInput<'a> {
    /// Extents handed to the decoder.
    pub extents: Vec<Extent>,
    /// Target offset of the segment.
    pub dst_offset: u64,
    /// Segment length.
    pub dst_len: u64,
    /// Chunk size seed.
    pub seed: u8,
    /// Contract breach to try.
    pub misuse: Misuse,
    /// The decoded payload.
    pub payload: &'a [u8],
}

impl<'a> PatchInput<'a> {
    /// Splits fuzz input; `None` when shorter than the fixed part.
    pub fn split(data: &'a [u8]) -> Option<Self> {
        let (fixed, rest) = data.split_at_checked(14)?;
        let n_extents = usize::from(fixed[0] & 0x1f) % 17;
        let misuse = match (fixed[0] >> 5) & 3 {
            1 => Misuse::OverfeedFirstAdd,
            2 => Misuse::SkipFirstAdd,
            _ => Misuse::None,
        };
        let dst_offset = u64::from_le_bytes(fixed[2..10].try_into().ok()?);
        let dst_len =
            u64::from(u32::from_le_bytes(fixed[10..14].try_into().ok()?)) % (MAX_FUZZ_DST_LEN + 1);
        let n_extents = n_extents.min(rest.len() / EXTENT_LEN);
        let (ext_bytes, payload) = rest.split_at(n_extents * EXTENT_LEN);
        let extents = ext_bytes
            .chunks_exact(EXTENT_LEN)
            .map(|b| {
                let e = Extent {
                    offset: u64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
                    len: u64::from_le_bytes(b[8..].try_into().unwrap_or_default()),
                };
                // The record parser agrees with the raw fields when it accepts.
                match parse_extent(b, 0) {
                    Ok(p) => assert!(p == e && p.len > 0 && p.end().is_some(), "{p:?} vs {e:?}"),
                    Err(_) => assert!(e.len == 0 || e.end().is_none(), "{e:?} refused"),
                }
                e
            })
            .collect();
        Some(PatchInput {
            extents,
            dst_offset,
            dst_len,
            seed: fixed[1],
            misuse,
            payload,
        })
    }

    /// Encodes the fixed part and extents in front of `payload` (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let misuse = match self.misuse {
            Misuse::None => 0,
            Misuse::OverfeedFirstAdd => 1,
            Misuse::SkipFirstAdd => 2,
        };
        let mut out = vec![(self.extents.len() as u8 & 0x1f) | (misuse << 5), self.seed];
        out.extend_from_slice(&self.dst_offset.to_le_bytes());
        out.extend_from_slice(&(self.dst_len as u32).to_le_bytes());
        for e in &self.extents {
            out.extend_from_slice(&e.to_bytes());
        }
        out.extend_from_slice(self.payload);
        out
    }
}

/// The `patch_decoder` target: decode to the end, source bytes passed in
/// pseudo-random chunk sizes, and compare with [`reference_patch`], a plain
/// allocating decoder written from the documented layout: both must accept
/// the same payloads and produce the same bytes (exactly `dst_len` of them).
/// Returns `None` when the input is too short, else the decoder's verdict.
pub fn patch_decoder(data: &[u8]) -> Option<fota_format::Result<u64>> {
    let input = PatchInput::split(data)?;
    let mut rng = SplitMix(u64::from(input.seed) ^ 0x9e37_79b9_7f4a_7c15);
    let chunks = move || {
        let r = rng.next();
        let v = (r >> 8) as usize;
        match r % 4 {
            0 => 1 + v % 8,
            1 => 1 + v % 64,
            2 => 1 + v % MAX_CHUNK,
            _ => MAX_CHUNK,
        }
    };
    let run = PatchRun {
        op_index: 0,
        dst_offset: input.dst_offset,
        dst_len: input.dst_len,
        extents: &input.extents,
        source_size: None,
        source: pattern_source,
        misuse: input.misuse,
    };
    let mut out = Vec::new();
    let result = run_patch(&run, input.payload, chunks, Some(&mut out));
    if input.misuse == Misuse::None {
        let expected = reference_patch(
            input.payload,
            input.dst_offset,
            input.dst_len,
            &input.extents,
            pattern_source,
        );
        match (&result, &expected) {
            (Ok(n), Some(want)) => {
                assert_eq!(*n, input.dst_len);
                assert!(
                    out == *want,
                    "decoded bytes differ from the reference decoder"
                );
            }
            (Err(_), None) => {}
            (got, want) => panic!(
                "PatchDecoder says {got:?}, the reference decoder {}",
                if want.is_some() { "accepts" } else { "refuses" }
            ),
        }
    }
    Some(result)
}

/// A source image that is not all zeros, so that source addressing shows
/// in the output.
pub fn pattern_source(offset: u64) -> u8 {
    let x = offset.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8
}

/// A source image of zeros.
pub fn zero_source(_offset: u64) -> u8 {
    0
}

/// What [`run_patch`] decodes and how.
#[derive(Debug, Clone, Copy)]
pub struct PatchRun<'e> {
    /// Op index reported in errors.
    pub op_index: u32,
    /// Target offset of the segment.
    pub dst_offset: u64,
    /// Segment length.
    pub dst_len: u64,
    /// Extents the op may read.
    pub extents: &'e [Extent],
    /// Size of the source image, when known: reads must stay inside it.
    pub source_size: Option<u64>,
    /// The source image, byte by byte.
    pub source: fn(u64) -> u8,
    /// Contract breach to try on the first Add step.
    pub misuse: Misuse,
}

/// Whether `[src, src + len)` lies inside one extent (u128: no overflow).
fn inside(extents: &[Extent], src: u64, len: u64) -> bool {
    let end = u128::from(src) + u128::from(len);
    extents
        .iter()
        .any(|e| src >= e.offset && end <= u128::from(e.offset) + u128::from(e.len))
}

/// Runs a decoder to its end, passing each Add step's source bytes in
/// chunks of `next_chunk()` bytes (clamped to 1..=4096), and appends the
/// output to `out` when given. Returns the bytes produced when the patch is
/// accepted; checks that every step reads inside the extents (and the
/// source size), that output never exceeds `dst_len` and is exactly
/// `dst_len` on success, and that the decoder is fused after an error.
pub fn run_patch(
    run: &PatchRun<'_>,
    payload: &[u8],
    mut next_chunk: impl FnMut() -> usize,
    mut out: Option<&mut Vec<u8>>,
) -> fota_format::Result<u64> {
    let (extents, dst_len) = (run.extents, run.dst_len);
    let mut decoder = PatchDecoder::new(run.op_index, payload, run.dst_offset, dst_len, extents)?;
    let mut buf = [0u8; MAX_CHUNK];
    let mut produced = 0u64;
    let mut first_add = true;
    loop {
        let step = match decoder.next() {
            None => break,
            Some(Ok(step)) => step,
            Some(Err(e)) => {
                assert!(
                    decoder.next().is_none(),
                    "the decoder is fused after an error"
                );
                return Err(e);
            }
        };
        match step {
            PatchStep::Add { src, len } => {
                assert!(len > 0, "empty add step");
                assert!(
                    inside(extents, src, len),
                    "add [{src}, +{len}) outside {extents:?}"
                );
                if let Some(size) = run.source_size {
                    assert!(u128::from(src) + u128::from(len) <= u128::from(size));
                }
                let misuse = if first_add { run.misuse } else { Misuse::None };
                first_add = false;
                if misuse == Misuse::SkipFirstAdd {
                    match decoder.next() {
                        Some(Err(e)) => {
                            assert!(
                                decoder.next().is_none(),
                                "the decoder is fused after an error"
                            );
                            return Err(e);
                        }
                        other => panic!("next step given without add_diff: {other:?}"),
                    }
                }
                let mut at = src;
                let mut left = len;
                while left > 0 {
                    let n = next_chunk()
                        .clamp(1, MAX_CHUNK)
                        .min(usize::try_from(left).unwrap_or(MAX_CHUNK));
                    let chunk = &mut buf[..n];
                    for (i, b) in chunk.iter_mut().enumerate() {
                        *b = (run.source)(at.wrapping_add(i as u64));
                    }
                    decoder.add_diff(chunk)?;
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(chunk);
                    }
                    at = at.wrapping_add(n as u64);
                    left -= n as u64;
                }
                if misuse == Misuse::OverfeedFirstAdd {
                    let mut one = [0u8; 1];
                    let r = decoder.add_diff(&mut one);
                    assert!(r.is_err(), "add_diff past the add step accepted");
                    return r.map(|()| produced);
                }
                produced += len;
            }
            PatchStep::Literal(bytes) => {
                assert!(!bytes.is_empty(), "empty literal step");
                if let Some(out) = out.as_deref_mut() {
                    out.extend_from_slice(bytes);
                }
                produced += bytes.len() as u64;
            }
        }
        assert!(
            produced <= dst_len,
            "patch produced {produced} bytes of a {dst_len}-byte segment"
        );
    }
    assert_eq!(produced, dst_len, "accepted patch did not fill its segment");
    Ok(produced)
}

/// A LEB128 value, minimally encoded and fitting a u64, as `patch.rs`
/// documents; `None` otherwise.
fn ref_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u128 = 0;
    for i in 0..10 {
        let byte = *data.get(*pos)?;
        *pos += 1;
        v |= u128::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return None;
            }
            return u64::try_from(v).ok();
        }
    }
    None
}

/// The PATCH format decoded the obvious way, with allocation, from the
/// description in `format/src/patch.rs`: the oracle for the streaming
/// [`PatchDecoder`]. `None` when the payload is not a valid patch for this
/// segment and these extents.
pub fn reference_patch(
    payload: &[u8],
    dst_offset: u64,
    dst_len: u64,
    extents: &[Extent],
    source: fn(u64) -> u8,
) -> Option<Vec<u8>> {
    let mut pos = 0;
    let mut lens = [0usize; 5];
    for len in &mut lens {
        *len = usize::try_from(ref_varint(payload, &mut pos)?).ok()?;
    }
    let mut streams: [&[u8]; 5] = [&[]; 5];
    let mut rest = payload.get(pos..)?;
    for (stream, len) in streams.iter_mut().zip(lens) {
        let (s, r) = rest.split_at_checked(len)?;
        *stream = s;
        rest = r;
    }
    if !rest.is_empty() {
        return None;
    }
    let [ctrl, zero_runs, value_runs, values, extra] = streams;

    // The sparse diff as (position, value) pairs, positions increasing.
    let mut diff: Vec<(u64, u8)> = Vec::new();
    let (mut zp, mut vp, mut at, mut next_value) = (0usize, 0usize, 0u64, 0usize);
    while zp < zero_runs.len() || vp < value_runs.len() {
        let zeros = ref_varint(zero_runs, &mut zp)?;
        let count = ref_varint(value_runs, &mut vp)?;
        if count == 0 {
            return None;
        }
        at = at.checked_add(zeros)?;
        for _ in 0..count {
            let v = *values.get(next_value)?;
            if v == 0 {
                return None;
            }
            diff.push((at, v));
            next_value += 1;
            at = at.checked_add(1)?;
        }
        // A diff longer than the segment cannot be used up.
        if at > dst_len {
            return None;
        }
    }
    if next_value != values.len() {
        return None;
    }

    let mut out = Vec::new();
    let (mut cp, mut cursor, mut extra_at, mut diff_at, mut next_diff) =
        (0usize, dst_offset, 0usize, 0u64, 0usize);
    while cp < ctrl.len() {
        let copy = ref_varint(ctrl, &mut cp)?;
        let extra_len = ref_varint(ctrl, &mut cp)?;
        let z = ref_varint(ctrl, &mut cp)?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        if copy == 0 && extra_len == 0 {
            return None;
        }
        if u128::from(copy) + u128::from(extra_len) + out.len() as u128 > u128::from(dst_len) {
            return None;
        }
        let src = cursor.checked_add_signed(delta)?;
        let src_end = src.checked_add(copy)?;
        // An extent whose end overflows is invalid and contains nothing.
        let covered = extents.iter().any(|e| {
            e.offset
                .checked_add(e.len)
                .is_some_and(|e_end| src >= e.offset && src_end <= e_end)
        });
        if copy > 0 && !covered {
            return None;
        }
        for i in 0..copy {
            let mut b = source(src + i);
            if diff.get(next_diff).is_some_and(|&(p, _)| p == diff_at) {
                b = b.wrapping_add(diff[next_diff].1);
                next_diff += 1;
            }
            diff_at += 1;
            out.push(b);
        }
        cursor = src_end;
        let lit = extra.get(extra_at..extra_at.checked_add(usize::try_from(extra_len).ok()?)?)?;
        out.extend_from_slice(lit);
        extra_at += lit.len();
    }
    if out.len() as u64 != dst_len || extra_at != extra.len() || next_diff != diff.len() {
        return None;
    }
    Some(out)
}

/// Tiny deterministic generator for chunk sizes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

// ------------------------------------------------------------- tiny payloads

/// Largest input chunk handed to `TinyDecoder::step` by the `tiny_decoder`
/// target (a device's transfer buffer is about this size).
pub const MAX_TINY_CHUNK: usize = 300;

/// The `tiny_decoder` target. Input layout as [`PatchInput`] (the misuse
/// bits are ignored), the payload being a tiny stream (SPEC.md §5b). Runs
/// `TinyDecoder` to the end, handing it the payload in pseudo-random chunks
/// of 1 to [`MAX_TINY_CHUNK`] bytes over a patterned source image, and
/// compares verdict and output with [`reference_tiny`], a plain decoder
/// written from the spec, and with a second run fed the whole payload at
/// once. Returns `None` when the input is too short, else the verdict.
pub fn tiny_decoder(data: &[u8]) -> Option<fota_format::Result<u64>> {
    let input = PatchInput::split(data)?;
    let mut rng = SplitMix(u64::from(input.seed) ^ 0x2545_f491_4f6c_dd1d);
    let chunks = move || {
        let r = rng.next();
        match r % 4 {
            0 => 1,
            1 => 1 + (r >> 8) as usize % 16,
            _ => 1 + (r >> 8) as usize % MAX_TINY_CHUNK,
        }
    };
    let run = TinyRun {
        op_index: 0,
        dst_offset: input.dst_offset,
        dst_len: input.dst_len,
        extents: &input.extents,
        source: pattern_source,
    };
    let mut out = Vec::new();
    let result = run_tiny(&run, input.payload, chunks, Some(&mut out));
    let mut whole = Vec::new();
    let at_once = run_tiny(&run, input.payload, || usize::MAX, Some(&mut whole));
    assert_eq!(result, at_once, "the verdict depends on the chunking");
    let expected = reference_tiny(
        input.payload,
        input.dst_offset,
        input.dst_len,
        &input.extents,
        pattern_source,
    );
    match (&result, &expected) {
        (Ok(n), Some(want)) => {
            assert_eq!(*n, input.dst_len);
            assert!(out == *want, "decoded bytes differ from the reference");
            assert!(whole == *want, "decoded bytes depend on the chunking");
        }
        (Err(_), None) => {}
        (got, want) => panic!(
            "TinyDecoder says {got:?}, the reference decoder {}",
            if want.is_some() { "accepts" } else { "refuses" }
        ),
    }
    Some(result)
}

/// What [`run_tiny`] decodes.
#[derive(Debug, Clone, Copy)]
pub struct TinyRun<'e> {
    /// Op index reported in errors.
    pub op_index: u32,
    /// Target offset of the segment (where the source cursor starts).
    pub dst_offset: u64,
    /// Segment length.
    pub dst_len: u64,
    /// Extents the op may read.
    pub extents: &'e [Extent],
    /// The source image, byte by byte.
    pub source: fn(u64) -> u8,
}

/// Runs a `TinyDecoder` over `payload` as a device would: a window of the
/// payload of `next_chunk()` bytes at a time (refilled when the decoder
/// has consumed it), then `finish`. Appends the output to `out` when
/// given. Checks every step against the decoder's contract: `NeedInput`
/// consumes all input, literal and add steps lie inside the input given,
/// source steps inside one extent, back references inside the output,
/// output never past `dst_len` and exactly `dst_len` on success, and the
/// decoder refuses every call after a refusal.
pub fn run_tiny(
    run: &TinyRun<'_>,
    payload: &[u8],
    mut next_chunk: impl FnMut() -> usize,
    out: Option<&mut Vec<u8>>,
) -> fota_format::Result<u64> {
    let mut decoder = TinyDecoder::new(run.op_index, run.dst_offset, run.dst_len);
    // Recent output is needed for back references; keep it all (bounded by
    // MAX_FUZZ_DST_LEN in the target, by the segment in packages).
    let mut produced: Vec<u8> = Vec::new();
    let (mut pos, mut end) = (0usize, 0usize);
    loop {
        if end <= pos {
            end = pos.saturating_add(next_chunk().max(1)).min(payload.len());
        }
        let input = payload.get(pos..end).unwrap_or(&[]);
        let (used, step) = match decoder.step(input, run.extents) {
            Ok(s) => s,
            Err(e) => {
                assert!(
                    decoder.step(&[0], run.extents).is_err(),
                    "the decoder refuses after a refusal"
                );
                return Err(e);
            }
        };
        assert!(used <= input.len(), "consumed more than given");
        pos += used;
        let given = &payload[pos - used..pos];
        match step {
            TinyStep::NeedInput => {
                assert_eq!(used, input.len(), "NeedInput leaves input unconsumed");
                if pos == payload.len() {
                    break;
                }
            }
            TinyStep::End => break,
            TinyStep::Literal { len } => {
                assert!(
                    len >= 1 && len <= used,
                    "literal of {len} from {used} bytes"
                );
                produced.extend_from_slice(&given[used - len..]);
            }
            TinyStep::AddSource { src, len } => {
                assert!(len >= 1 && len <= used, "add of {len} from {used} bytes");
                assert!(inside(run.extents, src, len as u64), "add outside extents");
                for (i, d) in given[used - len..].iter().enumerate() {
                    produced.push((run.source)(src + i as u64).wrapping_add(*d));
                }
            }
            TinyStep::CopySource { src, len } => {
                assert!(len >= 1, "empty copy");
                assert!(inside(run.extents, src, len), "copy outside extents");
                assert!(len <= run.dst_len, "copy longer than the segment");
                produced.extend((0..len).map(|i| (run.source)(src + i)));
            }
            TinyStep::CopyOutput { back, len } => {
                assert!(
                    back >= 1 && back <= produced.len() as u64,
                    "bad back {back}"
                );
                assert!(len <= run.dst_len, "copy longer than the segment");
                let from = produced.len() - back as usize;
                for i in 0..len as usize {
                    let b = produced[from + i];
                    produced.push(b);
                }
            }
        }
        assert!(
            produced.len() as u64 <= run.dst_len,
            "tiny stream produced {} bytes of a {}-byte segment",
            produced.len(),
            run.dst_len
        );
        assert_eq!(produced.len() as u64, decoder.produced());
    }
    decoder.finish(payload.len() as u64)?;
    assert_eq!(
        produced.len() as u64,
        run.dst_len,
        "accepted stream did not fill its segment"
    );
    if let Some(out) = out {
        out.extend_from_slice(&produced);
    }
    Ok(run.dst_len)
}

/// The tiny stream decoded the obvious way, with allocation, from SPEC.md
/// §5b: the oracle for the streaming [`TinyDecoder`]. `None` when the
/// payload is not a valid stream for this segment and these extents.
pub fn reference_tiny(
    payload: &[u8],
    dst_offset: u64,
    dst_len: u64,
    extents: &[Extent],
    source: fn(u64) -> u8,
) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    let mut cursor = dst_offset;
    while (out.len() as u64) < dst_len {
        let byte = *payload.get(pos)?;
        pos += 1;
        let (tag, code) = (byte >> 5, byte & 31);
        let len = if code < 31 {
            u64::from(code) + 1
        } else {
            32u64.checked_add(ref_varint(payload, &mut pos)?)?
        };
        if len > dst_len - out.len() as u64 {
            return None;
        }
        match tag {
            0 => {
                let end = pos.checked_add(usize::try_from(len).ok()?)?;
                out.extend_from_slice(payload.get(pos..end)?);
                pos = end;
            }
            1..=4 => {
                let delta = if tag == 2 || tag == 4 {
                    let z = ref_varint(payload, &mut pos)?;
                    ((z >> 1) as i64) ^ -((z & 1) as i64)
                } else {
                    0
                };
                let src = cursor.checked_add_signed(delta)?;
                let src_end = src.checked_add(len)?;
                // An extent whose end overflows is invalid and contains nothing.
                let covered = extents.iter().any(|e| {
                    e.offset
                        .checked_add(e.len)
                        .is_some_and(|e_end| src >= e.offset && src_end <= e_end)
                });
                if !covered {
                    return None;
                }
                if tag <= 2 {
                    let end = pos.checked_add(usize::try_from(len).ok()?)?;
                    let diff = payload.get(pos..end)?;
                    pos = end;
                    for (i, d) in diff.iter().enumerate() {
                        out.push(source(src + i as u64).wrapping_add(*d));
                    }
                } else {
                    out.extend((0..len).map(|i| source(src + i)));
                }
                cursor = src + len;
            }
            5 => {
                let back = ref_varint(payload, &mut pos)?.checked_add(1)?;
                if back > out.len() as u64 {
                    return None;
                }
                let from = out.len() - back as usize;
                for i in 0..len as usize {
                    out.push(out[from + i]);
                }
            }
            _ => return None,
        }
    }
    (pos == payload.len()).then_some(out)
}

// ---------------------------------------------------------------- xform

/// The `xform` target: a u16 payload length, an XFORM op payload as sent
/// (`SPEC.md` §5c, breakpoints varint-coded), then image bytes. The
/// payload is expanded (fed in two pieces split at a point taken from the
/// input, which must not change the result) and parsed; one that parses is
/// run over the image:
/// F⁻¹ must undo F exactly, T and the site scan must finish, and the map
/// must be a step function (monotone between breakpoints). Returns `None`
/// when the input is too short, else whether the payload parsed.
pub fn xform(data: &[u8]) -> Option<bool> {
    use fota_format::xform::{Image, Site, XFORM_BLOCK};
    let len = usize::from(u16::from_le_bytes([*data.first()?, *data.get(1)?]));
    let wire = data.get(2..2 + len)?;
    let image = data.get(2 + len..).unwrap_or(&[]);
    let mut whole = vec![0u8; fota_format::xform::MAX_XFORM_LEN as usize];
    let Ok(n) = fota_format::xform::expand(wire, 0, &mut whole) else {
        return Some(false);
    };
    let cut = usize::from(*image.get(2).unwrap_or(&0)).min(wire.len());
    let mut pieces = vec![0u8; whole.len()];
    let mut e = fota_format::xform::Expander::default();
    assert!(
        e.feed(&wire[..cut], 0, &mut pieces).is_ok(),
        "pieces as whole"
    );
    assert!(
        e.feed(&wire[cut..], cut as u64, &mut pieces).is_ok(),
        "pieces as whole"
    );
    assert_eq!(e.finish(wire.len() as u64).ok(), Some(n));
    assert_eq!(pieces[..n], whole[..n]);
    let payload = &whole[..n];
    let Ok(x) = fota_format::Xform::parse(payload, 0) else {
        return Some(false);
    };
    // Any block-aligned offset: the image may sit anywhere in its ranges.
    let offset = u64::from(u16::from_le_bytes([
        *image.first().unwrap_or(&0),
        *image.get(1).unwrap_or(&0),
    ])) * XFORM_BLOCK as u64;
    let mut f = image.to_vec();
    x.forward(&mut f, offset);
    let mut back = f.clone();
    x.inverse(&mut back, offset);
    assert_eq!(back, image, "F⁻¹ must undo F");
    let mut t = image.to_vec();
    x.source(&mut t, offset);
    let mut sites = 0usize;
    let mut last = None;
    x.sites(image, offset, Image::Old, |at, site| {
        assert!(at >= offset && at + 4 <= offset + image.len() as u64);
        // Thumb branches reach half-words; an AArch64 ADRP pair any byte.
        if let (Site::Branch { target }, fota_format::xform::Isa::Thumb2) = (site, x.isa()) {
            assert_eq!(target & 1, 0, "thumb branch targets are half-word aligned");
        }
        // Within a block, branches come before pointer words; blocks in order.
        let block = at / XFORM_BLOCK as u64;
        assert!(last.is_none_or(|b| b <= block));
        last = Some(block);
        sites += 1;
    });
    assert!(sites <= image.len() / 4 + image.len() / XFORM_BLOCK + 1);
    for i in 0..x.breakpoint_count() {
        let b = x.breakpoint(i)?;
        assert_eq!(x.map(b.address), b.address.wrapping_add(b.delta as u32));
    }
    Some(true)
}

// ---------------------------------------------------------------- streams

/// The `stream_table` target: the expanded source and target sizes (u64
/// each), then a stream table. One that parses must list streams that are
/// sorted, disjoint and inside their image, whose expanded sizes add up to
/// the two sizes given. Returns `None` when the input is too short, else
/// whether the table parsed.
pub fn stream_table(data: &[u8]) -> Option<bool> {
    let (sizes, table) = data.split_at_checked(16)?;
    let src = u64::from_le_bytes(sizes[..8].try_into().ok()?);
    let dst = u64::from_le_bytes(sizes[8..].try_into().ok()?);
    Some(stream_table_of(table, src, dst))
}

fn stream_table_of(table: &[u8], src: u64, dst: u64) -> bool {
    use fota_format::streams::{Stream, StreamTable};
    let Ok(t) = StreamTable::parse(table, 0, src, dst) else {
        return false;
    };
    let check =
        |streams: &mut dyn Iterator<Item = Stream>, count: u32, real: u64, expanded: u64| {
            let (mut n, mut end, mut size) = (0u32, 0u64, real as u128);
            for s in streams {
                assert!(s.offset >= end && s.len >= 5, "{s:?}");
                end = s.offset + s.len;
                assert!(end <= real, "{s:?} inside {real}");
                size = size - u128::from(s.len) + u128::from(s.data_len) + u128::from(s.parse_len);
                n += 1;
            }
            assert_eq!(n, count);
            assert_eq!(size, u128::from(expanded));
        };
    let i = *t.images();
    check(
        &mut t.source_streams(),
        t.source_count(),
        i.source_size,
        src,
    );
    check(
        &mut t.target_streams(),
        t.target_count(),
        i.target_size,
        dst,
    );
    true
}

// ----------------------------------------------------------------- lzma

/// The `lzma_payload` target: `decoded_len u32 | dst_len u32` (both taken
/// modulo [`MAX_FUZZ_DST_LEN`] + 1), then an LZMA op payload (`SPEC.md`
/// §5e), decoded over a fixed 4 KiB op source (so layout 2's dictionary
/// windows and distances into them are reachable). An accepted payload
/// must have exactly `decoded_len` bytes, and a refusal must be one of the
/// payload errors naming op 7 (a malformed one with an offset inside the
/// payload). `Some(true)` when accepted.
#[cfg(feature = "lzma")]
pub fn lzma_payload(data: &[u8]) -> Option<bool> {
    let (head, coded) = data.split_at_checked(8)?;
    let field = |at: usize| -> Option<usize> {
        let v = u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?);
        Some((u64::from(v) % (MAX_FUZZ_DST_LEN + 1)) as usize)
    };
    let (decoded_len, dst_len) = (field(0)?, field(4)?);
    let source: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    match fota_format::lzma_payload::decode(7, coded, decoded_len, dst_len, &source) {
        Ok(out) => {
            assert_eq!(out.len(), decoded_len, "an accepted payload has its length");
            Some(true)
        }
        Err(fota_format::Error::LzmaPayload {
            op_index, offset, ..
        }) => {
            assert_eq!(op_index, 7);
            assert!(
                offset <= coded.len() as u64,
                "offset {offset} inside the payload"
            );
            Some(false)
        }
        Err(
            fota_format::Error::PayloadCodec { op_index, .. }
            | fota_format::Error::OutOfMemory { op_index, .. },
        ) => {
            assert_eq!(op_index, 7);
            Some(false)
        }
        Err(other) => panic!("an LZMA payload refused with {other:?}"),
    }
}
