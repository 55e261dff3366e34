//! Coding op payloads of the zstd profile: every candidate coding is made
//! and the smallest kept (zstd frame, LZMA streams in one of the layouts,
//! or the bytes stored). A large patch's diff stream is coded without its
//! long zero runs, which a gap list puts back ([`MIN_GAP`]).
//!
//! LZMA streams come from liblzma, whose optimal parser beats zstd's by a
//! few percent on patch streams and whose raw stream has almost no fixed
//! cost. liblzma does not know the decoded size in advance, so it ends
//! every stream with an end marker; the generator drops it (5 to 6 bytes)
//! by re-coding the stream's parse without it (`streams::lzma`), which
//! gives the same stream bit for bit up to the marker. A stream of several
//! megabytes is coded in pieces on all threads and joined from the
//! pieces' parses the same way (`lzma_in_pieces`).
//!
//! A patch's literals may also be coded after the op's source, which the
//! decoder then holds as a preset dictionary (`lzma_after`, through
//! `preset_lzma`).

use fota_format::lzma::Props;
use fota_format::lzma_payload::{
    gap_diff, patch_payload_len, write_dict_table, write_gaps_table, write_table, DictWindow,
    StreamEntry, LAYOUT_BYTES, LAYOUT_PATCH,
};
use fota_format::op::Codec;
use xz2::stream::{Action, LzmaOptions, Status, Stream};

use crate::error::{Error, Result};
use crate::streams::lzma as lzma_parse;

/// A coded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coded {
    /// How it is coded.
    pub codec: Codec,
    /// The bytes on the wire.
    pub payload: Vec<u8>,
    /// Its length after decoding.
    pub decoded_len: u32,
}

/// lc/lp/pb settings tried for each LZMA stream: liblzma's default (text-
/// like bytes), no literal context (diff bytes, varints) and 4-byte
/// positions (32-bit instruction words).
const PROPS_TRIED: [Props; 3] = [
    Props::DEFAULT,
    Props {
        lc: 0,
        lp: 0,
        pb: 0,
    },
    Props {
        lc: 0,
        lp: 2,
        pb: 2,
    },
];

/// liblzma preset: 6 (bt4 match finder, optimal parsing), the dictionary
/// sized to the stream.
const PRESET: u32 = 6;

/// Match lengths at which liblzma stops looking further: its default, and
/// LZMA's longest match. 64 cuts the zero runs of a diff stream into many
/// short repeats; 273 codes the plain diff of recompiled A32 code about
/// 14 % smaller, for about three times the encoding time, and gains
/// nothing on most other streams. It is used where it wins on the sample
/// by [`LONG_NICE_GAIN`].
const NICE_LENS: [u32; 2] = [64, 273];

/// Share of the sample's coded size the long nice length must save (in
/// 1/1000) to be worth its encoding time.
const LONG_NICE_GAIN: usize = 20;

/// Payloads up to this size get every candidate coding; larger ones only
/// the one that wins on large payloads (LZMA, with the gapped patch layout
/// for a PATCH), so generation time stays one LZMA pass per stream.
const TRY_ALL_LEN: usize = 256 << 10;

/// Streams up to this size are coded with each of [`PROPS_TRIED`]; larger
/// ones with the settings that code a sample of them best.
const PROPS_SAMPLE_LEN: usize = 64 << 10;

/// Streams of at least twice this length are coded in pieces of at least
/// this length, an encoder each, in parallel, and joined into one stream
/// ([`lzma_in_pieces`]). Thread counts do not change where pieces begin, so
/// the package is the same for any count. On the diff streams of large
/// ELF pairs the joined stream is 0 to 0.6 % longer than one encoder's,
/// and a 4 MiB segment is coded in about half the time on two threads.
const PIECE_LEN: usize = 3 << 19;

/// Bytes of the data before a piece its encoder codes first and drops, so
/// that its model has learnt the stream's statistics where the piece
/// begins: without it, pieces of the same diff streams cost up to 1.5 %.
const PIECE_LEAD: usize = 64 << 10;

/// Largest LZMA dictionary: bytes of the new image itself (a NEW op, a
/// patch's literals) find most of their repeats within it. The encoder's
/// tables take about twelve times the dictionary, and two threads run two
/// encoders: 64 MiB dictionaries made generation's peak memory 9 to 10
/// times the two images on the corpus's 9 MB pairs, and coded all-new
/// images 0.01 to 0.6 % smaller than this.
const DICT_MAX: u32 = 1 << 20;

