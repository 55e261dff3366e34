//! Approximate matching of the new image against the old one.
//!
//! The scan is bsdiff's: walk the new image, look up the longest exact match
//! of each position in the suffix array, and switch to it only when it beats
//! the current alignment by more than [`MatchParams::min_gain`] bytes; then
//! extend the previous and the next alignment forwards and backwards over
//! runs where at least half the bytes agree. Those approximate blocks turn a
//! recompiled function whose pointers shifted into a few non-zero diff bytes
//! instead of a literal.
//!
//! The new image is cut into fixed chunks scanned in parallel; the chunk
//! size is a constant, never derived from the thread count, so the blocks
//! (and the package) are the same for any number of threads.

use rayon::prelude::*;

use crate::progress::Progress;
use crate::suffix::{SuffixIndex, MAX_MATCH};

/// Bytes of the new image one parallel task scans.
pub const CHUNK_LEN: usize = 1 << 20;

/// A run of the new image that is coded as `old[old..old+len]` plus
/// (mostly zero) diff bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Offset in the new image.
    pub new: usize,
    /// Offset in the old image.
    pub old: usize,
    /// Length.
    pub len: usize,
}

/// Tuning of the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchParams {
    /// Bytes an exact match must win over the current alignment before the
    /// scan switches to it: roughly the cost of a new control record.
    pub min_gain: usize,
}

impl Default for MatchParams {
    fn default() -> Self {
        MatchParams { min_gain: 8 }
    }
}

/// Finds the blocks of `new` coded against the indexed old image, sorted by
/// new offset and not overlapping. Runs on the current rayon pool.
/// Reports each finished chunk's length to `progress`.
pub fn find_blocks(
    index: &SuffixIndex<'_>,
    new: &[u8],
    params: MatchParams,
    progress: &dyn Progress,
) -> Vec<Block> {
    let chunks: Vec<(usize, usize)> = (0..new.len())
        .step_by(CHUNK_LEN)
        .map(|s| (s, (s + CHUNK_LEN).min(new.len())))
        .collect();
    chunks
        .par_iter()
        .map(|&(start, end)| {
            let blocks = scan_chunk(index, new, start, end, params);
            progress.advance((end - start) as u64);
            blocks
        })
        .collect::<Vec<_>>()
        .concat()
}

/// Whether `new[n]` equals the old byte at the same alignment.
#[inline]
fn agrees(old: &[u8], new: &[u8], n: usize, offset: isize) -> bool {
    let o = n as isize + offset;
    o >= 0 && (o as usize) < old.len() && old[o as usize] == new[n]
}

/// bsdiff's scan over `new[start..end]`.
fn scan_chunk(
    index: &SuffixIndex<'_>,
    new: &[u8],
    start: usize,
    end: usize,
    params: MatchParams,
) -> Vec<Block> {
    let old = index.old();
    let mut blocks = Vec::new();
    let (mut scan, mut len, mut pos) = (start, 0usize, 0usize);
    // The current alignment starts as "same offset in the old image".
    let (mut last_scan, mut last_pos) = (start, start.min(old.len()));
    let mut last_offset: isize = last_pos as isize - last_scan as isize;
    while scan < end {
        let mut old_score = 0usize;
        scan += len;
        let mut scsc = scan;
        while scan < end {
            let (p, l) = index.longest_match(&new[scan..end.min(scan + MAX_MATCH)]);
            pos = p;
            len = l;
            while scsc < scan + len {
                if agrees(old, new, scsc, last_offset) {
                    old_score += 1;
                }
                scsc += 1;
            }
            if (len == old_score && len != 0) || len > old_score + params.min_gain {
                break;
            }
            if agrees(old, new, scan, last_offset) {
                old_score = old_score.saturating_sub(1);
            }
            scan += 1;
        }
        if len == old_score && scan != end {
            continue;
        }
        // Extend the current alignment forwards from last_scan.
        let (mut s, mut best_f, mut len_f) = (0isize, 0isize, 0usize);
        let mut i = 0usize;
        while last_scan + i < scan && last_pos + i < old.len() {
            if old[last_pos + i] == new[last_scan + i] {
                s += 1;
            }
            i += 1;
            if s * 2 - i as isize > best_f * 2 - len_f as isize {
                best_f = s;
                len_f = i;
            }
        }
        // Extend the next alignment backwards from scan.
        let mut len_b = 0usize;
        if scan < end {
            let (mut s, mut best_b) = (0isize, 0isize);
            let mut i = 1usize;
            while scan >= last_scan + i && pos >= i {
                if old[pos - i] == new[scan - i] {
                    s += 1;
                }
                if s * 2 - i as isize > best_b * 2 - len_b as isize {
                    best_b = s;
                    len_b = i;
                }
                i += 1;
            }
        }
        // Where the two extensions overlap, cut at the best point.
        if last_scan + len_f > scan - len_b {
            let overlap = (last_scan + len_f) - (scan - len_b);
            let (mut s, mut best_s, mut len_s) = (0isize, 0isize, 0usize);
            for i in 0..overlap {
                if new[last_scan + len_f - overlap + i] == old[last_pos + len_f - overlap + i] {
                    s += 1;
                }
                if new[scan - len_b + i] == old[pos - len_b + i] {
                    s -= 1;
                }
                if s > best_s {
                    best_s = s;
                    len_s = i + 1;
                }
            }
            len_f = len_f + len_s - overlap;
            len_b -= len_s;
        }
        if len_f > 0 {
            blocks.push(Block {
                new: last_scan,
                old: last_pos,
                len: len_f,
            });
        }
        last_scan = scan - len_b;
        last_pos = pos - len_b;
        last_offset = pos as isize - scan as isize;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(blocks: &[Block], old: &[u8], new: &[u8]) {
        let mut end = 0;
        for b in blocks {
            assert!(b.new >= end, "sorted, not overlapping");
            assert!(b.new + b.len <= new.len() && b.old + b.len <= old.len());
            end = b.new + b.len;
        }
    }

    #[test]
    fn identical_images_are_one_alignment() {
        let old: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let idx = SuffixIndex::build(&old).unwrap();
        let blocks = find_blocks(
            &idx,
            &old,
            MatchParams::default(),
            &crate::progress::NoProgress,
        );
        check(&blocks, &old, &old);
        let covered: usize = blocks.iter().map(|b| b.len).sum();
        assert_eq!(covered, old.len());
        assert!(blocks.iter().all(|b| b.new == b.old));
    }

    #[test]
    fn moved_code_with_changed_pointers_is_one_approximate_block() {
        let body: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2246822519) >> 9) as u8)
            .collect();
        let mut old = vec![0x55u8; 5000];
        old.extend_from_slice(&body);
        let mut new = vec![0xAAu8; 7000];
        let mut moved = body.clone();
        for k in (0..moved.len()).step_by(97) {
            moved[k] = moved[k].wrapping_add(3);
        }
        new.extend_from_slice(&moved);
        let idx = SuffixIndex::build(&old).unwrap();
        let blocks = find_blocks(
            &idx,
            &new,
            MatchParams::default(),
            &crate::progress::NoProgress,
        );
        check(&blocks, &old, &new);
        let big: Vec<_> = blocks.iter().filter(|b| b.len > 1000).collect();
        assert_eq!(big.len(), 1, "{blocks:?}");
        assert_eq!(big[0].new as isize - big[0].old as isize, 2000);
        assert!(big[0].len > 19_000);
    }
}
