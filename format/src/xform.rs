//! XFORM: the reference transform that lets moved code diff to nothing.
//!
//! When a function moves, every branch and pointer that crosses the move
//! changes its bytes, each by a different amount. An XFORM package carries
//! an *address map* `M` (old address → new address, a step function) and
//! describes where each image sits in memory; both sides then rewrite
//! references before the bytes are diffed:
//!
//! - **F** ([`Xform::forward`], new image, generator only) turns every
//!   relative branch into its absolute target (modulo the field width),
//!   as xz's BCJ filters do. **F⁻¹** ([`Xform::inverse`], the applier)
//!   turns it back using the real output address.
//! - **T** ([`Xform::source`], old image, applier and generator) turns
//!   every relative branch into the absolute form of `M(target)`, and every
//!   aligned pointer word whose value falls in a pointer window into
//!   `M(value)`.
//!
//! Code and pointers that moved as `M` predicts are then byte-identical in
//! the two transformed images, so the ordinary matcher finds them.
//!
//! Every transform works on independent [`XFORM_BLOCK`]-byte blocks of its
//! image (block `k` is image bytes `[256 k, 256 k + 256)`), scanned from the
//! block start; no reference straddling a block boundary is touched. A block
//! is therefore transformed the same whether an applier reads it alone, in a
//! chunk, or as part of the whole image: ops stay independent, a resumed op
//! recomputes exactly, and an in-place applier may read only its op's source
//! extents (the generator rounds them out to whole blocks).
//!
//! F and F⁻¹ decide sites only from instruction bits they never rewrite and
//! from the branch target, which is the same value in both forms, so
//! `inverse(forward(x)) == x` for any bytes (property-tested).
//!
//! Instruction sets: Thumb-2 (ARMv7-M, ARMv8-M) BL and B.W (encoding T4);
//! pointer words are 4-aligned little-endian words, Thumb bit kept.
//!
//! ## Payload (the XFORM op's stored payload, little-endian)
//!
//! ```text
//! u8 version (1) | u8 isa (1 = Thumb-2) | u8 flags | u8 old range count
//! | u8 new range count | u8 window count | u8 branch bits (12..=24)
//! | u8 reserved (0)
//! | old ranges: (u32 offset, u32 len, u32 address) × count
//! | new ranges: (u32 offset, u32 len, u32 address) × count
//! | pointer windows: (u32 low, u32 high) × count        (old addresses)
//! | u32 breakpoint count | (u32 address, i32 delta) × count
//! ```
//!
//! Ranges say which image bytes sit at which address (one for a raw image,
//! one per loaded section of an ELF file); bytes outside every range are
//! never transformed, and a branch counts only when its target lies inside
//! a range of its own image. `M(t) = t + delta` of the last breakpoint at
//! or below `t`, and `t` below the first one.

use crate::bytes::Reader;
use crate::error::{Error, Result};

/// Bytes of one transform block; image offsets of blocks are multiples.
pub const XFORM_BLOCK: usize = 256;
/// Payload version this code reads and writes.
pub const XFORM_VERSION: u8 = 2;
/// Most address ranges per image.
pub const MAX_RANGES: usize = 16;
/// Most pointer windows.
pub const MAX_WINDOWS: usize = 4;
/// Most breakpoints of the address map (8 bytes each in the applier's RAM).
pub const MAX_BREAKPOINTS: u32 = 8192;
/// Bytes of the fixed part of the payload.
pub const XFORM_FIXED_LEN: usize = 8;
/// Bytes of one address range record.
pub const RANGE_LEN: usize = 16;
/// Bytes of one pointer window record.
pub const WINDOW_LEN: usize = 8;
/// Bytes of one breakpoint record.
pub const BREAKPOINT_LEN: usize = 8;

/// Largest payload the format allows (every count at its limit).
pub const MAX_XFORM_LEN: u32 = (XFORM_FIXED_LEN
    + 2 * MAX_RANGES * RANGE_LEN
    + MAX_WINDOWS * WINDOW_LEN
    + 4
    + MAX_BREAKPOINTS as usize * BREAKPOINT_LEN) as u32;

/// Narrowest branch window.
pub const MIN_BRANCH_BITS: u8 = 12;
/// Widest branch window of any instruction set (see [`Isa::max_branch_bits`]).
pub const MAX_BRANCH_BITS: u8 = 32;

/// Transform branches (flag bit).
pub const FLAG_BRANCHES: u8 = 1;
/// Transform pointer words (flag bit, T only).
pub const FLAG_POINTERS: u8 = 2;

/// The instruction set whose references are transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Isa {
    /// Thumb-2: Cortex-M (ARMv7-M, ARMv8-M) and Thumb code of A/R cores.
    Thumb2 = 1,
    /// AArch64 (ARMv8-A and later, 64-bit).
    Aarch64 = 2,
    /// x86-64.
    X86_64 = 3,
    /// A32: the ARM instruction set of ARMv7-A/R and AArch32.
    Arm = 4,
}

impl Isa {
    /// The ISA for a payload byte, if known.
    pub fn from_u8(v: u8) -> Option<Isa> {
        match v {
            1 => Some(Isa::Thumb2),
            2 => Some(Isa::Aarch64),
            3 => Some(Isa::X86_64),
            4 => Some(Isa::Arm),
            _ => None,
        }
    }

    /// Lower-case name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Thumb2 => "thumb2",
            Isa::Aarch64 => "aarch64",
            Isa::X86_64 => "x86_64",
            Isa::Arm => "arm",
        }
    }

    /// Widest branch window: the branch field's width (Thumb BL 24 bits
    /// of half-words, AArch64 B/BL 26 bits of words, x86-64 rel32 and
    /// disp32 32 bits of bytes).
    pub fn max_branch_bits(self) -> u8 {
        match self {
            Isa::Thumb2 => 24,
            Isa::Aarch64 => 26,
            Isa::X86_64 => 32,
            Isa::Arm => 24,
        }
    }
}

/// Image bytes `[offset, offset + len)` sit at addresses `[address, …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// Offset in the image.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
    /// Address of the first byte.
    pub address: u32,
    /// What the range holds: [`FLAG_BRANCHES`] (code, scanned for
    /// branches) and/or [`FLAG_POINTERS`] (scanned for pointer words by T).
    pub flags: u8,
}

impl AddrRange {
    fn contains_address(&self, a: u32) -> bool {
        a.wrapping_sub(self.address) < self.len
    }
}

/// Old addresses `[low, high)` that pointer words may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// First address.
    pub low: u32,
    /// One past the last address.
    pub high: u32,
}

/// From `address` on (up to the next breakpoint), `M(t) = t + delta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Breakpoint {
    /// First old address the delta applies to.
    pub address: u32,
    /// New address minus old address.
    pub delta: i32,
}

/// The parts of an XFORM payload, for encoding.
#[derive(Debug, Clone, Copy)]
pub struct XformParts<'a> {
    /// Instruction set.
    pub isa: Isa,
    /// [`FLAG_BRANCHES`] and/or [`FLAG_POINTERS`].
    pub flags: u8,
    /// Width of the branch window in half-words: a branch is rewritten
    /// only when its displacement fits this many bits, signed, and its
    /// absolute form is its target modulo `2^branch_bits` half-words
    /// ([`MIN_BRANCH_BITS`] to 24). Wide enough for the image, narrow
    /// enough that data rarely looks like a branch.
    pub branch_bits: u8,
    /// Where the old image's bytes sit, sorted by offset, disjoint.
    pub old_ranges: &'a [AddrRange],
    /// Where the new image's bytes sit, sorted by offset, disjoint.
    pub new_ranges: &'a [AddrRange],
    /// Old addresses pointer words may hold.
    pub windows: &'a [Window],
    /// The address map, ascending strictly by address.
    pub breakpoints: &'a [Breakpoint],
}

impl XformParts<'_> {
    /// Length of the encoded payload.
    pub fn encoded_len(&self) -> usize {
        XFORM_FIXED_LEN
            + (self.old_ranges.len() + self.new_ranges.len()) * RANGE_LEN
            + self.windows.len() * WINDOW_LEN
            + 4
            + self.breakpoints.len() * BREAKPOINT_LEN
    }

    /// Encodes the payload into `out` (at least [`Self::encoded_len`]
    /// bytes), returning the bytes written; `None` when `out` is short or
    /// a count exceeds the format's limits. The result is not checked:
    /// [`Xform::parse`] it to be sure.
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.encoded_len();
        if self.old_ranges.len() > MAX_RANGES
            || self.new_ranges.len() > MAX_RANGES
            || self.windows.len() > MAX_WINDOWS
            || self.breakpoints.len() > MAX_BREAKPOINTS as usize
            || !(MIN_BRANCH_BITS..=self.isa.max_branch_bits()).contains(&self.branch_bits)
        {
            return None;
        }
        let out = out.get_mut(..len)?;
        let mut pos = 0;
        let mut put = |b: &[u8]| {
            if let Some(d) = out.get_mut(pos..pos + b.len()) {
                d.copy_from_slice(b);
            }
            pos += b.len();
        };
        put(&[
            XFORM_VERSION,
            self.isa as u8,
            self.flags,
            self.old_ranges.len() as u8,
            self.new_ranges.len() as u8,
            self.windows.len() as u8,
            self.branch_bits,
            0,
        ]);
        for r in self.old_ranges.iter().chain(self.new_ranges) {
            put(&r.offset.to_le_bytes());
            put(&r.len.to_le_bytes());
            put(&r.address.to_le_bytes());
            put(&u32::from(r.flags).to_le_bytes());
        }
        for w in self.windows {
            put(&w.low.to_le_bytes());
            put(&w.high.to_le_bytes());
        }
        put(&(self.breakpoints.len() as u32).to_le_bytes());
        for b in self.breakpoints {
            put(&b.address.to_le_bytes());
            put(&b.delta.to_le_bytes());
        }
        Some(pos)
    }
}