/// Largest dictionary of a patch's diff bytes and control records, whose
/// repeats are near: on the corpus's large pairs, half of [`DICT_MAX`]
/// codes them as small (within 0.1 %, as often smaller as larger) in half
/// the encoder memory.
const NEAR_DICT_MAX: u32 = 512 << 10;

/// zstd level of the quick size estimate.
const QUICK_LEVEL: i32 = 3;

/// Streams up to this size lose liblzma's end marker (a larger stream
/// keeps it: the decoder stops at the declared length, and 6 bytes do not
/// pay for re-coding a long stream).
const STRIP_MARKER_LEN: usize = 1 << 20;

/// The smallest coding of a payload whose decoded form is `parts`
/// concatenated: one zstd frame at `level` (a block per part), one LZMA
/// stream, or stored. `quick` tries one zstd frame at level
/// `QUICK_LEVEL` only (or stored): a size estimate for choosing between
/// two ways to build a package.
///
/// # Errors
/// A payload longer than 4 GiB, or a compressor failure.
pub fn code_bytes(parts: &[&[u8]], level: i32, quick: bool) -> Result<Coded> {
    let raw: Vec<u8> = parts.concat();
    let decoded_len = decoded_len(raw.len())?;
    if quick {
        let frame = zstd_frame(parts, raw.len(), QUICK_LEVEL)?;
        let (codec, payload) = match frame.len() < raw.len() {
            true => (Codec::Zstd, frame),
            false => (Codec::Stored, raw),
        };
        return Ok(Coded {
            codec,
            payload,
            decoded_len,
        });
    }
    let (zstd, lzma) = rayon::join(
        || match raw.len() <= TRY_ALL_LEN {
            true => zstd_frame(parts, raw.len(), level).map(Some),
            false => Ok(None),
        },
        || lzma_streams(LAYOUT_BYTES, &[&raw], &[DICT_MAX]),
    );
    let mut best = Coded {
        codec: Codec::Stored,
        payload: raw,
        decoded_len,
    };
    let zstd = zstd?.map(|z| (Codec::Zstd, z));
    for (codec, payload) in zstd.into_iter().chain([(Codec::Lzma, lzma?)]) {
        if payload.len() < best.payload.len() {
            best = Coded {
                codec,
                payload,
                decoded_len,
            };
        }
    }
    Ok(best)
}

