//! In-place planning: the target overwrites the source segment by segment,
//! so the ops must come in an order in which nothing is read after it was
//! overwritten (format `SPEC.md` §6.2).
//!
//! The steps, after [`crate::plan::plan_ops`] coded every segment as for an
//! A/B package:
//!
//! 1. **SKIP** every segment whose target bytes equal the source bytes at
//!    the same offset (nothing is erased or written there).
//! 2. **Reads.** An op reads every source segment its extents touch (the
//!    A/B planner joins reads less than a segment apart, which adds none).
//!    Reads that give the op only a few matched bytes are dropped first
//!    (the op is re-coded without them): each read is an ordering
//!    constraint, and a cycle of them costs a stash. How few is "a few" is
//!    tried at several thresholds (`LIGHT_READS`) and the smallest plan
//!    kept.
//! 3. **Order.** Op `t` must run before op `s` when it reads source segment
//!    `s` (an edge `t -> s`). The graph is ordered with the greedy
//!    feedback-arc heuristic of Eades, Lin and Smyth, as Android's
//!    `blockimgdiff` does: sinks go last, sources first, and in a cycle the
//!    op with the most (outgoing − incoming) edges goes first. A chain of
//!    code moving to higher addresses is thus written top-down, one moving
//!    down bottom-up, and only cycles cost a stash.
//! 4. **Stash.** Walking the order, an op whose segment is still to be read
//!    by a later op, or by itself, is preceded by a STASH of that segment
//!    into a scratch slot, which stays taken until its last reader ran.
//!    Slots are handed out round-robin so scratch wear spreads. When every
//!    slot is taken, the readers are re-planned without that segment
//!    (falling back to NEW when nothing else fits), as Android's
//!    `ReviseStashSize` does.
//!
//! [`simulate`] then runs the result through the format's own
//! [`InPlaceTracker`] before the package is written. Everything here runs
//! on one thread in a fixed order, so the package does not depend on the
//! thread count.

use std::collections::{BTreeMap, BTreeSet};

use fota_format::op::{Codec, Extent, OpHeader, OpKind};
use fota_format::{InPlaceTracker, Manifest, Mode, SourcePiece};

use crate::error::{Error, Result};
use crate::matcher::Block;
use crate::plan::PlannedOp;

/// Figures of an in-place plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InPlaceStats {
    /// STASH ops in the package.
    pub stash_ops: u64,
    /// Most stashes live (stashed and still to be read from the slot) at
    /// any op, as [`simulate`] observes it: the scratch the update really
    /// needs, in slots.
    pub stash_high_water: u32,
    /// Scratch slots the manifest asks the device for (the highest slot
    /// used + 1; slots rotate, so this can exceed the high-water mark).
    pub scratch_slots: u32,
    /// Scratch slots the options allowed.
    pub scratch_slots_available: u32,
    /// Ops re-planned without a source segment because no slot was free
    /// for its stash (each became a PATCH or COPY with fewer sources, or
    /// NEW).
    pub replanned_ops: u64,
}

/// An in-place op list and its figures.
#[derive(Debug, Clone)]
pub struct InPlacePlan {
    /// The ops in package order, STASH ops included.
    pub ops: Vec<PlannedOp>,
    /// What it took (`stash_high_water` here is the planner's own,
    /// conservative count; [`crate::diff`] reports [`simulate`]'s).
    pub stats: InPlaceStats,
}

/// Codes target range `[start, end)` from the given blocks only, reading
/// no source byte outside them: the A/B planner's choice of op.
pub type SegmentCoder<'a> = dyn Fn(&[Block], usize, usize) -> Result<PlannedOp> + 'a;

/// What the planner works on.
struct Ctx<'a> {
    new_len: usize,
    blocks: &'a [Block],
    seg: u64,
    code: &'a SegmentCoder<'a>,
}

