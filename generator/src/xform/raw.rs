//! Raw images (`objcopy -O binary` output, flash dumps): no section table
//! says where code ends or at which address the image runs, so both are
//! inferred from the bytes.
//!
//! - **Code or data**, block by block: code blocks are the words that
//!   decode as instructions a compiler emits often. Only code gets its
//!   branches rewritten; data that happens to decode as a branch would
//!   otherwise be rewritten in the old image and not in the new one.
//! - **The base address**, as exactly as the bytes tell. Its low bits
//!   matter most: pointer words sit at addresses aligned to their size,
//!   and an AArch64 ADRP computes its target from its own 4 KiB page, so
//!   an image that starts mid-page (`objcopy` begins at the first loaded
//!   section, often a note) needs its pages where they really are.
//!   1. Pointer words are read at the offset phase where most of them
//!      look like 32-bit addresses (an image starting 4 bytes past an
//!      8-byte boundary has its pointers at offsets 4 modulo 8).
//!   2. The 64 KiB bucket those values fall in, taking the tightest window
//!      of the image's length.
//!   3. AArch64: the page phase at which the most ADRP pairs reach the
//!      same targets (two sites reach one object only with the right
//!      phase), and the highest page of the bucket no pointer points
//!      below. Other ISAs: the pointer phase.

use fota_format::xform::{AddrRange, Isa, Window, FLAG_BRANCHES, FLAG_POINTERS, MAX_RANGES};

use super::layout::Layout;

/// Bytes per block the code classifier decides on.
const BLOCK: usize = 4096;
/// Shortest run of blocks of one kind kept as a range of its own: shorter
/// ones join a neighbour, so a literal table inside code stays code.
const MIN_RUN_BLOCKS: usize = 16;

/// Whether `image` holds `isa` code, by two instructions every function
/// has: for AArch64 RET and BL, for A32 a return (BX LR, MOV PC, LR,
/// POP {…, PC}, or Go's LDR PC, [SP], #frame) and BL with condition
/// "always" (calls at least one word in 256, returns one in 4096); for
/// x86-64 CALL rel32 into the image (one per KiB) and 64-bit moves (one
/// per 256 bytes, see [`x86_64_marks`]).
pub fn looks_like(image: &[u8], isa: Isa) -> bool {
    if isa == Isa::X86_64 {
        // Firmware volumes hold many PE/TE modules, each linked at its own
        // base: no single layout describes them.
        if pe_modules(image) >= MANY_MODULES {
            return false;
        }
        let (calls, moves) = x86_64_marks(image, 0, image.len());
        return image.len() >= 4096 && calls * 1024 >= image.len() && moves * 256 >= image.len();
    }
    let (mut ret, mut bl) = (0usize, 0usize);
    for w in image.chunks_exact(4) {
        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        match isa {
            Isa::Aarch64 => {
                ret += usize::from(w == 0xD65F_03C0);
                bl += usize::from(w & 0xFC00_0000 == 0x9400_0000);
            }
            Isa::Arm => {
                ret += usize::from(
                    w == 0xE12F_FF1E
                        || w == 0xE1A0_F00E
                        || w & 0xFFFF_F000 == 0xE49D_F000
                        || w & 0xFFFF_8000 == 0xE8BD_8000,
                );
                bl += usize::from(w & 0xFF00_0000 == 0xEB00_0000);
            }
            _ => return false,
        }
    }
    image.len() >= 4096 && ret * 4096 >= image.len() && bl * 256 >= image.len()
}

/// PE or TE module headers that make an image a collection of modules
/// rather than one program.
const MANY_MODULES: usize = 4;

/// PE ("PE\0\0") and TE ("VZ") headers in `image` for x86-64 or AArch64
/// (their machine field follows the signature), up to [`MANY_MODULES`].
fn pe_modules(image: &[u8]) -> usize {
    let machine = |at: usize| {
        image
            .get(at..at + 2)
            .map(|m| u16::from_le_bytes([m[0], m[1]]))
    };
    let mut found = 0;
    let mut at = 0;
    while found < MANY_MODULES {
        let Some(i) = image[at..]
            .windows(2)
            .position(|w| w == b"PE" || w == b"VZ")
        else {
            break;
        };
        let i = at + i;
        let m = match &image[i..i + 2] {
            b"PE" if image.get(i + 2..i + 4) == Some(&[0, 0]) => machine(i + 4),
            b"VZ" => machine(i + 2),
            _ => None,
        };
        found += usize::from(matches!(m, Some(0x8664 | 0xAA64)));
        at = i + 2;
    }
    found
}