/// The smallest coding of a PATCH payload: [`code_bytes`] of its sparse
/// form `parts` (length prefix, control, zero runs, value runs, values,
/// literals), or LZMA streams of its control records, its plain diff bytes
/// `diff` cut into a gap list and the bytes between the gaps
/// ([`MIN_GAP`]), and its literals (layout patch, gaps), or, for a small
/// diff, the same with the plain diff whole (layout patch). Given the op's
/// `source` (as the patch reads it, at most [`SOURCE_DICT_MAX`] bytes),
/// the literals are also coded after the whole source (a dictionary
/// window).
///
/// # Errors
/// As [`code_bytes`].
pub fn code_patch(
    parts: &[&[u8]],
    diff: &[u8],
    level: i32,
    quick: bool,
    source: Option<&[u8]>,
) -> Result<Coded> {
    let ctrl = parts.get(1).copied().unwrap_or(&[]);
    let extra = parts.get(5).copied().unwrap_or(&[]);
    let sparse_len: usize = parts.iter().map(|p| p.len()).sum();
    if quick {
        return code_bytes(parts, level, true);
    }
    let source = source.filter(|s| s.len() <= SOURCE_DICT_MAX && !extra.is_empty());
    let (gaps, kept) = gap_diff(diff, MIN_GAP, GAP_ALIGN);
    let plain_diff = Some(diff).filter(|d| d.len() <= TRY_ALL_LEN);
    // Without a gap, the gapped layout is the plain one with a longer
    // table: not worth coding when the plain one is coded.
    let gapped = !gaps.is_empty() || plain_diff.is_none();
    let near = |s: &[u8]| best_stream(s, NEAR_DICT_MAX);
    // The codings that only some payloads get run beside the control and
    // literal streams, which every LZMA layout has.
    let mut bytes: Result<Option<Coded>> = Ok(None);
    let [mut g, mut k, mut d, mut after]: [Result<Option<CodedStream>>; 4] =
        [Ok(None), Ok(None), Ok(None), Ok(None)];
    let (c, e) = rayon::scope(|s| {
        if sparse_len <= TRY_ALL_LEN {
            s.spawn(|_| bytes = code_bytes(parts, level, false).map(Some));
        }
        if gapped {
            s.spawn(|_| g = near(&gaps).map(Some));
            s.spawn(|_| k = near(&kept).map(Some));
        }
        s.spawn(|_| d = plain_diff.map(near).transpose());
        // Position-free settings: the literals between blocks are cut at
        // any byte.
        s.spawn(|_| {
            after = source
                .map(|src| best_stream_after(extra, src, &PROPS_AFTER_TRIED[..1]))
                .transpose();
        });
        rayon::join(|| near(ctrl), || best_stream(extra, DICT_MAX))
    });
    let (c, e) = (c?, e?);
    let (g, k, d, after) = (g?, k?, d?, after?);
    fn entry(coded: &CodedStream, len: usize) -> (Option<Props>, &[u8], usize) {
        (coded.0, &coded.1, len)
    }
    let ctrl_s = entry(&c, ctrl.len());
    // The literals alone, and after the source when it is at hand.
    let mut literal_ways = vec![(DictWindow::default(), entry(&e, extra.len()))];
    if let (Some(a), Some(s)) = (&after, source) {
        let window = DictWindow {
            offset: 0,
            len: s.len(),
        };
        literal_ways.push((window, entry(a, extra.len())));
    }
    let mut best: Option<Vec<u8>> = None;
    let mut keep = |payload: Vec<u8>| {
        if best.as_ref().is_none_or(|b| payload.len() < b.len()) {
            best = Some(payload);
        }
    };
    for &(window, literals) in &literal_ways {
        if let (Some(g), Some(k)) = (&g, &k) {
            let streams = [ctrl_s, entry(g, gaps.len()), entry(k, kept.len()), literals];
            keep(table_payload(Table::Gaps(window), &streams));
        }
        if let (Some(d), Some(plain)) = (&d, plain_diff) {
            let table = match window.len {
                0 => Table::Layout(LAYOUT_PATCH),
                _ => Table::PatchAfter(window),
            };
            keep(table_payload(
                table,
                &[ctrl_s, entry(d, plain.len()), literals],
            ));
        }
    }
    let lzma = Coded {
        codec: Codec::Lzma,
        payload: best.ok_or_else(|| liblzma_error("no layout coded"))?,
        decoded_len: decoded_len(sparse_len)?,
    };
    Ok(match bytes? {
        Some(b) if b.payload.len() <= lzma.payload.len() => b,
        _ => lzma,
    })
}

/// A coded LZMA stream: its props (`None`: stored) and its bytes.
type CodedStream = (Option<Props>, Vec<u8>);

/// Shortest zero run of a plain diff that becomes a gap (layout patch,
/// gaps). Long runs are where the source was copied unchanged: taking them
/// out of the diff stream saves LZMA most of its work on a large segment.
/// Shorter runs stay, since LZMA's repeats see the spacing of changed
/// pointers in them, and a gap costs more than a repeat of zeros. On the
/// 14 corpus pairs whose generation takes a second or more, against the
/// plain diff (with [`GAP_ALIGN`]): 64 made packages 0.2 % larger and
/// generation 21 % faster, 96 0.8 % smaller and 14 % faster, 128 0.8 %
/// smaller and 13 % faster (geometric means; times vary by a few percent
/// between runs).
pub const MIN_GAP: usize = 96;

/// Gaps are multiples of this many bytes, so the diff bytes after a gap
/// keep their column in 32-bit instruction words, which LZMA's position
/// bits (`lp`, `pb`) model: with 1, the large pairs came out 0.6 % larger
/// (an AArch64 image 2.8 %), though x86-64 ones (no columns) were up to
/// 0.4 % smaller.
pub const GAP_ALIGN: usize = 4;

/// Largest op source an LZMA literal stream is coded after (layout patch
/// with dictionary): liblzma indexes the whole source before the literals,
/// so the time grows with it. Microcontroller images, where literals are
/// most of a patch, are well under it. At 8 MiB the corpus's 1.6 to 4.5 MB
/// ELF pairs came out 0 to 2.9 % smaller for 2 to 4.5 times the time.
pub const SOURCE_DICT_MAX: usize = 1 << 20;