impl XformParts<'_> {
    /// The payload as sent in the XFORM op: [`Self::encode`]'s layout with
    /// ranges, windows and breakpoints varint-coded (see [`Expander`]), into `out`;
    /// returns the bytes written, `None` when `out` is short or a count
    /// exceeds the format's limits.
    pub fn encode_wire(&self, out: &mut [u8]) -> Option<usize> {
        let fixed = self.encoded_len() - 4 - self.breakpoints.len() * BREAKPOINT_LEN;
        let mut full =
            [0u8; XFORM_FIXED_LEN + 2 * MAX_RANGES * RANGE_LEN + MAX_WINDOWS * WINDOW_LEN];
        let head = XformParts {
            breakpoints: &[],
            ..*self
        };
        if self.breakpoints.len() > MAX_BREAKPOINTS as usize {
            return None;
        }
        head.encode(&mut full)?;
        let mut pos = 0usize;
        let mut put = |b: &[u8]| -> Option<()> {
            out.get_mut(pos..pos + b.len())?.copy_from_slice(b);
            pos += b.len();
            Some(())
        };
        put(full.get(..XFORM_FIXED_LEN)?)?;
        let mut buf = [0u8; crate::patch::MAX_VARINT_LEN];
        // Ranges and windows: each word as its difference from what the
        // words before it predict (`HeadCounts::prediction`).
        let counts = HeadCounts::of(&full);
        for at in (XFORM_FIXED_LEN..fixed).step_by(4) {
            let word = le32(&full, at);
            let change = word.wrapping_sub(counts.prediction(&full, at)) as i32;
            let n = crate::patch::write_varint(crate::patch::zigzag(change.into()), &mut buf);
            put(buf.get(..n)?)?;
        }
        let n = crate::patch::write_varint(self.breakpoints.len() as u64, &mut buf);
        put(buf.get(..n)?)?;
        let (mut prev_address, mut prev_delta) = (0u32, 0i32);
        for (i, b) in self.breakpoints.iter().enumerate() {
            let step = if i == 0 {
                b.address
            } else {
                b.address.checked_sub(prev_address).filter(|&d| d > 0)?
            };
            let n = crate::patch::write_varint(step.into(), &mut buf);
            put(buf.get(..n)?)?;
            let change = i64::from(b.delta.wrapping_sub(prev_delta));
            let n = crate::patch::write_varint(crate::patch::zigzag(change), &mut buf);
            put(buf.get(..n)?)?;
            (prev_address, prev_delta) = (b.address, b.delta);
        }
        Some(pos)
    }
}

/// Expands the XFORM op's payload as sent into the form [`Xform::parse`]
/// reads, fed in pieces of any size, with a few bytes of state: an
/// applier streams the op from the package into its RAM.
///
/// The wire form is [`XformParts::encode`]'s with every field after the
/// 8 fixed bytes a LEB128 varint. Each word of the ranges and windows is
/// coded as its difference (zigzag) from a prediction made from the words
/// before it: a range continues the previous range of its image, a new
/// range repeats the old range of the same index, a window's end is its
/// start (see `HeadCounts::prediction`). The breakpoint count follows, then
/// per breakpoint its address minus the previous one (the first: the
/// address itself; later ones at least 1) and its delta minus the previous
/// delta (zigzag). Varints are minimal and fit 32 bits. Sections keep
/// their order and change their size little, and a map's addresses grow by
/// a function's size while its deltas change little: a range takes about
/// 6 bytes instead of 16, a breakpoint about 3 instead of 8.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expander {
    /// Bytes written to the expanded form.
    written: u32,
    /// Bytes of the fixed part, ranges and windows (known after 8 bytes).
    head: u32,
    stage: ExpandStage,
    /// The varint being read: its value so far and bits taken.
    acc: u32,
    shift: u8,
    /// Breakpoints still to read.
    left: u32,
    address: u32,
    delta: i32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ExpandStage {
    #[default]
    Head,
    Words,
    Count,
    Address,
    Delta,
    Done,
}

impl Expander {
    /// Expands `input`, the next bytes of the wire form whose first byte
    /// sits at package offset `offset`, appending to `out` (the whole
    /// expanded form, as far as written so far).
    ///
    /// # Errors
    /// `InvalidField` for a bad varint, count or address step, `BadLength`
    /// when `out` is too short or bytes follow the last breakpoint.
    pub fn feed(&mut self, input: &[u8], offset: u64, out: &mut [u8]) -> Result<()> {
        for (k, &byte) in input.iter().enumerate() {
            let at = offset.saturating_add(k as u64);
            self.step(byte, at, out)?;
        }
        Ok(())
    }

    /// Bytes of the expanded form, once the last breakpoint was read.
    ///
    /// # Errors
    /// `Truncated` when the wire form ended early.
    pub fn finish(&self, offset: u64) -> Result<usize> {
        match self.stage {
            ExpandStage::Done => Ok(self.written as usize),
            _ => Err(Error::Truncated {
                offset,
                needed: 1,
                available: 0,
                what: "xform breakpoints",
            }),
        }
    }

    fn put(&mut self, bytes: &[u8], at: u64, out: &mut [u8]) -> Result<()> {
        let start = self.written as usize;
        let room = out.len() as u64;
        let dst = out
            .get_mut(start..start + bytes.len())
            .ok_or(Error::BadLength {
                offset: at,
                what: "expanded xform (the manifest's xform length)",
                expected: room,
                found: (start + bytes.len()) as u64,
            })?;
        dst.copy_from_slice(bytes);
        self.written += bytes.len() as u32;
        Ok(())
    }

    fn step(&mut self, byte: u8, at: u64, out: &mut [u8]) -> Result<()> {
        let bad = |what| Error::InvalidField {
            offset: at,
            what,
            found: byte.into(),
        };
        match self.stage {
            ExpandStage::Head => {
                self.put(&[byte], at, out)?;
                if self.written == XFORM_FIXED_LEN as u32 {
                    self.head = HeadCounts::of(out).head_len() as u32;
                    self.stage = match self.head == self.written {
                        true => ExpandStage::Count,
                        false => ExpandStage::Words,
                    };
                }
                return Ok(());
            }
            ExpandStage::Done => {
                return Err(Error::BadLength {
                    offset: at,
                    what: "xform payload (nothing after the last breakpoint)",
                    expected: 0,
                    found: 1,
                })
            }
            _ => {}
        }
        // A LEB128 u32, minimal.
        if self.shift == 28 && byte > 0x0F {
            return Err(bad("xform varint (fits 32 bits)"));
        }
        if self.shift > 0 && byte == 0 {
            return Err(bad("xform varint (minimal)"));
        }
        self.acc |= u32::from(byte & 0x7F) << self.shift;
        if byte & 0x80 != 0 {
            self.shift += 7;
            return Ok(());
        }
        let v = core::mem::take(&mut self.acc);
        self.shift = 0;
        match self.stage {
            ExpandStage::Words => {
                let at_word = self.written as usize;
                let change = crate::patch::unzigzag(v.into()) as i32;
                let word = HeadCounts::of(out)
                    .prediction(out, at_word)
                    .wrapping_add(change as u32);
                self.put(&word.to_le_bytes(), at, out)?;
                if self.written == self.head {
                    self.stage = ExpandStage::Count;
                }
            }
            ExpandStage::Count => {
                if v > MAX_BREAKPOINTS {
                    return Err(bad("xform breakpoint count (at most 8192)"));
                }
                self.put(&v.to_le_bytes(), at, out)?;
                self.left = v;
                self.stage = if v == 0 {
                    ExpandStage::Done
                } else {
                    ExpandStage::Address
                };
            }
            ExpandStage::Address => {
                let first = self.written == self.head + 4;
                self.address = if first {
                    v
                } else if v == 0 {
                    return Err(bad("xform breakpoint step (at least 1)"));
                } else {
                    self.address
                        .checked_add(v)
                        .ok_or(bad("xform breakpoint address (below 4 GiB)"))?
                };
                self.put(&self.address.to_le_bytes(), at, out)?;
                self.stage = ExpandStage::Delta;
            }
            ExpandStage::Delta => {
                let change = crate::patch::unzigzag(v.into()) as i32;
                self.delta = self.delta.wrapping_add(change);
                self.put(&self.delta.to_le_bytes(), at, out)?;
                self.left -= 1;
                self.stage = if self.left == 0 {
                    ExpandStage::Done
                } else {
                    ExpandStage::Address
                };
            }
            ExpandStage::Head | ExpandStage::Done => {}
        }
        Ok(())
    }
}

/// The record counts of an expanded payload's fixed part, which place
/// every word of its ranges and windows.
#[derive(Debug, Clone, Copy)]
struct HeadCounts {
    old_ranges: usize,
    new_ranges: usize,
    windows: usize,
}

impl HeadCounts {
    /// The counts in the fixed part at the start of `expanded` (zero where
    /// it is shorter).
    fn of(expanded: &[u8]) -> HeadCounts {
        let count = |i: usize| usize::from(*expanded.get(i).unwrap_or(&0));
        HeadCounts {
            old_ranges: count(3),
            new_ranges: count(4),
            windows: count(5),
        }
    }

    /// Bytes of the fixed part, ranges and windows.
    fn head_len(&self) -> usize {
        XFORM_FIXED_LEN
            + (self.old_ranges + self.new_ranges) * RANGE_LEN
            + self.windows * WINDOW_LEN
    }

    /// The word at expanded offset `at` (in the ranges or windows) as
    /// predicted from the words before it in `expanded`:
    ///
    /// - a new range with an old range of the same index, that old range
    ///   (its address moved by as much as its offset);
    /// - any other range after the first of its image, the previous one
    ///   continued: offset at its end, the same length, address and flags,
    ///   the address moved by as much as the offset;
    /// - the first range of an image: zeros, the address equal to the
    ///   offset;
    /// - a window: its start 0, its end its start.
    fn prediction(&self, expanded: &[u8], at: usize) -> u32 {
        let ranges_end = XFORM_FIXED_LEN + (self.old_ranges + self.new_ranges) * RANGE_LEN;
        let word = |at: usize| le32(expanded, at);
        if at >= ranges_end {
            let field = (at - ranges_end) % WINDOW_LEN;
            return if field == 0 { 0 } else { word(at - 4) };
        }
        let index = (at - XFORM_FIXED_LEN) / RANGE_LEN;
        let start = XFORM_FIXED_LEN + index * RANGE_LEN;
        let field = (at - start) / 4;
        let (first_of_image, new_index) = match index.checked_sub(self.old_ranges) {
            Some(i) => (i == 0, Some(i)),
            None => (index == 0, None),
        };
        // The record the prediction starts from, and whether it is one of
        // the same index in the old image (else the previous range).
        let base = match new_index {
            Some(i) if i < self.old_ranges => Some((XFORM_FIXED_LEN + i * RANGE_LEN, true)),
            _ if first_of_image => None,
            _ => Some((start - RANGE_LEN, false)),
        };
        let Some((base, same_index)) = base else {
            // Field 2, the address, is predicted equal to the offset.
            return if field == 2 { word(start) } else { 0 };
        };
        let offset = match same_index {
            true => word(base),
            false => word(base).wrapping_add(word(base + 4)),
        };
        match field {
            0 => offset,
            2 => word(base + 8).wrapping_add(word(start).wrapping_sub(word(base))),
            _ => word(base + 4 * field),
        }
    }
}

