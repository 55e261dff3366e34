//! Encoder of `tiny` payloads (see `fota_format::tiny` and SPEC.md §5b):
//! one segment becomes a command stream over the source image and the
//! segment's own earlier output, decodable on a microcontroller without a
//! window in RAM.
//!
//! The parse is greedy over a small cost model (bytes on the wire). At each
//! position it weighs:
//!
//! - the matcher's alignment (a [`Block`] covering the position): the run
//!   of bytes that agree with the source there is a COPY; bytes that differ
//!   go into an ADD run, so an approximate match of recompiled code costs a
//!   few diff bytes per changed pointer;
//! - continuing at the source cursor (a COPY without delta);
//! - the longest exact match anywhere in the source (suffix array), when a
//!   [`SuffixIndex`] is given;
//! - the longest match in the segment's output so far (hash chains, LZ77
//!   style, overlap allowed);
//!
//! and takes the candidate that saves the most bytes over literals, with a
//! one-step lazy check (a literal now may buy a longer match at the next
//! byte). What is left becomes literal runs. Deterministic: no hashing of
//! pointers, no threads.

use fota_format::tiny::{TinyCommand, MAX_COMMAND_HEADER_LEN};

use crate::matcher::Block;
use crate::suffix::{lcp, SuffixIndex};

/// A coded segment: the payload and the source ranges it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TinyStream {
    /// The tiny payload.
    pub payload: Vec<u8>,
    /// `(source offset, length)` of every source read, in order.
    pub reads: Vec<(u64, u64)>,
}

/// Candidates examined per hash chain.
const CHAIN_DEPTH: usize = 48;
/// Bytes hashed for output matches (shorter matches are not worth a command).
const HASH_BYTES: usize = 4;
/// A match saving this many bytes is taken without looking further.
const GOOD_ENOUGH: i64 = 64;

/// Bytes the header of `cmd` takes.
fn header_len(cmd: TinyCommand) -> usize {
    cmd.encode(&mut [0; MAX_COMMAND_HEADER_LEN]).unwrap_or(0)
}

/// Output matches inside the segment: hash chains over 4-byte prefixes.
struct OutputIndex {
    head: Vec<u32>,
    prev: Vec<u32>,
    shift: u32,
}

const NONE: u32 = u32::MAX;

impl OutputIndex {
    fn new(len: usize) -> OutputIndex {
        let bits = (len.max(256).next_power_of_two().trailing_zeros()).clamp(8, 18);
        OutputIndex {
            head: vec![NONE; 1 << bits],
            prev: vec![NONE; len],
            shift: 32 - bits,
        }
    }

    fn hash(&self, seg: &[u8], p: usize) -> Option<usize> {
        let b = seg.get(p..p + HASH_BYTES)?;
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        Some((v.wrapping_mul(0x9e37_79b1) >> self.shift) as usize)
    }

    fn insert(&mut self, seg: &[u8], p: usize) {
        if let Some(h) = self.hash(seg, p) {
            self.prev[p] = self.head[h];
            self.head[h] = p as u32;
        }
    }

    /// Best `(back, len, gain)` for output at `p`, or `None`.
    fn find(&self, seg: &[u8], p: usize) -> Option<(u64, u64, i64)> {
        let h = self.hash(seg, p)?;
        let mut c = self.head[h];
        let mut best: Option<(u64, u64, i64)> = None;
        for _ in 0..CHAIN_DEPTH {
            if c == NONE {
                break;
            }
            let at = c as usize;
            let len = lcp(&seg[at..], &seg[p..]) as u64;
            if len >= HASH_BYTES as u64 {
                let back = (p - at) as u64;
                let gain = len as i64 - header_len(TinyCommand::CopyOutput { back, len }) as i64;
                if best.is_none_or(|b| gain > b.2) {
                    best = Some((back, len, gain));
                }
            }
            c = self.prev[at];
        }
        best
    }
}

/// What to do at one position.
#[derive(Debug, Clone, Copy)]
enum Choice {
    /// Copy `len` source bytes from `src`.
    Source { src: u64, len: u64 },
    /// Copy `len` bytes from `back` bytes back in the output.
    Output { back: u64, len: u64 },
}

impl Choice {
    fn len(self) -> u64 {
        match self {
            Choice::Source { len, .. } | Choice::Output { len, .. } => len,
        }
    }
}

/// Bytes waiting to become one LITERAL or ADD command.
#[derive(Debug, Clone, Copy)]
enum Pending {
    None,
    /// Segment bytes `[from, from + len)`.
    Literal {
        from: usize,
        len: usize,
    },
    /// Segment bytes `[from, from + len)` as diffs against source `src..`.
    Add {
        src: u64,
        from: usize,
        len: usize,
    },
}

