//! Cutting the target into segments and coding each one as an op.
//!
//! For every destination segment the blocks that fall in it become a PATCH
//! (control, diff and extra streams), and the cheapest of COPY, FILL, PATCH
//! and NEW on the wire is kept. Segments are coded independently (each op
//! must be re-doable on its own after a power cut), in parallel.
//!
//! Under the tiny profile ([`Coding::Tiny`]) PATCH and NEW segments are
//! tiny streams instead (see [`crate::tiny`]), or NEW stored.

use fota_format::lzma_payload;
use fota_format::op::{max_patch_decoded_len, Codec, Extent, OpKind, MAX_EXTENTS};
use fota_format::patch::{varint_len, write_varint, zigzag, MAX_VARINT_LEN};
use fota_format::Mode;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::matcher::Block;
use crate::payload::{self, SOURCE_DICT_MAX};
use crate::progress::Progress;
use crate::suffix::SuffixIndex;
use crate::tiny::encode_segment;

/// How payloads are coded: the manifest's profile and its knobs.
#[derive(Clone, Copy)]
pub enum Coding<'a> {
    /// Profile zstd: PATCH streams and NEW bytes as zstd frames (or stored).
    Zstd {
        /// zstd level, 1 to 22.
        level: i32,
        /// Code fast, for a size estimate (see `payload::code_bytes`).
        quick: bool,
    },
    /// Profile tiny: PATCH and NEW segments as tiny streams (or NEW stored).
    Tiny {
        /// The old image's suffix array, so literal bytes may match anywhere
        /// in the source; `None` keeps source reads to the matcher's blocks.
        source: Option<&'a SuffixIndex<'a>>,
    },
}

/// Rules the ops must follow beyond the format's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Source extents cover whole transform blocks (a package with an
    /// XFORM op: the applier transforms whole blocks of what it reads).
    pub whole_blocks: bool,
    /// The package is in place: COPY and PATCH ops carry their source's
    /// hash, which weighs in when codings of a segment compare.
    pub in_place: bool,
}

impl Rules {
    /// The package mode these rules are for.
    pub fn mode(&self) -> Mode {
        match self.in_place {
            true => Mode::InPlace,
            false => Mode::AB,
        }
    }
}

/// One coded op before it is chained and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOp {
    /// What the op does.
    pub kind: OpKind,
    /// Payload codec.
    pub codec: Codec,
    /// FILL byte.
    pub fill_value: u8,
    /// Target offset.
    pub dst_offset: u64,
    /// Segment length.
    pub dst_len: u32,
    /// Source extents, sorted and disjoint.
    pub extents: Vec<Extent>,
    /// Payload on the wire.
    pub payload: Vec<u8>,
    /// Payload length after decoding.
    pub decoded_len: u32,
}

impl PlannedOp {
    /// The XFORM op carrying `payload` (op 0 of a transformed package).
    pub fn xform(payload: Vec<u8>) -> PlannedOp {
        PlannedOp {
            kind: OpKind::Xform,
            codec: Codec::Stored,
            fill_value: 0,
            dst_offset: 0,
            dst_len: 0,
            extents: Vec::new(),
            decoded_len: payload.len() as u32,
            payload,
        }
    }

    /// The STREAMS op carrying the stream table `payload` (op 0 of a
    /// package that diffs compressed streams decompressed).
    pub fn streams(payload: Vec<u8>) -> PlannedOp {
        PlannedOp {
            kind: OpKind::Streams,
            ..PlannedOp::xform(payload)
        }
    }

    /// Bytes of this op on the wire that depend on how its segment is
    /// coded: extents, payload and their lengths (the varint fields of
    /// SPEC §2.3). Codings of one segment compare by this.
    pub fn variable_len(&self) -> usize {
        let mut prev_end = 0u64;
        let mut n = 0;
        for e in &self.extents {
            n += varint_len(e.offset.wrapping_sub(prev_end)) + varint_len(e.len);
            prev_end = e.offset.wrapping_add(e.len);
        }
        n + self.payload.len()
            + varint_len(self.payload.len() as u64)
            + varint_len(self.decoded_len.into())
    }