/// Expands a whole wire-form payload (at package offset `offset`) into
/// `out`, returning the expanded length.
///
/// # Errors
/// As [`Expander::feed`] and [`Expander::finish`].
pub fn expand(wire: &[u8], offset: u64, out: &mut [u8]) -> Result<usize> {
    let mut e = Expander::default();
    e.feed(wire, offset, out)?;
    e.finish(offset.saturating_add(wire.len() as u64))
}

/// A checked XFORM payload, read in place (no copy, no allocation).
#[derive(Debug, Clone, Copy)]
pub struct Xform<'a> {
    isa: Isa,
    flags: u8,
    branch_bits: u8,
    old_ranges: &'a [u8],
    new_ranges: &'a [u8],
    windows: &'a [u8],
    breakpoints: &'a [u8],
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn range_at(b: &[u8], i: usize) -> AddrRange {
    AddrRange {
        offset: le32(b, i * RANGE_LEN),
        len: le32(b, i * RANGE_LEN + 4),
        address: le32(b, i * RANGE_LEN + 8),
        flags: le32(b, i * RANGE_LEN + 12) as u8,
    }
}

impl<'a> Xform<'a> {
    /// Parses and checks an XFORM payload that starts at package offset
    /// `offset`: known version, ISA and flags, counts within the limits,
    /// ranges sorted, disjoint, non-empty and without overflow, windows
    /// non-empty, breakpoints strictly ascending, no trailing bytes.
    ///
    /// # Errors
    /// `Truncated`, `InvalidField`, `NonZeroReserved`, `BadLength`.
    pub fn parse(bytes: &'a [u8], offset: u64) -> Result<Xform<'a>> {
        let mut r = Reader::new(bytes, offset);
        let field = |at: u64, what: &'static str, found: u64| Error::InvalidField {
            offset: at,
            what,
            found,
        };
        let at = r.offset();
        let version = r.u8("xform version")?;
        if version != XFORM_VERSION {
            return Err(field(at, "xform version (1)", version.into()));
        }
        let at = r.offset();
        let isa_byte = r.u8("xform instruction set")?;
        let isa = Isa::from_u8(isa_byte).ok_or_else(|| {
            field(
                at,
                "xform instruction set (1 = thumb2, 2 = aarch64, 3 = x86_64, 4 = arm)",
                isa_byte.into(),
            )
        })?;
        let at = r.offset();
        let flags = r.u8("xform flags")?;
        if flags & !(FLAG_BRANCHES | FLAG_POINTERS) != 0 {
            return Err(field(
                at,
                "xform flags (1 branches, 2 pointers)",
                flags.into(),
            ));
        }
        let count = |r: &mut Reader<'_>, what, max: usize| -> Result<usize> {
            let at = r.offset();
            let n = r.u8(what)?;
            if usize::from(n) > max {
                return Err(Error::BadLength {
                    offset: at,
                    what,
                    expected: max as u64,
                    found: n.into(),
                });
            }
            Ok(n.into())
        };
        let n_old = count(&mut r, "xform old range count (at most 16)", MAX_RANGES)?;
        let n_new = count(&mut r, "xform new range count (at most 16)", MAX_RANGES)?;
        let n_win = count(&mut r, "xform window count (at most 4)", MAX_WINDOWS)?;
        let at = r.offset();
        let branch_bits = r.u8("xform branch bits")?;
        if !(MIN_BRANCH_BITS..=isa.max_branch_bits()).contains(&branch_bits) {
            return Err(field(
                at,
                "xform branch bits (12 to 24 for thumb2 and arm, 26 for aarch64, 32 for x86_64)",
                branch_bits.into(),
            ));
        }
        r.reserved::<1>()?;
        let ranges = |r: &mut Reader<'a>, n: usize| -> Result<&'a [u8]> {
            let base = r.offset();
            let raw = r.take(n * RANGE_LEN, "xform address ranges")?;
            let mut end = 0u64;
            for i in 0..n {
                let g = range_at(raw, i);
                let at = base + (i * RANGE_LEN) as u64;
                let flags = le32(raw, i * RANGE_LEN + 12);
                if flags & !u32::from(FLAG_BRANCHES | FLAG_POINTERS) != 0 {
                    return Err(field(
                        at + 12,
                        "xform range flags (1 code, 2 pointers)",
                        flags.into(),
                    ));
                }
                if g.len == 0
                    || u64::from(g.offset) < end
                    || u64::from(g.address) + u64::from(g.len) > 1 << 32
                {
                    return Err(field(
                        at,
                        "xform address range (non-empty, sorted, disjoint, below 4 GiB)",
                        g.offset.into(),
                    ));
                }
                end = u64::from(g.offset) + u64::from(g.len);
            }
            Ok(raw)
        };
        let old_ranges = ranges(&mut r, n_old)?;
        let new_ranges = ranges(&mut r, n_new)?;
        let base = r.offset();
        let windows = r.take(n_win * WINDOW_LEN, "xform pointer windows")?;
        for i in 0..n_win {
            let (low, high) = (le32(windows, i * 8), le32(windows, i * 8 + 4));
            if low >= high {
                return Err(field(
                    base + (i * WINDOW_LEN) as u64,
                    "xform pointer window (low below high)",
                    low.into(),
                ));
            }
        }
        let at = r.offset();
        let n_bp = r.u32("xform breakpoint count")?;
        if n_bp > MAX_BREAKPOINTS {
            return Err(Error::BadLength {
                offset: at,
                what: "xform breakpoint count (at most 8192)",
                expected: MAX_BREAKPOINTS.into(),
                found: n_bp.into(),
            });
        }
        let base = r.offset();
        let breakpoints = r.take(n_bp as usize * BREAKPOINT_LEN, "xform breakpoints")?;
        let mut prev: Option<u32> = None;
        for i in 0..n_bp as usize {
            let a = le32(breakpoints, i * BREAKPOINT_LEN);
            if prev.is_some_and(|p| a <= p) {
                return Err(field(
                    base + (i * BREAKPOINT_LEN) as u64,
                    "xform breakpoint address (strictly ascending)",
                    a.into(),
                ));
            }
            prev = Some(a);
        }
        if r.offset() != offset + bytes.len() as u64 {
            return Err(Error::BadLength {
                offset,
                what: "xform payload length (exactly its records)",
                expected: r.offset() - offset,
                found: bytes.len() as u64,
            });
        }
        Ok(Xform {
            isa,
            flags,
            branch_bits,
            old_ranges,
            new_ranges,
            windows,
            breakpoints,
        })
    }

    /// The instruction set.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The flags ([`FLAG_BRANCHES`], [`FLAG_POINTERS`]).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Width of the branch window (see [`XformParts::branch_bits`]).
    pub fn branch_bits(&self) -> u8 {
        self.branch_bits
    }

    /// Number of address-map breakpoints.
    pub fn breakpoint_count(&self) -> usize {
        self.breakpoints.len() / BREAKPOINT_LEN
    }

    /// Breakpoint `i`.
    pub fn breakpoint(&self, i: usize) -> Option<Breakpoint> {
        (i < self.breakpoint_count()).then(|| Breakpoint {
            address: le32(self.breakpoints, i * BREAKPOINT_LEN),
            delta: le32(self.breakpoints, i * BREAKPOINT_LEN + 4) as i32,
        })
    }

    /// The old image's address ranges.
    pub fn old_ranges(&self) -> impl Iterator<Item = AddrRange> + 'a {
        let raw = self.old_ranges;
        (0..raw.len() / RANGE_LEN).map(move |i| range_at(raw, i))
    }

    /// The new image's address ranges.
    pub fn new_ranges(&self) -> impl Iterator<Item = AddrRange> + 'a {
        let raw = self.new_ranges;
        (0..raw.len() / RANGE_LEN).map(move |i| range_at(raw, i))
    }

    /// The pointer windows.
    pub fn windows(&self) -> impl Iterator<Item = Window> + 'a {
        let raw = self.windows;
        (0..raw.len() / WINDOW_LEN).map(move |i| Window {
            low: le32(raw, i * WINDOW_LEN),
            high: le32(raw, i * WINDOW_LEN + 4),
        })
    }

    /// The address map: where old address `t` is in the new image.
    pub fn map(&self, t: u32) -> u32 {
        // Number of breakpoints at or below t.
        let (mut lo, mut hi) = (0usize, self.breakpoint_count());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if le32(self.breakpoints, mid * BREAKPOINT_LEN) <= t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        match lo.checked_sub(1) {
            Some(i) => t.wrapping_add(le32(self.breakpoints, i * BREAKPOINT_LEN + 4)),
            None => t,
        }
    }

    /// F: rewrites the new image's `bytes`, which start at image offset
    /// `offset` (a multiple of [`XFORM_BLOCK`]), block by block. A short
    /// last block is the image's last.
    pub fn forward(&self, bytes: &mut [u8], offset: u64) {
        self.blocks(bytes, offset, Side::Forward);
    }

    /// F⁻¹: undoes [`Xform::forward`] on output bytes at image offset
    /// `offset` (a multiple of [`XFORM_BLOCK`]).
    pub fn inverse(&self, bytes: &mut [u8], offset: u64) {
        self.blocks(bytes, offset, Side::Inverse);
    }

    /// T: rewrites the old image's `bytes`, which start at image offset
    /// `offset` (a multiple of [`XFORM_BLOCK`]), into the new image's
    /// absolute domain through the address map.
    pub fn source(&self, bytes: &mut [u8], offset: u64) {
        self.blocks(bytes, offset, Side::Source);
    }

    /// Calls `visit` with every reference site of `bytes` (at image offset
    /// `offset`, a multiple of [`XFORM_BLOCK`]) that T (old image) or F
    /// (new image) rewrites, with the site's image offset, in order; the
    /// bytes are not changed. For the generator's address-map inference.
    pub fn sites(&self, bytes: &[u8], offset: u64, image: Image, mut visit: impl FnMut(u64, Site)) {
        let side = match image {
            Image::Old => Side::Source,
            Image::New => Side::Forward,
        };
        let mut buf = [0u8; XFORM_BLOCK];
        for (k, block) in bytes.chunks(XFORM_BLOCK).enumerate() {
            let at = offset.saturating_add((k * XFORM_BLOCK) as u64);
            if let Some(b) = buf.get_mut(..block.len()) {
                b.copy_from_slice(block);
                self.block(b, at, side, &mut |i, site| visit(at + i as u64, site));
            }
        }
    }

    fn blocks(&self, bytes: &mut [u8], offset: u64, side: Side) {
        for (k, block) in bytes.chunks_mut(XFORM_BLOCK).enumerate() {
            let at = offset.saturating_add((k * XFORM_BLOCK) as u64);
            self.block(block, at, side, &mut |_, _| {});
        }
    }

    fn block(
        &self,
        block: &mut [u8],
        offset: u64,
        side: Side,
        visit: &mut impl FnMut(usize, Site),
    ) {
        let raw = match side {
            Side::Source => self.old_ranges,
            Side::Forward | Side::Inverse => self.new_ranges,
        };
        let end = offset.saturating_add(block.len() as u64);
        for i in 0..raw.len() / RANGE_LEN {
            let g = range_at(raw, i);
            let (gs, ge) = (u64::from(g.offset), u64::from(g.offset) + u64::from(g.len));
            let (s, e) = (offset.max(gs), end.min(ge));
            if s >= e {
                continue;
            }
            let first = (s - offset) as usize;
            let address = g.address.wrapping_add((s - gs) as u32);
            let flags = self.flags & g.flags;
            if let Some(p) = block.get_mut(first..(e - offset) as usize) {
                self.piece(p, address, raw, side, flags, &mut |i, site| {
                    visit(first + i, site)
                });
            }
        }
    }

    /// Transforms one piece of a block that lies in one range and starts at
    /// `address`.
    fn piece(
        &self,
        p: &mut [u8],
        address: u32,
        ranges: &[u8],
        side: Side,
        flags: u8,
        visit: &mut impl FnMut(usize, Site),
    ) {
        match self.isa {
            Isa::Thumb2 => self.thumb_piece(p, address, ranges, side, flags, visit),
            Isa::Aarch64 => self.a64_piece(p, address, ranges, side, flags, visit),
            Isa::X86_64 => self.x86_piece(p, address, ranges, side, flags, visit),
            Isa::Arm => self.arm_piece(p, address, ranges, side, flags, visit),
        }
    }

    /// Whether `target` lies in one of `ranges`.
    fn in_ranges(ranges: &[u8], target: u32) -> bool {
        (0..ranges.len() / RANGE_LEN).any(|i| range_at(ranges, i).contains_address(target))
    }

    /// T's new absolute target for a reference at `at` to `target`: `M`
    /// of it inside the old image, else the target moved with the site.
    fn source_target(&self, at: u32, target: u32, in_image: bool) -> u32 {
        if in_image {
            self.map(target)
        } else {
            target.wrapping_add(self.map(at).wrapping_sub(at))
        }
    }

    /// T's pointer words in a piece at `address`: 4-aligned 32-bit words
    /// (bit 0 kept: Thumb code addresses), or with `wide` 8-aligned 64-bit
    /// words whose high half is 0, that `free` says no rewritten
    /// instruction overlaps and whose value lies in a pointer window.
    fn pointers(
        &self,
        p: &mut [u8],
        address: u32,
        wide: bool,
        free: impl Fn(usize) -> bool,
        visit: &mut impl FnMut(usize, Site),
    ) {
        let step = if wide { 8 } else { 4 };
        let mut i = (address.wrapping_neg() & (step as u32 - 1)) as usize;
        while i + step <= p.len() {
            let w = le32(p, i);
            let (v, keep) = if wide { (w, 0) } else { (w & !1, w & 1) };
            let narrow = !wide || le32(p, i + 4) == 0;
            if narrow && free(i) && self.windows().any(|win| (win.low..win.high).contains(&v)) {
                visit(i, Site::Pointer { value: w });
                if let Some(d) = p.get_mut(i..i + 4) {
                    d.copy_from_slice(&(self.map(v) | keep).to_le_bytes());
                }
            }
            i += step;
        }
    }

    /// Thumb-2: BL/B.W at every half-word, then pointer words.
    #[allow(clippy::too_many_arguments)]
    fn thumb_piece(
        &self,
        p: &mut [u8],
        address: u32,
        ranges: &[u8],
        side: Side,
        flags: u8,
        visit: &mut impl FnMut(usize, Site),
    ) {
        // Halfwords of the piece that belong to a rewritten branch.
        let mut touched: u128 = 0;
        if flags & FLAG_BRANCHES != 0 {
            let mut i = (address & 1) as usize;
            while i + 4 <= p.len() {
                let at = address.wrapping_add(i as u32);
                let word = le32(p, i);
                // BL (T1) and B.W (T4): 11110 S imm10 | 1 x J1 1 J2 imm11.
                if word & 0x9000_F800 != 0x9000_F000 {
                    i += 2;
                    continue;
                }
                // A candidate is passed over whole, rewritten or not: no
                // other site may start inside it, so no rewrite can change
                // the bytes a decision read, and F⁻¹ decides as F did.
                let site = p
                    .get_mut(i..i + 4)
                    .and_then(|w| self.branch(w, at, ranges, side));
                if let Some(target) = site {
                    if let Some(target) = target {
                        visit(i, Site::Branch { target });
                    }
                    touched |= 0b11 << (i / 2);
                }
                i += 4;
            }
        }
        if side == Side::Source && flags & FLAG_POINTERS != 0 {
            let free = |i: usize| touched & (0b11 << (i / 2)) == 0;
            self.pointers(p, address, false, free, visit);
        }
    }

    /// Rewrites the branch at `w` (4 bytes at address `at`) if it is one
    /// whose displacement lies in the branch window; returns `None` if it
    /// did not, else the target when that lies in `ranges`.
    ///
    /// F and F⁻¹ decide only from the opcode bits and from whether the
    /// 24-bit field lies in the window (`branch_bits` wide, signed): both
    /// forms of a rewritten branch lie in it and the others are left as
    /// they are, so the pair is a bijection (xz's BCJ uses the same device
    /// on x86). T, which need not be undone, maps a target in the old
    /// image's ranges through `M` and keeps any other (a false site, most
    /// likely) relative under the move `M` predicts for the site itself.
    fn branch(&self, w: &mut [u8], at: u32, ranges: &[u8], side: Side) -> Option<Option<u32>> {
        let word = le32(w, 0);
        let (hw1, hw2) = (word as u16, (word >> 16) as u16);
        // BL (T1) and B.W (T4): 11110 S imm10 | 1 x J1 1 J2 imm11, x = 1 for BL.
        if hw1 & 0xF800 != 0xF000 || hw2 & 0x9000 != 0x9000 {
            return None;
        }
        let bits = u32::from(self.branch_bits);
        let field = sext24(thumb_field(hw1, hw2));
        let half = 1i32 << (bits - 1);
        if !(-half..half).contains(&field) {
            return None;
        }
        let pc_half = at.wrapping_add(4) >> 1;
        let wrap = |v: u32| sext(v, bits) as u32 & 0xFF_FFFF;
        let rel = match side {
            Side::Forward | Side::Source => field,
            Side::Inverse => sext((field as u32).wrapping_sub(pc_half), bits),
        };
        let target = pc_half.wrapping_add(rel as u32) << 1;
        let in_image =
            (0..ranges.len() / RANGE_LEN).any(|i| range_at(ranges, i).contains_address(target));
        let new_field = match side {
            Side::Forward => wrap(target >> 1),
            Side::Inverse => rel as u32 & 0xFF_FFFF,
            Side::Source if in_image => wrap(self.map(target) >> 1),
            Side::Source => {
                let moved = self.map(at).wrapping_sub(at);
                wrap(target.wrapping_add(moved) >> 1)
            }
        };
        let (h1, h2) = thumb_encode(hw1, hw2, new_field);
        let out = u32::from(h1) | u32::from(h2) << 16;
        if let Some(d) = w.get_mut(..4) {
            d.copy_from_slice(&out.to_le_bytes());
        }
        Some(in_image.then_some(target))
    }

    /// AArch64: B/BL and ADRP at every word (T pairs an ADRP with the
    /// ADD or load/store that completes its address and maps the whole
    /// address), then 64-bit pointer words.
    #[allow(clippy::too_many_arguments)]
    fn a64_piece(
        &self,
        p: &mut [u8],
        address: u32,
        ranges: &[u8],
        side: Side,
        flags: u8,
        visit: &mut impl FnMut(usize, Site),
    ) {
        // Words of the piece (by offset / 4) that were rewritten.
        let mut touched: u64 = 0;
        let first = (address.wrapping_neg() & 3) as usize;
        let bits = u32::from(self.branch_bits);
        let page_bits = bits.saturating_sub(10).clamp(1, 21);
        if flags & FLAG_BRANCHES != 0 {
            let mut i = first;
            while i + 4 <= p.len() {
                let at = address.wrapping_add(i as u32);
                let w = le32(p, i);
                let rewritten = if w & 0x7C00_0000 == 0x1400_0000 {
                    // B (000101) and BL (100101): imm26 words.
                    self.a64_branch(w, at, ranges, side, bits)
                        .map(|(n, t)| ((w & 0xFC00_0000) | (n & 0x03FF_FFFF), t))
                } else if w & 0x9F00_0000 == 0x9000_0000 {
                    self.a64_adrp(p, i, at, ranges, side, page_bits, &mut touched)
                } else {
                    None
                };
                if let Some((new, target)) = rewritten {
                    put_word(p, i, new, target, &mut touched, visit);
                }
                i += 4;
            }
        }
        if side == Side::Source && flags & FLAG_POINTERS != 0 {
            let free = |i: usize| touched & (0b11 << (i / 4)) == 0;
            self.pointers(p, address, true, free, visit);
        }
    }

    /// x86-64: rel32 CALL, JMP and Jcc, and the disp32 of RIP-relative
    /// operands (MOV, LEA, CMP, ADD, SUB, TEST, MOVSXD, and CALL/JMP/PUSH
    /// through memory), scanned byte by byte and skipping each one taken,
    /// as xz's x86 BCJ does; then 64-bit pointer words. "pc" is the end of
    /// the 32-bit field: exact where nothing follows it.
    #[allow(clippy::too_many_arguments)]
    fn x86_piece(
        &self,
        p: &mut [u8],
        address: u32,
        ranges: &[u8],
        side: Side,
        flags: u8,
        visit: &mut impl FnMut(usize, Site),
    ) {
        // Bytes of the piece inside a rewritten field (one bit a byte).
        let mut touched = [0u64; 4];
        let mark = |t: &mut [u64; 4], i: usize| {
            if let Some(w) = t.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
        };
        let bits = u32::from(self.branch_bits);
        if flags & FLAG_BRANCHES != 0 {
            let mut i = 0usize;
            while let Some(at) = x86_next_field(p, i) {
                let pc = address.wrapping_add(at as u32 + 4);
                let f = le32(p, at) as i32;
                // Rewritten or not, a candidate is passed over whole (see
                // `thumb_piece`).
                if let Some((new, target, _)) = self.a64_field(f, pc, 0, bits, ranges, side, |t| t)
                {
                    if let Some(d) = p.get_mut(at..at + 4) {
                        d.copy_from_slice(&new.to_le_bytes());
                    }
                    for k in at..at + 4 {
                        mark(&mut touched, k);
                    }
                    if let Some(target) = target {
                        visit(at, Site::Branch { target });
                    }
                }
                i = at + 4;
            }
        }
        if side == Side::Source && flags & FLAG_POINTERS != 0 {
            let free = |i: usize| {
                (i..i + 8).all(|k| {
                    touched
                        .get(k / 64)
                        .is_some_and(|w| w & (1 << (k % 64)) == 0)
                })
            };
            self.pointers(p, address, true, free, visit);
        }
    }

    /// A32: B and BL (any condition but `1111`) at every word, then
    /// pointer words (4-aligned, the Thumb bit kept).
    #[allow(clippy::too_many_arguments)]
    fn arm_piece(
        &self,
        p: &mut [u8],
        address: u32,
        ranges: &[u8],
        side: Side,
        flags: u8,
        visit: &mut impl FnMut(usize, Site),
    ) {
        let mut touched: u64 = 0;
        let bits = u32::from(self.branch_bits);
        if flags & FLAG_BRANCHES != 0 {
            let mut i = (address.wrapping_neg() & 3) as usize;
            while i + 4 <= p.len() {
                let w = le32(p, i);
                if w & 0x0E00_0000 == 0x0A00_0000 && w >> 28 != 0xF {
                    // The target is pc + 8 + 4 imm24: counted from at + 8.
                    let at = address.wrapping_add(i as u32);
                    let f = sext(w & 0x00FF_FFFF, 24);
                    let site = self.a64_field(f, at.wrapping_add(8), 2, bits, ranges, side, |t| t);
                    if let Some((new, target, _)) = site {
                        let nw = (w & 0xFF00_0000) | (new & 0x00FF_FFFF);
                        put_word(p, i, nw, target, &mut touched, visit);
                    }
                }
                i += 4;
            }
        }
        if side == Side::Source && flags & FLAG_POINTERS != 0 {
            let free = |i: usize| touched & (1 << (i / 4)) == 0;
            self.pointers(p, address, false, free, visit);
        }
    }

    /// The window rule of [`Self::branch`] for a signed `width`-bit field
    /// `f` counted in units of `1 << shift` bytes from the site at `at`:
    /// its new field, and the target when in `ranges`; `None` outside the
    /// window.
    #[allow(clippy::too_many_arguments)]
    fn a64_field(
        &self,
        f: i32,
        at: u32,
        shift: u32,
        bits: u32,
        ranges: &[u8],
        side: Side,
        target_of: impl Fn(u32) -> u32,
    ) -> Option<(u32, Option<u32>, u32)> {
        let half = 1i64 << (bits - 1);
        if !(-half..half).contains(&i64::from(f)) {
            return None;
        }
        let pc = at >> shift;
        let rel = match side {
            Side::Forward | Side::Source => f,
            Side::Inverse => sext((f as u32).wrapping_sub(pc), bits),
        };
        let base = pc.wrapping_add(rel as u32) << shift;
        let target = target_of(base);
        let in_image = Self::in_ranges(ranges, target);
        let new = match side {
            Side::Forward => sext(base >> shift, bits) as u32,
            Side::Inverse => rel as u32,
            Side::Source => sext(self.source_target(at, target, in_image) >> shift, bits) as u32,
        };
        Some((new, in_image.then_some(target), target))
    }

    /// B/BL: the new word's imm26 and the target.
    fn a64_branch(
        &self,
        w: u32,
        at: u32,
        ranges: &[u8],
        side: Side,
        bits: u32,
    ) -> Option<(u32, Option<u32>)> {
        let f = sext(w & 0x03FF_FFFF, 26);
        self.a64_field(f, at, 2, bits, ranges, side, |t| t)
            .map(|(n, t, _)| (n, t))
    }

    /// ADRP at `p[i..]`: its new word and target. T also rewrites the
    /// offset of the instruction that completes the address (marking it in
    /// `touched`); F and F⁻¹ reach the partner only to report the target.
    #[allow(clippy::too_many_arguments)]
    fn a64_adrp(
        &self,
        p: &mut [u8],
        i: usize,
        at: u32,
        ranges: &[u8],
        side: Side,
        bits: u32,
        touched: &mut u64,
    ) -> Option<(u32, Option<u32>)> {
        let w = le32(p, i);
        let imm = ((w >> 5) & 0x7_FFFF) << 2 | ((w >> 29) & 3);
        let f = sext(imm, 21);
        let partner = adrp_partner(p, i, w & 31, *touched);
        let offset = |page: u32| partner.map_or(page, |(_, off, _)| page.wrapping_add(off));
        let (new, target, full) = self.a64_field(f, at, 12, bits, ranges, side, offset)?;
        if side == Side::Source {
            // The mapped address's page went into the ADRP; its offset into
            // the partner, when the partner can hold it.
            let mapped = self.source_target(at, full, Self::in_ranges(ranges, full));
            if let Some((j, _, scale)) = partner {
                let lo = mapped & 0xFFF;
                if lo % (1 << scale) == 0 {
                    let pw = le32(p, j);
                    let nw = (pw & !(0xFFF << 10)) | ((lo >> scale) << 10);
                    if let Some(d) = p.get_mut(j..j + 4) {
                        d.copy_from_slice(&nw.to_le_bytes());
                    }
                    *touched |= 1 << (j / 4);
                }
            }
            let page = sext(mapped >> 12, bits) as u32;
            return Some((adrp_with(w, page), target));
        }
        Some((adrp_with(w, new), target))
    }
}

