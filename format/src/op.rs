//! Op records: each writes exactly one destination segment.
//!
//! An op is a head (kind and codec, the varint fields its kind has, its
//! hashes and source extents: at most [`MAX_OP_HEAD_LEN`] bytes), then
//! `payload_len` payload bytes. The sha256 of those bytes is the link the
//! previous op (or the manifest) carries, so a device authenticates the op
//! stream with 32 bytes of state.

use crate::bytes::{Encoded, Reader};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, Mode};

/// Length of an extent in its fixed record form ([`Extent::to_bytes`]),
/// which an applier may use to keep an op's extents in RAM; on the wire
/// extents are varints.
pub const EXTENT_LEN: usize = 16;
/// Most source extents one op may declare: bounds a device's per-op state
/// (16 × 16 B) and the source reads needed to check `src_sha256`.
pub const MAX_EXTENTS: usize = 16;

/// What an op does to its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpKind {
    /// The segment is the concatenation of its source extents.
    Copy = 1,
    /// The segment is a patch (see [`crate::patch`]) over its source extents.
    Patch = 2,
    /// The segment is the decoded payload.
    New = 3,
    /// Every byte of the segment is `fill_value`.
    Fill = 4,
    /// The segment is already right (in-place mode only): nothing is written.
    Skip = 5,
    /// In-place only: copy one whole source segment (the op's single extent)
    /// into scratch slot `dst_offset / segment_size`, so later ops can still
    /// read it after it is overwritten. `dst_len` is the extent's length and
    /// `dst_sha256` equals `src_sha256`.
    Stash = 6,
    /// The reference transform of the package (see [`crate::xform`]): op 0
    /// exactly when the manifest's `xform_len` is non-zero; its stored
    /// payload expands to that many bytes. Writes nothing.
    Xform = 7,
    /// The stream table of the package (see [`crate::streams`]): op 0
    /// exactly when the manifest's `streams_len` is non-zero; its stored
    /// payload is that many bytes. Writes nothing.
    Streams = 8,
}

impl OpKind {
    /// Every kind of this version, in code order.
    pub const ALL: [OpKind; 8] = [
        OpKind::Copy,
        OpKind::Patch,
        OpKind::New,
        OpKind::Fill,
        OpKind::Skip,
        OpKind::Stash,
        OpKind::Xform,
        OpKind::Streams,
    ];

    /// The kind for a header byte, if known to this version.
    pub fn from_u8(v: u8) -> Option<OpKind> {
        Some(match v {
            1 => OpKind::Copy,
            2 => OpKind::Patch,
            3 => OpKind::New,
            4 => OpKind::Fill,
            5 => OpKind::Skip,
            6 => OpKind::Stash,
            7 => OpKind::Xform,
            8 => OpKind::Streams,
            _ => return None,
        })
    }

    /// Lower-case name, for listings.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Copy => "copy",
            OpKind::Patch => "patch",
            OpKind::New => "new",
            OpKind::Fill => "fill",
            OpKind::Skip => "skip",
            OpKind::Stash => "stash",
            OpKind::Xform => "xform",
            OpKind::Streams => "streams",
        }
    }
}

/// How an op's payload bytes are coded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// The payload is stored as is.
    Stored = 0,
    /// The payload is one zstd frame.
    Zstd = 1,
    /// The payload is a `tiny` command stream (the `tiny` module) producing
    /// the segment; its decoded length is the segment length.
    Tiny = 2,
    /// The payload is a table of raw LZMA streams (the `lzma_payload`
    /// module, feature `lzma`), decoded in memory.
    Lzma = 3,
}

impl Codec {
    /// The codec for a header byte, if known.
    pub fn from_u8(v: u8) -> Option<Codec> {
        match v {
            0 => Some(Codec::Stored),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Tiny),
            3 => Some(Codec::Lzma),
            _ => None,
        }
    }
}

