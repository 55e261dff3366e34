//! Compressed streams: found in both images, diffed decompressed, coded
//! back bit-exactly on apply (the package's stream table, see
//! `fota_format::streams`).
//!
//! [`prepare`] scans both images for LZMA streams ("LZMA alone": the
//! 13-byte props/dictionary/size header, as EDK2 firmware volumes and
//! `.lzma` files carry them), LZMA2 streams (the first block of an `.xz`
//! file) and deflate streams (after a gzip, zlib or zip local header),
//! keeps those whose data and parse code back to
//! exactly their bytes, and builds the expanded images the rest of the
//! pipeline diffs. The host applier undoes it with [`expand_source`] and
//! [`pack_target`].

pub mod deflate;
pub mod lzma;
pub mod synth;

use std::fmt;

use fota_format::streams::{Images, Stream, StreamCodec, StreamTable, MAX_STREAMS};
use fota_format::Error as FormatError;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Why a stream or a parse could not be coded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Offset in the compressed stream (decoding) or in the parse (encoding).
    pub offset: u64,
    /// What was expected there.
    pub what: &'static str,
}

impl From<fota_format::lzma::LzmaError> for CodecError {
    fn from(e: fota_format::lzma::LzmaError) -> Self {
        CodecError {
            offset: e.offset,
            what: e.what,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.what)
    }
}

/// Appends one LEB128 value to a parse.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a parse token by token, with offsets for errors.
pub(crate) struct ParseReader<'a> {
    pub(crate) parse: &'a [u8],
    pub(crate) pos: usize,
}

impl ParseReader<'_> {
    pub(crate) fn error(&self, what: &'static str) -> CodecError {
        CodecError {
            offset: self.pos as u64,
            what,
        }
    }

    pub(crate) fn byte(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let b = *self.parse.get(self.pos).ok_or(self.error(what))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = [
            self.byte(what)?,
            self.byte(what)?,
            self.byte(what)?,
            self.byte(what)?,
        ];
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error(what))
    }
}

/// Smallest compressed stream worth expanding: below it the table record
/// and the parse cost more than a byte diff of the stream.
pub const MIN_STREAM_LEN: u64 = 512;
/// Most decoded bytes of one stream, and of all streams of one image: keeps
/// the expanded images within what the generator indexes.
pub const MAX_EXPANDED: u64 = 1 << 30;

/// A stream found in an image, with its data and parse.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where it is and how it is coded.
    pub stream: Stream,
    /// Its decoded data.
    pub data: Vec<u8>,
    /// Its parse.
    pub parse: Vec<u8>,
}

/// What the stream stage did, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Streams expanded in the old image.
    pub source_streams: u32,
    /// Streams expanded in the new image.
    pub target_streams: u32,
    /// Compressed bytes of the new image's streams.
    pub target_compressed: u64,
    /// Their decoded bytes.
    pub target_data: u64,
    /// Their parse bytes.
    pub target_parse: u64,
}

/// The expanded images and the table that maps them back.
#[derive(Debug, Clone)]
pub struct Expanded {
    /// The old image with its streams expanded.
    pub old: Vec<u8>,
    /// The new image with its streams expanded.
    pub new: Vec<u8>,
    /// The stream table (the STREAMS op's payload).
    pub table: Vec<u8>,
    /// Figures.
    pub stats: StreamStats,
}

/// Whether an LZMA-alone header starts at `at`: props below 225 with
/// `lc + lp` at most [`LCLP_MAX`], a dictionary of 2^n or 2^n + 2^(n-1)
/// bytes (4 KiB to 1.5 GiB), a size that is unknown or plausible, and a
/// range coder start byte of 0.
fn lzma_header(image: &[u8], at: usize) -> Option<(lzma::Props, Option<u64>)> {
    let h = image.get(at..at + 18)?;
    let props = lzma::Props::from_byte(h[0]).filter(|p| p.lc + p.lp <= LCLP_MAX)?;
    let dict = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
    let top = dict.checked_ilog2()?;
    let dict_ok = top >= 12 && (dict == 1 << top || dict == (1 << top) | (1 << (top - 1)));
    let size = u64::from_le_bytes([h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12]]);
    let size = (size != u64::MAX).then_some(size);
    let size_ok = size.is_none_or(|s| (64..=MAX_EXPANDED).contains(&s));
    (dict_ok && size_ok && h[13] == 0 && h[14..18] != [0xff; 4]).then_some((props, size))
}