    /// Bytes of this op in a package of this mode: [`Self::variable_len`]
    /// plus its kind byte, segment index and hashes (the segment index
    /// taken as two bytes, so within a byte or two of the exact length).
    pub fn wire_len(&self, mode: Mode) -> usize {
        let hashes = match self.kind {
            OpKind::Xform | OpKind::Streams => 1,
            OpKind::Copy | OpKind::Patch if mode == Mode::InPlace => 3,
            _ => 2,
        };
        let segment = if hashes > 1 { 2 } else { 0 };
        1 + usize::from(self.kind == OpKind::Fill) + 1 + segment + 32 * hashes + self.variable_len()
    }
}

/// The streams of a PATCH payload (see `fota_format::patch`) and the
/// source ranges it reads. The diff is kept plain (zeros included): its
/// sparse form is derived from it (`fota_format::lzma_payload`), and the
/// `lzma` codec's patch layout carries it as is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PatchStreams {
    ctrl: Vec<u8>,
    extra: Vec<u8>,
    /// Every diff byte, zeros included.
    diff: Vec<u8>,
    /// `(source offset, length)` of every read, in order.
    reads: Vec<(u64, u64)>,
}

fn push_varint(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; MAX_VARINT_LEN];
    let n = write_varint(v, &mut buf);
    out.extend_from_slice(&buf[..n]);
}

impl PatchStreams {
    /// Appends a record: move the cursor by `delta`, add `diff` to as many
    /// source bytes (read at `src`), then emit `literal`.
    pub fn push_record(
        &mut self,
        delta: i64,
        src: u64,
        diff: impl IntoIterator<Item = u8>,
        literal: &[u8],
    ) {
        let start = self.diff.len();
        self.diff.extend(diff);
        let copy = (self.diff.len() - start) as u64;
        if copy > 0 {
            self.reads.push((src, copy));
        }
        push_varint(&mut self.ctrl, copy);
        push_varint(&mut self.ctrl, literal.len() as u64);
        push_varint(&mut self.ctrl, zigzag(delta));
        self.extra.extend_from_slice(literal);
    }

    /// Raw lengths of the five streams (ctrl, zero runs, value runs,
    /// values, extra), for tuning and reports.
    pub fn stream_lens(&self) -> [usize; 5] {
        lzma_payload::stream_lens(&self.ctrl, &self.diff, &self.extra)
    }

    /// Length of the decoded payload these streams make.
    pub fn decoded_len(&self) -> usize {
        lzma_payload::patch_payload_len(&self.ctrl, &self.diff, &self.extra)
    }

    /// The five streams and the plain diff.
    fn split(self) -> ([Vec<u8>; 5], Vec<u8>) {
        let [zero_runs, value_runs, values] = lzma_payload::sparse_diff(&self.diff);
        let streams = [self.ctrl, zero_runs, value_runs, values, self.extra];
        (streams, self.diff)
    }

    /// The five streams.
    pub fn into_streams(self) -> [Vec<u8>; 5] {
        self.split().0
    }

    /// The decoded PATCH payload as its length prefix and five streams
    /// (concatenated, they are the payload), and the plain diff bytes.
    pub fn into_coding_parts(self) -> ([Vec<u8>; 6], Vec<u8>) {
        let (streams, diff) = self.split();
        (with_length_prefix(streams), diff)
    }

    /// The decoded PATCH payload, as its length prefix and five streams
    /// (concatenated, they are the payload).
    pub fn into_payload_parts(self) -> [Vec<u8>; 6] {
        with_length_prefix(self.into_streams())
    }

    /// The decoded PATCH payload.
    pub fn into_payload(self) -> Vec<u8> {
        self.into_payload_parts().concat()
    }

    fn all_diff_zero(&self) -> bool {
        self.extra.is_empty() && self.diff.iter().all(|&d| d == 0)
    }
}