/// The PATCH payload whose records `ctrl` copy nothing and whose literals
/// are `literals` (the whole segment), the literals coded after the op's
/// `source` (layout patch with dictionary): LZMA with the old image as its
/// dictionary, for a segment whose code changed too much for blocks.
/// `None` when `source` is longer than [`SOURCE_DICT_MAX`].
///
/// # Errors
/// As [`code_bytes`].
pub fn code_literal_patch(ctrl: &[u8], literals: &[u8], source: &[u8]) -> Result<Option<Coded>> {
    if source.len() > SOURCE_DICT_MAX || literals.is_empty() {
        return Ok(None);
    }
    let (c, e) = rayon::join(
        || best_stream(ctrl, NEAR_DICT_MAX),
        || best_stream_after(literals, source, &PROPS_AFTER_TRIED),
    );
    let window = DictWindow {
        offset: 0,
        len: source.len(),
    };
    let (c, e) = (c?, e?);
    let streams = [
        (c.0, &c.1[..], ctrl.len()),
        (None, &[][..], 0),
        (e.0, &e.1[..], literals.len()),
    ];
    let payload = table_payload(Table::PatchAfter(window), &streams);
    Ok(Some(Coded {
        codec: Codec::Lzma,
        payload,
        decoded_len: decoded_len(patch_payload_len(ctrl, &[], literals))?,
    }))
}

/// What the table of an LZMA payload announces.
#[derive(Debug, Clone, Copy)]
enum Table {
    /// A layout without dictionary.
    Layout(u8),
    /// The patch layout whose literals follow this window of the op's source.
    PatchAfter(DictWindow),
    /// The patch layout with a gapped diff, its literals after this window
    /// (empty: none).
    Gaps(DictWindow),
}

/// An LZMA payload: the table of `table` over `streams` (each its props,
/// its packed bytes and its unpacked length), then the packed bytes.
fn table_payload(table: Table, streams: &[(Option<Props>, &[u8], usize)]) -> Vec<u8> {
    let entries: Vec<StreamEntry> = streams
        .iter()
        .map(|&(props, packed, unpacked_len)| StreamEntry {
            props,
            unpacked_len,
            packed_len: packed.len(),
        })
        .collect();
    let mut out = Vec::new();
    match table {
        Table::Layout(layout) => write_table(layout, &entries, &mut out),
        Table::PatchAfter(window) => write_dict_table(&entries, window, &mut out),
        Table::Gaps(window) => write_gaps_table(&entries, window, &mut out),
    }
    for (_, packed, _) in streams {
        out.extend_from_slice(packed);
    }
    out
}

fn decoded_len(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::Limit {
        what: "decoded payload length",
        value: len as u64,
        limit: u32::MAX.into(),
    })
}

/// One zstd frame of `parts`, a zstd block ending at every part boundary so
/// that no block mixes the statistics of two streams.
fn zstd_frame(parts: &[&[u8]], len: usize, level: i32) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = zstd::stream::write::Encoder::new(Vec::with_capacity(len / 4), level)
        .map_err(Error::Compress)?;
    enc.include_contentsize(true).map_err(Error::Compress)?;
    enc.set_pledged_src_size(Some(len as u64))
        .map_err(Error::Compress)?;
    for part in parts.iter().filter(|p| !p.is_empty()) {
        enc.write_all(part).map_err(Error::Compress)?;
        enc.flush().map_err(Error::Compress)?;
    }
    enc.finish().map_err(Error::Compress)
}

/// An LZMA payload of `layout` holding `streams`, each coded with the best
/// of [`PROPS_TRIED`] or stored, with a dictionary of up to the matching
/// one of `dicts` (the last one for any stream past their end).
fn lzma_streams(layout: u8, streams: &[&[u8]], dicts: &[u32]) -> Result<Vec<u8>> {
    use rayon::prelude::*;
    let coded: Vec<(Option<Props>, Vec<u8>)> = streams
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let dict = dicts.get(i).or(dicts.last()).copied().unwrap_or(DICT_MAX);
            best_stream(s, dict)
        })
        .collect::<Result<_>>()?;
    let streams: Vec<(Option<Props>, &[u8], usize)> = coded
        .iter()
        .zip(streams)
        .map(|((props, packed), s)| (*props, &packed[..], s.len()))
        .collect();
    Ok(table_payload(Table::Layout(layout), &streams))
}