/// The layout of a raw `isa` image: its code and data ranges at the base
/// its pointer words (and an AArch64 image's ADRP pairs) point to, and
/// that span as the pointer window.
pub fn layout(image: &[u8], isa: Isa) -> Layout {
    let len = image.len().min(u32::MAX as usize);
    let image = &image[..len];
    let runs = code_runs(image, isa);
    let (pointers, phase) = pointer_words(image, isa, &runs);
    let near = bucket_base(&pointers, len);
    let base = match isa {
        // AArch64 address formations fix the low 12 bits; the page is the
        // highest in the bucket that no pointer points below (pointers to
        // an image's first bytes are common: entry points, tables).
        Isa::Aarch64 => page_phase(&page_refs(image, &runs)).map(|ph| {
            let lowest = pointers.iter().copied().filter(|&p| p >= near).min();
            let (near, lowest) = (u64::from(near), lowest.map(u64::from));
            let fits = |b: u64| b + len as u64 <= 1 << 32;
            let mut b = (near & !0xFFF) | u64::from(ph);
            while lowest.is_some_and(|l| b + 0x1000 <= l)
                && b + 0x1000 < near + 0x1_0000
                && fits(b + 0x1000)
            {
                b += 0x1000;
            }
            // The phase may not fit at the top of the address space.
            if fits(b) {
                b as u32
            } else {
                near as u32
            }
        }),
        _ => None,
    }
    // Else pointers sit at `phase` modulo their size, so the base does too.
    .unwrap_or_else(|| {
        let word = pointer_size(isa);
        let b = u64::from(near) + ((word - phase) % word) as u64;
        if b + len as u64 <= 1 << 32 {
            b as u32
        } else {
            near
        }
    });
    let ranges = runs
        .iter()
        .map(|r| AddrRange {
            offset: r.offset as u32,
            len: r.len as u32,
            address: base.wrapping_add(r.offset as u32),
            flags: if r.code {
                FLAG_BRANCHES | FLAG_POINTERS
            } else {
                FLAG_POINTERS
            },
        })
        .collect();
    Layout {
        isa,
        ranges,
        windows: vec![Window {
            low: base,
            high: (u64::from(base) + len as u64).min(u64::from(u32::MAX)) as u32,
        }],
        span: len as u64,
        source: "raw image",
    }
}

/// A stretch of the image classified as code or data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    code: bool,
    offset: usize,
    len: usize,
}

/// Whether the word `w` looks like an instruction compilers emit often for
/// `isa`: for AArch64 calls, branches, returns, ADRP, frame pairs, loads
/// and stores, register and immediate arithmetic and moves; for A32 any instruction with
/// condition "always". Zeros, text, pointers and tables match far less
/// often.
fn looks_like_code_word(isa: Isa, w: u32) -> bool {
    match isa {
        Isa::Aarch64 => {
            let top6 = w >> 26;
            let top8 = w >> 24;
            top6 == 0x25 // BL
                || top6 == 0x05 // B
                || w == 0xD65F_03C0 // RET
                || w == 0xD503_201F // NOP
                || w & 0x9F00_0000 == 0x9000_0000 // ADRP
                || w & 0xFF00_0010 == 0x5400_0000 // B.cond
                || matches!(top8, 0x34 | 0x35 | 0xB4 | 0xB5) // CBZ, CBNZ
                || matches!(top8, 0x11 | 0x51 | 0x71 | 0x91 | 0xB1 | 0xD1 | 0xF1) // ADD, SUB imm
                || matches!(
                    w & 0xFFC0_0000,
                    0x3900_0000 | 0x3940_0000 | 0xB900_0000 | 0xB940_0000 | 0xF900_0000 | 0xF940_0000
                ) // LDR, STR (unsigned offset)
                || matches!(w >> 22, 0x2A0..=0x2A7) // STP, LDP (64-bit)
                || w & 0x1E00_0000 == 0x0A00_0000 // logical, ADD/SUB (register)
                || w & 0x7F80_0000 == 0x5280_0000 // MOVZ
        }
        Isa::Arm => w >> 28 == 0xE && w != 0xFFFF_FFFF,
        _ => true,
    }
}

