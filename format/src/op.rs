//! Op records: each writes exactly one destination segment.
//!
//! An op is a fixed [`OP_HEADER_LEN`]-byte header, `extent_count` source
//! extents of [`EXTENT_LEN`] bytes, then `payload_len` payload bytes. The
//! sha256 of those bytes is the link the previous op (or the manifest)
//! carries, so a device authenticates the op stream with 32 bytes of state.

use crate::bytes::{Reader, Writer};
use crate::error::{Error, Result};

/// Length of an op header.
pub const OP_HEADER_LEN: usize = 128;
/// Length of one source extent record.
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

    /// Encodes the extent record.
    pub fn to_bytes(&self) -> [u8; EXTENT_LEN] {
        let mut out = [0u8; EXTENT_LEN];
        out[..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..].copy_from_slice(&self.len.to_le_bytes());
        out
    }
}

/// The fixed part of an op.
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

impl OpHeader {
    /// Parses an op header at package offset `offset` and checks the rules
    /// that need no other context: known kind and codec, zero reserved
    /// bytes, payload fields consistent with the kind, extent count bound.
    ///
    /// # Errors
    /// `Truncated`, `InvalidField`, `NonZeroReserved`, `BadLength`.
    pub fn parse(bytes: &[u8], offset: u64) -> Result<OpHeader> {
        let mut r = Reader::new(bytes, offset);
        let kind_byte = r.u8("op kind")?;
        let kind = OpKind::from_u8(kind_byte).ok_or(Error::InvalidField {
            offset,
            what: "op kind (1 copy, 2 patch, 3 new, 4 fill, 5 skip, 6 stash, 7 xform)",
            found: kind_byte.into(),
        })?;
        let codec_byte = r.u8("op codec")?;
        let codec = Codec::from_u8(codec_byte).ok_or(Error::InvalidField {
            offset: offset.saturating_add(1),
            what: "op codec (0 stored, 1 zstd, 2 tiny)",
            found: codec_byte.into(),
        })?;
        let fill_value = r.u8("fill value")?;
        r.reserved::<1>()?;
        let extent_count = r.u16("extent count")?;
        r.reserved::<2>()?;
        let payload_len = r.u32("payload length")?;
        let decoded_len = r.u32("decoded length")?;
        let dst_offset = r.u64("destination offset")?;
        let dst_len = r.u32("destination length")?;
        r.reserved::<4>()?;
        let dst_sha256 = r.array("destination sha256")?;
        let src_sha256 = r.array("source sha256")?;
        let next_op_sha256 = r.array("next op sha256")?;
        let h = OpHeader {
            kind,
            codec,
            fill_value,
            extent_count,
            payload_len,
            decoded_len,
            dst_offset,
            dst_len,
            dst_sha256,
            src_sha256,
            next_op_sha256,
        };
        h.check_consistency(offset)?;
        Ok(h)
    }

