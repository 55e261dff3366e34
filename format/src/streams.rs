//! The stream table: compressed streams the package diffs decompressed.
//!
//! Firmware often holds compressed streams (the LZMA sections of a UEFI
//! firmware volume, a gzip-compressed kernel or file system). A one-byte change in the data
//! changes every compressed byte after it, so a byte diff of the streams
//! ships most of them again. A package with a stream table instead diffs
//! *expanded* images: every listed stream of the source and of the target
//! is replaced, in place, by its decoded data followed by its *parse* (the
//! decoder's token sequence: literal runs, matches, repeats), and the ops
//! turn the expanded source into the expanded target. The applier then
//! re-encodes each target stream from its data and parse, which makes the
//! original bytes again whatever encoder made them: coding a given token
//! sequence is deterministic (the generator checks the round trip of every
//! stream it lists).
//!
//! When the manifest's `streams_len` is non-zero, op 0 is the STREAMS op
//! whose stored payload is this table, and the manifest's source and target
//! (sizes, sha256) are the *expanded* images; the table carries the real
//! images' sizes and sha256. Re-encoding needs the whole stream's data at
//! hand, so this is a host-profile feature: the on-device agent refuses
//! such packages before it touches flash.
//!
//! ```text
//! table:  version u8 = 1 | reserved 3 | source count u32 | target count u32
//!         | reserved 4 | source size u64 | source sha256 [32]
//!         | target size u64 | target sha256 [32]            (96 B)
//!         then the source's streams, then the target's      (40 B each)
//! stream: offset u64 | len u64 | data len u64 | parse len u64
//!         | codec u8 | props u8 | flags u8 | reserved 5
//! ```
//!
//! Streams of one image are sorted and do not overlap. The expanded image
//! is the real one with each stream's `len` bytes at `offset` replaced by
//! `data len` bytes of data, then `parse len` bytes of parse.

use crate::bytes::{Reader, Writer};
use crate::error::{Error, Result};

/// Length of the table's fixed part.
pub const TABLE_HEADER_LEN: usize = 96;
/// Length of one stream record.
pub const STREAM_LEN: usize = 40;
/// Most streams one image may list: bounds the table at about 320 KiB.
pub const MAX_STREAMS: u32 = 4096;
/// The table version this crate reads.
pub const STREAMS_VERSION: u8 = 1;
/// Largest table: the fixed part and [`MAX_STREAMS`] per image.
pub const MAX_STREAMS_LEN: u32 = (TABLE_HEADER_LEN + 2 * STREAM_LEN * MAX_STREAMS as usize) as u32;

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamCodec {
    /// Raw LZMA (the "LZMA alone" payload after its 13-byte header, as in
    /// EDK2's LZMA sections and `.lzma` files): `props` is the header's
    /// lc/lp/pb byte, and flag bit 0 says the stream ends with the
    /// end-of-stream marker.
    Lzma = 1,
    /// Raw deflate (RFC 1951), as in gzip members, zlib streams and zip
    /// entries (their headers and trailers stay plain byte ranges around
    /// it); `props` and flags are zero.
    Deflate = 2,
    /// LZMA2, as in the blocks of `.xz` files (the container's headers,
    /// padding, checks and index stay plain byte ranges around it); `props`
    /// and flags are zero.
    Lzma2 = 3,
}

impl StreamCodec {
    /// The codec for a record byte, if known.
    pub fn from_u8(v: u8) -> Option<StreamCodec> {
        match v {
            1 => Some(StreamCodec::Lzma),
            2 => Some(StreamCodec::Deflate),
            3 => Some(StreamCodec::Lzma2),
            _ => None,
        }
    }

    /// Lower-case name, for listings.
    pub fn name(self) -> &'static str {
        match self {
            StreamCodec::Lzma => "lzma",
            StreamCodec::Deflate => "deflate",
            StreamCodec::Lzma2 => "lzma2",
        }
    }
}

/// One compressed stream of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stream {
    /// Offset of the compressed bytes in the real image.
    pub offset: u64,
    /// Compressed length.
    pub len: u64,
    /// Decoded length.
    pub data_len: u64,
    /// Length of the parse that follows the data in the expanded image.
    pub parse_len: u64,
    /// How the stream is compressed.
    pub codec: StreamCodec,
    /// Codec parameters (LZMA: the lc/lp/pb byte, below 225).
    pub props: u8,
    /// Whether the stream ends with an end-of-stream marker.
    pub end_marker: bool,
}

