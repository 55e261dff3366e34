//! Inferring the address map `M` (old address → new address) from the two
//! images alone.
//!
//! Matched blocks pair old and new positions. Where a paired position holds
//! a reference on both sides, the two targets are a *vote*: old target `t`
//! went to new target `t'`. Votes come from branches (code targets) and
//! pointer words (code, constants and RAM variables), plus one per block
//! for the block's own move. The map is the step function that follows the
//! majority delta of the votes, sorted by old address, with runs that too
//! few votes support absorbed by their neighbours (one false site must not
//! cost a breakpoint, nor bend the map for the targets around it).

use std::collections::HashMap;

use fota_format::xform::{Breakpoint, Image, Site, Window, Xform, MAX_BREAKPOINTS};

use crate::matcher::Block;

/// Votes a run of equal deltas needs to stand between two runs of another
/// delta; a breakpoint costs about as much as the references it fixes.
const MIN_RUN_VOTES: u32 = 3;

/// One observation: old address `t` appears as `t + delta` in the new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Vote {
    t: u32,
    delta: i32,
}

/// Bytes of an image one thread scans for sites: whole transform blocks,
/// so that chunks are independent.
const SITES_CHUNK: usize = 1 << 20;

/// The reference sites a probe transform finds in both images: they do not
/// change between the rounds of inference, so they are found once.
pub struct ProbeSites {
    /// The old image's sites, by offset.
    old: Vec<(u64, Site)>,
    /// The new image's branches, by offset.
    new_branches: HashMap<u64, u32>,
    /// How many sites the new image has, branches and pointers.
    new_count: usize,
}

impl ProbeSites {
    /// Finds the sites of `old` and `new` with `probe`, on all threads.
    pub fn find(old: &[u8], new: &[u8], probe: &Xform<'_>) -> Self {
        use rayon::prelude::*;
        const _: () = assert!(SITES_CHUNK % fota_format::xform::XFORM_BLOCK == 0);
        let scan = |image: &[u8], side: Image| -> Vec<(u64, Site)> {
            image
                .par_chunks(SITES_CHUNK)
                .enumerate()
                .map(|(i, chunk)| {
                    let mut sites = Vec::new();
                    let at = (i * SITES_CHUNK) as u64;
                    probe.sites(chunk, at, side, |at, s| sites.push((at, s)));
                    sites
                })
                .collect::<Vec<_>>()
                .concat()
        };
        let (mut old_sites, new_sites) =
            rayon::join(|| scan(old, Image::Old), || scan(new, Image::New));
        // Within a block, branches are reported before pointer words.
        old_sites.sort_unstable_by_key(|&(at, _)| at);
        let new_count = new_sites.len();
        let new_branches = new_sites
            .into_iter()
            .filter_map(|(at, s)| match s {
                Site::Branch { target } => Some((at, target)),
                Site::Pointer { .. } => None,
            })
            .collect();
        ProbeSites {
            old: old_sites,
            new_branches,
            new_count,
        }
    }

    /// Sites T rewrites in the old image.
    pub fn old_count(&self) -> usize {
        self.old.len()
    }

    /// Sites F rewrites in the new image.
    pub fn new_count(&self) -> usize {
        self.new_count
    }
}

/// The breakpoints (at most `max`) of the map the votes of `blocks`
/// support. `probe` is a transform with both images' ranges and the old
/// pointer windows (its own map is not used), `sites` what it finds in the
/// images; `new_windows` bound the new pointer values that count.
pub fn infer(
    new: &[u8],
    probe: &Xform<'_>,
    sites: &ProbeSites,
    blocks: &[Block],
    new_windows: &[Window],
    max: usize,
) -> Vec<Breakpoint> {
    let votes = collect_votes(new, probe, sites, blocks, new_windows);
    fit(votes, max)
}