    fn check_consistency(&self, offset: u64) -> Result<()> {
        let bad = |field_offset: u64, what: &'static str, expected: u64, found: u64| {
            Err(Error::BadLength {
                offset: offset.saturating_add(field_offset),
                what,
                expected,
                found,
            })
        };
        if usize::from(self.extent_count) > MAX_EXTENTS {
            return bad(
                4,
                "extent count (at most 16)",
                MAX_EXTENTS as u64,
                self.extent_count.into(),
            );
        }
        if self.kind != OpKind::Fill && self.fill_value != 0 {
            return Err(Error::NonZeroReserved {
                offset: offset.saturating_add(2),
            });
        }
        if matches!(self.kind, OpKind::Xform | OpKind::Streams) {
            return self.check_xform(offset);
        }
        let has_payload = matches!(self.kind, OpKind::Patch | OpKind::New);
        if !has_payload && self.payload_len != 0 {
            return bad(
                8,
                "payload length (none for copy, fill, skip, stash)",
                0,
                self.payload_len.into(),
            );
        }
        if !has_payload && self.decoded_len != 0 {
            return bad(
                12,
                "decoded length (none for copy, fill, skip, stash)",
                0,
                self.decoded_len.into(),
            );
        }
        if self.kind == OpKind::Patch
            && u64::from(self.decoded_len) > max_patch_decoded_len(self.dst_len)
        {
            return bad(
                12,
                "decoded length (a patch decodes to at most 3 x segment + 1 KiB)",
                max_patch_decoded_len(self.dst_len),
                self.decoded_len.into(),
            );
        }
        if !has_payload && self.codec != Codec::Stored {
            return Err(Error::InvalidField {
                offset: offset.saturating_add(1),
                what: "op codec (stored for ops without payload)",
                found: self.codec as u64,
            });
        }
        if self.codec == Codec::Stored && self.decoded_len != self.payload_len {
            return bad(
                12,
                "decoded length (equals payload length when stored)",
                self.payload_len.into(),
                self.decoded_len.into(),
            );
        }
        if self.codec == Codec::Tiny && self.decoded_len != self.dst_len {
            return bad(
                12,
                "decoded length (equals destination length for tiny)",
                self.dst_len.into(),
                self.decoded_len.into(),
            );
        }
        if self.kind == OpKind::New && self.decoded_len != self.dst_len {
            return bad(
                12,
                "decoded length (equals destination length for new)",
                self.dst_len.into(),
                self.decoded_len.into(),
            );
        }
        let needs_extents = matches!(self.kind, OpKind::Copy | OpKind::Patch);
        if !needs_extents && self.kind != OpKind::Stash && self.extent_count != 0 {
            return bad(
                4,
                "extent count (none for new, fill, skip)",
                0,
                self.extent_count.into(),
            );
        }
        if needs_extents && self.extent_count == 0 {
            return bad(4, "extent count (at least one for copy, patch)", 1, 0);
        }
        if self.kind == OpKind::Stash {
            if self.extent_count != 1 {
                return bad(
                    4,
                    "extent count (exactly one for stash)",
                    1,
                    self.extent_count.into(),
                );
            }
            if self.dst_sha256 != self.src_sha256 {
                return Err(Error::InvalidField {
                    offset: offset.saturating_add(32),
                    what: "stash destination sha256 (equal to the source sha256)",
                    found: 0,
                });
            }
        }
        if self.extent_count == 0 && self.src_sha256 != [0; 32] {
            return Err(Error::NonZeroReserved {
                offset: offset.saturating_add(64),
            });
        }
        Ok(())
    }

    /// An XFORM op: a stored, non-empty payload and nothing else.
    fn check_xform(&self, offset: u64) -> Result<()> {
        let bad = |field_offset: u64, what: &'static str, expected: u64, found: u64| {
            Err(Error::BadLength {
                offset: offset.saturating_add(field_offset),
                what,
                expected,
                found,
            })
        };
        if self.codec != Codec::Stored {
            return Err(Error::InvalidField {
                offset: offset.saturating_add(1),
                what: "op codec (stored for xform and streams)",
                found: self.codec as u64,
            });
        }
        if self.payload_len == 0 || self.decoded_len != self.payload_len {
            return bad(
                12,
                "xform or streams payload (non-empty, decoded length equal to payload length)",
                self.payload_len.into(),
                self.decoded_len.into(),
            );
        }
        if self.extent_count != 0 {
            return bad(
                4,
                "extent count (none for xform and streams)",
                0,
                self.extent_count.into(),
            );
        }
        if self.fill_value != 0 || self.dst_offset != 0 || self.dst_len != 0 {
            return bad(
                16,
                "xform or streams destination (none)",
                0,
                self.dst_offset | u64::from(self.dst_len),
            );
        }
        if self.dst_sha256 != [0; 32] || self.src_sha256 != [0; 32] {
            return Err(Error::NonZeroReserved {
                offset: offset.saturating_add(32),
            });
        }
        Ok(())
    }

    /// Bytes of extents that follow the header.
    pub fn extents_len(&self) -> usize {
        usize::from(self.extent_count) * EXTENT_LEN
    }

    /// Total length of the op on the wire.
    pub fn total_len(&self) -> u64 {
        (OP_HEADER_LEN + self.extents_len()) as u64 + u64::from(self.payload_len)
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; OP_HEADER_LEN] {
        let mut out = [0u8; OP_HEADER_LEN];
        let mut w = Writer::new(&mut out);
        w.u8(self.kind as u8);
        w.u8(self.codec as u8);
        w.u8(self.fill_value);
        w.zeros(1);
        w.u16(self.extent_count);
        w.zeros(2);
        w.u32(self.payload_len);
        w.u32(self.decoded_len);
        w.u64(self.dst_offset);
        w.u32(self.dst_len);
        w.zeros(4);
        w.bytes(&self.dst_sha256);
        w.bytes(&self.src_sha256);
        w.bytes(&self.next_op_sha256);
        debug_assert_eq!(w.written(), OP_HEADER_LEN);
        out
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

/// Parses extent `index` of an op whose extents start at package offset `offset`.
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