/// Which image [`Xform::sites`] scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// The old image, as T sees it.
    Old,
    /// The new image, as F sees it.
    New,
}

/// A reference [`Xform::sites`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A branch (4 bytes) to this target address.
    Branch {
        /// The branch target.
        target: u32,
    },
    /// A pointer word (4 bytes) holding this value (Thumb bit included).
    Pointer {
        /// The word.
        value: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Forward,
    Inverse,
    Source,
}

/// The first bytes of x86-64 candidates (see `x86_piece`), each with a
/// row of [`X86_SECOND`].
const X86_OPS: [u8; 15] = [
    0xE8, 0xE9, 0x0F, 0x8B, 0x89, 0x8D, 0x3B, 0x39, 0x03, 0x01, 0x2B, 0x29, 0x85, 0x63, 0xFF,
];

/// Whether the pair `op`, `next` (second opcode byte or ModRM) starts an
/// x86-64 candidate: CALL and JMP rel32 (any second byte), Jcc rel32, and
/// the RIP-relative operands.
const fn x86_rule(op: u8, next: u8) -> bool {
    let rip = next & 0xC7 == 0x05;
    match op {
        0xE8 | 0xE9 => true,
        0x0F => next >= 0x80 && next <= 0x8F,
        0x8B | 0x89 | 0x8D | 0x3B | 0x39 | 0x03 | 0x01 | 0x2B | 0x29 | 0x85 | 0x63 => rip,
        // FF /2 CALL, /4 JMP, /6 PUSH through memory.
        0xFF => rip && matches!((next >> 3) & 7, 2 | 4 | 6),
        _ => false,
    }
}