impl Ctx<'_> {
    /// Target segment `t` as a byte range of the new image.
    fn target_range(&self, t: usize) -> (usize, usize) {
        let start = t * self.seg as usize;
        (start, (start + self.seg as usize).min(self.new_len))
    }

    /// Source segments the extents touch, sorted and distinct.
    fn segments_read(&self, extents: &[Extent]) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for e in extents.iter().filter(|e| e.len > 0) {
            out.extend(e.offset / self.seg..=(e.offset + e.len - 1) / self.seg);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Codes target segment `t` again reading only source segments in
    /// `allowed` (sorted): the cheapest op the coder finds that does, or
    /// one without source (NEW or FILL).
    fn replan(&self, t: usize, allowed: &[u64]) -> Result<PlannedOp> {
        let (start, end) = self.target_range(t);
        let ok = |s: u64| allowed.binary_search(&s).is_ok();
        let pieces = blocks_within(self.blocks, start, end, self.seg, &ok);
        let op = (self.code)(&pieces, start, end)?;
        // Joining extents up to the 16-extent limit may reach further.
        if self.segments_read(&op.extents).into_iter().all(ok) {
            return Ok(op);
        }
        let op = (self.code)(&[], start, end)?;
        if op.extents.is_empty() {
            Ok(op)
        } else {
            Err(Error::Limit {
                what: "in-place plan: source extents of a segment coded without blocks",
                value: op.extents.len() as u64,
                limit: 0,
            })
        }
    }
}

/// The parts of the blocks that lie in target range `[start, end)` and read
/// only source segments `ok` accepts, cut at source segment boundaries;
/// sorted by target offset like the blocks.
fn blocks_within(
    blocks: &[Block],
    start: usize,
    end: usize,
    seg: u64,
    ok: &dyn Fn(u64) -> bool,
) -> Vec<Block> {
    let seg = seg as usize;
    let first = blocks.partition_point(|b| b.new + b.len <= start);
    let mut out = Vec::new();
    for b in blocks[first..].iter().take_while(|b| b.new < end) {
        let s = b.new.max(start);
        let e = (b.new + b.len).min(end);
        let mut at = s;
        while at < e {
            let old_at = b.old + (at - b.new);
            let piece_end = e.min(at + (seg - old_at % seg));
            if ok((old_at / seg) as u64) {
                out.push(Block {
                    new: at,
                    old: old_at,
                    len: piece_end - at,
                });
            }
            at = piece_end;
        }
    }
    out
}

/// Orders ops `0..n` so that as few edges `u -> v` ("u before v", from
/// `succ`) as possible point backwards: Eades–Lin–Smyth greedy. Ties go to
/// the lower index, so an unconstrained list keeps ascending order.
fn order_ops(n: usize, is_node: &[bool], succ: &[Vec<usize>]) -> Vec<usize> {
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (u, vs) in succ.iter().enumerate() {
        for &v in vs {
            pred[v].push(u);
        }
    }
    let mut outdeg: Vec<i64> = succ.iter().map(|v| v.len() as i64).collect();
    let mut indeg: Vec<i64> = pred.iter().map(|v| v.len() as i64).collect();
    let mut removed: Vec<bool> = is_node.iter().map(|&b| !b).collect();
    let (mut sources, mut sinks, mut prio) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for u in (0..n).filter(|&u| is_node[u]) {
        if indeg[u] == 0 {
            sources.insert(u);
        }
        if outdeg[u] == 0 {
            sinks.insert(u);
        }
        prio.insert((indeg[u] - outdeg[u], u));
    }
    let (mut front, mut back) = (Vec::new(), Vec::new());
    loop {
        let (u, to_back) = if let Some(&u) = sinks.last() {
            (u, true)
        } else if let Some(&u) = sources.first() {
            (u, false)
        } else if let Some(&(_, u)) = prio.first() {
            (u, false)
        } else {
            break;
        };
        removed[u] = true;
        sinks.remove(&u);
        sources.remove(&u);
        prio.remove(&(indeg[u] - outdeg[u], u));
        if to_back {
            back.push(u);
        } else {
            front.push(u);
        }
        for &v in &succ[u] {
            if !removed[v] {
                prio.remove(&(indeg[v] - outdeg[v], v));
                indeg[v] -= 1;
                prio.insert((indeg[v] - outdeg[v], v));
                if indeg[v] == 0 {
                    sources.insert(v);
                }
            }
        }
        for &w in &pred[u] {
            if !removed[w] {
                prio.remove(&(indeg[w] - outdeg[w], w));
                outdeg[w] -= 1;
                prio.insert((indeg[w] - outdeg[w], w));
                if outdeg[w] == 0 {
                    sinks.insert(w);
                }
            }
        }
    }
    front.extend(back.into_iter().rev());
    front
}