struct Writer<'a> {
    old: &'a [u8],
    seg: &'a [u8],
    out: Vec<u8>,
    cursor: u64,
    reads: Vec<(u64, u64)>,
    pending: Pending,
}

impl Writer<'_> {
    fn command(&mut self, cmd: TinyCommand) {
        let mut buf = [0u8; MAX_COMMAND_HEADER_LEN];
        let n = cmd.encode(&mut buf).unwrap_or(0);
        self.out.extend_from_slice(&buf[..n]);
    }

    fn delta(&self, src: u64) -> i64 {
        src.wrapping_sub(self.cursor) as i64
    }

    fn flush(&mut self) {
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => {}
            Pending::Literal { from, len } => {
                self.command(TinyCommand::Literal { len: len as u64 });
                self.out.extend_from_slice(&self.seg[from..from + len]);
            }
            Pending::Add { src, from, len } => {
                let delta = self.delta(src);
                self.command(TinyCommand::AddSource {
                    delta,
                    len: len as u64,
                });
                let s = src as usize;
                let diff = self.seg[from..from + len]
                    .iter()
                    .zip(&self.old[s..s + len])
                    .map(|(n, o)| n.wrapping_sub(*o));
                self.out.extend(diff);
                self.reads.push((src, len as u64));
                self.cursor = src + len as u64;
            }
        }
    }

    /// Queues segment byte `p` as a literal, or as a diff against `src`.
    fn byte(&mut self, p: usize, src: Option<u64>) {
        match (&mut self.pending, src) {
            (Pending::Literal { from, len }, None) if *from + *len == p => *len += 1,
            (Pending::Add { src: s, from, len }, Some(src))
                if *from + *len == p && *s + *len as u64 == src =>
            {
                *len += 1
            }
            _ => {
                self.flush();
                self.pending = match src {
                    None => Pending::Literal { from: p, len: 1 },
                    Some(src) => Pending::Add {
                        src,
                        from: p,
                        len: 1,
                    },
                };
            }
        }
    }

    fn choice(&mut self, c: Choice) {
        self.flush();
        match c {
            Choice::Source { src, len } => {
                let delta = self.delta(src);
                self.command(TinyCommand::CopySource { delta, len });
                self.reads.push((src, len));
                self.cursor = src + len;
            }
            Choice::Output { back, len } => self.command(TinyCommand::CopyOutput { back, len }),
        }
    }
}

/// Codes segment `new[start..end]` as a tiny stream.
///
/// `blocks` are the matcher's approximate blocks (sorted by `new`, not
/// overlapping; those outside the segment are ignored): under them the
/// source at the block's alignment is copied or added to. `source` lets
/// the remaining bytes match anywhere in the old image. With no blocks and
/// no `source`, the stream has no source commands (a NEW payload). The
/// source cursor starts at `start`, as the decoder's does.
pub fn encode_segment(
    old: &[u8],
    new: &[u8],
    blocks: &[Block],
    start: usize,
    end: usize,
    source: Option<&SuffixIndex<'_>>,
) -> TinyStream {
    let seg = &new[start..end];
    let n = seg.len();
    let first = blocks.partition_point(|b| b.new + b.len <= start);
    let pieces: Vec<Block> = blocks[first..]
        .iter()
        .take_while(|b| b.new < end)
        .map(|b| {
            let s = b.new.max(start);
            let e = (b.new + b.len).min(end);
            Block {
                new: s - start,
                old: b.old + (s - b.new),
                len: e - s,
            }
        })
        .collect();
    let mut w = Writer {
        old,
        seg,
        out: Vec::with_capacity(n / 2 + 16),
        cursor: start as u64,
        reads: Vec::new(),
        pending: Pending::None,
    };
    let mut index = OutputIndex::new(n);
    let mut piece = 0usize;
    let mut p = 0usize;
    let mut inserted = 0usize;
    while p < n {
        while pieces.get(piece).is_some_and(|b| b.new + b.len <= p) {
            piece += 1;
        }
        let align = pieces
            .get(piece)
            .filter(|b| b.new <= p)
            .map(|b| ((b.old + (p - b.new)) as u64, b.new + b.len - p));
        while inserted < p {
            index.insert(seg, inserted);
            inserted += 1;
        }
        let here = best_choice(&w, &index, source, p, align);
        let take = match here {
            Some((c, gain)) if gain < GOOD_ENOUGH && p + 1 < n => {
                // Lazy: would a literal now and a match next save more?
                index.insert(seg, p);
                inserted = p + 1;
                let next_align = pieces
                    .get(piece)
                    .filter(|b| b.new <= p + 1 && p + 1 < b.new + b.len)
                    .or_else(|| pieces.get(piece + 1).filter(|b| b.new == p + 1))
                    .map(|b| ((b.old + (p + 1 - b.new)) as u64, b.new + b.len - p - 1));
                let next = best_choice(&w, &index, source, p + 1, next_align);
                match next {
                    Some((_, g)) if g > gain + 1 => None,
                    _ => Some(c),
                }
            }
            Some((c, _)) => Some(c),
            None => None,
        };
        match take {
            Some(c) => {
                w.choice(c);
                p += c.len() as usize;
            }
            None => {
                w.byte(p, align.map(|a| a.0));
                p += 1;
            }
        }
    }
    w.flush();
    TinyStream {
        payload: w.out,
        reads: w.reads,
    }
}

