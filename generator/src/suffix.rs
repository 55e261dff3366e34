//! A suffix array over the old image and longest-match search in it.
//!
//! The array is built by libsais in linear time, on one thread: its OpenMP
//! build busy-waits, and on a shared 2-core machine under load it ran ten
//! times slower with 2 threads than with 1 (18.9 s against 1.9 s for a
//! 10 MB image), and on an idle one it gained 8 % (0.28 s against 0.30 s:
//! the sort is bound by memory, not by arithmetic), so the parallel stages
//! are the matcher and the coder, which rayon schedules without spinning.
//! A table of where each two-byte
//! prefix starts narrows every search to one bucket before the binary
//! search.

use crate::error::{Error, Result};

/// Longest match reported by one search; longer runs are found piecewise
/// (the matcher continues a match that keeps its alignment for free).
pub const MAX_MATCH: usize = 1 << 20;

/// The suffix array of the old image with its two-byte bucket table.
pub struct SuffixIndex<'a> {
    old: &'a [u8],
    order: Order,
    /// The array sorts the suffixes of `old` itself, not of a text it
    /// was rebound to ([`SuffixIndex::rebind`]).
    sorted: bool,
}

/// A suffix array and its bucket table, apart from the text they sort.
pub struct Order {
    sa: Vec<i32>,
    /// `bucket[k]` is the first array index whose suffix starts with a
    /// two-byte prefix `>= k`; `bucket[65536] = sa.len()`.
    bucket: Vec<u32>,
}

impl<'a> SuffixIndex<'a> {
    /// Builds the index.
    ///
    /// # Errors
    /// [`Error::Limit`] when the image is 2 GiB or larger.
    pub fn build(old: &'a [u8]) -> Result<Self> {
        let limit = i32::MAX as u64 - 1;
        if old.len() as u64 > limit {
            return Err(Error::Limit {
                what: "old image size in bytes",
                value: old.len() as u64,
                limit,
            });
        }
        let sa: Vec<i32> = if old.is_empty() {
            Vec::new()
        } else {
            libsais::SuffixArrayConstruction::for_text(old)
                .in_owned_buffer32()
                .single_threaded()
                .run()
                .map_err(|_| Error::Limit {
                    what: "suffix array construction failed for old image of size",
                    value: old.len() as u64,
                    limit,
                })?
                .into_vec()
        };
        // Suffixes sort by their two-byte prefix first (the last, one byte
        // long, as if a zero followed), so a bucket starts after all the
        // suffixes of smaller prefixes: counted in one pass over the text
        // instead of a random read per array entry.
        let mut bucket = vec![0u32; 65537];
        for pair in old.windows(2) {
            bucket[(usize::from(pair[0]) << 8) | usize::from(pair[1])] += 1;
        }
        if let Some(&last) = old.last() {
            bucket[usize::from(last) << 8] += 1;
        }
        let mut start = 0u32;
        for b in bucket.iter_mut() {
            let count = *b;
            *b = start;
            start += count;
        }
        Ok(SuffixIndex {
            old,
            order: Order { sa, bucket },
            sorted: true,
        })
    }

    /// The array without its text, to [`rebind`](Self::rebind) it.
    pub fn into_order(self) -> Order {
        self.order
    }

    /// An index that searches `text` through the order of another text
    /// of the same length, which differs from it in a few places (the
    /// transform's T(old) of an earlier round): a third of the cost of a
    /// new array. Every match it reports is real, measured on `text`;
    /// near a changed byte the search can miss the longest one.
    ///
    /// # Errors
    /// [`Error::Limit`] when `text` is not as long as the sorted one.
    pub fn rebind(order: Order, text: &'a [u8]) -> Result<Self> {
        if order.sa.len() != text.len() {
            return Err(Error::Limit {
                what: "rebound suffix array length",
                value: text.len() as u64,
                limit: order.sa.len() as u64,
            });
        }
        Ok(SuffixIndex {
            old: text,
            order,
            sorted: false,
        })
    }