fn collect_votes(
    new: &[u8],
    probe: &Xform<'_>,
    sites: &ProbeSites,
    blocks: &[Block],
    new_windows: &[Window],
) -> Vec<Vote> {
    let old_sites = &sites.old;
    let new_branches = &sites.new_branches;
    let in_new_window = |v: u32| new_windows.iter().any(|w| (w.low..w.high).contains(&v));
    let old_ranges: Vec<_> = probe.old_ranges().collect();
    let new_ranges: Vec<_> = probe.new_ranges().collect();
    let address = |ranges: &[fota_format::xform::AddrRange], at: usize| {
        ranges.iter().find_map(|r| {
            let off = u32::try_from(at).ok()?.checked_sub(r.offset)?;
            (off < r.len).then(|| r.address.wrapping_add(off))
        })
    };
    let mut votes = Vec::new();
    for b in blocks {
        if b.len >= 64 {
            if let (Some(a), Some(a2)) = (address(&old_ranges, b.old), address(&new_ranges, b.new))
            {
                votes.push(Vote {
                    t: a,
                    delta: a2.wrapping_sub(a) as i32,
                });
            }
        }
        let first = old_sites.partition_point(|&(at, _)| at < b.old as u64);
        for &(at, site) in &old_sites[first..] {
            if at + 4 > (b.old + b.len) as u64 {
                break;
            }
            let y = b.new as u64 + (at - b.old as u64);
            match site {
                Site::Branch { target } => {
                    if let Some(&t2) = new_branches.get(&y) {
                        votes.push(Vote {
                            t: target,
                            delta: t2.wrapping_sub(target) as i32,
                        });
                    }
                }
                Site::Pointer { value } => {
                    let Some(w) = new.get(y as usize..y as usize + 4) else {
                        continue;
                    };
                    let v2 = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    if v2 & 1 == value & 1 && in_new_window(v2 & !1) {
                        votes.push(Vote {
                            t: value & !1,
                            delta: (v2 & !1).wrapping_sub(value & !1) as i32,
                        });
                    }
                }
            }
        }
    }
    votes
}

/// A run of consecutive old addresses whose majority delta is the same.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u32,
    delta: i32,
    votes: u32,
}

/// The step function through the votes' majority deltas, with at most
/// `max` breakpoints: the runs the fewest votes support go first.
fn fit(mut votes: Vec<Vote>, max: usize) -> Vec<Breakpoint> {
    votes.sort_unstable();
    // Majority delta per old address (ties: the smaller move).
    let mut points: Vec<(u32, i32, u32)> = Vec::new();
    let mut i = 0;
    while i < votes.len() {
        let t = votes[i].t;
        let mut best = (0u32, 0i32);
        while i < votes.len() && votes[i].t == t {
            let d = votes[i].delta;
            let mut n = 0u32;
            while i < votes.len() && votes[i].t == t && votes[i].delta == d {
                n += 1;
                i += 1;
            }
            if n > best.0 || (n == best.0 && d.unsigned_abs() < best.1.unsigned_abs()) {
                best = (n, d);
            }
        }
        points.push((t, best.1, best.0));
    }
    let mut runs: Vec<Run> = Vec::new();
    for (t, d, n) in points {
        match runs.last_mut() {
            Some(r) if r.delta == d => r.votes += n,
            _ => runs.push(Run {
                start: t,
                delta: d,
                votes: n,
            }),
        }
    }
    let runs = absorb_weak(runs, max);
    let mut out: Vec<Breakpoint> = Vec::new();
    for (k, r) in runs.iter().enumerate() {
        let address = if k == 0 { 0 } else { r.start };
        let prev = out.last().map_or(0, |b| b.delta);
        if r.delta != prev {
            out.push(Breakpoint {
                address,
                delta: r.delta,
            });
        }
    }
    out.truncate(max.min(MAX_BREAKPOINTS as usize));
    out
}