/// A contiguous range of the source image an op reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Extent {
    /// Offset in the source image.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Extent {
    /// One past the last byte, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }

    /// Whether `[offset, offset + len)` lies inside this extent.
    pub fn contains(&self, offset: u64, len: u64) -> bool {
        match (offset.checked_add(len), self.end()) {
            (Some(end), Some(self_end)) => offset >= self.offset && end <= self_end,
            _ => false,
        }
    }

    /// Encodes the extent as a fixed 16-byte record (offset, length, both
    /// `u64` LE): the form an applier keeps in RAM, not the wire form.
    pub fn to_bytes(&self) -> [u8; EXTENT_LEN] {
        let mut out = [0u8; EXTENT_LEN];
        out[..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..].copy_from_slice(&self.len.to_le_bytes());
        out
    }
}

/// The header fields of an op, as an applier uses them (the wire form
/// leaves out what its kind or context gives: [`OpHead::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpHeader {
    /// What the op does.
    pub kind: OpKind,
    /// How the payload is coded.
    pub codec: Codec,
    /// Byte value for [`OpKind::Fill`], zero otherwise.
    pub fill_value: u8,
    /// Number of source extents after the header.
    pub extent_count: u16,
    /// Bytes of payload on the wire.
    pub payload_len: u32,
    /// Bytes of payload after decoding (equals `payload_len` when stored).
    pub decoded_len: u32,
    /// Target offset of the segment (a multiple of the segment size).
    pub dst_offset: u64,
    /// Length of the segment.
    pub dst_len: u32,
    /// sha256 of the segment after the op.
    pub dst_sha256: [u8; 32],
    /// sha256 of the concatenated source extents (zero when there are none).
    pub src_sha256: [u8; 32],
    /// sha256 of the next op, zero for the last op.
    pub next_op_sha256: [u8; 32],
}

/// What an op head's encoding depends on besides the op itself: fields the
/// manifest fixes or that follow from the op's place in the chain are not
/// on the wire (SPEC §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpContext {
    /// A/B packages carry no per-op source hash: the whole source is
    /// checked before the first op and the source slot never changes.
    pub mode: Mode,
    /// The manifest's segment size: a slot index times this is `dst_offset`.
    pub segment_size: u32,
    /// The manifest's target size: it gives the length of each segment.
    pub target_size: u64,
    /// The manifest's target sha256: the segment hash of an op whose
    /// segment is the whole target, which is then not on the wire.
    pub target_sha256: [u8; 32],
    /// Whether this is the last op, which has no next-op hash.
    pub last: bool,
    /// Whether ops carry their successor's hash ([`crate::OpAuth::Chain`]);
    /// without a chain ([`crate::OpAuth::Signature`]) no op does.
    pub chained: bool,
}

impl OpContext {
    /// The context of op `index` of a package with this manifest.
    pub fn new(manifest: &Manifest, index: u32) -> Self {
        OpContext::of(manifest).at(index, manifest.op_count)
    }

    /// What every op of a package with this manifest shares: the context
    /// of any op but the last. An applier that keeps this instead of the
    /// manifest gets each op's context with [`OpContext::at`].
    pub fn of(manifest: &Manifest) -> Self {
        OpContext {
            mode: manifest.mode,
            segment_size: manifest.segment_size,
            target_size: manifest.target_size,
            target_sha256: manifest.target_sha256,
            last: false,
            chained: manifest.op_auth == crate::OpAuth::Chain,
        }
    }

    /// This context for op `index` of `op_count`.
    pub fn at(self, index: u32, op_count: u32) -> Self {
        OpContext {
            last: index.saturating_add(1) >= op_count,
            ..self
        }
    }

    /// Whether the op's head carries the next op's hash.
    fn links_next(&self) -> bool {
        self.chained && !self.last
    }

    /// Whether the segment at `dst_offset` is the whole target, so that its
    /// hash is the target's.
    fn whole_target(&self, kind: OpKind, dst_offset: u64) -> bool {
        kind != OpKind::Stash && dst_offset == 0 && self.target_size <= u64::from(self.segment_size)
    }

    /// Length of target segment `slot`, zero past the end.
    fn segment_len(&self, slot: u64) -> u32 {
        // At most `segment_size`, a u32.
        crate::manifest::segment_len(self.target_size, self.segment_size, slot) as u32
    }
}