/// The smallest of `data` stored and coded with each of [`PROPS_TRIED`]
/// (a long stream: with the settings that code its sample best). The
/// props are tried at the short nice length, then only the best of them at
/// the long one, which costs about three short trials.
fn best_stream(data: &[u8], dict_max: u32) -> Result<(Option<Props>, Vec<u8>)> {
    use rayon::prelude::*;
    let mut best = (None, data.to_vec());
    if data.is_empty() {
        return Ok(best);
    }
    let tried = |sample: &[u8]| -> Result<[(Props, u32, Vec<u8>); 2]> {
        let short: Vec<(Props, u32, Vec<u8>)> = PROPS_TRIED
            .par_iter()
            .map(|&p| {
                Ok((
                    p,
                    NICE_LENS[0],
                    lzma_raw(sample, p, NICE_LENS[0], dict_max)?,
                ))
            })
            .collect::<Result<_>>()?;
        let short = short
            .into_iter()
            .min_by_key(|t| t.2.len())
            .ok_or_else(|| liblzma_error("no props to try"))?;
        let long = (
            short.0,
            NICE_LENS[1],
            lzma_raw(sample, short.0, NICE_LENS[1], dict_max)?,
        );
        Ok([short, long])
    };
    // Trials keep liblzma's end marker (5 or 6 bytes): only the winner
    // is re-coded without it.
    let tries = if data.len() <= PROPS_SAMPLE_LEN {
        tried(data)?.to_vec()
    } else {
        let [short, long] = tried(&sample(data))?;
        let worth =
            long.2.len().saturating_mul(1000) < short.2.len().saturating_mul(1000 - LONG_NICE_GAIN);
        let (props, nice) = match worth {
            true => (long.0, long.1),
            false => (short.0, short.1),
        };
        if data.len() >= 2 * PIECE_LEN {
            // Joined by the generator's own coder: no end marker to drop.
            let packed = lzma_in_pieces(data, props, nice, PIECE_LEN, PIECE_LEAD, dict_max)?;
            if packed.len() < best.1.len() {
                best = (Some(props), packed);
            }
            return Ok(best);
        }
        vec![(props, nice, lzma_raw(data, props, nice, dict_max)?)]
    };
    let Some((props, _, packed)) = tries.into_iter().min_by_key(|t| t.2.len()) else {
        return Ok(best);
    };
    let packed = strip_end_marker(data, props, &packed)?;
    if packed.len() < best.1.len() {
        best = (Some(props), packed);
    }
    Ok(best)
}

/// lc/lp/pb settings tried for a stream coded after a dictionary: no
/// literal context, with positions of 1, 2 and 4 bytes (Thumb
/// instructions: the best on the corpus's microcontroller pairs, by up to
/// 2 %). liblzma's default (lc 3) never won there, and the long nice
/// length gained under 0.1 %: literals rarely repeat long runs of the old
/// image, or the blocks would have taken them.
const PROPS_AFTER_TRIED: [Props; 3] = [
    PROPS_TRIED[1],
    Props {
        lc: 0,
        lp: 1,
        pb: 1,
    },
    PROPS_TRIED[2],
];

/// The smallest of `data` stored and coded after `dict` with each of
/// `tried`.
fn best_stream_after(
    data: &[u8],
    dict: &[u8],
    tried: &[Props],
) -> Result<(Option<Props>, Vec<u8>)> {
    use rayon::prelude::*;
    let mut best = (None, data.to_vec());
    if data.is_empty() {
        return Ok(best);
    }
    let coded: Vec<(Props, Vec<u8>)> = tried
        .par_iter()
        .map(|&p| Ok((p, lzma_after(dict, data, p, NICE_LENS[0])?)))
        .collect::<Result<_>>()?;
    for (props, packed) in coded {
        if packed.len() < best.1.len() {
            best = (Some(props), packed);
        }
    }
    Ok(best)
}

/// A raw LZMA stream of `data` with `props` and no end marker that
/// continues after `dict` (`fota_format::lzma::decode_after`): liblzma
/// codes it with `dict` as its preset dictionary (`preset_lzma`), and the
/// end marker goes as in [`strip_end_marker`].
fn lzma_after(dict: &[u8], data: &[u8], props: Props, nice: u32) -> Result<Vec<u8>> {
    let fail = liblzma_error;
    let body = crate::preset_lzma::encode(dict, data, props, nice)?;
    let decoded = lzma_parse::decode_after(&body, props, dict, data.len() as u64)
        .map_err(|e| fail(&e.to_string()))?;
    let mut parse = decoded.parse;
    if !decoded.end_marker || decoded.data.get(dict.len()..) != Some(data) || parse.pop().is_none()
    {
        return Err(fail("a stream that does not decode back to its data"));
    }
    lzma_parse::encode_after(&decoded.data, dict.len(), &parse, props)
        .map_err(|e| fail(&e.to_string()))
}