/// Absorbs weak runs, weakest first (the leftmost of equals), into their
/// neighbours; then the weakest of all while the map has more than `max`
/// breakpoints. A removed run's votes go to its left neighbour, which also
/// takes the right one when both have one delta; the first run's go to the
/// second, which then starts where it did. One run with a delta and no room
/// for it leaves the identity (no run).
///
/// A heap and a linked list keep this O(n log n): the map of a large image
/// starts from tens of thousands of runs.
fn absorb_weak(mut runs: Vec<Run>, max: usize) -> Vec<Run> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    const NONE: usize = usize::MAX;
    let n = runs.len();
    let mut prev: Vec<usize> = (0..n).map(|i| i.checked_sub(1).unwrap_or(NONE)).collect();
    let mut next: Vec<usize> = (0..n)
        .map(|i| if i + 1 < n { i + 1 } else { NONE })
        .collect();
    let mut alive = vec![true; n];
    let (mut count, mut first) = (n, if n > 0 { 0 } else { NONE });
    let mut heap: BinaryHeap<Reverse<(u32, usize)>> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| Reverse((r.votes, i)))
        .collect();
    let unlink = |i: usize, prev: &mut Vec<usize>, next: &mut Vec<usize>, first: &mut usize| {
        let (p, q) = (prev[i], next[i]);
        if p == NONE {
            *first = q;
        } else {
            next[p] = q;
        }
        if q != NONE {
            prev[q] = p;
        }
    };
    loop {
        let breakpoints = count - usize::from(first != NONE && runs[first].delta == 0);
        let over = breakpoints > max;
        // The weakest live run: entries whose votes changed are stale.
        let weakest = loop {
            match heap.peek() {
                Some(&Reverse((v, i))) if !alive[i] || runs[i].votes != v => {
                    heap.pop();
                }
                Some(&Reverse((_, i))) => break Some(i),
                None => break None,
            }
        };
        let weak = weakest.filter(|&i| count > 1 && (over || runs[i].votes < MIN_RUN_VOTES));
        let Some(i) = weak else {
            if over {
                return Vec::new();
            }
            break;
        };
        heap.pop();
        alive[i] = false;
        count -= 1;
        let removed = runs[i];
        let (p, q) = (prev[i], next[i]);
        unlink(i, &mut prev, &mut next, &mut first);
        if p != NONE && q != NONE && runs[p].delta == runs[q].delta {
            runs[p].votes += runs[q].votes + removed.votes;
            alive[q] = false;
            count -= 1;
            unlink(q, &mut prev, &mut next, &mut first);
            heap.push(Reverse((runs[p].votes, p)));
        } else if p != NONE {
            runs[p].votes += removed.votes;
            heap.push(Reverse((runs[p].votes, p)));
        } else if q != NONE {
            runs[q].start = removed.start;
            runs[q].votes += removed.votes;
            heap.push(Reverse((runs[q].votes, q)));
        }
    }
    let mut out = Vec::with_capacity(count);
    let mut i = first;
    while i != NONE {
        out.push(runs[i]);
        i = next[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(t: u32, delta: i32, n: usize) -> Vec<Vote> {
        vec![Vote { t, delta }; n]
    }

    #[test]
    fn a_single_insertion_is_one_breakpoint() {
        let mut votes = Vec::new();
        for t in (0x0800_0000..0x0800_1000).step_by(0x40) {
            votes.extend(v(t, 0, 2));
        }
        for t in (0x0800_1000..0x0800_3000).step_by(0x40) {
            votes.extend(v(t, 0x24, 2));
        }
        let bps = fit(votes.clone(), usize::MAX);
        assert_eq!(
            bps,
            vec![Breakpoint {
                address: 0x0800_1000,
                delta: 0x24
            }]
        );
        // No room for a breakpoint: the identity.
        assert!(fit(votes, 0).is_empty());
    }

    #[test]
    fn a_budget_keeps_the_best_supported_breakpoints() {
        let mut votes = Vec::new();
        // Three moves: 40 votes, 4 votes, 20 votes.
        for t in (0x1000..0x1000 + 40 * 4).step_by(4) {
            votes.extend(v(t, 8, 1));
        }
        for t in (0x2000..0x2000 + 4 * 4).step_by(4) {
            votes.extend(v(t, 16, 1));
        }
        for t in (0x3000..0x3000 + 20 * 4).step_by(4) {
            votes.extend(v(t, 24, 1));
        }
        assert_eq!(fit(votes.clone(), usize::MAX).len(), 3);
        let two = fit(votes, 2);
        assert_eq!(
            two,
            vec![
                Breakpoint {
                    address: 0,
                    delta: 8
                },
                Breakpoint {
                    address: 0x3000,
                    delta: 24
                }
            ]
        );
    }

    #[test]
    fn stray_votes_do_not_make_breakpoints() {
        let mut votes = Vec::new();
        for t in (0x100..0x2000).step_by(0x10) {
            votes.extend(v(t, 8, 1));
        }
        // A false site in the middle, and a disagreeing vote on one target.
        votes.extend(v(0x805, -0x7000, 1));
        votes.extend(v(0x900, 12, 1));
        let bps = fit(votes, usize::MAX);
        assert_eq!(
            bps,
            vec![Breakpoint {
                address: 0,
                delta: 8
            }]
        );
    }

    #[test]
    fn ram_and_flash_move_apart() {
        let mut votes = Vec::new();
        for t in (0x0800_0000..0x0800_0400).step_by(4) {
            votes.extend(v(t, -16, 1));
        }
        for t in (0x2000_0000..0x2000_0100).step_by(4) {
            votes.extend(v(t, 8, 1));
        }
        let bps = fit(votes, usize::MAX);
        assert_eq!(
            bps,
            vec![
                Breakpoint {
                    address: 0,
                    delta: -16
                },
                Breakpoint {
                    address: 0x2000_0000,
                    delta: 8
                }
            ]
        );
    }

    #[test]
    fn no_votes_is_the_identity() {
        assert!(fit(Vec::new(), 10).is_empty());
    }

    /// The quadratic absorption `absorb_weak` replaced, kept as its oracle.
    fn absorb_weak_reference(mut runs: Vec<Run>, max: usize) -> Vec<Run> {
        let breakpoints =
            |runs: &[Run]| runs.len() - usize::from(runs.first().is_some_and(|r| r.delta == 0));
        loop {
            let over = breakpoints(&runs) > max;
            let weak = (0..runs.len())
                .filter(|&i| (over || runs[i].votes < MIN_RUN_VOTES) && runs.len() > 1)
                .min_by_key(|&i| (runs[i].votes, i));
            if weak.is_none() && over {
                runs.clear();
                break;
            }
            let Some(i) = weak else { break };
            let removed = runs.remove(i);
            if i > 0 && i < runs.len() && runs[i - 1].delta == runs[i].delta {
                let next = runs.remove(i);
                runs[i - 1].votes += next.votes + removed.votes;
            } else if i > 0 {
                runs[i - 1].votes += removed.votes;
            } else if let Some(next) = runs.first_mut() {
                next.start = removed.start;
                next.votes += removed.votes;
            }
        }
        runs
    }

    proptest::proptest! {
        #[test]
        fn absorbing_weak_runs_matches_the_reference(
            raw in proptest::collection::vec((0i32..4, 1u32..12), 0..80),
            max in 0usize..20,
        ) {
            // Neighbouring runs differ in delta, as `fit` builds them.
            let mut runs: Vec<Run> = Vec::new();
            for (k, (delta, votes)) in raw.into_iter().enumerate() {
                let delta = match runs.last() {
                    Some(l) if l.delta == delta => delta + 4,
                    _ => delta,
                };
                runs.push(Run { start: k as u32 * 16, delta, votes });
            }
            let got: Vec<(u32, i32, u32)> =
                absorb_weak(runs.clone(), max).iter().map(|r| (r.start, r.delta, r.votes)).collect();
            let want: Vec<(u32, i32, u32)> =
                absorb_weak_reference(runs, max).iter().map(|r| (r.start, r.delta, r.votes)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