/// Longest op head on the wire: kind and codec, extent count, three `u32`
/// varints, three sha256 and sixteen extents of two `u64` varints (a FILL
/// op's fill value comes with none of the extents). A device reads this
/// many bytes (or the rest of the package) to parse the next op.
pub const MAX_OP_HEAD_LEN: usize = 1 + 1 + 3 * 5 + 3 * 32 + MAX_EXTENTS * 2 * 10;

/// Which wire fields an op of a kind has (SPEC §2.3).
#[derive(Clone, Copy)]
struct Fields {
    fill: bool,
    extent_count: bool,
    payload: bool,
    segment: bool,
}

impl Fields {
    fn of(kind: OpKind) -> Fields {
        use OpKind::*;
        Fields {
            fill: kind == Fill,
            extent_count: matches!(kind, Copy | Patch),
            payload: matches!(kind, Patch | New | Xform | Streams),
            segment: !matches!(kind, Xform | Streams),
        }
    }

    /// Whether the decoded length is on the wire: only a PATCH decoded in
    /// memory has one that the other fields do not give.
    fn decoded_len(kind: OpKind, codec: Codec) -> bool {
        kind == OpKind::Patch && matches!(codec, Codec::Zstd | Codec::Lzma)
    }

    /// Whether the source sha256 is on the wire.
    fn src_sha256(kind: OpKind, ctx: &OpContext) -> bool {
        ctx.mode == Mode::InPlace && matches!(kind, OpKind::Copy | OpKind::Patch)
    }
}

/// An op head as parsed from the wire: the header fields (those not on the
/// wire filled in from the context), the source extents, and the head's
/// length, after which the payload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpHead {
    /// The header fields.
    pub header: OpHeader,
    /// The source extents.
    pub extents: Extents,
    /// Bytes of the head on the wire.
    pub len: usize,
}