impl Stream {
    /// Encodes the stream record.
    pub fn to_bytes(&self) -> [u8; STREAM_LEN] {
        let mut out = [0u8; STREAM_LEN];
        let mut w = Writer::new(&mut out);
        w.u64(self.offset);
        w.u64(self.len);
        w.u64(self.data_len);
        w.u64(self.parse_len);
        w.u8(self.codec as u8);
        w.u8(self.props);
        w.u8(u8::from(self.end_marker));
        w.zeros(5);
        debug_assert_eq!(w.written(), STREAM_LEN);
        out
    }

    /// Bytes the stream takes in the expanded image.
    pub fn expanded_len(&self) -> u64 {
        self.data_len.saturating_add(self.parse_len)
    }

    fn parse(r: &mut Reader<'_>) -> Result<Stream> {
        let offset = r.u64("stream offset")?;
        let len = r.u64("stream length")?;
        let data_len = r.u64("stream data length")?;
        let parse_len = r.u64("stream parse length")?;
        let at = r.offset();
        let codec_byte = r.u8("stream codec")?;
        let codec = StreamCodec::from_u8(codec_byte).ok_or(Error::InvalidField {
            offset: at,
            what: "stream codec (1 = lzma, 2 = deflate, 3 = lzma2)",
            found: codec_byte.into(),
        })?;
        let at = r.offset();
        let props = r.u8("stream props")?;
        if props >= 225 || (codec != StreamCodec::Lzma && props != 0) {
            return Err(Error::InvalidField {
                offset: at,
                what: "stream props (lzma: (pb * 5 + lp) * 9 + lc, below 225; others: 0)",
                found: props.into(),
            });
        }
        let at = r.offset();
        let flags = r.u8("stream flags")?;
        if flags > 1 || (codec != StreamCodec::Lzma && flags != 0) {
            return Err(Error::InvalidField {
                offset: at,
                what: "stream flags (lzma: bit 0, end marker; others: 0)",
                found: flags.into(),
            });
        }
        r.reserved::<5>()?;
        Ok(Stream {
            offset,
            len,
            data_len,
            parse_len,
            codec,
            props,
            end_marker: flags & 1 != 0,
        })
    }
}

/// The fixed part of the table: the real images the expanded ones stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Images {
    /// Size of the real source image.
    pub source_size: u64,
    /// sha256 of the real source image.
    pub source_sha256: [u8; 32],
    /// Size of the real target image.
    pub target_size: u64,
    /// sha256 of the real target image.
    pub target_sha256: [u8; 32],
}

/// A parsed, checked stream table over its bytes.
#[derive(Debug, Clone, Copy)]
pub struct StreamTable<'a> {
    images: Images,
    source_count: u32,
    target_count: u32,
    records: &'a [u8],
    base: u64,
}

impl<'a> StreamTable<'a> {
    /// Encodes the table's fixed part for `source_count` and
    /// `target_count` streams; their records follow it.
    pub fn header_bytes(
        images: &Images,
        source_count: u32,
        target_count: u32,
    ) -> [u8; TABLE_HEADER_LEN] {
        let mut out = [0u8; TABLE_HEADER_LEN];
        let mut w = Writer::new(&mut out);
        w.u8(STREAMS_VERSION);
        w.zeros(3);
        w.u32(source_count);
        w.u32(target_count);
        w.zeros(4);
        w.u64(images.source_size);
        w.bytes(&images.source_sha256);
        w.u64(images.target_size);
        w.bytes(&images.target_sha256);
        debug_assert_eq!(w.written(), TABLE_HEADER_LEN);
        out
    }