/// x86-64 code marks in `image[start..start + len]`: CALL rel32 whose
/// target lies in the image, and 64-bit MOV, LEA, ADD/SUB/CMP immediate,
/// TEST and MOV immediate (REX.W 0x48 and its opcode). Compiled x86-64 has
/// a few of these every 100 bytes; other ISAs' code and data a few per
/// 10,000.
fn x86_64_marks(image: &[u8], start: usize, len: usize) -> (usize, usize) {
    let (mut calls, mut moves) = (0, 0);
    let end = (start + len).min(image.len());
    for at in start..end {
        match image[at] {
            0xE8 => {
                if let Some(r) = image.get(at + 1..at + 5) {
                    let rel = i64::from(i32::from_le_bytes([r[0], r[1], r[2], r[3]]));
                    let target = at as i64 + 5 + rel;
                    calls += usize::from((0..image.len() as i64).contains(&target));
                }
            }
            0x48 => {
                moves += usize::from(matches!(
                    image.get(at + 1),
                    Some(0x89 | 0x8B | 0x8D | 0x83 | 0x85 | 0xC7)
                ));
            }
            _ => {}
        }
    }
    (calls, moves)
}

/// The image cut into code and data runs: blocks where at least 3 words in
/// 8 look like instructions (x86-64: a code mark per 256 bytes) are code, then runs shorter than
/// [`MIN_RUN_BLOCKS`] (or past [`MAX_RANGES`] of them) join their longer
/// neighbour. An ISA without a classifier, or an image of code only, is
/// one code run.
fn code_runs(image: &[u8], isa: Isa) -> Vec<Run> {
    let whole = vec![Run {
        code: true,
        offset: 0,
        len: image.len(),
    }];
    if image.len() < BLOCK * MIN_RUN_BLOCKS {
        return whole;
    }
    // Runs as (code, block count).
    let mut runs: Vec<(bool, usize)> = Vec::new();
    for (i, block) in image.chunks(BLOCK).enumerate() {
        let code = match isa {
            Isa::Aarch64 | Isa::Arm => {
                let words = block.chunks_exact(4);
                let n = words.len();
                let hits = words
                    .filter(|w| {
                        looks_like_code_word(isa, u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    })
                    .count();
                hits * 8 >= n * 3
            }
            Isa::X86_64 => {
                let (calls, moves) = x86_64_marks(image, i * BLOCK, block.len());
                (calls + moves) * 256 >= block.len()
            }
            _ => return whole,
        };
        push_run(&mut runs, code, 1);
    }
    // Many runs (an image of mixed blocks) first lose their short ones in
    // linear passes, so the exact merging below stays cheap.
    while runs.len() > 1024 {
        let before = runs.len();
        let mut joined: Vec<(bool, usize)> = Vec::with_capacity(before);
        for (code, blocks) in runs.drain(..) {
            let code = match joined.last() {
                Some(l) if blocks < MIN_RUN_BLOCKS => l.0,
                _ => code,
            };
            push_run(&mut joined, code, blocks);
        }
        runs = joined;
        if runs.len() == before {
            break;
        }
    }
    while runs.len() > 1 {
        let too_many = runs.len() > MAX_RANGES;
        let Some(i) = (0..runs.len())
            .filter(|&i| too_many || runs[i].1 < MIN_RUN_BLOCKS)
            .min_by_key(|&i| runs[i].1)
        else {
            break;
        };
        let into = match (i.checked_sub(1), runs.get(i + 1)) {
            (Some(p), Some(n)) if n.1 > runs[p].1 => i + 1,
            (Some(p), _) => p,
            _ => i + 1,
        };
        // Run i takes its neighbour's kind and joins the neighbours of
        // that kind (runs alternate, so only those two can).
        runs[i].0 = runs[into].0;
        if runs.get(i + 1).is_some_and(|n| n.0 == runs[i].0) {
            runs[i].1 += runs.remove(i + 1).1;
        }
        if i > 0 && runs[i - 1].0 == runs[i].0 {
            runs[i - 1].1 += runs.remove(i).1;
        }
    }
    // All code, or none found in an image of this ISA: one code run.
    if runs.iter().all(|r| r.0) || runs.iter().all(|r| !r.0) {
        return whole;
    }
    let mut out = Vec::with_capacity(runs.len());
    let mut offset = 0;
    for (code, blocks) in runs {
        let end = (offset + blocks * BLOCK).min(image.len());
        out.push(Run {
            code,
            offset,
            len: end - offset,
        });
        offset = end;
    }
    out
}

/// Bytes of a pointer word in a raw `isa` image (A32 is the one 32-bit ISA
/// with a raw classifier; Thumb images go through their vector table).
fn pointer_size(isa: Isa) -> usize {
    if isa == Isa::Arm {
        4
    } else {
        8
    }
}

/// Appends `blocks` blocks of one kind to `runs`, joining the last run when
/// it is of that kind.
fn push_run(runs: &mut Vec<(bool, usize)>, code: bool, blocks: usize) {
    match runs.last_mut() {
        Some(l) if l.0 == code => l.1 += blocks,
        _ => runs.push((code, blocks)),
    }
}

/// An AArch64 address formation: ADRP at `site` followed by an ADD, LDR
/// or STR on the same register, so its target is
/// `page(site) + page_delta × 4096 + low12`.
#[derive(Debug, Clone, Copy)]
struct PageRef {
    site: u32,
    page_delta: i32,
    low12: u32,
}

impl PageRef {
    /// The target's image offset for a base whose low 12 bits are
    /// `phase`, split as (key, switches): the offset is `key - phase`, plus
    /// 4096 once `phase` reaches `switches` (where the site's page starts
    /// one page later).
    fn key(self) -> i64 {
        i64::from(self.site & !0xFFF) + i64::from(self.page_delta) * 4096 + i64::from(self.low12)
    }

    fn switches(self) -> u32 {
        match self.site & 0xFFF {
            0 => 4096,
            q => 4096 - q,
        }
    }
}

/// Every ADRP in `runs`' code followed by its ADD (immediate), or a
/// 64- or 32-bit LDR or STR (unsigned offset), on the same register.
fn page_refs(image: &[u8], runs: &[Run]) -> Vec<PageRef> {
    let mut out = Vec::new();
    for run in runs.iter().filter(|r| r.code) {
        let code = &image[run.offset..run.offset + run.len];
        let words: Vec<u32> = code
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        for (i, pair) in words.windows(2).enumerate() {
            let (adrp, next) = (pair[0], pair[1]);
            if adrp & 0x9F00_0000 != 0x9000_0000 {
                continue;
            }
            let rd = adrp & 31;
            if (next >> 5) & 31 != rd {
                continue;
            }
            let imm12 = (next >> 10) & 0xFFF;
            let low12 = match next & 0xFFC0_0000 {
                0x9100_0000 => imm12,
                0xF940_0000 | 0xF900_0000 => imm12 * 8,
                0xB940_0000 | 0xB900_0000 => imm12 * 4,
                _ => continue,
            };
            if low12 > 0xFFF {
                continue;
            }
            let imm = ((adrp >> 5) & 0x7FFFF) << 2 | (adrp >> 29) & 3;
            let page_delta = ((imm << 11) as i32) >> 11;
            out.push(PageRef {
                site: (run.offset + i * 4) as u32,
                page_delta,
                low12,
            });
        }
    }
    out
}

/// The base's low 12 bits that make the most address formations agree: two
/// ADRPs that reach one object compute one target only with the right page
/// phase. `None` without enough agreement to tell.
fn page_phase(refs: &[PageRef]) -> Option<u32> {
    let mut counts: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
    let mut score: u64 = 0;
    for r in refs {
        let n = counts.entry(r.key()).or_default();
        score += u64::from(*n);
        *n += 1;
    }
    let mut order: Vec<usize> = (0..refs.len()).collect();
    order.sort_unstable_by_key(|&i| refs[i].switches());
    let mut next = 0;
    // (score, first phase of that score, last phase of it)
    let mut best: (u64, u32, u32) = (score, 0, 0);
    let mut last_best_run = true;
    let mut least = score;
    for phase in (0..4096u32).step_by(4) {
        while next < order.len() && refs[order[next]].switches() <= phase {
            let k = refs[order[next]].key();
            if let Some(n) = counts.get_mut(&k) {
                *n -= 1;
                score -= u64::from(*n);
            }
            let n = counts.entry(k + 4096).or_default();
            score += u64::from(*n);
            *n += 1;
            next += 1;
        }
        if phase == 0 {
            continue;
        }
        least = least.min(score);
        if score > best.0 {
            best = (score, phase, phase);
            last_best_run = true;
        } else if score == best.0 && last_best_run {
            best.2 = phase;
        } else {
            last_best_run = false;
        }
    }
    // Agreement must hang on the phase: pairs in one page agree at every
    // phase and tell nothing.
    (best.0 >= least + 16).then_some(((best.1 + best.2) / 2) & !3)
}

/// Pointer-sized words of the data runs (of the whole image when it has
/// none: instruction words are not addresses), read at the offset phase
/// where pointers sit: an image that starts 4 bytes past an 8-byte
/// boundary has its 64-bit pointers at offsets 4 modulo 8, and words read
/// at the other phase join halves of two values. Values that could be
/// 32-bit addresses, with the phase.
fn pointer_words(image: &[u8], isa: Isa, runs: &[Run]) -> (Vec<u32>, usize) {
    let word = pointer_size(isa);
    let data: Vec<&Run> = match runs.iter().filter(|r| !r.code).collect::<Vec<_>>() {
        d if d.is_empty() => runs.iter().collect(),
        d => d,
    };
    let at_phase = |phase: usize| -> Vec<u32> {
        data.iter()
            .flat_map(|r| {
                let start = (r.offset + phase).min(r.offset + r.len);
                image[start..r.offset + r.len].chunks_exact(word)
            })
            .map(|w| w.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
            .filter(|v| (0x1000..1 << 32).contains(v))
            .map(|v| v as u32)
            .collect()
    };
    (0..word)
        .step_by(4)
        .map(|phase| (at_phase(phase), phase))
        .max_by_key(|(v, phase)| (v.len(), std::cmp::Reverse(*phase)))
        .unwrap_or_default()
}

/// The 64 KiB-aligned base that most `pointers` point into past: the
/// first guess, and the fallback when calls and pointers do not pin the
/// base down.
fn bucket_base(pointers: &[u32], len: usize) -> u32 {
    let len = len as u64;
    let mut buckets: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for &v in pointers.iter().filter(|&&v| v >= 0x1_0000) {
        *buckets.entry(v & !0xFFFF).or_default() += 1;
    }
    let mut candidates: Vec<(u32, usize)> = buckets.into_iter().collect();
    candidates.sort_unstable_by_key(|&(b, n)| (std::cmp::Reverse(n), b));
    candidates.truncate(16);
    let score = |base: u32| -> usize {
        let low = u64::from(base).max(0x1_0000);
        pointers
            .iter()
            .filter(|&&v| u64::from(v) >= low && u64::from(v) < u64::from(base) + len)
            .count()
    };
    candidates
        .iter()
        .map(|&(b, _)| b)
        .chain([0, 0x1_0000, 0x40_0000])
        .filter(|b| u64::from(*b) + len <= 1 << 32)
        .map(|b| (score(b), b))
        .max()
        .map_or(0, |(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for test images.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as u32
        }
    }

    /// AArch64 filler code: frame pairs, loads, adds, calls and returns.
    fn a64_code(len: usize, rng: &mut Lcg) -> Vec<u8> {
        let pool = [
            0xA9BF_7BFDu32, // STP x29, x30, [sp, #-16]!
            0xF940_0BE0,    // LDR x0, [sp, #16]
            0x9100_4000,    // ADD x0, x0, #16
            0xAA01_03E0,    // MOV x0, x1
            0xD65F_03C0,    // RET
            0x5280_0020,    // MOVZ w0, #1
            0xB940_0001,    // LDR w1, [x0]
        ];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let r = rng.next();
            let w = if r % 5 == 0 {
                0x9400_0000 | (r >> 8) & 0xFFF // BL forward
            } else {
                pool[(r % pool.len() as u32) as usize]
            };
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Data: text, zeros and small integers.
    fn data(len: usize, rng: &mut Lcg) -> Vec<u8> {
        let text = b"the quick brown fox jumps over the lazy dog. ";
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match rng.next() % 3 {
                0 => out.extend_from_slice(text),
                1 => out.extend_from_slice(&[0; 24]),
                _ => out.extend_from_slice(&u64::from(rng.next() % 1000).to_le_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn code_and_data_are_told_apart_by_block() {
        let mut rng = Lcg(1);
        let mut img = a64_code(96 << 10, &mut rng);
        img.extend(data(160 << 10, &mut rng));
        img.extend(a64_code(80 << 10, &mut rng));
        let runs = code_runs(&img, Isa::Aarch64);
        let kinds: Vec<(bool, usize, usize)> =
            runs.iter().map(|r| (r.code, r.offset, r.len)).collect();
        assert_eq!(
            kinds,
            [
                (true, 0, 96 << 10),
                (false, 96 << 10, 160 << 10),
                (true, 256 << 10, 80 << 10)
            ]
        );
        // A short table inside code stays code.
        let mut img = a64_code(128 << 10, &mut rng);
        img[64 << 10..72 << 10].copy_from_slice(&data(8 << 10, &mut rng));
        assert_eq!(code_runs(&img, Isa::Aarch64).len(), 1);
        // Without a classifier (x86-64), the image is one code run.
        assert_eq!(code_runs(&data(256 << 10, &mut rng), Isa::X86_64).len(), 1);
    }

    #[test]
    fn many_mixed_blocks_are_merged_to_the_range_limit() {
        let mut rng = Lcg(2);
        let mut img = Vec::new();
        for i in 0..3000 {
            if i % 3 == 0 {
                img.extend(data(BLOCK, &mut rng));
            } else {
                img.extend(a64_code(BLOCK, &mut rng));
            }
        }
        for i in 0..40 {
            if i % 2 == 0 {
                img.extend(data(BLOCK * MIN_RUN_BLOCKS, &mut rng));
            } else {
                img.extend(a64_code(BLOCK * MIN_RUN_BLOCKS, &mut rng));
            }
        }
        let runs = code_runs(&img, Isa::Aarch64);
        assert!(runs.len() <= MAX_RANGES, "{}", runs.len());
        assert_eq!(runs.iter().map(|r| r.len).sum::<usize>(), img.len());
        assert!(runs
            .windows(2)
            .all(|p| p[0].offset + p[0].len == p[1].offset));
    }

    /// An AArch64 raw image at `base`: code whose ADRP+ADD pairs reach 64
    /// objects in the data (each from many sites), and data holding
    /// pointers to those objects.
    fn image_at(base: u32, with_adrp: bool) -> Vec<u8> {
        let mut rng = Lcg(u64::from(base));
        let code_len = 256 << 10;
        let mut img = a64_code(code_len, &mut rng);
        img.extend(data(256 << 10, &mut rng));
        let objects: Vec<u32> = (0..64)
            .map(|_| (base + code_len as u32 + (rng.next() % (200 << 10))) & !7)
            .collect();
        if with_adrp {
            for _ in 0..3000 {
                let site = (rng.next() as usize % (code_len - 8)) & !3;
                let target = objects[rng.next() as usize % objects.len()];
                let pc = base + site as u32;
                let delta = ((target >> 12) as i32 - (pc >> 12) as i32) as u32;
                let (immlo, immhi) = (delta & 3, (delta >> 2) & 0x7FFFF);
                let adrp = 0x9000_0000 | immlo << 29 | immhi << 5 | 3;
                let add = 0x9100_0000 | (target & 0xFFF) << 10 | 3 << 5 | 3;
                img[site..site + 4].copy_from_slice(&adrp.to_le_bytes());
                img[site + 4..site + 8].copy_from_slice(&add.to_le_bytes());
            }
        }
        // Pointers to the objects and into code, in the data.
        for (i, at) in (code_len + (210 << 10)..code_len + (250 << 10))
            .step_by(64)
            .enumerate()
        {
            let p = if i % 2 == 0 {
                objects[i / 2 % objects.len()]
            } else {
                base + ((rng.next() % code_len as u32) & !3)
            };
            img[at..at + 8].copy_from_slice(&u64::from(p).to_le_bytes());
        }
        img
    }

    #[test]
    fn the_base_is_found_to_the_word_from_page_agreement() {
        for base in [0x0001_0F9Cu32, 0x0040_09C4, 0x0800_0000, 0x0041_2000] {
            let img = image_at(base, true);
            let l = layout(&img, Isa::Aarch64);
            assert_eq!(l.ranges[0].address, base, "{base:#x}");
            assert_eq!(l.ranges.len(), 2);
            assert_eq!(l.ranges[0].flags, FLAG_BRANCHES | FLAG_POINTERS);
            assert_eq!(l.ranges[1].flags, FLAG_POINTERS);
            assert_eq!(l.ranges[1].address, base + (256 << 10));
            assert_eq!(l.windows[0].low, base);
        }
    }

    #[test]
    fn without_address_formations_the_base_is_64k_aligned() {
        let img = image_at(0x0040_09C4, false);
        let l = layout(&img, Isa::Aarch64);
        assert_eq!(l.ranges[0].address, 0x0040_0000);
    }

    #[test]
    fn go_style_a32_returns_count_as_returns() {
        let mut img = Vec::new();
        for i in 0..4096u32 {
            let w = match i % 64 {
                0 => 0xE49D_F008u32,      // LDR PC, [SP], #8
                1..=8 => 0xEB00_0000 | i, // BL
                _ => 0xE1A0_0000,         // MOV r0, r0
            };
            img.extend_from_slice(&w.to_le_bytes());
        }
        assert!(looks_like(&img, Isa::Arm));
        assert!(!looks_like(&img, Isa::Aarch64));
        assert!(!looks_like(&[0u8; 16384], Isa::Arm));
    }

    /// x86-64 filler code: 64-bit moves, calls into the first 64 KiB,
    /// returns and NOPs.
    fn x86_code(len: usize, rng: &mut Lcg) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match rng.next() % 4 {
                0 => {
                    let target = (rng.next() % (64 << 10)) as i64;
                    let rel = (target - (out.len() as i64 + 5)) as i32;
                    out.push(0xE8);
                    out.extend_from_slice(&rel.to_le_bytes());
                }
                1 => out.extend_from_slice(&[0x48, 0x89, 0xC7]),
                2 => out.extend_from_slice(&[0x48, 0x8B, 0x45, 0xF8]),
                _ => out.extend_from_slice(&[0xC3, 0x90, 0x90]),
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn x86_64_raw_images_are_found_with_their_pointer_phase() {
        let mut rng = Lcg(7);
        let base = 0x0040_0F9Cu32;
        let mut img = x86_code(256 << 10, &mut rng);
        img.extend(data(256 << 10, &mut rng));
        // 8-byte pointers at 8-aligned addresses: offsets 4 modulo 8.
        for at in ((256 << 10) + 4..(500 << 10)).step_by(256) {
            let p = base + rng.next() % (480 << 10);
            img[at..at + 8].copy_from_slice(&u64::from(p).to_le_bytes());
        }
        assert!(looks_like(&img, Isa::X86_64));
        assert!(!looks_like(&img, Isa::Aarch64));
        let l = super::super::layout::detect(&img, super::super::layout::Arch::Auto)
            .expect("x86-64 raw image");
        assert_eq!(l.isa, Isa::X86_64);
        let flags: Vec<u8> = l.ranges.iter().map(|r| r.flags).collect();
        assert_eq!(flags, [FLAG_BRANCHES | FLAG_POINTERS, FLAG_POINTERS]);
        let found = l.ranges[0].address;
        assert_eq!(found % 8, 4, "{found:#x}");
        assert_eq!(found & !0xFFFF, 0x0040_0000, "{found:#x}");
        // A firmware volume of PE modules is not one program.
        let mut volume = img.clone();
        for k in 0..MANY_MODULES {
            let at = (300 << 10) + k * 4096;
            volume[at..at + 6].copy_from_slice(b"PE\0\0\x64\x86");
        }
        assert!(!looks_like(&volume, Isa::X86_64));
        // AArch64 code is not x86-64.
        let a64 = a64_code(256 << 10, &mut rng);
        assert!(!looks_like(&a64, Isa::X86_64));
    }

    proptest::proptest! {
        /// Any bytes, as any ISA: a layout whose ranges tile the image and
        /// fit the 32-bit address space, never a panic.
        #[test]
        fn any_bytes_get_a_layout_that_fits(
            words in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..6000),
            high in proptest::prelude::any::<bool>(),
            isa in 0usize..3,
        ) {
            let isa = [Isa::Aarch64, Isa::Arm, Isa::X86_64][isa];
            // Pointer-like words near the top of the address space, or not.
            let img: Vec<u8> = words
                .iter()
                .flat_map(|&w| if high { w | 0xFFF0_0000 } else { w }.to_le_bytes())
                .collect();
            let l = layout(&img, isa);
            let mut at = 0u32;
            for r in &l.ranges {
                proptest::prop_assert_eq!(r.offset, at);
                proptest::prop_assert!(u64::from(r.address) + u64::from(r.len) <= 1 << 32);
                at += r.len;
            }
            proptest::prop_assert_eq!(at as usize, img.len());
            let _ = looks_like(&img, isa);
        }
    }
}