/// Each byte's row of [`X86_SECOND`]: one past its place in [`X86_OPS`],
/// 0 (no candidate) for the other bytes.
// Indices are bytes and rows, all in bounds.
#[allow(clippy::indexing_slicing)]
const X86_ROW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut k = 0;
    while k < X86_OPS.len() {
        t[X86_OPS[k] as usize] = k as u8 + 1;
        k += 1;
    }
    t
};

/// Per row, a bit per second byte that completes a candidate; row 0 is
/// empty. 544 bytes, so the table costs a device's flash little.
// Indices are rows and bytes, all in bounds.
#[allow(clippy::indexing_slicing)]
const X86_SECOND: [[u64; 4]; 16] = {
    let mut t = [[0u64; 4]; 16];
    let mut k = 0;
    while k < X86_OPS.len() {
        let mut next = 0usize;
        while next < 256 {
            if x86_rule(X86_OPS[k], next as u8) {
                t[k + 1][next / 64] |= 1 << (next % 64);
            }
            next += 1;
        }
        k += 1;
    }
    t
};

/// Where the 32-bit field of the first candidate at or after `i` in `p`
/// starts, when the whole field lies in `p`. The scan goes straight to the
/// next pair of bytes that starts a candidate: one table bit a byte, and a
/// branch taken only at candidates (the common lead bytes alone, 0x0F,
/// 0x8B, 0xFF, ..., would make it unpredictable).
fn x86_next_field(p: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let rest = p.get(i..)?;
        let nexts = rest.iter().skip(1).chain(core::iter::once(&0));
        let mut pairs = rest.iter().zip(nexts);
        i += pairs.position(|(&op, &next)| x86_candidate(op, next))?;
        // CALL and JMP rel32: the field follows the opcode; the others: it
        // follows both bytes.
        let at = if p.get(i)? & 0xFE == 0xE8 {
            i + 1
        } else {
            i + 2
        };
        if at + 4 <= p.len() {
            return Some(at);
        }
        i += 1;
    }
}