fn stash_op(slot: u32, source_segment: u64, seg: u64, source_len: u64) -> PlannedOp {
    let offset = source_segment * seg;
    let len = seg.min(source_len - offset);
    PlannedOp {
        kind: OpKind::Stash,
        codec: Codec::Stored,
        fill_value: 0,
        dst_offset: u64::from(slot) * seg,
        dst_len: len as u32,
        extents: vec![Extent { offset, len }],
        payload: Vec::new(),
        decoded_len: 0,
    }
}

/// Turns the A/B plan `planned` (one op per target segment of
/// `segment_size` bytes, coded from `blocks`) into an in-place op list
/// that needs at most `slots` scratch slots. `code` re-codes a segment
/// when a stash does not fit.
///
/// # Errors
/// [`Error::Limit`] for a plan that does not have one op per segment, and
/// what `code` raises.
pub fn plan_in_place(
    old: &[u8],
    new: &[u8],
    blocks: &[Block],
    segment_size: u32,
    slots: u32,
    planned: Vec<PlannedOp>,
    code: &SegmentCoder<'_>,
) -> Result<InPlacePlan> {
    let cx = Ctx {
        new_len: new.len(),
        blocks,
        seg: u64::from(segment_size.max(1)),
        code,
    };
    let n = planned.len();
    if n as u64 != (new.len() as u64).div_ceil(cx.seg) {
        return Err(Error::Limit {
            what: "in-place plan: ops for the target's segments",
            value: n as u64,
            limit: (new.len() as u64).div_ceil(cx.seg),
        });
    }
    let mut ops = planned;
    let mut skip = vec![false; n];
    for (t, op) in ops.iter_mut().enumerate() {
        let (start, end) = cx.target_range(t);
        if end <= old.len() && old[start..end] == new[start..end] {
            skip[t] = true;
            *op = PlannedOp {
                kind: OpKind::Skip,
                codec: Codec::Stored,
                fill_value: 0,
                dst_offset: op.dst_offset,
                dst_len: op.dst_len,
                extents: Vec::new(),
                payload: Vec::new(),
                decoded_len: 0,
            };
        }
    }
    // Matched bytes each op takes from each source segment.
    let matched: Vec<BTreeMap<u64, u64>> = (0..n)
        .map(|t| {
            let mut bytes = BTreeMap::new();
            if !skip[t] {
                let (start, end) = cx.target_range(t);
                for b in blocks_within(blocks, start, end, cx.seg, &|_| true) {
                    *bytes.entry(b.old as u64 / cx.seg).or_default() += b.len as u64;
                }
            }
            bytes
        })
        .collect();
    let mut best: Option<(u64, InPlacePlan)> = None;
    for light in LIGHT_READS {
        let plan = plan_with(&cx, old, slots, ops.clone(), &skip, &matched, light)?;
        let cost = plan_bytes(&plan.ops);
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, plan));
        }
    }
    match best {
        Some((_, plan)) => Ok(plan),
        None => plan_with(&cx, old, slots, ops, &skip, &matched, None),
    }
}

/// The light-read thresholds [`plan_in_place`] tries, as a fraction of
/// the segment size (`None`: keep every read). A read of a whole source
/// segment for a few matched bytes ties the op to that segment's op: in a
/// cycle it costs a stash, and with few scratch slots the stash is not to
/// be had, so the reader is re-coded without it (often as NEW). Dropping
/// light reads up front (the matches they gave become diff or literal
/// bytes) keeps the graph close to chains of neighbouring segments, whose
/// stashes are short-lived. Which threshold is cheapest depends on the
/// image, so each is planned and the smallest plan kept.
const LIGHT_READS: [Option<u64>; 4] = [None, Some(256), Some(64), Some(16)];

/// Bytes a plan's ops take in the package: heads, extents, payloads.
fn plan_bytes(ops: &[PlannedOp]) -> u64 {
    ops.iter().map(|op| op.wire_len(Mode::InPlace) as u64).sum()
}