impl OpHead {
    /// Parses the op head at package offset `offset` and checks the rules
    /// that need nothing but the head and its context (SPEC §4.3): known
    /// kind and codec, a codec the kind allows, the extent count, the
    /// payload and decoded lengths the kind and codec allow, extents
    /// that are non-empty and do not overflow.
    ///
    /// # Errors
    /// `Truncated`, `InvalidField`, `BadLength`.
    pub fn parse(bytes: &[u8], offset: u64, ctx: &OpContext) -> Result<OpHead> {
        let mut r = Reader::new(bytes, offset);
        let byte = r.u8("op kind and codec")?;
        let kind = OpKind::from_u8(byte & 0x0f).ok_or(Error::InvalidField {
            offset,
            what: "op kind (low 4 bits: 1 copy, 2 patch, 3 new, 4 fill, 5 skip, 6 stash, 7 xform, 8 streams)",
            found: (byte & 0x0f).into(),
        })?;
        let codec = Codec::from_u8(byte >> 4).ok_or(Error::InvalidField {
            offset,
            what: "op codec (high 4 bits: 0 stored, 1 zstd, 2 tiny, 3 lzma)",
            found: (byte >> 4).into(),
        })?;
        let fields = Fields::of(kind);
        if codec != Codec::Stored && !matches!(kind, OpKind::Patch | OpKind::New) {
            return Err(Error::InvalidField {
                offset,
                what: "op codec (stored for every kind but patch and new)",
                found: codec as u64,
            });
        }
        let fill_value = match fields.fill {
            true => r.u8("fill value")?,
            false => 0,
        };
        let bad = |offset, what, expected: u64, found: u64| Error::BadLength {
            offset,
            what,
            expected,
            found,
        };
        let extent_count = match (fields.extent_count, kind) {
            (true, _) => {
                let at = r.offset();
                let n = r.varint("extent count", u64::MAX)?;
                if n == 0 || n > MAX_EXTENTS as u64 {
                    let want = if n == 0 { 1 } else { MAX_EXTENTS as u64 };
                    return Err(bad(
                        at,
                        "extent count (1 to 16 for copy and patch)",
                        want,
                        n,
                    ));
                }
                n as u16
            }
            (false, OpKind::Stash) => 1,
            (false, _) => 0,
        };
        let payload_at = r.offset();
        let payload_len = match fields.payload {
            true => r.varint_u32("payload length")?,
            false => 0,
        };
        if matches!(kind, OpKind::Xform | OpKind::Streams) && payload_len == 0 {
            return Err(bad(
                payload_at,
                "xform or streams payload length (non-empty)",
                1,
                0,
            ));
        }
        // A stored payload's decoded length is its payload length, so a
        // bound on it names that field.
        let decoded_at = match codec {
            Codec::Stored => payload_at,
            _ => r.offset(),
        };
        let wire_decoded = match Fields::decoded_len(kind, codec) {
            true => Some(r.varint_u32("decoded length")?),
            false => None,
        };
        let slot = match fields.segment {
            true => r.varint_u32("segment index")?,
            false => 0,
        };
        let dst_offset = u64::from(slot) * u64::from(ctx.segment_size);
        let dst_sha256 = match fields.segment {
            true if ctx.whole_target(kind, dst_offset) => ctx.target_sha256,
            true => r.array("destination sha256")?,
            false => [0; 32],
        };
        let src_sha256 = match Fields::src_sha256(kind, ctx) {
            true => r.array("source sha256")?,
            false => [0; 32],
        };
        let next_op_sha256 = match ctx.links_next() {
            true => r.array("next op sha256")?,
            false => [0; 32],
        };
        let mut extents = Extents::default();
        let mut prev_end = 0u64;
        let mut len_at = r.offset();
        for _ in 0..extent_count {
            let at = r.offset();
            let gap = r.varint("extent gap", u64::MAX)?;
            len_at = r.offset();
            let len = r.varint("extent length", u64::MAX)?;
            let e = Extent {
                offset: prev_end.checked_add(gap).ok_or(Error::InvalidField {
                    offset: at,
                    what: "extent gap (the offset fits 64 bits)",
                    found: gap,
                })?,
                len,
            };
            let end = e.end().filter(|_| len != 0).ok_or(Error::InvalidField {
                offset: len_at,
                what: "extent length (non-zero, no overflow)",
                found: len,
            })?;
            extents.push(e);
            prev_end = end;
        }
        let dst_len = match kind {
            OpKind::Stash => {
                let len = extents.total_len();
                u32::try_from(len).map_err(|_| Error::InvalidField {
                    offset: len_at,
                    what: "stash extent length (at most 4 GiB)",
                    found: len,
                })?
            }
            OpKind::Xform | OpKind::Streams => 0,
            _ => ctx.segment_len(slot.into()),
        };
        let decoded_len = match (kind, codec, wire_decoded) {
            (_, _, Some(n)) => n,
            (OpKind::New, _, _) | (OpKind::Patch, Codec::Tiny, _) => dst_len,
            _ => payload_len,
        };
        if kind == OpKind::Patch && u64::from(decoded_len) > max_patch_decoded_len(dst_len) {
            return Err(bad(
                decoded_at,
                "decoded length (a patch decodes to at most 3 x segment + 1 KiB)",
                max_patch_decoded_len(dst_len),
                decoded_len.into(),
            ));
        }
        if kind == OpKind::New && codec == Codec::Stored && payload_len != dst_len {
            return Err(bad(
                payload_at,
                "payload length (a stored new op holds the whole segment)",
                dst_len.into(),
                payload_len.into(),
            ));
        }
        let header = OpHeader {
            kind,
            codec,
            fill_value,
            extent_count,
            payload_len,
            decoded_len,
            dst_offset,
            dst_len,
            dst_sha256,
            src_sha256: match kind {
                OpKind::Stash => dst_sha256,
                _ => src_sha256,
            },
            next_op_sha256,
        };
        Ok(OpHead {
            header,
            extents,
            len: r.consumed(),
        })
    }