/// Largest `lc + lp` of a stream the finder tries: liblzma (so xz and
/// every tool built on it) neither writes nor reads more. Each false
/// candidate with more costs a literal model of up to 6 MiB (`0x300 <<
/// 12` probabilities) before its first bytes fail to decode; on a 10 MB
/// executable that was a thousand such models.
const LCLP_MAX: u32 = 4;

/// The LZMA parameters of a stream record's props byte.
fn lzma_props(props: u8) -> Result<lzma::Props, CodecError> {
    lzma::Props::from_byte(props).ok_or(CodecError {
        offset: 0,
        what: "lzma props below 225",
    })
}

/// Decodes a stream of `codec` from the start of `input`.
fn decode_stream(
    codec: StreamCodec,
    props: u8,
    input: &[u8],
    size: Option<u64>,
    max_data: u64,
) -> Result<lzma::Decoded, CodecError> {
    match codec {
        StreamCodec::Lzma => lzma::decode(input, lzma_props(props)?, size, max_data),
        StreamCodec::Deflate => deflate::decode(input, max_data),
        StreamCodec::Lzma2 => lzma::decode2(input, max_data),
    }
}

/// Codes a stream of `codec` from its data and parse.
fn encode_stream(
    codec: StreamCodec,
    props: u8,
    data: &[u8],
    parse: &[u8],
) -> Result<Vec<u8>, CodecError> {
    match codec {
        StreamCodec::Lzma => lzma::encode(data, parse, lzma_props(props)?),
        StreamCodec::Deflate => deflate::encode(data, parse),
        StreamCodec::Lzma2 => lzma::encode2(data, parse),
    }
}

/// Where a deflate stream starts after a gzip member header, a zip local
/// file header (method 8) or a zlib header at `at`.
fn deflate_header(image: &[u8], at: usize) -> Option<usize> {
    let h = image.get(at..at + 30)?;
    match h {
        [0x1f, 0x8b, 8, flags, ..] if flags & 0xe0 == 0 => {
            let mut p = at + 10;
            if flags & 4 != 0 {
                let xlen = u16::from_le_bytes([*image.get(p)?, *image.get(p + 1)?]);
                p += 2 + usize::from(xlen);
            }
            for bit in [8u8, 16] {
                if flags & bit != 0 {
                    p += image.get(p..)?.iter().position(|&b| b == 0)? + 1;
                }
            }
            if flags & 2 != 0 {
                p += 2;
            }
            Some(p)
        }
        [0x50, 0x4b, 3, 4, ..] if h[8..10] == [8, 0] => {
            let name = usize::from(u16::from_le_bytes([h[26], h[27]]));
            let extra = usize::from(u16::from_le_bytes([h[28], h[29]]));
            Some(at + 30 + name + extra)
        }
        [cmf, flg, ..]
            if cmf & 0x0f == 8
                && cmf >> 4 <= 7
                && flg & 0x20 == 0
                && ((u16::from(*cmf) << 8) | u16::from(*flg)) % 31 == 0 =>
        {
            Some(at + 2)
        }
        _ => None,
    }
}

/// A stream candidate: where its compressed bytes start, its codec,
/// props and (LZMA with the size in its header) decoded size.
type Candidate = (usize, StreamCodec, u8, Option<u64>);

/// Where the LZMA2 data of the first block of an `.xz` stream starting at
/// `at` begins: the stream header, then a block header whose last filter
/// is LZMA2 (earlier BCJ or delta filters stay applied to the data).
fn xz_block(image: &[u8], at: usize) -> Option<usize> {
    let h = image.get(at..at + 14)?;
    if h[..6] != [0xfd, b'7', b'z', b'X', b'Z', 0] || h[6] != 0 || h[7] > 0x0f || h[12] == 0 {
        return None;
    }
    let block = at + 12;
    let header_len = (usize::from(h[12]) + 1) * 4;
    let header = image.get(block..block + header_len)?;
    let flags = header[1];
    if flags & 0x3c != 0 {
        return None;
    }
    let mut p = 2;
    let varint = |p: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..63).step_by(7) {
            let b = *header.get(*p)?;
            *p += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    for bit in [0x40u8, 0x80] {
        if flags & bit != 0 {
            varint(&mut p)?;
        }
    }
    let mut last = 0;
    for _ in 0..=(flags & 3) {
        last = varint(&mut p)?;
        let size = varint(&mut p)? as usize;
        p += size;
    }
    (last == 0x21 && p <= header_len).then_some(block + header_len)
}