fn x86_candidate(op: u8, next: u8) -> bool {
    let row = X86_ROW.get(usize::from(op)).copied().unwrap_or(0);
    X86_SECOND
        .get(usize::from(row))
        .and_then(|r| r.get(usize::from(next / 64)))
        .is_some_and(|w| w & (1 << (next % 64)) != 0)
}

/// `w` (an ADRP) with its 21-bit page field replaced by `page`.
/// Stores the rewritten word `word` at `i` of a piece, marks it taken
/// in `touched` (a bit per word) and reports the branch site, if any.
fn put_word(
    p: &mut [u8],
    i: usize,
    word: u32,
    target: Option<u32>,
    touched: &mut u64,
    visit: &mut impl FnMut(usize, Site),
) {
    if let Some(d) = p.get_mut(i..i + 4) {
        d.copy_from_slice(&word.to_le_bytes());
    }
    *touched |= 1 << (i / 4);
    if let Some(target) = target {
        visit(i, Site::Branch { target });
    }
}

fn adrp_with(w: u32, page: u32) -> u32 {
    (w & 0x9F00_001F) | ((page & 3) << 29) | (((page >> 2) & 0x7_FFFF) << 5)
}

/// The instruction within the next 8 words of `p` after the ADRP at `i`
/// that adds a 12-bit offset to its register `rd`: ADD (immediate, no
/// shift) or a load/store with an unsigned offset. Its offset in `p`, the
/// byte offset it adds and the log2 scale of its field.
fn adrp_partner(p: &[u8], i: usize, rd: u32, touched: u64) -> Option<(usize, u32, u32)> {
    (1..=8)
        .map(|k| i + 4 * k)
        .take_while(|j| j + 4 <= p.len())
        .find_map(|j| {
            let w = le32(p, j);
            if touched & (1 << (j / 4)) != 0 || (w >> 5) & 31 != rd {
                return None;
            }
            let imm = (w >> 10) & 0xFFF;
            if w & 0xFFC0_0000 == 0x9100_0000 {
                // ADD Xd, Xn, #imm12 (64-bit, no shift).
                return Some((j, imm, 0));
            }
            if w & 0x3B00_0000 == 0x3900_0000 {
                // LDR/STR (unsigned offset): scale from size, and for SIMD
                // 128-bit (size 00, opc 1x) it is 4.
                let size = w >> 30;
                let simd = (w >> 26) & 1 == 1;
                let opc = (w >> 22) & 3;
                let scale = if simd && size == 0 && opc >= 2 {
                    4
                } else {
                    size
                };
                return Some((j, imm << scale, scale));
            }
            None
        })
}

/// The 24-bit S:I1:I2:imm10:imm11 field of a Thumb BL/B.W.
fn thumb_field(hw1: u16, hw2: u16) -> u32 {
    let s = u32::from(hw1 >> 10) & 1;
    let j1 = u32::from(hw2 >> 13) & 1;
    let j2 = u32::from(hw2 >> 11) & 1;
    let i1 = !(j1 ^ s) & 1;
    let i2 = !(j2 ^ s) & 1;
    (s << 23) | (i1 << 22) | (i2 << 21) | (u32::from(hw1 & 0x3FF) << 11) | u32::from(hw2 & 0x7FF)
}

/// `hw1`/`hw2` with their 24-bit field replaced by `field`.
fn thumb_encode(hw1: u16, hw2: u16, field: u32) -> (u16, u16) {
    let s = (field >> 23) & 1;
    let i1 = (field >> 22) & 1;
    let i2 = (field >> 21) & 1;
    let j1 = !(i1 ^ s) & 1;
    let j2 = !(i2 ^ s) & 1;
    let h1 = (hw1 & 0xF800) | ((s as u16) << 10) | (((field >> 11) & 0x3FF) as u16);
    let h2 = (hw2 & 0xD000) | ((j1 as u16) << 13) | ((j2 as u16) << 11) | ((field & 0x7FF) as u16);
    (h1, h2)
}

fn sext24(v: u32) -> i32 {
    sext(v, 24)
}