    /// Total length of the op on the wire: head and payload.
    pub fn total_len(&self) -> u64 {
        self.len as u64 + u64::from(self.header.payload_len)
    }
}

impl OpHeader {
    /// Encodes the op head: this header's wire fields and `extents`, for
    /// the op in `ctx`. Fields the context gives are not written, so a
    /// header round-trips only when they agree with it: `dst_offset` a
    /// multiple of the segment size, `dst_len` the segment's length (for a
    /// STASH, its extent's), `dst_sha256` the target's when the segment is
    /// the whole target, `decoded_len` what the kind and codec imply,
    /// `src_sha256` zero in A/B, `next_op_sha256` zero for the last op and
    /// without a chain; and
    /// the extents only those of the kind (COPY and PATCH up to 16, STASH
    /// one). An encoder checks this by parsing the head back.
    pub fn encode(&self, extents: &[Extent], ctx: &OpContext) -> Encoded<MAX_OP_HEAD_LEN> {
        let fields = Fields::of(self.kind);
        Encoded::build(|w| {
            w.u8(self.kind as u8 | (self.codec as u8) << 4);
            if fields.fill {
                w.u8(self.fill_value);
            }
            if fields.extent_count {
                w.varint(extents.len().min(MAX_EXTENTS) as u64);
            }
            if fields.payload {
                w.varint(self.payload_len.into());
            }
            if Fields::decoded_len(self.kind, self.codec) {
                w.varint(self.decoded_len.into());
            }
            if fields.segment {
                w.varint(self.dst_offset / u64::from(ctx.segment_size.max(1)));
                if !ctx.whole_target(self.kind, self.dst_offset) {
                    w.bytes(&self.dst_sha256);
                }
            }
            if Fields::src_sha256(self.kind, ctx) {
                w.bytes(&self.src_sha256);
            }
            if ctx.links_next() {
                w.bytes(&self.next_op_sha256);
            }
            let on_wire = match self.kind {
                OpKind::Copy | OpKind::Patch => MAX_EXTENTS,
                OpKind::Stash => 1,
                _ => 0,
            };
            let mut prev_end = 0u64;
            for e in extents.iter().take(on_wire) {
                w.varint(e.offset.wrapping_sub(prev_end));
                w.varint(e.len);
                prev_end = e.offset.wrapping_add(e.len);
            }
        })
    }
}

/// The source extents of one op, held without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extents {
    items: [Extent; MAX_EXTENTS],
    len: usize,
}

impl Extents {
    /// The extents as a slice.
    pub fn as_slice(&self) -> &[Extent] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    /// Appends an extent; `false` (and nothing changes) when all
    /// [`MAX_EXTENTS`] are taken.
    pub fn push(&mut self, extent: Extent) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = extent;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Total bytes the extents cover.
    pub fn total_len(&self) -> u64 {
        self.as_slice().iter().map(|e| e.len).sum()
    }
}

/// Most bytes a PATCH payload for a `dst_len`-byte segment may decode to.
///
/// A device decodes a PATCH payload whole before it uses it, so this
/// bounds the RAM one op needs: values and literals are at most one byte
/// per output byte, the run lengths at most about as much again, and the
/// control records little more. The generator codes a segment as NEW
/// instead when its patch would exceed this.
pub fn max_patch_decoded_len(dst_len: u32) -> u64 {
    3 * u64::from(dst_len) + 1024
}

/// Parses an extent's fixed 16-byte record ([`Extent::to_bytes`]); errors
/// name `offset` as the record's place.
///
/// # Errors
/// `Truncated`, or `InvalidField` for an empty or overflowing extent.
pub fn parse_extent(bytes: &[u8], offset: u64) -> Result<Extent> {
    let mut r = Reader::new(bytes, offset);
    let e = Extent {
        offset: r.u64("extent offset")?,
        len: r.u64("extent length")?,
    };
    if e.len == 0 || e.end().is_none() {
        return Err(Error::InvalidField {
            offset: offset.saturating_add(8),
            what: "extent length (non-zero, no overflow)",
            found: e.len,
        });
    }
    Ok(e)
}