/// Four evenly spaced quarters of [`PROPS_SAMPLE_LEN`] bytes of `data`.
fn sample(data: &[u8]) -> Vec<u8> {
    let piece = PROPS_SAMPLE_LEN / 4;
    let step = (data.len() - piece) / 3;
    (0..4)
        .flat_map(|i| data.get(i * step..i * step + piece).unwrap_or(&[]))
        .copied()
        .collect()
}

fn liblzma_error(what: &str) -> Error {
    Error::Compress(std::io::Error::other(format!("liblzma: {what}")))
}

/// A raw LZMA stream of `data` with `props` and no end marker, coded as
/// pieces of `piece_len` bytes or more (starting on 16-byte boundaries, so
/// that the low position bits `lp` and `pb` read are those of the whole
/// stream), each by its own liblzma encoder that first runs over up to
/// `lead` bytes before the piece, and joined by `streams::lzma::splice`.
fn lzma_in_pieces(
    data: &[u8],
    props: Props,
    nice: u32,
    piece_len: usize,
    lead: usize,
    dict_max: u32,
) -> Result<Vec<u8>> {
    use rayon::prelude::*;
    let count = (data.len() / piece_len.max(16)).max(1);
    let step = (data.len() / count) & !15;
    let starts: Vec<usize> = (0..count).map(|i| i * step).collect();
    let parses: Vec<(u64, Vec<u8>)> = starts
        .par_iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(data.len());
            let from = start.saturating_sub(lead) & !15;
            let piece = data.get(from..end).unwrap_or(&[]);
            let body = lzma_raw(piece, props, nice, dict_max)?;
            let len = piece.len() as u64;
            let decoded = lzma_parse::decode(&body, props, Some(len), len)
                .map_err(|e| liblzma_error(&e.to_string()))?;
            Ok(((start - from) as u64, decoded.parse))
        })
        .collect::<Result<_>>()?;
    let pieces: Vec<lzma_parse::Piece<'_>> = parses
        .iter()
        .map(|(lead, parse)| lzma_parse::Piece { parse, lead: *lead })
        .collect();
    let parse = lzma_parse::splice(&pieces).map_err(|e| liblzma_error(&e.to_string()))?;
    lzma_parse::encode(data, &parse, props).map_err(|e| liblzma_error(&e.to_string()))
}

/// A raw LZMA stream of `data` with `props`, ended by liblzma's end marker,
/// its dictionary the data's length up to `dict_max`.
fn lzma_raw(data: &[u8], props: Props, nice: u32, dict_max: u32) -> Result<Vec<u8>> {
    let fail = liblzma_error;
    let mut opts = LzmaOptions::new_preset(PRESET).map_err(|e| fail(&e.to_string()))?;
    let dict = u32::try_from(data.len())
        .unwrap_or(u32::MAX)
        .clamp(1 << 12, dict_max.max(1 << 12));
    opts.dict_size(dict)
        .nice_len(nice)
        .literal_context_bits(props.lc)
        .literal_position_bits(props.lp)
        .position_bits(props.pb);
    let mut enc = Stream::new_lzma_encoder(&opts).map_err(|e| fail(&e.to_string()))?;
    let mut alone = Vec::with_capacity(data.len() / 2 + 64);
    let mut pos = 0usize;
    loop {
        let action = if pos < data.len() {
            Action::Run
        } else {
            Action::Finish
        };
        if alone.capacity() - alone.len() < 4096 {
            alone.reserve(alone.capacity().max(4096));
        }
        let before = enc.total_in();
        let status = enc
            .process_vec(data.get(pos..).unwrap_or(&[]), &mut alone, action)
            .map_err(|e| fail(&e.to_string()))?;
        pos += (enc.total_in() - before) as usize;
        if status == Status::StreamEnd {
            break;
        }
    }
    // A large encoder's tables (about ten times its dictionary) go back
    // to the system at once: the next encoder may run on another thread's
    // heap.
    drop(enc);
    if data.len() >= 1 << 20 {
        crate::memory::release_freed();
    }
    // The .lzma header (13 bytes: props, dictionary size, unknown size)
    // goes.
    alone
        .get(13..)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| fail("a stream shorter than its header"))
}