/// The low `bits` bits of `v`, sign-extended.
fn sext(v: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    ((v << shift) as i32) >> shift
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use proptest::prelude::*;

    fn payload(parts: &XformParts<'_>) -> Vec<u8> {
        let mut out = vec![0u8; parts.encoded_len()];
        let n = parts.encode(&mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    fn bl(at: u32, target: u32) -> [u8; 4] {
        let rel = (target.wrapping_sub(at + 4) >> 1) & 0xFF_FFFF;
        let (h1, h2) = thumb_encode(0xF000, 0xF800, rel);
        let mut w = [0u8; 4];
        w[..2].copy_from_slice(&h1.to_le_bytes());
        w[2..].copy_from_slice(&h2.to_le_bytes());
        w
    }

    const RANGE: AddrRange = AddrRange {
        offset: 0,
        len: 4096,
        address: 0x0800_0000,
        flags: FLAG_BRANCHES | FLAG_POINTERS,
    };

    #[test]
    fn field_encoding_matches_the_architecture() {
        // BL from 0x08000100 to 0x08000200: imm32 = 0xFC -> field 0x7E.
        let w = bl(0x0800_0100, 0x0800_0200);
        assert_eq!(w, [0x00, 0xF0, 0x7E, 0xF8]);
        // Backwards: BL to itself - 4 is imm32 = -8.
        let w = bl(0x0800_0100, 0x0800_00FC);
        assert_eq!(w, [0xFF, 0xF7, 0xFC, 0xFF]);
    }

    #[test]
    fn moved_call_to_a_moved_callee_becomes_identical() {
        // Old: call at 0x100 to 0x800. New: everything after 0x80 moved by
        // 0x40, so the call sits at 0x140 and its callee at 0x840.
        let bps = [Breakpoint {
            address: 0x0800_0080,
            delta: 0x40,
        }];
        let ranges = [RANGE];
        let parts = XformParts {
            isa: Isa::Thumb2,
            branch_bits: 22,
            flags: FLAG_BRANCHES | FLAG_POINTERS,
            old_ranges: &ranges,
            new_ranges: &ranges,
            windows: &[Window {
                low: 0x0800_0000,
                high: 0x0800_1000,
            }],
            breakpoints: &bps,
        };
        let bytes = payload(&parts);
        let x = Xform::parse(&bytes, 0).unwrap();
        let mut old = vec![0u8; 512];
        old[0x100..0x104].copy_from_slice(&bl(0x0800_0100, 0x0800_0800));
        old[0x1F0..0x1F4].copy_from_slice(&0x0800_0901u32.to_le_bytes());
        let mut new = vec![0u8; 512];
        new[0x140..0x144].copy_from_slice(&bl(0x0800_0140, 0x0800_0840));
        new[0x1F0..0x1F4].copy_from_slice(&0x0800_0941u32.to_le_bytes());
        // The relative forms are the same, the new pointer is not.
        let mut t = old.clone();
        x.source(&mut t, 0);
        let mut f = new.clone();
        x.forward(&mut f, 0);
        assert_eq!(t[0x100..0x104], f[0x140..0x144]);
        assert_eq!(t[0x1F0..0x1F4], f[0x1F0..0x1F4]);
        x.inverse(&mut f, 0);
        assert_eq!(f, new);
    }

    #[test]
    fn aarch64_moved_call_address_and_pointer_become_identical() {
        let ranges = [AddrRange {
            offset: 0,
            len: 0x10000,
            address: 0x40_0000,
            flags: FLAG_BRANCHES | FLAG_POINTERS,
        }];
        let bps = [
            Breakpoint {
                address: 0x40_0080,
                delta: 0x40,
            },
            Breakpoint {
                address: 0x40_8000,
                delta: 0x1010,
            },
        ];
        let parts = XformParts {
            isa: Isa::Aarch64,
            branch_bits: 16,
            flags: FLAG_BRANCHES | FLAG_POINTERS,
            old_ranges: &ranges,
            new_ranges: &ranges,
            windows: &[Window {
                low: 0x40_0000,
                high: 0x41_0000,
            }],
            breakpoints: &bps,
        };
        let bytes = payload(&parts);
        let x = Xform::parse(&bytes, 0).unwrap();
        let bl = |pc: u32, t: u32| 0x9400_0000 | ((t.wrapping_sub(pc) >> 2) & 0x03FF_FFFF);
        let adrp = |pc: u32, t: u32| {
            let pages = (t >> 12).wrapping_sub(pc >> 12);
            0x9000_0000 | ((pages & 3) << 29) | (((pages >> 2) & 0x7_FFFF) << 5)
        };
        let add = |lo: u32| 0x9100_0000 | (lo << 10);
        let put = |img: &mut Vec<u8>, at: usize, w: u32| {
            img[at..at + 4].copy_from_slice(&w.to_le_bytes());
        };
        let mut old = vec![0u8; 1024];
        put(&mut old, 0x100, bl(0x40_0100, 0x40_2000));
        put(&mut old, 0x200, adrp(0x40_0200, 0x40_8123));
        put(&mut old, 0x204, add(0x123));
        put(&mut old, 0x300, 0x40_8123);
        let mut new = vec![0u8; 1024];
        put(&mut new, 0x140, bl(0x40_0140, 0x40_2040));
        put(&mut new, 0x240, adrp(0x40_0240, 0x40_9133));
        put(&mut new, 0x244, add(0x133));
        put(&mut new, 0x340, 0x40_9133);
        // Relative branch and page differ by nothing or by the move; the
        // pointer and the ADD offset do differ.
        assert_eq!(old[0x100..0x104], new[0x140..0x144]);
        assert_ne!(old[0x204..0x208], new[0x244..0x248]);
        let mut t = old.clone();
        x.source(&mut t, 0);
        let mut f = new.clone();
        x.forward(&mut f, 0);
        assert_eq!(t[0x100..0x104], f[0x140..0x144], "BL");
        assert_eq!(t[0x200..0x208], f[0x240..0x248], "ADRP + ADD");
        assert_eq!(t[0x300..0x308], f[0x340..0x348], "pointer");
        x.inverse(&mut f, 0);
        assert_eq!(f, new);
        let mut sites = Vec::new();
        x.sites(&old, 0, Image::Old, |at, s| sites.push((at, s)));
        assert_eq!(
            sites,
            vec![
                (0x100, Site::Branch { target: 0x40_2000 }),
                (0x200, Site::Branch { target: 0x40_8123 }),
                (0x300, Site::Pointer { value: 0x40_8123 }),
            ]
        );
    }

    #[test]
    fn x86_moved_call_and_rip_relative_load_become_identical() {
        let ranges = [AddrRange {
            offset: 0,
            len: 0x10000,
            address: 0x40_0000,
            flags: FLAG_BRANCHES | FLAG_POINTERS,
        }];
        let bps = [
            Breakpoint {
                address: 0x40_0080,
                delta: 0x40,
            },
            Breakpoint {
                address: 0x40_8000,
                delta: 0x1010,
            },
        ];
        let parts = XformParts {
            isa: Isa::X86_64,
            branch_bits: 20,
            flags: FLAG_BRANCHES | FLAG_POINTERS,
            old_ranges: &ranges,
            new_ranges: &ranges,
            windows: &[Window {
                low: 0x40_0000,
                high: 0x41_0000,
            }],
            breakpoints: &bps,
        };
        let bytes = payload(&parts);
        let x = Xform::parse(&bytes, 0).unwrap();
        // CALL rel32 at `at` to `t`; MOV RAX, [RIP + disp32] at `at` to `t`.
        let call =
            |at: u32, t: u32| [&[0xE8u8][..], &t.wrapping_sub(at + 5).to_le_bytes()].concat();
        let mov = |at: u32, t: u32| {
            [
                &[0x48u8, 0x8B, 0x05][..],
                &t.wrapping_sub(at + 7).to_le_bytes(),
            ]
            .concat()
        };
        let mut old = vec![0x90u8; 1024];
        old[0x100..0x105].copy_from_slice(&call(0x40_0100, 0x40_2000));
        old[0x200..0x207].copy_from_slice(&mov(0x40_0200, 0x40_8123));
        old[0x300..0x308].copy_from_slice(&0x40_8123u64.to_le_bytes());
        let mut new = vec![0x90u8; 1024];
        new[0x140..0x145].copy_from_slice(&call(0x40_0140, 0x40_2040));
        new[0x240..0x247].copy_from_slice(&mov(0x40_0240, 0x40_9133));
        new[0x340..0x348].copy_from_slice(&0x40_9133u64.to_le_bytes());
        assert_ne!(old[0x200..0x207], new[0x240..0x247]);
        let mut t = old.clone();
        x.source(&mut t, 0);
        let mut f = new.clone();
        x.forward(&mut f, 0);
        assert_eq!(t[0x100..0x105], f[0x140..0x145], "CALL");
        assert_eq!(t[0x200..0x207], f[0x240..0x247], "MOV RIP-relative");
        assert_eq!(t[0x300..0x308], f[0x340..0x348], "pointer");
        x.inverse(&mut f, 0);
        assert_eq!(f, new);
    }

    #[test]
    fn a_branch_across_a_block_boundary_is_left_alone() {
        let ranges = [RANGE];
        let parts = XformParts {
            isa: Isa::Thumb2,
            branch_bits: 22,
            flags: FLAG_BRANCHES,
            old_ranges: &ranges,
            new_ranges: &ranges,
            windows: &[],
            breakpoints: &[],
        };
        let bytes = payload(&parts);
        let x = Xform::parse(&bytes, 0).unwrap();
        let mut img = vec![0u8; 512];
        img[254..258].copy_from_slice(&bl(0x0800_00FE, 0x0800_0010));
        let before = img.clone();
        x.forward(&mut img, 0);
        assert_eq!(img, before);
    }

    #[test]
    fn map_is_a_step_function() {
        let bps = [
            Breakpoint {
                address: 100,
                delta: 8,
            },
            Breakpoint {
                address: 200,
                delta: -4,
            },
        ];
        let parts = XformParts {
            isa: Isa::Thumb2,
            branch_bits: 22,
            flags: 0,
            old_ranges: &[],
            new_ranges: &[],
            windows: &[],
            breakpoints: &bps,
        };
        let bytes = payload(&parts);
        let x = Xform::parse(&bytes, 0).unwrap();
        assert_eq!(x.map(99), 99);
        assert_eq!(x.map(100), 108);
        assert_eq!(x.map(199), 207);
        assert_eq!(x.map(200), 196);
        assert_eq!(x.map(u32::MAX), u32::MAX - 4);
    }

    #[test]
    fn malformed_payloads_are_refused_with_their_offset() {
        let ranges = [RANGE];
        let bps = [
            Breakpoint {
                address: 10,
                delta: 1,
            },
            Breakpoint {
                address: 20,
                delta: 2,
            },
        ];
        let parts = XformParts {
            isa: Isa::Thumb2,
            branch_bits: 22,
            flags: FLAG_BRANCHES,
            old_ranges: &ranges,
            new_ranges: &ranges,
            windows: &[Window { low: 1, high: 2 }],
            breakpoints: &bps,
        };
        let good = payload(&parts);
        assert!(Xform::parse(&good, 0).is_ok());
        let bad = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            Xform::parse(&b, 1000).unwrap_err()
        };
        // Version 1 (ranges written out in full on the wire) is refused.
        for version in [1, 3] {
            assert!(matches!(
                bad(0, version),
                Error::InvalidField { offset: 1000, .. }
            ));
        }
        assert!(matches!(
            bad(1, 9),
            Error::InvalidField { offset: 1001, .. }
        ));
        assert!(matches!(
            bad(2, 4),
            Error::InvalidField { offset: 1002, .. }
        ));
        assert!(matches!(bad(3, 17), Error::BadLength { offset: 1003, .. }));
        assert!(matches!(
            bad(6, 25),
            Error::InvalidField { offset: 1006, .. }
        ));
        assert!(matches!(bad(7, 1), Error::NonZeroReserved { offset: 1007 }));
        // Empty range (length byte 0 of the first old range).
        assert!(matches!(
            bad(13, 0),
            Error::InvalidField { offset: 1008, .. }
        ));
        // Unknown range flags.
        assert!(matches!(
            bad(20, 4),
            Error::InvalidField { offset: 1020, .. }
        ));
        // Window low >= high.
        assert!(matches!(
            bad(40, 5),
            Error::InvalidField { offset: 1040, .. }
        ));
        // Second breakpoint not above the first.
        assert!(matches!(
            bad(60, 10),
            Error::InvalidField { offset: 1060, .. }
        ));
        // Truncated and trailing bytes.
        assert!(matches!(
            Xform::parse(&good[..good.len() - 1], 0),
            Err(Error::Truncated { .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            Xform::parse(&long, 0),
            Err(Error::BadLength { .. })
        ));
    }

    fn arb_xform() -> impl Strategy<Value = Vec<u8>> {
        (
            0u32..0x100,
            prop::collection::vec((0u32..0x2000, -0x400i32..0x400), 0..8),
            0u8..4,
            MIN_BRANCH_BITS..=MAX_BRANCH_BITS,
            0u8..4,
        )
            .prop_map(|(base_pages, bps, flags, bits, isa)| {
                let isa = [Isa::Thumb2, Isa::Aarch64, Isa::X86_64, Isa::Arm][usize::from(isa)];
                let branch_bits = bits.min(isa.max_branch_bits());
                let ranges = [
                    AddrRange {
                        offset: 0,
                        len: 0x300,
                        address: 0x0800_0000 + base_pages * 0x100,
                        flags: FLAG_BRANCHES | FLAG_POINTERS,
                    },
                    AddrRange {
                        offset: 0x301,
                        len: 0x1000,
                        address: 0x2000_0001,
                        flags: FLAG_BRANCHES | FLAG_POINTERS,
                    },
                ];
                let mut bps: Vec<Breakpoint> = bps
                    .into_iter()
                    .map(|(a, d)| Breakpoint {
                        address: 0x0800_0000 + a * 2,
                        delta: d * 2,
                    })
                    .collect();
                bps.sort_by_key(|b| b.address);
                bps.dedup_by_key(|b| b.address);
                let parts = XformParts {
                    isa,
                    branch_bits,
                    flags,
                    old_ranges: &ranges,
                    new_ranges: &ranges,
                    windows: &[Window {
                        low: 0x0800_0000,
                        high: 0x0801_0000,
                    }],
                    breakpoints: &bps,
                };
                payload(&parts)
            })
    }

    /// Bytes dense in Thumb BL/B.W and AArch64 B/BL, ADRP, ADD and
    /// load/store patterns (small register numbers, so ADRPs find
    /// partners).
    fn arb_code() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                any::<u16>().prop_map(|v| v.to_le_bytes().to_vec()),
                any::<u16>().prop_map(|v| (0xF000 | (v & 0x7FF)).to_le_bytes().to_vec()),
                any::<u16>().prop_map(|v| (0x9000 | (v & 0x6FFF)).to_le_bytes().to_vec()),
                any::<u32>().prop_map(|v| (0x9400_0000 | (v & 0x83FF_FFFF)).to_le_bytes().to_vec()),
                any::<u32>().prop_map(|v| (0x9000_0000 | (v & 0x60FF_FFE3)).to_le_bytes().to_vec()),
                any::<u32>().prop_map(|v| (0x9100_0000 | (v & 0x003F_FC63)).to_le_bytes().to_vec()),
                any::<u32>().prop_map(|v| (0x3900_0000 | (v & 0xC4FF_FC63)).to_le_bytes().to_vec()),
                any::<u64>().prop_map(|v| (0x0800_0000 + (v & 0xFFFF)).to_le_bytes().to_vec()),
                any::<u32>().prop_map(|v| [&[0xE8u8][..], &v.to_le_bytes()].concat()),
                any::<u32>().prop_map(|v| (0xEB00_0000 | (v & 0x00FF_FFFF)).to_le_bytes().to_vec()),
                any::<u32>().prop_map(|v| [&[0x0Fu8, 0x84][..], &v.to_le_bytes()].concat()),
                any::<u32>().prop_map(|v| [&[0x48u8, 0x8D, 0x05][..], &v.to_le_bytes()].concat()),
                any::<u32>()
                    .prop_map(|v| [&[0xFFu8, 0x15][..], &(v % 0x4000).to_le_bytes()].concat()),
            ],
            0..600,
        )
        .prop_map(|pieces| pieces.concat())
    }

    fn parts_of(p: &Xform<'_>) -> (Vec<AddrRange>, Vec<AddrRange>, Vec<Window>, Vec<Breakpoint>) {
        (
            p.old_ranges().collect(),
            p.new_ranges().collect(),
            p.windows().collect(),
            (0..p.breakpoint_count())
                .map(|i| p.breakpoint(i).unwrap())
                .collect(),
        )
    }

    #[test]
    fn the_wire_form_is_small_and_malformed_wire_is_refused() {
        let bps: Vec<Breakpoint> = (0..100u32)
            .map(|i| Breakpoint {
                address: 0x0800_0000 + i * 300,
                delta: 8 + (i as i32 % 3) * 4,
            })
            .collect();
        let parts = XformParts {
            isa: Isa::Thumb2,
            branch_bits: 20,
            flags: FLAG_BRANCHES,
            old_ranges: &[RANGE],
            new_ranges: &[RANGE],
            windows: &[],
            breakpoints: &bps,
        };
        let ram = payload(&parts);
        let mut wire = vec![0u8; ram.len() * 2];
        let n = parts.encode_wire(&mut wire).unwrap();
        wire.truncate(n);
        // 8 fixed, the old range in 9 (offset 1, length 2, address 5,
        // flags 1), the new one, equal to it, in 4; 1 count, the first
        // breakpoint (a 4-byte address, 1-byte delta), 99 x (2 + 1).
        assert_eq!(wire.len(), 8 + 9 + 4 + 1 + 5 + 99 * 3);
        assert!(wire.len() * 2 < ram.len());
        let mut out = vec![0u8; ram.len()];
        assert_eq!(expand(&wire, 0, &mut out).unwrap(), ram.len());
        assert_eq!(out, ram);
        // Short output, truncated input, trailing bytes, a zero step, a
        // non-minimal varint, a count over the limit.
        let mut short = vec![0u8; ram.len() - 1];
        assert!(matches!(
            expand(&wire, 0, &mut short),
            Err(Error::BadLength { .. })
        ));
        assert!(matches!(
            expand(&wire[..wire.len() - 1], 0, &mut out),
            Err(Error::Truncated { .. })
        ));
        let mut long = wire.clone();
        long.push(0);
        assert!(matches!(
            expand(&long, 0, &mut out),
            Err(Error::BadLength { .. })
        ));
        let head = 8 + 9 + 4;
        let mut zero_step = wire.clone();
        zero_step[head + 6] = 0;
        assert!(matches!(
            expand(&zero_step, 100, &mut out),
            Err(Error::InvalidField { offset, .. }) if offset == 100 + head as u64 + 6
        ));
        let mut count = wire[..head].to_vec();
        count.extend_from_slice(&[0x81, 0x80, 0x01]);
        assert!(matches!(
            expand(&count, 0, &mut out),
            Err(Error::InvalidField { .. })
        ));
        let mut non_minimal = wire[..head].to_vec();
        non_minimal.extend_from_slice(&[0x81, 0x00]);
        assert!(matches!(
            expand(&non_minimal, 0, &mut out),
            Err(Error::InvalidField { .. })
        ));
    }

    #[test]
    fn ranges_of_sections_in_order_take_a_few_bytes_each() {
        // Five sections back to back, loaded at offset + 0x40_0000; in the
        // new image each grew by 16 bytes and moved by what came before.
        let lens = [0x1200u32, 0x30_000, 0x800, 0x2_0000, 0x40];
        let ranges = |grow: u32| -> Vec<AddrRange> {
            let mut offset = 0x1000;
            lens.iter()
                .map(|&len| {
                    let r = AddrRange {
                        offset,
                        len: len + grow,
                        address: offset + 0x40_0000,
                        flags: FLAG_BRANCHES,
                    };
                    offset += len + grow;
                    r
                })
                .collect()
        };
        let (old, new) = (ranges(0), ranges(16));
        let parts = XformParts {
            isa: Isa::X86_64,
            branch_bits: 24,
            flags: FLAG_BRANCHES,
            old_ranges: &old,
            new_ranges: &new,
            windows: &[Window {
                low: 0x40_1000,
                high: 0x48_0000,
            }],
            breakpoints: &[],
        };
        let ram = payload(&parts);
        let mut wire = vec![0u8; ram.len()];
        let n = parts.encode_wire(&mut wire).unwrap();
        // 10 ranges and a window in 61 bytes instead of 168: the first old
        // range spells out its offset, length and load address (9), the
        // others their change of length (6 each); each new range its
        // changes of offset and length (4, the last 5); the window its
        // start and size (7). Then 8 fixed bytes and the count.
        assert_eq!(n, 8 + 9 + 4 * 6 + 4 * 4 + 5 + 7 + 1, "{:?}", &wire[..n]);
        let mut out = vec![0u8; ram.len()];
        assert_eq!(expand(&wire[..n], 0, &mut out).unwrap(), ram.len());
        assert_eq!(out, ram);
        // A range word that is no minimal varint is refused where it is.
        let mut bad = wire[..8].to_vec();
        bad.extend_from_slice(&[0x80, 0x00]);
        assert!(matches!(
            expand(&bad, 1000, &mut out),
            Err(Error::InvalidField { offset: 1009, .. })
        ));
    }

    proptest! {
        #[test]
        fn wire_form_expands_to_the_parsed_form_in_any_pieces(
            x in arb_xform(),
            cuts in prop::collection::vec(1usize..40, 1..20),
        ) {
            let p = Xform::parse(&x, 0).unwrap();
            let (old, new, win, bps) = parts_of(&p);
            let parts = XformParts {
                isa: p.isa(),
                branch_bits: p.branch_bits(),
                flags: p.flags(),
                old_ranges: &old,
                new_ranges: &new,
                windows: &win,
                breakpoints: &bps,
            };
            let mut wire = vec![0u8; 2 * x.len() + 16];
            let n = parts.encode_wire(&mut wire).unwrap();
            wire.truncate(n);
            let mut out = vec![0u8; x.len()];
            let mut e = Expander::default();
            let mut at = 0usize;
            for c in cuts.iter().cycle() {
                if at >= wire.len() {
                    break;
                }
                let end = (at + c).min(wire.len());
                e.feed(&wire[at..end], at as u64, &mut out).unwrap();
                at = end;
            }
            prop_assert_eq!(e.finish(0).unwrap(), x.len());
            prop_assert_eq!(out, x);
        }

        #[test]
        fn expand_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut out = vec![0u8; 400];
            let _ = expand(&bytes, 0, &mut out);
        }

        /// The table-driven x86-64 scan finds the fields a plain byte-by-
        /// byte reading of the rule finds, on bytes dense with lead bytes
        /// (a candidate is passed over whole, so one hides the next).
        #[test]
        fn x86_scan_finds_the_fields_of_the_plain_rule(
            code in prop::collection::vec(
                prop::sample::select(vec![
                    0xE8u8, 0xE9, 0x0F, 0x80, 0x8F, 0x8B, 0x89, 0x8D, 0x3B, 0x39, 0x03, 0x01,
                    0x2B, 0x29, 0x85, 0x63, 0xFF, 0x05, 0x15, 0x25, 0x35, 0x0D, 0x45, 0x48,
                    0x90, 0x00,
                ]),
                0..200,
            ),
        ) {
            let mut plain = Vec::new();
            let mut i = 0;
            while i < code.len() {
                let (op, next) = (code[i], code.get(i + 1).copied().unwrap_or(0));
                let rip = next & 0xC7 == 0x05;
                let field = match op {
                    0xE8 | 0xE9 => Some(i + 1),
                    0x0F if (0x80..=0x8F).contains(&next) => Some(i + 2),
                    0x8B | 0x89 | 0x8D | 0x3B | 0x39 | 0x03 | 0x01 | 0x2B | 0x29 | 0x85 | 0x63
                        if rip => Some(i + 2),
                    0xFF if rip && matches!((next >> 3) & 7, 2 | 4 | 6) => Some(i + 2),
                    _ => None,
                };
                match field.filter(|at| at + 4 <= code.len()) {
                    Some(at) => {
                        plain.push(at);
                        i = at + 4;
                    }
                    None => i += 1,
                }
            }
            let mut scanned = Vec::new();
            let mut i = 0;
            while let Some(at) = x86_next_field(&code, i) {
                scanned.push(at);
                i = at + 4;
            }
            prop_assert_eq!(scanned, plain);
        }

        #[test]
        fn inverse_undoes_forward(x in arb_xform(), code in arb_code(), skew in 0usize..3) {
            let x = Xform::parse(&x, 0).unwrap();
            let code = &code[skew.min(code.len())..];
            let mut f = code.to_vec();
            x.forward(&mut f, 0);
            x.inverse(&mut f, 0);
            prop_assert_eq!(&f[..], code);
        }

        #[test]
        fn blocks_transform_alone(x in arb_xform(), code in arb_code(), k in 0usize..4) {
            let x = Xform::parse(&x, 0).unwrap();
            let mut whole = code.clone();
            x.source(&mut whole, 0);
            let start = (k * XFORM_BLOCK).min(code.len() / XFORM_BLOCK * XFORM_BLOCK);
            let mut part = code[start..].to_vec();
            x.source(&mut part, start as u64);
            prop_assert_eq!(&whole[start..], &part[..]);
        }

        #[test]
        fn encode_parse_round_trip(x in arb_xform()) {
            let p = Xform::parse(&x, 0).unwrap();
            let (old, new, win, bps) = parts_of(&p);
            let again = payload(&XformParts {
                isa: p.isa(),
                branch_bits: p.branch_bits(),
                flags: p.flags(),
                old_ranges: &old,
                new_ranges: &new,
                windows: &win,
                breakpoints: &bps,
            });
            prop_assert_eq!(again, x);
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Xform::parse(&bytes, 0);
        }
    }
}