/// `streams` behind their length prefix: the parts of a PATCH payload.
fn with_length_prefix(streams: [Vec<u8>; 5]) -> [Vec<u8>; 6] {
    let mut prefix = Vec::with_capacity(5 * MAX_VARINT_LEN);
    for s in &streams {
        push_varint(&mut prefix, s.len() as u64);
    }
    let [ctrl, zero_runs, value_runs, values, extra] = streams;
    [prefix, ctrl, zero_runs, value_runs, values, extra]
}

/// Builds the patch streams of segment `[start, end)` from the blocks.
pub fn patch_streams(
    old: &[u8],
    new: &[u8],
    blocks: &[Block],
    start: usize,
    end: usize,
) -> PatchStreams {
    let mut p = PatchStreams::default();
    let first = blocks.partition_point(|b| b.new + b.len <= start);
    let pieces: Vec<(usize, usize, usize)> = blocks[first..]
        .iter()
        .take_while(|b| b.new < end)
        .map(|b| {
            let s = b.new.max(start);
            let e = (b.new + b.len).min(end);
            (s, e, b.old + (s - b.new))
        })
        .collect();
    // A record copies one piece, then the literals up to the next piece; a
    // literal run before the first piece is a record without copy.
    let lead_end = pieces.first().map_or(end, |p| p.0);
    if lead_end > start {
        p.push_record(0, 0, std::iter::empty(), &new[start..lead_end]);
    }
    let mut cursor = start as u64;
    for (i, &(s, e, src)) in pieces.iter().enumerate() {
        let lit_end = pieces.get(i + 1).map_or(end, |next| next.0);
        let diff = new[s..e]
            .iter()
            .zip(&old[src..src + (e - s)])
            .map(|(n, o)| n.wrapping_sub(*o));
        p.push_record(
            src as i64 - cursor as i64,
            src as u64,
            diff,
            &new[e..lit_end],
        );
        cursor = (src + (e - s)) as u64;
    }
    p
}