/// Whether a header may start with the bytes `first`, `second`: most
/// positions start none, and these two bytes rule out each kind before its
/// header is parsed. An LZMA dictionary size is at least 4 KiB and a power
/// of two or 1.5 times one, so its low byte is 0; a deflate stream follows
/// a gzip, zip or zlib header (CMF: method 8, window up to 32 KiB); an xz
/// stream starts with 0xfd.
#[inline(always)]
fn may_start_header(first: u8, second: u8) -> bool {
    (first < 225 && second == 0)
        || matches!(first, 0x1f | 0x50 | 0xfd)
        || (first & 0x0f == 8 && first >> 4 <= 7)
}

/// The stream a header at `at` announces (called where
/// [`may_start_header`] lets one start).
#[inline(never)]
fn candidate(image: &[u8], at: usize) -> Option<Candidate> {
    if let Some((_, size)) = lzma_header(image, at) {
        return Some((at + 13, StreamCodec::Lzma, image[at], size));
    }
    if let Some(start) = xz_block(image, at) {
        return Some((start, StreamCodec::Lzma2, 0, None));
    }
    deflate_header(image, at).map(|start| (start, StreamCodec::Deflate, 0, None))
}

/// Decodes the stream a candidate names and checks it codes back to its
/// own bytes.
fn try_stream((start, codec, props, size): Candidate, image: &[u8]) -> Option<Found> {
    let input = image.get(start..)?;
    let decoded = decode_stream(codec, props, input, size, MAX_EXPANDED).ok()?;
    let coded = encode_stream(codec, props, &decoded.data, &decoded.parse).ok()?;
    if coded.len() < decoded.read || !input.starts_with(&coded) {
        return None;
    }
    Some(Found {
        stream: Stream {
            offset: start as u64,
            len: coded.len() as u64,
            data_len: decoded.data.len() as u64,
            parse_len: decoded.parse.len() as u64,
            codec,
            props,
            end_marker: decoded.end_marker,
        },
        data: decoded.data,
        parse: decoded.parse,
    })
}

/// The LZMA, LZMA2 and deflate streams of `image` that code back bit-exactly, in order, at
/// least [`MIN_STREAM_LEN`] compressed bytes each.
pub fn find(image: &[u8]) -> Vec<Found> {
    // Candidates are cheap to filter; decoding them is the cost, so it
    // runs in parallel, and overlapping hits are resolved in order after.
    // Pairs at every position a header can start (18 bytes before the end).
    let scanned = image.get(..image.len().saturating_sub(17)).unwrap_or(&[]);
    let mut candidates: Vec<(usize, Candidate)> = Vec::new();
    for (at, pair) in scanned.windows(2).enumerate() {
        if may_start_header(pair[0], pair[1]) {
            candidates.extend(candidate(image, at).map(|c| (at, c)));
        }
    }
    let found: Vec<(usize, Found)> = candidates
        .par_iter()
        .filter_map(|&(at, c)| Some((at, try_stream(c, image)?)))
        .filter(|(_, f)| f.stream.len >= MIN_STREAM_LEN)
        .collect();
    let mut kept: Vec<Found> = Vec::new();
    let mut end = 0u64;
    let mut total = 0u64;
    for (at, f) in found {
        let s = &f.stream;
        // The header sits before the stream and stays a plain byte range.
        if (at as u64) < end || kept.len() >= MAX_STREAMS as usize {
            continue;
        }
        if total + s.expanded_len() > MAX_EXPANDED {
            continue;
        }
        total += s.expanded_len();
        end = s.offset + s.len;
        kept.push(f);
    }
    kept
}