/// One in-place plan (see the module's steps) from `ops`, with SKIP
/// already in place of the unchanged segments (`skip`), first re-coding
/// without them every op's reads of source segments that give it (per
/// `matched`) less than `1 / light` of a segment of matched bytes.
fn plan_with(
    cx: &Ctx<'_>,
    old: &[u8],
    slots: u32,
    mut ops: Vec<PlannedOp>,
    skip: &[bool],
    matched: &[BTreeMap<u64, u64>],
    light: Option<u64>,
) -> Result<InPlacePlan> {
    let n = ops.len();
    let source_segments = (old.len() as u64).div_ceil(cx.seg);
    // Segments op t reads; and who reads each segment (a superset once
    // re-planning dropped some reads, so users check `reads` again).
    let mut reads: Vec<Vec<u64>> = ops.iter().map(|op| cx.segments_read(&op.extents)).collect();
    if let Some(light) = light {
        for t in (0..n).filter(|&t| !skip[t]) {
            let heavy: Vec<u64> = reads[t]
                .iter()
                .copied()
                .filter(|s| matched[t].get(s).copied().unwrap_or(0) * light >= cx.seg)
                .collect();
            if heavy.len() < reads[t].len() {
                let op = cx.replan(t, &heavy)?;
                reads[t] = cx.segments_read(&op.extents);
                ops[t] = op;
            }
        }
    }
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); source_segments as usize];
    for (t, r) in reads.iter().enumerate() {
        for &s in r {
            // Extents past the source are refused when the package is written.
            if let Some(rs) = readers.get_mut(s as usize) {
                rs.push(t);
            }
        }
    }
    // Op t must precede the op that overwrites a segment it reads.
    let is_node: Vec<bool> = skip.iter().map(|&s| !s).collect();
    let succ: Vec<Vec<usize>> = reads
        .iter()
        .enumerate()
        .map(|(t, r)| {
            if skip[t] {
                return Vec::new();
            }
            r.iter()
                .map(|&s| s as usize)
                .filter(|&s| s != t && s < n && is_node[s])
                .collect()
        })
        .collect();
    let order = order_ops(n, &is_node, &succ);
    let mut pos = vec![usize::MAX; n];
    for (p, &t) in order.iter().enumerate() {
        pos[t] = p;
    }

    let mut stats = InPlaceStats {
        scratch_slots_available: slots,
        ..InPlaceStats::default()
    };
    let mut out: Vec<PlannedOp> = Vec::with_capacity(n);
    // Unchanged segments first: nothing overwrote them yet, and nothing
    // ever will.
    for t in (0..n).filter(|&t| skip[t]) {
        out.push(ops[t].clone());
    }
    // Position of the last reader of the stash each slot holds.
    let mut busy_until: Vec<Option<usize>> = vec![None; slots as usize];
    let mut next_slot = 0usize;
    let mut replanned = vec![false; n];
    for (p, &s) in order.iter().enumerate() {
        for b in busy_until.iter_mut() {
            if b.is_some_and(|last| last < p) {
                *b = None;
            }
        }
        // Ops that read segment s once op s has overwritten it: itself
        // and those ordered after it.
        let late: Vec<usize> = match readers.get(s) {
            Some(rs) => {
                let mut v: Vec<usize> = rs
                    .iter()
                    .copied()
                    .filter(|&t| {
                        (t == s || pos[t] > p) && reads[t].binary_search(&(s as u64)).is_ok()
                    })
                    .collect();
                v.dedup();
                v
            }
            None => Vec::new(),
        };
        if !late.is_empty() {
            let free = (0..busy_until.len())
                .map(|i| (next_slot + i) % busy_until.len())
                .find(|&i| busy_until[i].is_none());
            match free {
                Some(slot) => {
                    let last = late.iter().map(|&t| pos[t]).max().unwrap_or(p);
                    busy_until[slot] = Some(last);
                    next_slot = slot + 1;
                    let live = busy_until.iter().filter(|b| b.is_some()).count() as u32;
                    stats.stash_high_water = stats.stash_high_water.max(live);
                    stats.scratch_slots = stats.scratch_slots.max(slot as u32 + 1);
                    stats.stash_ops += 1;
                    out.push(stash_op(slot as u32, s as u64, cx.seg, old.len() as u64));
                }
                None => {
                    for &t in &late {
                        if !replanned[t] {
                            replanned[t] = true;
                            stats.replanned_ops += 1;
                        }
                        let allowed: Vec<u64> = reads[t]
                            .iter()
                            .copied()
                            .filter(|&r| r != s as u64)
                            .collect();
                        let op = cx.replan(t, &allowed)?;
                        reads[t] = cx.segments_read(&op.extents);
                        ops[t] = op;
                    }
                }
            }
        }
        out.push(ops[s].clone());
    }
    Ok(InPlacePlan { ops: out, stats })
}