/// Merges read ranges into at most [`MAX_EXTENTS`] sorted, disjoint extents
/// covering them: neighbours closer than `max_gap` always (each extent costs
/// a few package bytes, a gap only a longer source hash on the device), then
/// the closest neighbours first until the limit holds. Under
/// [`Rules::whole_blocks`] every read first grows to whole transform
/// blocks of the `old_len`-byte source.
fn merge_extents(reads: &[(u64, u64)], max_gap: u64, rules: Rules, old_len: u64) -> Vec<Extent> {
    let block = fota_format::xform::XFORM_BLOCK as u64;
    let mut sorted: Vec<(u64, u64)> = reads
        .iter()
        .map(|&(o, l)| match rules.whole_blocks {
            true => (
                o / block * block,
                (o + l).div_ceil(block).saturating_mul(block).min(old_len),
            ),
            false => (o, o + l),
        })
        .collect();
    sorted.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in sorted {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(max_gap) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    while out.len() > MAX_EXTENTS {
        let i = (0..out.len() - 1)
            .min_by_key(|&i| (out[i + 1].0 - out[i].1, i))
            .unwrap_or(0);
        out[i].1 = out[i + 1].1;
        out.remove(i + 1);
    }
    out.into_iter()
        .map(|(s, e)| Extent {
            offset: s,
            len: e - s,
        })
        .collect()
}

/// Codes one segment, choosing the smallest op.
pub fn plan_segment(
    old: &[u8],
    new: &[u8],
    blocks: &[Block],
    start: usize,
    end: usize,
    coding: Coding<'_>,
    rules: Rules,
) -> Result<PlannedOp> {
    let seg = &new[start..end];
    let dst_len = seg.len() as u32;
    let base = |kind| PlannedOp {
        kind,
        codec: Codec::Stored,
        fill_value: 0,
        dst_offset: start as u64,
        dst_len,
        extents: Vec::new(),
        payload: Vec::new(),
        decoded_len: 0,
    };
    if let Some(&b0) = seg.first() {
        if seg.iter().all(|&b| b == b0) {
            return Ok(PlannedOp {
                fill_value: b0,
                ..base(OpKind::Fill)
            });
        }
    }
    let streams = patch_streams(old, new, blocks, start, end);
    // Exact copies from ascending, disjoint source runs need no payload.
    if streams.all_diff_zero() {
        let mut runs: Vec<Extent> = Vec::new();
        let mut ascending = true;
        for &(o, l) in &streams.reads {
            match runs.last_mut() {
                Some(last) if last.offset + last.len == o => last.len += l,
                Some(last) if last.offset + last.len > o => ascending = false,
                _ => runs.push(Extent { offset: o, len: l }),
            }
        }
        let block = fota_format::xform::XFORM_BLOCK as u64;
        let whole = |e: &Extent| {
            e.offset % block == 0
                && ((e.offset + e.len) % block == 0 || e.offset + e.len == old.len() as u64)
        };
        let fits = !rules.whole_blocks || runs.iter().all(whole);
        if ascending && runs.len() <= MAX_EXTENTS && fits {
            return Ok(PlannedOp {
                extents: runs,
                ..base(OpKind::Copy)
            });
        }
    }
    let (level, quick) = match coding {
        Coding::Zstd { level, quick } => (level, quick),
        Coding::Tiny { source } => {
            return Ok(plan_tiny(old, new, blocks, start..end, source, rules, base));
        }
    };
    let literal_share = streams.extra.len() as f64 / seg.len() as f64;
    let extents = merge_extents(&streams.reads, seg.len() as u64, rules, old.len() as u64);
    let mut best: Option<PlannedOp> = None;
    // Literals may be coded after the whole source (an LZMA dictionary):
    // an op whose payload does so reads all of it. In place, an op's reads
    // decide the order of ops and what is stashed, so they stay its blocks'.
    // liblzma runs over the source for each segment that tries it, so
    // small segments of a larger source do not.
    let dict = (!quick
        && !rules.in_place
        && !old.is_empty()
        && old.len() <= SOURCE_DICT_MAX
        && old.len() <= DICT_SEGMENTS_MAX * seg.len())
    .then_some(old);
    let whole_source = || {
        vec![Extent {
            offset: 0,
            len: old.len() as u64,
        }]
    };
    let within_bound = (streams.decoded_len() as u64) <= max_patch_decoded_len(dst_len);
    let blocks_patch = || -> Result<Option<PlannedOp>> {
        if streams.reads.is_empty() || !within_bound {
            return Ok(None);
        }
        let (parts, diff) = streams.into_coding_parts();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let coded = payload::code_patch(&parts, &diff, level, quick, dict)?;
        let extents = match lzma_payload::literals_follow_source(coded.codec, &coded.payload) {
            true => whole_source(),
            false => extents,
        };
        Ok(Some(PlannedOp {
            codec: coded.codec,
            payload: coded.payload,
            decoded_len: coded.decoded_len,
            extents,
            ..base(OpKind::Patch)
        }))
    };
    // Code that changed too much for blocks: all literals, coded after
    // the source.
    let literal_patch = || -> Result<Option<PlannedOp>> {
        let Some(source) = dict else {
            return Ok(None);
        };
        let mut all_literal = PatchStreams::default();
        all_literal.push_record(0, 0, std::iter::empty(), seg);
        let [ctrl, ..] = all_literal.into_streams();
        Ok(
            payload::code_literal_patch(&ctrl, seg, source)?.map(|coded| PlannedOp {
                codec: coded.codec,
                payload: coded.payload,
                decoded_len: coded.decoded_len,
                extents: whole_source(),
                ..base(OpKind::Patch)
            }),
        )
    };
    let (with_blocks, all_literal) = rayon::join(blocks_patch, literal_patch);
    for op in [with_blocks?, all_literal?].into_iter().flatten() {
        if best
            .as_ref()
            .is_none_or(|b| op.wire_len(rules.mode()) < b.wire_len(rules.mode()))
        {
            best = Some(op);
        }
    }
    // A mostly literal segment may code better without the patch framing.
    if best.is_none() || literal_share > 0.25 {
        let coded = payload::code_bytes(&[seg], level, quick)?;
        let new_op = PlannedOp {
            codec: coded.codec,
            payload: coded.payload,
            decoded_len: coded.decoded_len,
            ..base(OpKind::New)
        };
        if best
            .as_ref()
            .is_none_or(|b| new_op.wire_len(rules.mode()) < b.wire_len(rules.mode()))
        {
            best = Some(new_op);
        }
    }
    best.ok_or(Error::Limit {
        what: "segment without a plan",
        value: start as u64,
        limit: 0,
    })
}

/// Most segments whose literals are coded after the source, counted as
/// how many times the source is longer than the segment.
const DICT_SEGMENTS_MAX: usize = 4;

/// Profile tiny, once FILL and COPY did not apply: the smaller of a PATCH
/// tiny stream (blocks and source matches) and NEW (a tiny stream without
/// source commands, or the bytes stored when that is not smaller).
fn plan_tiny(
    old: &[u8],
    new: &[u8],
    blocks: &[Block],
    range: std::ops::Range<usize>,
    source: Option<&SuffixIndex<'_>>,
    rules: Rules,
    base: impl Fn(OpKind) -> PlannedOp,
) -> PlannedOp {
    let (start, end) = (range.start, range.end);
    let seg = &new[start..end];
    let dst_len = seg.len() as u32;
    let fresh = encode_segment(old, new, &[], start, end, None);
    let mut best = if fresh.payload.len() < seg.len() {
        PlannedOp {
            codec: Codec::Tiny,
            payload: fresh.payload,
            decoded_len: dst_len,
            ..base(OpKind::New)
        }
    } else {
        PlannedOp {
            payload: seg.to_vec(),
            decoded_len: dst_len,
            ..base(OpKind::New)
        }
    };
    let patch = encode_segment(old, new, blocks, start, end, source);
    if !patch.reads.is_empty() {
        let op = PlannedOp {
            codec: Codec::Tiny,
            extents: merge_extents(&patch.reads, seg.len() as u64, rules, old.len() as u64),
            payload: patch.payload,
            decoded_len: dst_len,
            ..base(OpKind::Patch)
        };
        if op.wire_len(rules.mode()) < best.wire_len(rules.mode()) {
            best = op;
        }
    }
    best
}

/// Codes every segment of `new` (segment `i` starts at `i * segment_size`).
/// Runs on the current rayon pool; the result does not depend on its size.
/// Reports each coded segment's length to `progress`.
pub fn plan_ops(
    old: &[u8],
    new: &[u8],
    blocks: &[Block],
    segment_size: usize,
    coding: Coding<'_>,
    rules: Rules,
    progress: &dyn Progress,
) -> Result<Vec<PlannedOp>> {
    let starts: Vec<usize> = (0..new.len()).step_by(segment_size.max(1)).collect();
    let end_of = |s: usize| (s + segment_size).min(new.len());
    // The costliest segments start first and each thread takes the next
    // one when it is free, so that the last to finish is a cheap one and
    // no thread waits long for it (rayon's splitting of a list would hand
    // one thread a run of the costliest).
    let cost: Vec<usize> = starts
        .par_iter()
        .map(|&s| coding_cost(old, new, blocks, s, end_of(s)))
        .collect();
    let mut order: Vec<usize> = (0..starts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost[i]));
    let mut planned: Vec<(usize, PlannedOp)> = order
        .into_iter()
        .par_bridge()
        .map(|i| {
            let (s, end) = (starts[i], end_of(starts[i]));
            let op = plan_segment(old, new, blocks, s, end, coding, rules);
            progress.advance((end - s) as u64);
            op.map(|op| (i, op))
        })
        .collect::<Result<_>>()?;
    planned.sort_unstable_by_key(|&(i, _)| i);
    Ok(planned.into_iter().map(|(_, op)| op).collect())
}