    /// The old image.
    pub fn old(&self) -> &'a [u8] {
        self.old
    }

    /// Finds a longest prefix of `target` that occurs in the old image.
    /// Returns `(old_position, length)`; length 0 when not even the first
    /// two bytes occur. Deterministic: ties go to the lexicographically
    /// smaller suffix.
    pub fn longest_match(&self, target: &[u8]) -> (usize, usize) {
        let target = &target[..target.len().min(MAX_MATCH)];
        let (sa, bucket) = (&self.order.sa, &self.order.bucket);
        if target.len() < 2 || sa.is_empty() {
            return (0, 0);
        }
        let k = (usize::from(target[0]) << 8) | usize::from(target[1]);
        let (mut lo, mut hi) = (bucket[k] as usize, bucket[k + 1] as usize);
        if lo == hi {
            return (0, 0);
        }
        // Binary search for the first suffix >= target, keeping the common
        // prefix lengths of both bounds so comparisons skip what is known.
        let mut best = (sa[lo] as usize, lcp(self.suffix(lo), target));
        if best.1 == target.len() {
            return best;
        }
        // Every suffix after `lo` in the bucket shares the two-byte prefix.
        let (mut llcp, mut hlcp) = (best.1, 2usize);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let suf = self.suffix(mid);
            // Bytes both bounds share with the target are shared by the
            // suffixes between them only in a sorted array.
            let skip = match self.sorted {
                true => llcp.min(hlcp),
                false => 0,
            };
            let l = skip + lcp(&suf[skip.min(suf.len())..], &target[skip..]);
            if l > best.1 {
                best = (sa[mid] as usize, l);
                if l == target.len() {
                    return best;
                }
            }
            let less = l == suf.len() || (l < target.len() && suf[l] < target[l]);
            if less {
                lo = mid;
                llcp = l;
            } else {
                hi = mid;
                hlcp = l;
            }
        }
        // Only the one-byte final suffix can share less than the bucket's
        // two bytes; a one-byte match is never worth a record.
        if best.1 < 2 {
            return (0, 0);
        }
        best
    }

    fn suffix(&self, j: usize) -> &'a [u8] {
        &self.old[self.order.sa[j] as usize..]
    }
}

/// Length of the common prefix of two slices.
pub fn lcp(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    // Compare eight bytes at a time; the tail byte by byte.
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let d = x ^ y;
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(old: &[u8], target: &[u8]) -> usize {
        if target.len() < 2 {
            return 0;
        }
        let best = (0..old.len())
            .map(|i| lcp(&old[i..], target))
            .max()
            .unwrap_or(0);
        if best < 2 {
            0
        } else {
            best
        }
    }

    proptest! {
        #[test]
        fn finds_a_longest_match(old in proptest::collection::vec(0u8..4, 0..300),
                                 target in proptest::collection::vec(0u8..4, 0..40)) {
            let idx = SuffixIndex::build(&old).unwrap();
            let (pos, len) = idx.longest_match(&target);
            prop_assert_eq!(len, brute(&old, &target));
            if len > 0 {
                prop_assert_eq!(&old[pos..pos + len], &target[..len]);
            }
        }
    }

    proptest! {
        #[test]
        fn buckets_start_where_the_array_reaches_their_prefix(
            old in proptest::collection::vec(0u8..3, 0..300),
        ) {
            let idx = SuffixIndex::build(&old).unwrap();
            let prefix = |s: usize| {
                (usize::from(old[s]) << 8) | old.get(s + 1).map_or(0, |&b| usize::from(b))
            };
            let sa = &idx.order.sa;
            prop_assert!(sa.windows(2).all(|w| prefix(w[0] as usize) <= prefix(w[1] as usize)));
            for k in 0..=65536usize {
                let first = sa.partition_point(|&s| prefix(s as usize) < k);
                prop_assert_eq!(idx.order.bucket[k] as usize, first, "bucket {}", k);
            }
        }
    }

    proptest! {
        #[test]
        fn a_rebound_index_reports_only_real_matches(
            old in proptest::collection::vec(0u8..4, 2..300),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4), 0..12),
            target in proptest::collection::vec(0u8..4, 0..40),
        ) {
            let mut text = old.clone();
            for (at, b) in edits {
                text[at.index(old.len())] = b;
            }
            let order = SuffixIndex::build(&old).unwrap().into_order();
            let idx = SuffixIndex::rebind(order, &text).unwrap();
            let (pos, len) = idx.longest_match(&target);
            prop_assert!(len <= brute(&text, &target));
            if len > 0 {
                prop_assert!(len >= 2);
                prop_assert_eq!(&text[pos..pos + len], &target[..len]);
            }
        }

        #[test]
        fn rebound_to_its_own_text_an_index_finds_a_longest_match(
            old in proptest::collection::vec(0u8..4, 0..300),
            target in proptest::collection::vec(0u8..4, 0..40),
        ) {
            let order = SuffixIndex::build(&old).unwrap().into_order();
            let idx = SuffixIndex::rebind(order, &old).unwrap();
            prop_assert_eq!(idx.longest_match(&target).1, brute(&old, &target));
        }
    }

    #[test]
    fn an_index_rebinds_only_to_a_text_of_the_same_length() {
        let order = SuffixIndex::build(b"abcabc").unwrap().into_order();
        match SuffixIndex::rebind(order, b"abcab") {
            Err(Error::Limit { value, limit, .. }) => assert_eq!((value, limit), (5, 6)),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a shorter text was accepted"),
        }
    }

    #[test]
    fn lcp_handles_word_and_tail() {
        assert_eq!(lcp(b"abcdefghijk", b"abcdefghijX"), 10);
        assert_eq!(lcp(b"abcdefghijk", b"abcXefghijk"), 3);
        assert_eq!(lcp(b"", b"abc"), 0);
        assert_eq!(lcp(b"abc", b"abc"), 3);
    }
}