/// `image` with each stream of `found` replaced by its data and parse.
pub fn expand(image: &[u8], found: &[Found]) -> Vec<u8> {
    let extra: u64 = found.iter().map(|f| f.stream.expanded_len()).sum();
    let mut out = Vec::with_capacity(image.len() + extra as usize);
    let mut at = 0usize;
    for f in found {
        let s = &f.stream;
        out.extend_from_slice(&image[at..s.offset as usize]);
        out.extend_from_slice(&f.data);
        out.extend_from_slice(&f.parse);
        at = (s.offset + s.len) as usize;
    }
    out.extend_from_slice(&image[at..]);
    out
}

/// Finds the streams of both images and expands them; `None` when the new
/// image has none (expanding only the old one cannot help the new one).
pub fn prepare(old: &[u8], new: &[u8]) -> Option<Expanded> {
    let (old_found, new_found) = rayon::join(|| find(old), || find(new));
    if new_found.is_empty() {
        return None;
    }
    let images = Images {
        source_size: old.len() as u64,
        source_sha256: Sha256::digest(old).into(),
        target_size: new.len() as u64,
        target_sha256: Sha256::digest(new).into(),
    };
    let mut table =
        StreamTable::header_bytes(&images, old_found.len() as u32, new_found.len() as u32).to_vec();
    for f in old_found.iter().chain(&new_found) {
        table.extend_from_slice(&f.stream.to_bytes());
    }
    let stats = StreamStats {
        source_streams: old_found.len() as u32,
        target_streams: new_found.len() as u32,
        target_compressed: new_found.iter().map(|f| f.stream.len).sum(),
        target_data: new_found.iter().map(|f| f.stream.data_len).sum(),
        target_parse: new_found.iter().map(|f| f.stream.parse_len).sum(),
    };
    let (old_x, new_x) = rayon::join(|| expand(old, &old_found), || expand(new, &new_found));
    Some(Expanded {
        old: old_x,
        new: new_x,
        table,
        stats,
    })
}