/// Runs `ops` through the format's [`InPlaceTracker`] as an applier would
/// (without the bytes) and returns the stash high-water mark it observed:
/// the most slots holding a stash that a later op still reads from.
///
/// # Errors
/// [`Error::InPlaceOrder`] with the tracker's refusal when an op reads a
/// segment after it was overwritten, a segment is written twice or never,
/// or a slot is outside the manifest's `scratch_slots`.
pub fn simulate(manifest: &Manifest, ops: &[PlannedOp]) -> Result<u32> {
    let refused = Error::InPlaceOrder;
    let bitmap = InPlaceTracker::bitmap_len(manifest);
    let (mut written, mut overwritten) = (vec![0u8; bitmap], vec![0u8; bitmap]);
    let mut slot_map = vec![0u32; manifest.scratch_slots as usize];
    let mut tracker = InPlaceTracker::new(manifest, &mut written, &mut overwritten, &mut slot_map)
        .map_err(refused)?;
    // For each stash: (op index of the stash, op index of its last read).
    let mut lives: Vec<(usize, usize)> = Vec::new();
    let mut stash_of_slot: Vec<Option<usize>> = vec![None; manifest.scratch_slots as usize];
    for (i, op) in ops.iter().enumerate() {
        let index = u32::try_from(i).map_err(|_| Error::Limit {
            what: "ops in one package",
            value: i as u64,
            limit: u32::MAX.into(),
        })?;
        let header = OpHeader {
            kind: op.kind,
            codec: op.codec,
            fill_value: op.fill_value,
            extent_count: op.extents.len() as u16,
            payload_len: op.payload.len() as u32,
            decoded_len: op.decoded_len,
            dst_offset: op.dst_offset,
            dst_len: op.dst_len,
            dst_sha256: [0; 32],
            src_sha256: [0; 32],
            next_op_sha256: [0; 32],
        };
        tracker
            .record(index, 0, &header, &op.extents)
            .map_err(refused)?;
        if op.kind == OpKind::Stash {
            let slot = (op.dst_offset / u64::from(manifest.segment_size)) as usize;
            lives.push((i, i));
            if let Some(entry) = stash_of_slot.get_mut(slot) {
                *entry = Some(lives.len() - 1);
            }
            continue;
        }
        for e in &op.extents {
            let (mut at, end) = (e.offset, e.offset + e.len);
            while at < end {
                let piece = tracker.locate(at, end - at).ok_or(refused(
                    fota_format::Error::SourceExtentHashMismatch { op_index: index },
                ))?;
                if let SourcePiece::Scratch { slot, .. } = piece {
                    if let Some(Some(l)) = stash_of_slot.get(slot as usize) {
                        lives[*l].1 = i;
                    }
                }
                at += piece.len();
            }
        }
    }
    if !tracker.is_complete() {
        return Err(refused(fota_format::Error::OpLayout {
            op_index: manifest.op_count,
            offset: 0,
            what: "segments written (every target segment once)",
            expected: manifest.segment_count(),
            found: 0,
        }));
    }
    // A stash nobody reads from the slot still holds it until the next op.
    let mut events: Vec<(usize, i32)> = Vec::new();
    for &(from, to) in &lives {
        events.push((from, 1));
        events.push((to.max(from) + 1, -1));
    }
    events.sort_unstable_by_key(|&(at, d)| (at, d));
    let (mut live, mut high) = (0i32, 0i32);
    for (_, d) in events {
        live += d;
        high = high.max(live);
    }
    Ok(high as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_ordered_and_cycles_broken() {
        // 3 reads 2 reads 1 reads 0: top-down. 4 <-> 5 is a cycle.
        let succ = vec![vec![], vec![0], vec![1], vec![2], vec![5], vec![4]];
        let order = order_ops(6, &[true; 6], &succ);
        let pos = |t| order.iter().position(|&x| x == t).unwrap();
        assert!(pos(3) < pos(2) && pos(2) < pos(1) && pos(1) < pos(0));
        assert_eq!(order.len(), 6);
        // Unconstrained ops keep ascending order.
        assert_eq!(order_ops(4, &[true; 4], &vec![vec![]; 4]), vec![0, 1, 2, 3]);
    }

    #[test]
    fn blocks_are_cut_at_source_segments() {
        let blocks = [Block {
            new: 0,
            old: 1000,
            len: 2000,
        }];
        let within = blocks_within(&blocks, 0, 2000, 1024, &|s| s != 1);
        assert_eq!(
            within,
            vec![
                Block {
                    new: 0,
                    old: 1000,
                    len: 24
                },
                Block {
                    new: 1048,
                    old: 2048,
                    len: 952
                }
            ]
        );
    }
}