/// The bytes of `new[start..end]` a patch cannot copy from the source as
/// they are (literals, and bytes of blocks that differ): what its coding
/// costs grows with them.
fn coding_cost(old: &[u8], new: &[u8], blocks: &[Block], start: usize, end: usize) -> usize {
    // A segment of one byte value is a FILL, planned at once.
    if new[start..end].windows(2).all(|w| w[0] == w[1]) {
        return 0;
    }
    let first = blocks.partition_point(|b| b.new + b.len <= start);
    let mut copied_as_is = 0;
    for b in blocks[first..].iter().take_while(|b| b.new < end) {
        let (s, e) = (b.new.max(start), (b.new + b.len).min(end));
        let src = b.old + (s - b.new);
        copied_as_is += agreement(&new[s..e], &old[src..src + (e - s)]);
    }
    (end - start).saturating_sub(copied_as_is)
}

/// How many bytes of `a` equal those of `b` at the same offset.
fn agreement(a: &[u8], b: &[u8]) -> usize {
    debug_assert_eq!(a.len(), b.len());
    // Per 8-byte word, the top bit of each byte of `a ^ b` that is zero.
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = wa
        .remainder()
        .iter()
        .zip(wb.remainder())
        .filter(|(x, y)| x == y)
        .count();
    let words: usize = wa
        .zip(wb)
        .map(|(x, y)| {
            let x = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
            let y = u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
            let d = x ^ y;
            (!(((d & LOW) + LOW) | d | LOW)).count_ones() as usize
        })
        .sum();
    words + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agreement_counts_the_equal_bytes(
            pairs in proptest::collection::vec((0u8..3, 0u8..3), 0..100),
        ) {
            let (a, b): (Vec<u8>, Vec<u8>) = pairs.into_iter().unzip();
            let naive = a.iter().zip(&b).filter(|(x, y)| x == y).count();
            prop_assert_eq!(agreement(&a, &b), naive);
        }
    }

    #[test]
    fn coding_cost_counts_literals_and_changed_block_bytes() {
        let old = vec![7u8; 100];
        let mut new = vec![7u8; 100];
        new[10] = 1;
        new[90] = 2;
        // A block over 0..50 (one changed byte); 50..100 is literal.
        let blocks = [Block {
            new: 0,
            old: 0,
            len: 50,
        }];
        assert_eq!(coding_cost(&old, &new, &blocks, 0, 100), 51);
        assert_eq!(coding_cost(&old, &new, &blocks, 5, 95), 46);
        // One byte value throughout: a FILL, which costs nothing to code.
        assert_eq!(coding_cost(&old, &new, &blocks, 20, 60), 0);
    }

    #[test]
    fn extents_merge_to_the_limit_joining_closest_first() {
        let reads: Vec<(u64, u64)> = (0..40u64).map(|i| (i * 1000 + (i % 3) * 7, 10)).collect();
        let e = merge_extents(&reads, 0, Rules::default(), u64::MAX);
        assert_eq!(e.len(), MAX_EXTENTS);
        for (o, l) in &reads {
            assert!(e.iter().any(|x| x.contains(*o, *l)));
        }
        assert!(e.windows(2).all(|w| w[0].offset + w[0].len < w[1].offset));
    }

    #[test]
    fn decoded_len_is_the_payload_length() {
        let mut p = PatchStreams::default();
        assert_eq!(p.decoded_len(), p.clone().into_payload().len());
        p.push_record(5, 5, [0, 0, 3, 4, 0, 9], b"lit");
        assert_eq!(p.decoded_len(), p.clone().into_payload().len());
        p.push_record(-2, 9, vec![1u8; 300], b"");
        assert_eq!(p.decoded_len(), p.clone().into_payload().len());
    }

    #[test]
    fn overlapping_reads_merge() {
        let e = merge_extents(&[(10, 10), (15, 10), (40, 5)], 0, Rules::default(), 100);
        assert_eq!(
            e,
            vec![
                Extent {
                    offset: 10,
                    len: 15
                },
                Extent { offset: 40, len: 5 }
            ]
        );
        let e = merge_extents(&[(10, 10), (15, 10), (40, 5)], 15, Rules::default(), 100);
        assert_eq!(
            e,
            vec![Extent {
                offset: 10,
                len: 35
            }]
        );
    }
}