    /// Parses and checks a table whose first byte sits at package offset
    /// `base`: known version and codecs, exact length, streams sorted,
    /// disjoint and inside their real image, and expanded sizes that equal
    /// the manifest's `source_size` and `target_size`.
    ///
    /// # Errors
    /// `Truncated`, `UnsupportedVersion`, `BadLength`, `InvalidField`,
    /// `NonZeroReserved`.
    pub fn parse(
        bytes: &'a [u8],
        base: u64,
        expanded_source: u64,
        expanded_target: u64,
    ) -> Result<StreamTable<'a>> {
        let mut r = Reader::new(bytes, base);
        let at = r.offset();
        let version = r.u8("stream table version")?;
        if version != STREAMS_VERSION {
            return Err(Error::InvalidField {
                offset: at,
                what: "stream table version (1)",
                found: version.into(),
            });
        }
        r.reserved::<3>()?;
        let mut counts = [0u32; 2];
        for count in &mut counts {
            let at = r.offset();
            *count = r.u32("stream count")?;
            if *count > MAX_STREAMS {
                return Err(Error::BadLength {
                    offset: at,
                    what: "stream count (at most 4096 per image)",
                    expected: MAX_STREAMS.into(),
                    found: (*count).into(),
                });
            }
        }
        r.reserved::<4>()?;
        let images = Images {
            source_size: r.u64("real source size")?,
            source_sha256: r.array("real source sha256")?,
            target_size: r.u64("real target size")?,
            target_sha256: r.array("real target sha256")?,
        };
        let want = TABLE_HEADER_LEN + (counts[0] as usize + counts[1] as usize) * STREAM_LEN;
        if bytes.len() != want {
            return Err(Error::BadLength {
                offset: base,
                what: "stream table length (fixed part and 40 bytes per stream)",
                expected: want as u64,
                found: bytes.len() as u64,
            });
        }
        let table = StreamTable {
            images,
            source_count: counts[0],
            target_count: counts[1],
            records: bytes.get(TABLE_HEADER_LEN..).unwrap_or_default(),
            base: base + TABLE_HEADER_LEN as u64,
        };
        table.check_side(0, counts[0], images.source_size, expanded_source)?;
        table.check_side(counts[0], counts[1], images.target_size, expanded_target)?;
        Ok(table)
    }

    /// Checks one image's records and its expanded size.
    fn check_side(&self, first: u32, count: u32, real: u64, expanded: u64) -> Result<()> {
        let mut end = 0u64;
        let mut size = real;
        for i in first..first + count {
            let at = self.record_offset(i);
            let s = self.record(i)?;
            let s_end = s.offset.saturating_add(s.len);
            if s.offset < end || s_end > real || s.len < 5 {
                return Err(Error::InvalidField {
                    offset: at,
                    what: "stream extent (sorted, disjoint, at least 5 bytes, inside its image)",
                    found: s.offset,
                });
            }
            end = s_end;
            size = size
                .saturating_sub(s.len)
                .saturating_add(s.data_len)
                .saturating_add(s.parse_len);
        }
        if size != expanded {
            return Err(Error::BadLength {
                offset: self.record_offset(first),
                what: "expanded image size (the manifest's size)",
                expected: expanded,
                found: size,
            });
        }
        Ok(())
    }

    fn record_offset(&self, i: u32) -> u64 {
        self.base + u64::from(i) * STREAM_LEN as u64
    }

    fn record(&self, i: u32) -> Result<Stream> {
        let start = i as usize * STREAM_LEN;
        let bytes = self
            .records
            .get(start..start + STREAM_LEN)
            .unwrap_or_default();
        Stream::parse(&mut Reader::new(bytes, self.record_offset(i)))
    }

    /// The real images.
    pub fn images(&self) -> &Images {
        &self.images
    }

    /// Number of source streams.
    pub fn source_count(&self) -> u32 {
        self.source_count
    }

    /// Number of target streams.
    pub fn target_count(&self) -> u32 {
        self.target_count
    }

    /// The source's streams, in image order.
    pub fn source_streams(&self) -> impl Iterator<Item = Stream> + '_ {
        (0..self.source_count).filter_map(|i| self.record(i).ok())
    }

    /// The target's streams, in image order.
    pub fn target_streams(&self) -> impl Iterator<Item = Stream> + '_ {
        (self.source_count..self.source_count + self.target_count)
            .filter_map(|i| self.record(i).ok())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn stream(offset: u64, len: u64, data_len: u64, parse_len: u64) -> Stream {
        Stream {
            offset,
            len,
            data_len,
            parse_len,
            codec: StreamCodec::Lzma,
            props: 0x5d,
            end_marker: false,
        }
    }

    fn table(images: &Images, old: &[Stream], new: &[Stream]) -> [u8; 256] {
        let mut out = [0u8; 256];
        let head = StreamTable::header_bytes(images, old.len() as u32, new.len() as u32);
        out[..TABLE_HEADER_LEN].copy_from_slice(&head);
        for (i, s) in old.iter().chain(new).enumerate() {
            let at = TABLE_HEADER_LEN + i * STREAM_LEN;
            out[at..at + STREAM_LEN].copy_from_slice(&s.to_bytes());
        }
        out
    }

    const IMAGES: Images = Images {
        source_size: 1000,
        source_sha256: [1; 32],
        target_size: 2000,
        target_sha256: [2; 32],
    };

    #[test]
    fn round_trips_and_sizes_the_expanded_images() {
        let old = [stream(100, 50, 400, 60)];
        let new = [stream(10, 20, 30, 5), stream(500, 100, 900, 40)];
        let bytes = table(&IMAGES, &old, &new);
        let len = TABLE_HEADER_LEN + 3 * STREAM_LEN;
        let t = StreamTable::parse(&bytes[..len], 7, 1000 - 50 + 460, 2000 - 120 + 975).unwrap();
        assert_eq!(*t.images(), IMAGES);
        assert!(t.source_streams().eq(old));
        assert!(t.target_streams().eq(new));
    }

    #[test]
    fn refuses_bad_tables_with_their_offset() {
        let len = TABLE_HEADER_LEN + 2 * STREAM_LEN;
        let ok = table(&IMAGES, &[stream(0, 10, 20, 3)], &[stream(0, 10, 20, 3)]);
        let (src, dst) = (1000 + 13, 2000 + 13);
        assert!(StreamTable::parse(&ok[..len], 0, src, dst).is_ok());
        // Wrong expanded size.
        assert!(matches!(
            StreamTable::parse(&ok[..len], 0, src + 1, dst),
            Err(Error::BadLength { offset: 96, .. })
        ));
        // Trailing byte.
        assert!(matches!(
            StreamTable::parse(&ok[..len + 1], 0, src, dst),
            Err(Error::BadLength { offset: 0, .. })
        ));
        let mut bad = ok;
        bad[0] = 2;
        assert!(matches!(
            StreamTable::parse(&bad[..len], 0, src, dst),
            Err(Error::InvalidField { offset: 0, .. })
        ));
        let mut bad = ok;
        bad[96 + 32] = 9; // codec
        assert!(matches!(
            StreamTable::parse(&bad[..len], 0, src, dst),
            Err(Error::InvalidField { offset: 128, .. })
        ));
        let mut bad = ok;
        bad[96 + 33] = 225; // props
        assert!(matches!(
            StreamTable::parse(&bad[..len], 0, src, dst),
            Err(Error::InvalidField { offset: 129, .. })
        ));
        let mut bad = ok;
        bad[96 + 34] = 2; // flags
        assert!(matches!(
            StreamTable::parse(&bad[..len], 0, src, dst),
            Err(Error::InvalidField { offset: 130, .. })
        ));
        let mut bad = ok;
        bad[96 + 39] = 1; // reserved
        assert!(matches!(
            StreamTable::parse(&bad[..len], 0, src, dst),
            Err(Error::NonZeroReserved { offset: 131 })
        ));
        // Outside the image, overlapping.
        let out = table(&IMAGES, &[stream(995, 10, 20, 3)], &[stream(0, 10, 20, 3)]);
        assert!(matches!(
            StreamTable::parse(&out[..len], 0, src, dst),
            Err(Error::InvalidField { offset: 96, .. })
        ));
        let two = TABLE_HEADER_LEN + 3 * STREAM_LEN;
        let overlap = table(
            &IMAGES,
            &[stream(0, 10, 10, 0), stream(5, 10, 10, 0)],
            &[stream(0, 10, 20, 3)],
        );
        assert!(matches!(
            StreamTable::parse(&overlap[..two], 0, 1000, dst),
            Err(Error::InvalidField { offset: 136, .. })
        ));
        // Too many streams.
        let mut many = ok;
        many[4..8].copy_from_slice(&(MAX_STREAMS + 1).to_le_bytes());
        assert!(matches!(
            StreamTable::parse(&many[..len], 0, src, dst),
            Err(Error::BadLength { offset: 4, .. })
        ));
        // Cut short.
        assert!(matches!(
            StreamTable::parse(&ok[..50], 0, src, dst),
            Err(Error::Truncated { .. })
        ));
    }
}