/// `body`, a raw LZMA stream of `data` with `props` ended by an end
/// marker, re-coded from its parse without the marker when `data` is no
/// longer than [`STRIP_MARKER_LEN`] (else as it is).
fn strip_end_marker(data: &[u8], props: Props, body: &[u8]) -> Result<Vec<u8>> {
    let fail = liblzma_error;
    if data.len() > STRIP_MARKER_LEN {
        return Ok(body.to_vec());
    }
    let decoded = lzma_parse::decode(body, props, None, data.len() as u64)
        .map_err(|e| fail(&e.to_string()))?;
    let mut parse = decoded.parse;
    if !decoded.end_marker || decoded.data != data || parse.pop().is_none() {
        return Err(fail("a stream that does not decode back to its data"));
    }
    lzma_parse::encode(data, &parse, props).map_err(|e| fail(&e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn decode(c: &Coded, dst_len: usize) -> Vec<u8> {
        let n = c.decoded_len as usize;
        crate::apply::decode_coded(0, c.codec, &c.payload, n, dst_len, &[]).unwrap()
    }

    #[test]
    fn raw_streams_have_no_end_marker_and_decode_back() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * i % 251) as u8).collect();
        for props in PROPS_TRIED {
            let marked = lzma_raw(&data, props, NICE_LENS[1], DICT_MAX).unwrap();
            let packed = strip_end_marker(&data, props, &marked).unwrap();
            assert!(packed.len() < marked.len());
            let mut out = Vec::new();
            fota_format::lzma::decode(&packed, props, data.len(), &mut out).unwrap();
            assert_eq!(out, data);
            let with_marker = lzma_parse::decode(&packed, props, None, 1 << 20);
            assert!(with_marker.is_err() || !with_marker.unwrap().end_marker);
        }
    }

    #[test]
    fn small_and_large_payloads_pick_a_decodable_coding() {
        let text = b"the quick brown fox jumps over the lazy dog. ".repeat(200);
        for parts in [
            vec![&b"x"[..]],
            vec![&b""[..]],
            vec![&text[..], &b"tail"[..]],
        ] {
            let c = code_bytes(&parts, 19, false).unwrap();
            assert_eq!(decode(&c, 0), parts.concat());
        }
        // The pick is the smallest candidate.
        let c = code_bytes(&[&text], 19, false).unwrap();
        let zstd = zstd_frame(&[&text], text.len(), 19).unwrap();
        let lzma = lzma_streams(LAYOUT_BYTES, &[&text], &[DICT_MAX]).unwrap();
        assert!(c.payload.len() <= zstd.len().min(lzma.len()));
        assert!(c.payload.len() < 120, "{}", c.payload.len());
        // Above TRY_ALL_LEN only LZMA is tried (stored if it does not pay).
        let big: Vec<u8> = (0..TRY_ALL_LEN as u32 + 1000)
            .map(|i| (i / 7 % 13) as u8)
            .collect();
        let c = code_bytes(&[&big], 19, false).unwrap();
        assert_eq!(c.codec, Codec::Lzma);
        assert_eq!(decode(&c, 0), big);
    }

    /// A 2 MiB segment's patch whose diff is zero but for a changed word
    /// every 4 KiB: its zero runs become gaps, so LZMA codes a few KiB of
    /// diff bytes instead of 2 MiB, and the payload is far smaller than
    /// the plain diff's (which is too long to be tried).
    #[test]
    fn a_sparse_diff_is_coded_with_gaps() {
        let mut p = crate::plan::PatchStreams::default();
        for k in 0..512u64 {
            let mut diff = vec![0u8; 4096];
            diff[101..105].copy_from_slice(&(k as u32 | 1).wrapping_mul(2654435761).to_le_bytes());
            p.push_record(if k == 0 { 0 } else { 8 }, k * 4104, diff, b"");
        }
        let (parts, diff) = p.into_coding_parts();
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let (ctrl, extra) = (parts[1], parts[5]);
        let (gaps, kept) = gap_diff(&diff, MIN_GAP, GAP_ALIGN);
        // The changed words, and the zeros that keep the next one's column.
        assert!(kept.len() <= 512 * 8, "{}", kept.len());
        assert_eq!(kept.len() % 4, 1, "gaps keep columns");
        assert!(gaps.len() <= 512 * 3, "{}", gaps.len());
        let chosen = code_patch(&parts, &diff, 19, false, None).unwrap();
        assert_eq!(
            crate::apply::decode_coded(
                0,
                chosen.codec,
                &chosen.payload,
                chosen.decoded_len as usize,
                diff.len(),
                &[]
            )
            .unwrap(),
            parts.concat()
        );
        let plain = lzma_streams(LAYOUT_PATCH, &[ctrl, &diff, extra], &[DICT_MAX]).unwrap();
        assert!(
            chosen.payload.len() < plain.len(),
            "{} vs {}",
            chosen.payload.len(),
            plain.len()
        );
    }

    /// Diff-stream-like bytes: zero runs, noise and copies of earlier bytes.
    fn patchy(blocks: &[(u8, u16, u8)]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::new();
        for &(kind, len, seed) in blocks {
            let len = usize::from(len);
            match kind % 3 {
                0 => out.resize(out.len() + len, 0),
                1 => out.extend((0..len).map(|i| (i as u8).wrapping_mul(seed) ^ seed)),
                _ if out.is_empty() => out.push(seed),
                _ => {
                    let from = usize::from(seed) * 97 % out.len();
                    for i in 0..len {
                        out.push(out[from + i % (out.len() - from)]);
                    }
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn pieces_join_into_one_stream_that_decodes_back(
            blocks in proptest::collection::vec((0u8..3, 1u16..3000, proptest::prelude::any::<u8>()), 1..40),
            piece_len in 1usize..20_000,
            lead in 0usize..6_000,
            which in 0usize..3,
            long in proptest::prelude::any::<bool>(),
        ) {
            let data = patchy(&blocks);
            let props = PROPS_TRIED[which];
            let nice = NICE_LENS[usize::from(long)];
            let packed = lzma_in_pieces(&data, props, nice, piece_len, lead, DICT_MAX).unwrap();
            let mut out = Vec::new();
            fota_format::lzma::decode(&packed, props, data.len(), &mut out).unwrap();
            proptest::prop_assert_eq!(out, data);
        }
    }

    #[test]
    fn a_warm_lead_keeps_pieces_close_to_one_stream() {
        let blocks: Vec<(u8, u16, u8)> = (0..2000u32)
            .map(|i| ((i % 3) as u8, (i * 37 % 700 + 1) as u16, (i * 13) as u8))
            .collect();
        let data = patchy(&blocks);
        let props = PROPS_TRIED[1];
        let whole = lzma_raw(&data, props, NICE_LENS[0], DICT_MAX).unwrap();
        let whole = strip_end_marker(&data, props, &whole).unwrap();
        let cold = lzma_in_pieces(&data, props, NICE_LENS[0], data.len() / 4, 0, DICT_MAX).unwrap();
        let warm = lzma_in_pieces(
            &data,
            props,
            NICE_LENS[0],
            data.len() / 4,
            16 << 10,
            DICT_MAX,
        )
        .unwrap();
        // Joined pieces lose a little to one encoder, and less when warm.
        assert!(whole.len() <= warm.len(), "{} {}", whole.len(), warm.len());
        assert!(warm.len() <= cold.len(), "{} {}", warm.len(), cold.len());
    }

    #[test]
    fn a_long_stream_is_coded_in_pieces_and_decodes_back() {
        let blocks: Vec<(u8, u16, u8)> = (0..9000u32)
            .map(|i| {
                (
                    if i % 4 == 0 { 1 } else { 0 },
                    (i * 31 % 1500 + 1) as u16,
                    (i * 7) as u8,
                )
            })
            .collect();
        let mut data = patchy(&blocks);
        data.resize(2 * PIECE_LEN + 12_345, 0);
        let (props, packed) = best_stream(&data, DICT_MAX).unwrap();
        let props = props.unwrap();
        let mut out = Vec::new();
        fota_format::lzma::decode(&packed, props, data.len(), &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn splice_refuses_a_lead_past_its_parse_and_bad_tokens() {
        let data = b"abcabcabcabc".repeat(50);
        let body = lzma_raw(&data, Props::DEFAULT, NICE_LENS[0], DICT_MAX).unwrap();
        let len = data.len() as u64;
        let parse = lzma_parse::decode(&body, Props::DEFAULT, Some(len), len)
            .unwrap()
            .parse;
        let past = lzma_parse::Piece {
            parse: &parse,
            lead: len + 1,
        };
        let e = lzma_parse::splice(&[past]).unwrap_err();
        assert_eq!(e.what, "a parse that covers its lead");
        let bad = lzma_parse::Piece {
            parse: &[0x09],
            lead: 0,
        };
        let e = lzma_parse::splice(&[bad]).unwrap_err();
        assert_eq!((e.offset, e.what), (1, "a literal, repeat or match token"));
        let cut = lzma_parse::Piece {
            parse: &[0x06, 0x00, 0x01],
            lead: 0,
        };
        assert_eq!(
            lzma_parse::splice(&[cut]).unwrap_err().what,
            "a match distance"
        );
        // Whole, the one piece splices to its own parse.
        let whole = lzma_parse::Piece {
            parse: &parse,
            lead: 0,
        };
        assert_eq!(lzma_parse::splice(&[whole]).unwrap(), parse);
    }
}