/// Checks the real source against the table, then expands it: what the
/// ops of a package with a stream table read.
///
/// # Errors
/// `SourceSizeMismatch`, `SourceHashMismatch` for another source;
/// `StreamCoding` when a listed stream does not decode as listed.
pub fn expand_source(source: &[u8], table: &StreamTable<'_>) -> Result<Vec<u8>, FormatError> {
    let images = table.images();
    if source.len() as u64 != images.source_size {
        return Err(FormatError::SourceSizeMismatch {
            expected: images.source_size,
            found: source.len() as u64,
        });
    }
    if Sha256::digest(source).as_slice() != images.source_sha256 {
        return Err(FormatError::SourceHashMismatch);
    }
    let streams: Vec<Stream> = table.source_streams().collect();
    let found = streams
        .par_iter()
        .map(|s| {
            let fail = |offset: u64, what| FormatError::StreamCoding {
                side: "source",
                stream_offset: s.offset,
                offset,
                what,
            };
            // The table checked the extent lies inside the image.
            let input = &source[s.offset as usize..(s.offset + s.len) as usize];
            let size = (!s.end_marker).then_some(s.data_len);
            let d = decode_stream(s.codec, s.props, input, size, s.data_len)
                .map_err(|e| fail(e.offset, e.what))?;
            if d.data.len() as u64 != s.data_len || d.parse.len() as u64 != s.parse_len {
                return Err(fail(
                    d.read as u64,
                    "the data and parse lengths the table lists",
                ));
            }
            Ok(Found {
                stream: *s,
                data: d.data,
                parse: d.parse,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(expand(source, &found))
}

/// Codes the target's streams back from the expanded target and checks the
/// real target against the table.
///
/// # Errors
/// `StreamCoding` when a stream's parse is malformed or codes to another
/// length; `TargetHashMismatch` when the result is not the real target.
pub fn pack_target(expanded: &[u8], table: &StreamTable<'_>) -> Result<Vec<u8>, FormatError> {
    let images = table.images();
    let streams: Vec<Stream> = table.target_streams().collect();
    // Where each stream's data and parse sit in the expanded image.
    let mut pieces = Vec::with_capacity(streams.len());
    let (mut raw, mut at) = (0u64, 0u64);
    for s in &streams {
        let data_at = at + (s.offset - raw);
        pieces.push(data_at);
        at = data_at + s.expanded_len();
        raw = s.offset + s.len;
    }
    let coded = streams
        .par_iter()
        .zip(&pieces)
        .map(|(s, &data_at)| {
            let fail = |offset: u64, what| FormatError::StreamCoding {
                side: "target",
                stream_offset: s.offset,
                offset,
                what,
            };
            // The table's sizes add up to the expanded length the ops made.
            let data = &expanded[data_at as usize..(data_at + s.data_len) as usize];
            let parse_at = data_at + s.data_len;
            let parse = &expanded[parse_at as usize..(parse_at + s.parse_len) as usize];
            let out =
                encode_stream(s.codec, s.props, data, parse).map_err(|e| fail(e.offset, e.what))?;
            if out.len() as u64 != s.len {
                return Err(fail(s.len, "the compressed length the table lists"));
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(images.target_size as usize);
    let mut at = 0usize;
    for ((s, data_at), bytes) in streams.iter().zip(&pieces).zip(&coded) {
        let gap = (*data_at as usize) - at;
        out.extend_from_slice(&expanded[at..at + gap]);
        out.extend_from_slice(bytes);
        at = (data_at + s.expanded_len()) as usize;
    }
    out.extend_from_slice(&expanded[at..]);
    if out.len() as u64 != images.target_size
        || Sha256::digest(&out).as_slice() != images.target_sha256
    {
        return Err(FormatError::TargetHashMismatch);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn every_header_the_finder_reads_passes_its_two_byte_filter() {
        let mut image = vec![0x5a; 64];
        let mut read = 0usize;
        let mut check = |header: &[u8]| {
            image[..header.len()].copy_from_slice(header);
            if candidate(&image, 0).is_some() {
                assert!(may_start_header(image[0], image[1]), "{header:x?}");
                read += 1;
            }
        };
        // LZMA-alone: every props byte and dictionary size liblzma writes.
        for props in 0..=255u8 {
            for top in 12..32u32 {
                for dict in [1u32 << top, (1 << top) | (1 << (top - 1))] {
                    let mut h = vec![props];
                    h.extend_from_slice(&dict.to_le_bytes());
                    h.extend_from_slice(&[0xff; 8]);
                    h.extend_from_slice(&[0, 1, 2, 3, 4]);
                    check(&h);
                }
            }
        }
        // zlib: every CMF and FLG byte; gzip and zip member headers.
        for cmf in 0..=255u8 {
            for flg in 0..=255u8 {
                check(&[cmf, flg]);
            }
        }
        check(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        let mut zip = vec![0x50, 0x4b, 3, 4, 20, 0, 0, 0, 8, 0];
        zip.resize(30, 0);
        check(&zip);
        // xz: stream header, then a block header whose filter is LZMA2.
        let mut xz = vec![0xfd, b'7', b'z', b'X', b'Z', 0, 0, 1, 0, 0, 0, 0];
        xz.extend_from_slice(&[2, 0, 0x21, 1, 0x16, 0, 0, 0, 0, 0, 0, 0]);
        check(&xz);
        // 75 props bytes with lc + lp <= 4, 40 sizes; 8 CMF bytes times
        // the FLG bytes that make a multiple of 31 without FDICT; 3 more.
        assert!(read > 75 * 40 + 8 * 4 + 3, "{read} headers read");
    }

    /// An LZMA-alone header: props, 8 MiB dictionary, unknown size, and
    /// the range coder's zero start byte.
    fn alone_header(props: lzma::Props) -> Vec<u8> {
        let mut h = vec![props.to_byte()];
        h.extend_from_slice(&(8u32 << 20).to_le_bytes());
        h.extend_from_slice(&[0xff; 8]);
        h.extend_from_slice(&[0, 0x12, 0x34, 0x56, 0x78]);
        h
    }

    #[test]
    fn lzma_candidates_stop_at_liblzmas_lc_plus_lp() {
        let props = |lc, lp| lzma::Props { lc, lp, pb: 2 };
        for (lc, lp) in [(3, 0), (4, 0), (0, 4), (2, 2)] {
            let h = alone_header(props(lc, lp));
            assert_eq!(lzma_header(&h, 0), Some((props(lc, lp), None)), "{lc} {lp}");
        }
        for (lc, lp) in [(5, 0), (8, 4), (3, 2), (1, 4)] {
            let h = alone_header(props(lc, lp));
            assert_eq!(lzma_header(&h, 0), None, "{lc} {lp}");
        }
    }
}