/// The candidate at `p` that saves the most bytes, with its saving (only
/// candidates saving at least one byte).
fn best_choice(
    w: &Writer<'_>,
    index: &OutputIndex,
    source: Option<&SuffixIndex<'_>>,
    p: usize,
    align: Option<(u64, usize)>,
) -> Option<(Choice, i64)> {
    let seg = w.seg;
    let rest = &seg[p..];
    let mut best: Option<(Choice, i64)> = None;
    let consider = |best: &mut Option<(Choice, i64)>, c: Choice, extra_cost: i64| {
        let cost = match c {
            Choice::Output { back, len } => header_len(TinyCommand::CopyOutput { back, len }),
            Choice::Source { src, len } => header_len(TinyCommand::CopySource {
                delta: w.delta(src),
                len,
            }),
        } as i64
            + extra_cost;
        let gain = c.len() as i64 - cost;
        if gain > 0 && best.is_none_or(|b| gain > b.1) {
            *best = Some((c, gain));
        }
    };
    // The matcher's alignment. Breaking an ADD run that would go on costs
    // the command that resumes it.
    if let Some((src, max)) = align {
        let s = src as usize;
        let len = lcp(&rest[..max], w.old.get(s..).unwrap_or(&[])) as u64;
        if len > 0 {
            let breaks_add =
                matches!(w.pending, Pending::Add { src: a, len: l, .. } if a + l as u64 == src);
            consider(
                &mut best,
                Choice::Source { src, len },
                i64::from(breaks_add),
            );
        }
    }
    // Going on where the last source read ended (free-form source reads
    // only: without `source`, reads stay inside the blocks).
    let at = w.cursor as usize;
    if source.is_some() && at < w.old.len() {
        let len = lcp(rest, &w.old[at..]) as u64;
        if len > 0 {
            consider(&mut best, Choice::Source { src: w.cursor, len }, 0);
        }
    }
    if let Some((back, len, _)) = index.find(seg, p) {
        consider(&mut best, Choice::Output { back, len }, 0);
    }
    if best.is_none_or(|b| b.1 < GOOD_ENOUGH) {
        if let Some(ix) = source {
            let (o, len) = ix.longest_match(rest);
            if len >= 3 {
                consider(
                    &mut best,
                    Choice::Source {
                        src: o as u64,
                        len: len as u64,
                    },
                    0,
                );
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_only_segment() {
        let new = b"abcdefgh".to_vec();
        let s = encode_segment(&[], &new, &[], 0, new.len(), None);
        assert_eq!(s.payload, b"\x07abcdefgh");
        assert!(s.reads.is_empty());
    }

    #[test]
    fn repeats_become_output_copies() {
        let new = b"abcdabcdabcdabcdabcd".to_vec();
        let s = encode_segment(&[], &new, &[], 0, new.len(), None);
        // LITERAL 4 "abcd", COPY_OUTPUT back 4 len 16.
        assert_eq!(s.payload, b"\x03abcd\xaf\x03");
    }

    #[test]
    fn approximate_block_becomes_copy_and_add() {
        let old: Vec<u8> = (0..64u8).collect();
        let mut new = old.clone();
        new[20] = new[20].wrapping_add(5);
        let blocks = [Block {
            new: 0,
            old: 0,
            len: 64,
        }];
        let s = encode_segment(&old, &new, &blocks, 0, 64, None);
        // COPY 20, ADD 1 [05], COPY 43.
        assert_eq!(s.payload, [0x60 | 19, 0x20, 5, 0x60 | 31, 43 - 32]);
        assert_eq!(s.reads, vec![(0, 20), (20, 1), (21, 43)]);
    }
}
