//! The `lzma` payload codec (feature `lzma`, allocates): one or more raw
//! LZMA streams behind a small table, decoded in memory (`SPEC.md` §5e).
//!
//! ```text
//! layout u8 | count u8 | count × (props u8, varint unpacked_len, varint packed_len)
//!           | [layout 2: varint dict_offset, varint dict_len] | streams
//! ```
//!
//! - `props` is LZMA's `(pb * 5 + lp) * 9 + lc` byte (`lc + lp` ≤ 4), or [`STORED`] for a
//!   stream kept as is (`packed_len == unpacked_len`). Each stream has its
//!   own model, so the generator tunes `lc`/`lp`/`pb` to what it holds.
//! - Layout [`LAYOUT_BYTES`]: the decoded payload is the streams
//!   concatenated (1 to [`MAX_STREAMS`] streams).
//! - Layout [`LAYOUT_PATCH`]: three streams, the control records, the diff
//!   bytes in full (zeros included) and the literal bytes of a PATCH
//!   payload. The decoder turns the plain diff into the sparse zero-run /
//!   value-run / value streams of the PATCH layout (`patch` module), so the
//!   decoded payload is an ordinary PATCH payload. LZMA codes the plain
//!   diff of recompiled code about 5 % smaller than the three sparse
//!   streams, since its repeat matches see the column structure of
//!   instruction words that the run lengths hide.
//! - Layout [`LAYOUT_PATCH_DICT`]: as [`LAYOUT_PATCH`], but the literal
//!   stream continues after a window of the op's source (as the patch
//!   reads it: its extents' bytes, through the transform): LZMA's matches
//!   reach back into the old image, as `zstd --patch-from` does. New code
//!   repeats short sequences of the old code everywhere (prologues, calls
//!   of the same functions), which the approximate blocks do not find; on
//!   small firmware whose code changed much, a patch that is all literals
//!   coded this way is 7 to 12 % smaller than the best block patch.
//!
//! - Layout [`LAYOUT_PATCH_GAPS`]: as [`LAYOUT_PATCH_DICT`] (its window may
//!   be empty), but the diff comes as two streams: the diff bytes without
//!   their long zero runs, and a gap list that puts the runs back. Most of
//!   a large segment's diff is zero runs where the source was copied
//!   unchanged; LZMA spends most of its encoding time walking them, and
//!   codes the rest a little better without them (on the corpus's large
//!   pairs, packages came out 0.8 % smaller and were made about a fifth
//!   faster). Short runs stay, as they carry the column structure of
//!   instruction words.
//!
//! Raw LZMA has a smaller fixed cost than a zstd frame (no frame header,
//! no Huffman or FSE tables), which is most of a small patch.

use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::lzma::{self, Props};
use crate::op::Codec;
use crate::patch::{read_varint, write_varint, MAX_VARINT_LEN};

/// Layout: the decoded payload is the streams back to back.
pub const LAYOUT_BYTES: u8 = 0;
/// Layout: control, plain diff and literal streams of a PATCH payload.
pub const LAYOUT_PATCH: u8 = 1;
/// Layout: as [`LAYOUT_PATCH`], the literal stream coded after a window of
/// the op's source (a preset dictionary).
pub const LAYOUT_PATCH_DICT: u8 = 2;
/// Layout: control, gap list, gapped diff and literal streams of a PATCH
/// payload, the literals coded after a window of the op's source (an empty
/// window: no dictionary).
pub const LAYOUT_PATCH_GAPS: u8 = 3;
/// The props value of a stream stored uncompressed.
pub const STORED: u8 = 0xff;
/// Largest `lc + lp` of a stream: it keeps the literal model within 24 KiB
/// (a larger one would let a package ask the device for megabytes).
pub const MAX_LC_LP: u32 = 4;
/// Most streams in a [`LAYOUT_BYTES`] payload.
pub const MAX_STREAMS: usize = 8;

/// One stream's entry in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEntry {
    /// LZMA parameters, or `None` when stored.
    pub props: Option<Props>,
    /// Decoded length.
    pub unpacked_len: usize,
    /// Length in the payload.
    pub packed_len: usize,
}

/// Appends the table of a payload (layout and entries) to `out`; the
/// packed streams follow it in the same order.
pub fn write_table(layout: u8, entries: &[StreamEntry], out: &mut Vec<u8>) {
    out.push(layout);
    out.push(entries.len() as u8);
    for e in entries {
        out.push(e.props.map_or(STORED, Props::to_byte));
        push_varint(out, e.unpacked_len);
        push_varint(out, e.packed_len);
    }
}

/// Appends the table of a [`LAYOUT_PATCH_DICT`] payload to `out`: its
/// entries (three: control, diff, literals), then the window `dict`
/// (offset and length in the op's source) that its literal stream
/// continues.
pub fn write_dict_table(entries: &[StreamEntry], dict: DictWindow, out: &mut Vec<u8>) {
    write_table(LAYOUT_PATCH_DICT, entries, out);
    push_window(out, dict);
}

/// Appends the table of a [`LAYOUT_PATCH_GAPS`] payload to `out`: its
/// entries (four: control, gap list, gapped diff, literals), then the
/// window `dict` that its literal stream continues (empty for none).
pub fn write_gaps_table(entries: &[StreamEntry], dict: DictWindow, out: &mut Vec<u8>) {
    write_table(LAYOUT_PATCH_GAPS, entries, out);
    push_window(out, dict);
}

fn push_window(out: &mut Vec<u8>, dict: DictWindow) {
    push_varint(out, dict.offset);
    push_varint(out, dict.len);
}

/// Whether an op's payload `payload` of `codec` is an LZMA PATCH payload
/// whose literals follow a window of the op's source ([`LAYOUT_PATCH_DICT`],
/// or [`LAYOUT_PATCH_GAPS`] with a window). A table that does not parse
/// counts as not.
pub fn literals_follow_source(codec: Codec, payload: &[u8]) -> bool {
    if codec != Codec::Lzma {
        return false;
    }
    match payload.first() {
        Some(&LAYOUT_PATCH_DICT) => true,
        Some(&LAYOUT_PATCH_GAPS) => window_len(payload).is_some_and(|n| n > 0),
        _ => false,
    }
}

/// The window length of a [`LAYOUT_PATCH_GAPS`] payload's table.
fn window_len(payload: &[u8]) -> Option<usize> {
    let count = usize::from(*payload.get(1)?);
    let mut pos = 2usize;
    for _ in 0..count {
        pos += 1;
        read_varint(payload, &mut pos)?;
        read_varint(payload, &mut pos)?;
    }
    read_varint(payload, &mut pos)?;
    read_varint(payload, &mut pos).and_then(|v| usize::try_from(v).ok())
}

/// The gapped form of the plain diff `diff`: the gap list and the diff
/// without its zero runs of at least `min_gap` bytes (`min_gap` ≥ 1) and
/// without its trailing zeros (implicit in a PATCH payload). Each gap is a
/// multiple of `align` bytes (≥ 1; the zeros past it stay), so that the
/// bytes after a gap keep their position modulo `align` (the column of an
/// instruction word, which LZMA's position bits see). The gap list is a
/// varint pair per gap: the gapped diff's bytes since the previous gap
/// (or the start), then the gap's length.
pub fn gap_diff(diff: &[u8], min_gap: usize, align: usize) -> (Vec<u8>, Vec<u8>) {
    let align = align.max(1);
    let min_gap = min_gap.max(align);
    let end = diff.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let diff = diff.get(..end).unwrap_or(&[]);
    let (mut gaps, mut kept) = (Vec::new(), Vec::with_capacity(diff.len() / 4));
    let mut at = 0usize;
    while at < diff.len() {
        // The next zero run long enough to be a gap.
        let rest = diff.get(at..).unwrap_or(&[]);
        let mut search = 0usize;
        let gap = loop {
            let Some(zero) = rest
                .get(search..)
                .and_then(|r| r.iter().position(|&b| b == 0))
            else {
                break None;
            };
            let start = search + zero;
            let tail = rest.get(start..).unwrap_or(&[]);
            let len = first_nonzero(tail).unwrap_or(tail.len());
            if len >= min_gap {
                break Some((start, len - len % align));
            }
            search = start + len;
        };
        let Some((start, len)) = gap else {
            kept.extend_from_slice(rest);
            break;
        };
        kept.extend_from_slice(rest.get(..start).unwrap_or(&[]));
        push_varint(&mut gaps, start);
        push_varint(&mut gaps, len);
        at += start + len;
    }
    (gaps, kept)
}

/// The length of the plain diff that the gap list `gaps` makes of a
/// gapped diff of `kept_len` bytes, or `None` when a gap is no varint
/// pair, reaches past the gapped diff, or the diff would be longer than
/// `bound`.
fn ungapped_len(gaps: &[u8], kept_len: usize, bound: usize) -> Option<usize> {
    let (mut pos, mut taken) = (0usize, 0usize);
    let mut total = Some(kept_len).filter(|&n| n <= bound)?;
    while pos < gaps.len() {
        let before = usize::try_from(read_varint(gaps, &mut pos)?).ok()?;
        let zeros = usize::try_from(read_varint(gaps, &mut pos)?).ok()?;
        taken = taken.checked_add(before).filter(|&t| t <= kept_len)?;
        total = total.checked_add(zeros).filter(|&t| t <= bound)?;
    }
    Some(total)
}

/// Appends the plain diff of the gap list `gaps` over the gapped diff
/// `kept` to `out`; the list was checked by [`ungapped_len`].
fn ungap(gaps: &[u8], kept: &[u8], out: &mut Vec<u8>) {
    let (mut pos, mut from) = (0usize, 0usize);
    while let (Some(before), Some(zeros)) =
        (read_varint(gaps, &mut pos), read_varint(gaps, &mut pos))
    {
        let to = from.saturating_add(before as usize).min(kept.len());
        out.extend_from_slice(kept.get(from..to).unwrap_or(&[]));
        from = to;
        out.resize(out.len().saturating_add(zeros as usize), 0);
    }
    out.extend_from_slice(kept.get(from..).unwrap_or(&[]));
}

/// The bytes of an op's source (its extents' bytes concatenated, as the
/// patch reads them) that a [`LAYOUT_PATCH_DICT`] literal stream follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DictWindow {
    /// Offset in the op's source bytes.
    pub offset: usize,
    /// Length.
    pub len: usize,
}

/// Decodes op `op_index`'s LZMA payload `coded` into its decoded payload of
/// exactly `decoded_len` bytes; `dst_len` (the segment length) bounds a
/// plain diff stream, and `source` is the op's source as the patch reads
/// it (empty for an op without extents), which a [`LAYOUT_PATCH_DICT`]
/// literal stream follows.
///
/// # Errors
/// [`Error::LzmaPayload`] naming the payload offset of a bad table, a
/// dictionary window outside `source`, a stream that does not decode, or
/// lengths that disagree with `decoded_len`.
pub fn decode(
    op_index: u32,
    coded: &[u8],
    decoded_len: usize,
    dst_len: usize,
    source: &[u8],
) -> Result<Vec<u8>> {
    let err = |offset: usize, what| Error::LzmaPayload {
        op_index,
        offset: offset as u64,
        what,
    };
    let layout = *coded.first().ok_or(err(0, "a layout byte"))?;
    if !matches!(
        layout,
        LAYOUT_BYTES | LAYOUT_PATCH | LAYOUT_PATCH_DICT | LAYOUT_PATCH_GAPS
    ) {
        return Err(err(
            0,
            "layout 0 (bytes), 1 (patch), 2 (patch, dictionary) or 3 (patch, gaps)",
        ));
    }
    let count = usize::from(*coded.get(1).ok_or(err(1, "a stream count byte"))?);
    let patch = layout != LAYOUT_BYTES;
    match layout {
        LAYOUT_BYTES if (1..=MAX_STREAMS).contains(&count) => {}
        LAYOUT_PATCH_GAPS if count == 4 => {}
        LAYOUT_PATCH | LAYOUT_PATCH_DICT if count == 3 => {}
        _ => {
            return Err(err(
                1,
                "1 to 8 streams (layout 0), 3 (layouts 1 and 2) or 4 (layout 3)",
            ))
        }
    }
    let mut pos = 2usize;
    let mut entries = [StreamEntry {
        props: None,
        unpacked_len: 0,
        packed_len: 0,
    }; MAX_STREAMS];
    for e in entries.iter_mut().take(count) {
        let at = pos;
        let p = *coded.get(pos).ok_or(err(pos, "a props byte"))?;
        pos += 1;
        e.props = match p {
            STORED => None,
            _ => Some(
                Props::from_byte(p)
                    .filter(|p| p.lc + p.lp <= MAX_LC_LP)
                    .ok_or(err(at, "a props byte below 225 with lc + lp <= 4, or 0xff"))?,
            ),
        };
        let mut len = |what| {
            let at = pos;
            read_varint(coded, &mut pos)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or(err(at, what))
        };
        e.unpacked_len = len("an unpacked length varint")?;
        e.packed_len = len("a packed length varint")?;
        if e.props.is_none() && e.packed_len != e.unpacked_len {
            return Err(err(
                at,
                "a stored stream's packed length equal to its unpacked length",
            ));
        }
    }
    let entries = entries.get(..count).unwrap_or(&[]);
    let dict = match layout {
        LAYOUT_PATCH_DICT | LAYOUT_PATCH_GAPS => {
            let at = pos;
            let mut field = |what| {
                let at = pos;
                read_varint(coded, &mut pos)
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or(err(at, what))
            };
            let offset = field("a dictionary offset varint")?;
            let len = field("a dictionary length varint")?;
            offset
                .checked_add(len)
                .and_then(|end| source.get(offset..end))
                .ok_or(err(at, "a dictionary window inside the op's source"))?
        }
        _ => &[],
    };
    // Bound every stream before decoding any, so a bad table costs no memory.
    // A patch's first stream is its control records and its last its
    // literals, which are copied out; the diff streams between them are
    // bounded by the segment.
    let mut wanted = 0usize;
    for (i, e) in entries.iter().enumerate() {
        let copied = !patch || i == 0 || i + 1 == count;
        let bound = match copied {
            true => decoded_len,
            false => dst_len,
        };
        if e.unpacked_len > bound {
            return Err(err(
                pos,
                "stream lengths within the op's decoded and segment lengths",
            ));
        }
        if copied {
            wanted = wanted.saturating_add(e.unpacked_len);
        }
    }
    if wanted > decoded_len {
        return Err(err(pos, "unpacked lengths within the decoded length"));
    }
    let packed_total = entries
        .iter()
        .try_fold(0usize, |a, e| a.checked_add(e.packed_len));
    if packed_total != coded.len().checked_sub(pos) {
        return Err(err(
            pos,
            "packed lengths adding up to the rest of the payload",
        ));
    }
    let reserve = |v: &mut Vec<u8>, n: usize| {
        v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory {
            op_index,
            needed: n as u64,
        })
    };
    let mut streams: [Vec<u8>; MAX_STREAMS] = Default::default();
    // Where the gap list's packed bytes begin (layout 3), for its errors.
    let gaps_at = pos + entries.first().map_or(0, |e| e.packed_len);
    for (i, (e, out)) in entries.iter().zip(streams.iter_mut()).enumerate() {
        let packed = coded.get(pos..pos + e.packed_len).unwrap_or(&[]);
        // Only the literal stream (the last) follows the dictionary.
        let dict = if i + 1 == count { dict } else { &[][..] };
        match e.props {
            None => {
                reserve(out, e.unpacked_len)?;
                out.extend_from_slice(packed);
            }
            Some(props) => {
                reserve(out, dict.len().saturating_add(e.unpacked_len))?;
                lzma::decode_after(packed, props, dict, e.unpacked_len, out)
                    .map_err(|l| err(pos + l.offset as usize, l.what))?;
            }
        }
        pos += e.packed_len;
    }
    let wrong_length = Error::PayloadCodec {
        op_index,
        what: "payload decodes to another length than declared",
    };
    match layout {
        _ if patch => {
            let [ctrl, first, second, third, ..] = &streams;
            // Layout 3: the plain diff is rebuilt from the gap list.
            let mut rebuilt = Vec::new();
            let (diff, extra) = match layout == LAYOUT_PATCH_GAPS {
                true => {
                    let (gap_list, kept) = (first, second);
                    let diff_len = ungapped_len(gap_list, kept.len(), dst_len).ok_or(err(
                        gaps_at,
                        "a gap list of varint pairs within the gapped diff and the segment",
                    ))?;
                    reserve(&mut rebuilt, diff_len)?;
                    ungap(gap_list, kept, &mut rebuilt);
                    (&rebuilt, third)
                }
                false => (first, second),
            };
            // Sized before it is built: a payload of the wrong length
            // costs no memory.
            let lens = stream_lens(ctrl, diff, extra);
            if payload_len_of(lens) != decoded_len {
                return Err(wrong_length);
            }
            let mut out = Vec::new();
            reserve(&mut out, decoded_len)?;
            write_patch_payload(ctrl, diff, extra, lens, &mut out);
            Ok(out)
        }
        _ if count == 1 => {
            let [only, ..] = streams;
            Ok(only)
        }
        _ => {
            let mut out = Vec::new();
            reserve(&mut out, decoded_len)?;
            for s in streams.iter().take(count) {
                out.extend_from_slice(s);
            }
            Ok(out)
        }
    }
    .and_then(|out| match out.len() == decoded_len {
        true => Ok(out),
        false => Err(wrong_length),
    })
}

/// The PATCH payload of control records `ctrl`, plain diff bytes `diff` and
/// literals `extra`: the diff becomes maximal zero and value runs, zeros
/// after the last value left implicit.
pub fn patch_payload(ctrl: &[u8], diff: &[u8], extra: &[u8]) -> Vec<u8> {
    let lens = stream_lens(ctrl, diff, extra);
    let mut out = Vec::with_capacity(payload_len_of(lens));
    write_patch_payload(ctrl, diff, extra, lens, &mut out);
    out
}

/// The zero-run, value-run and value streams of the plain diff `diff`
/// (`SPEC.md` §5.2): maximal runs, zeros after the last value left
/// implicit.
pub fn sparse_diff(diff: &[u8]) -> [Vec<u8>; 3] {
    let [_, zero_runs, value_runs, values, _] = stream_lens(&[], diff, &[]);
    // The three streams written side by side, then cut apart.
    let mut streams = alloc::vec![0u8; zero_runs + value_runs + values];
    fill_sparse(diff, [zero_runs, value_runs, values], &mut streams);
    let tail = streams.split_off(zero_runs + value_runs);
    let middle = streams.split_off(zero_runs);
    [streams, middle, tail]
}

/// The runs of `diff`: (zeros before, values) each, up to its last value.
fn runs(diff: &[u8]) -> impl Iterator<Item = (usize, &[u8])> + '_ {
    let mut rest = diff;
    core::iter::from_fn(move || {
        let first = first_nonzero(rest)?;
        let tail = rest.get(first..).unwrap_or(&[]);
        let len = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let (values, after) = tail.split_at(len);
        rest = after;
        Some((first, values))
    })
}

/// Index of the first nonzero byte of `bytes`. A diff is mostly zeros, so
/// they are skipped sixteen at a time.
fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    const WIDE: usize = 16;
    let zero_chunks = bytes
        .chunks_exact(WIDE)
        .take_while(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
        .count();
    let at = zero_chunks * WIDE;
    let rest = bytes.get(at..).unwrap_or(&[]);
    rest.iter().position(|&b| b != 0).map(|i| at + i)
}

fn varint_len(v: usize) -> usize {
    crate::patch::varint_len(v as u64)
}

fn push_varint(out: &mut Vec<u8>, v: usize) {
    let mut buf = [0u8; MAX_VARINT_LEN];
    let n = write_varint(v as u64, &mut buf);
    out.extend_from_slice(buf.get(..n).unwrap_or(&[]));
}

/// Writes the zero-run, value-run and value streams of `diff` into `out`
/// in one pass over it: `out` is exactly as long as the three streams, and
/// `lens` are their lengths from [`stream_lens`].
fn fill_sparse(diff: &[u8], lens: [usize; 3], out: &mut [u8]) {
    let (zero_runs, rest) = out.split_at_mut(lens[0].min(out.len()));
    let (value_runs, values) = rest.split_at_mut(lens[1].min(rest.len()));
    let (mut z, mut r, mut v) = (0usize, 0usize, 0usize);
    let put = |slot: &mut [u8], at: &mut usize, n: usize| {
        let mut buf = [0u8; MAX_VARINT_LEN];
        let len = write_varint(n as u64, &mut buf);
        if let (Some(dst), Some(src)) = (slot.get_mut(*at..*at + len), buf.get(..len)) {
            dst.copy_from_slice(src);
        }
        *at += len;
    };
    for (zeros, run) in runs(diff) {
        put(zero_runs, &mut z, zeros);
        put(value_runs, &mut r, run.len());
        if let Some(dst) = values.get_mut(v..v + run.len()) {
            dst.copy_from_slice(run);
        }
        v += run.len();
    }
}

/// Lengths of the five streams of [`patch_payload`]'s result: control,
/// zero runs, value runs, values, literals.
pub fn stream_lens(ctrl: &[u8], diff: &[u8], extra: &[u8]) -> [usize; 5] {
    let (mut zero_runs, mut value_runs, mut values) = (0usize, 0usize, 0usize);
    for (zeros, v) in runs(diff) {
        zero_runs += varint_len(zeros);
        value_runs += varint_len(v.len());
        values += v.len();
    }
    [ctrl.len(), zero_runs, value_runs, values, extra.len()]
}

/// Bytes of [`patch_payload`]'s result, counted without building it.
pub fn patch_payload_len(ctrl: &[u8], diff: &[u8], extra: &[u8]) -> usize {
    payload_len_of(stream_lens(ctrl, diff, extra))
}

/// Bytes of a PATCH payload whose streams have lengths `lens`.
fn payload_len_of(lens: [usize; 5]) -> usize {
    lens.iter().map(|&n| varint_len(n) + n).sum()
}

/// Appends [`patch_payload`]'s result to `out`; `lens` are its
/// [`stream_lens`].
fn write_patch_payload(
    ctrl: &[u8],
    diff: &[u8],
    extra: &[u8],
    lens: [usize; 5],
    out: &mut Vec<u8>,
) {
    for n in lens {
        push_varint(out, n);
    }
    out.extend_from_slice(ctrl);
    let [_, zero_runs, value_runs, values, _] = lens;
    let at = out.len();
    out.resize(at + zero_runs + value_runs + values, 0);
    if let Some(sparse) = out.get_mut(at..) {
        fill_sparse(diff, [zero_runs, value_runs, values], sparse);
    }
    out.extend_from_slice(extra);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Table entries of `parts` stored as they are.
    fn stored_entries(parts: &[&[u8]]) -> Vec<StreamEntry> {
        parts
            .iter()
            .map(|p| StreamEntry {
                props: None,
                unpacked_len: p.len(),
                packed_len: p.len(),
            })
            .collect()
    }

    fn stored(parts: &[&[u8]], layout: u8) -> Vec<u8> {
        let mut out = Vec::new();
        write_table(layout, &stored_entries(parts), &mut out);
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn stored_streams_concatenate() {
        let coded = stored(&[b"abc", b"", b"de"], LAYOUT_BYTES);
        assert_eq!(decode(0, &coded, 5, 5, &[]).unwrap(), b"abcde");
        // Another declared length is refused.
        assert!(matches!(
            decode(0, &coded, 6, 6, &[]),
            Err(Error::PayloadCodec { .. })
        ));
        assert!(matches!(
            decode(0, &coded, 4, 4, &[]),
            Err(Error::LzmaPayload { .. })
        ));
    }

    #[test]
    fn plain_diff_becomes_maximal_runs() {
        let p = patch_payload(&[9], &[0, 0, 5, 6, 0, 7, 0, 0], b"xy");
        // lengths 1, 2, 2, 3, 2 | ctrl | zero runs 2 1 | value runs 2 1 | values | extra
        assert_eq!(p, vec![1, 2, 2, 3, 2, 9, 2, 1, 2, 1, 5, 6, 7, b'x', b'y']);
        let coded = stored(&[&[9], &[0, 0, 5, 6, 0, 7, 0, 0], b"xy"], LAYOUT_PATCH);
        assert_eq!(decode(3, &coded, p.len(), 8, &[]).unwrap(), p);
        // A diff longer than the segment is refused before decoding.
        let e = decode(3, &coded, p.len(), 7, &[]).unwrap_err();
        assert!(matches!(e, Error::LzmaPayload { op_index: 3, .. }), "{e:?}");
    }

    /// What an `LzmaPayload` refusal says was expected.
    fn what_of(e: &Error) -> &'static str {
        match e {
            Error::LzmaPayload { what, .. } => what,
            other => panic!("not an LzmaPayload refusal: {other:?}"),
        }
    }

    /// A layout 3 payload with stored streams.
    fn stored_gaps(streams: [&[u8]; 4], window: DictWindow) -> Vec<u8> {
        let mut out = Vec::new();
        write_gaps_table(&stored_entries(&streams), window, &mut out);
        for p in streams {
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn long_zero_runs_become_gaps_and_come_back() {
        let diff = [0, 0, 5, 0, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0];
        let (gaps, kept) = gap_diff(&diff, 3, 1);
        // Runs of 4 and 3 zeros go; the leading 2 stay; trailing zeros go.
        assert_eq!(kept, vec![0, 0, 5, 7, 9]);
        assert_eq!(gaps, vec![3, 4, 1, 3]);
        let p = patch_payload(&[9], &diff, b"xy");
        let coded = stored_gaps([&[9], &gaps, &kept, b"xy"], DictWindow::default());
        assert!(!literals_follow_source(Codec::Lzma, &coded));
        assert_eq!(decode(3, &coded, p.len(), diff.len(), &[]).unwrap(), p);
        // An all-zero diff has no gaps and no bytes; min_gap 0 means 1.
        assert_eq!(gap_diff(&[0; 9], 4, 1), (vec![], vec![]));
        assert_eq!(
            gap_diff(&[0, 1, 0, 2], 0, 0),
            (vec![0, 1, 1, 1], vec![1, 2])
        );
        // Aligned gaps: 7 zeros leave 3 behind, the 1 after them keeps its
        // column; a run of 5 under min_gap 6 stays.
        let diff = [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        let (gaps, kept) = gap_diff(&diff, 6, 4);
        assert_eq!(gaps, vec![1, 4]);
        assert_eq!(kept, vec![1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn gapped_literals_follow_their_window() {
        let window = DictWindow { offset: 1, len: 2 };
        let coded = stored_gaps([&[9], &[], &[], b"xy"], window);
        assert!(literals_follow_source(Codec::Lzma, &coded));
        assert!(!literals_follow_source(Codec::Zstd, &coded));
        let p = patch_payload(&[9], &[], b"xy");
        assert_eq!(decode(0, &coded, p.len(), 0, b"abc").unwrap(), p);
        let e = decode(0, &coded, p.len(), 0, b"ab").unwrap_err();
        assert_eq!(what_of(&e), "a dictionary window inside the op's source");
        // A cut table follows nothing.
        assert!(!literals_follow_source(
            Codec::Lzma,
            &coded[..coded.len() - 4]
        ));
    }

    #[test]
    fn a_bad_gap_list_is_named_at_its_stream() {
        let p = patch_payload(&[9], &[0, 0, 0, 5], b"");
        let fault = "a gap list of varint pairs within the gapped diff and the segment";
        for gaps in [
            &[1u8, 3][..],  // takes 1 byte of kept: fine
            &[2, 3][..],    // takes 2 bytes of a 1-byte kept diff
            &[0, 9][..],    // 9 zeros: past the segment
            &[0][..],       // half a pair
            &[0, 0x80][..], // a cut varint
        ] {
            let coded = stored_gaps([&[9], gaps, &[5], b""], DictWindow::default());
            let r = decode(2, &coded, p.len(), 4, &[]);
            if gaps == [1, 3] {
                // Well formed: the diff is 5 then 3 zeros, another payload
                // of the same length.
                assert_ne!(r.unwrap(), p);
                continue;
            }
            // The gap list is the second stream, before the 1-byte kept diff.
            let at = coded.len() - 1 - gaps.len();
            assert_eq!(
                r.unwrap_err(),
                Error::LzmaPayload {
                    op_index: 2,
                    offset: at as u64,
                    what: fault
                },
                "{gaps:?}"
            );
        }
        // The good one.
        let coded = stored_gaps([&[9], &[0, 3], &[5], b""], DictWindow::default());
        assert_eq!(decode(2, &coded, p.len(), 4, &[]).unwrap(), p);
    }

    #[test]
    fn a_dictionary_window_must_lie_in_the_source() {
        let stream = |n: usize| StreamEntry {
            props: None,
            unpacked_len: n,
            packed_len: n,
        };
        let mut coded = Vec::new();
        let window = DictWindow { offset: 2, len: 3 };
        write_dict_table(&[stream(1), stream(0), stream(2)], window, &mut coded);
        let table_end = coded.len();
        coded.extend_from_slice(&[9, b'x', b'y']);
        let p = patch_payload(&[9], &[], b"xy");
        // Stored streams ignore the window, but it is checked all the same.
        assert_eq!(decode(5, &coded, p.len(), 0, b"abcde").unwrap(), p);
        let e = decode(5, &coded, p.len(), 0, b"abcd").unwrap_err();
        assert_eq!(
            e,
            Error::LzmaPayload {
                op_index: 5,
                offset: table_end as u64 - 2,
                what: "a dictionary window inside the op's source",
            }
        );
        // A window offset that is no varint is named at its byte.
        let mut bad = coded[..table_end - 2].to_vec();
        bad.push(0x80);
        let e = decode(5, &bad, p.len(), 0, b"abcde").unwrap_err();
        assert_eq!(what_of(&e), "a dictionary offset varint");
    }

    #[test]
    fn a_payload_too_large_for_ram_is_out_of_memory_not_malformed() {
        let huge = 1usize << 46;
        let mut coded = Vec::new();
        let entry = StreamEntry {
            props: Some(Props::DEFAULT),
            unpacked_len: huge,
            packed_len: 5,
        };
        write_table(LAYOUT_BYTES, &[entry], &mut coded);
        coded.extend_from_slice(&[0; 5]);
        let e = decode(4, &coded, huge, huge, &[]).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { op_index: 4, needed } if needed == huge as u64));
        // A bad layout is named before a missing count.
        assert!(matches!(
            decode(4, &[7], 1, 1, &[]),
            Err(Error::LzmaPayload { offset: 0, .. })
        ));
    }

    #[test]
    fn bad_tables_name_their_offset() {
        let what = |coded: &[u8]| match decode(1, coded, 4, 4, &[]) {
            Err(Error::LzmaPayload { offset, what, .. }) => (offset, what),
            other => panic!("{other:?}"),
        };
        assert_eq!(what(&[]), (0, "a layout byte"));
        assert_eq!(what(&[0]), (1, "a stream count byte"));
        assert_eq!(
            what(&[4, 1]),
            (
                0,
                "layout 0 (bytes), 1 (patch), 2 (patch, dictionary) or 3 (patch, gaps)"
            )
        );
        let counts = "1 to 8 streams (layout 0), 3 (layouts 1 and 2) or 4 (layout 3)";
        assert_eq!(what(&[0, 0]), (1, counts));
        assert_eq!(what(&[2, 2]), (1, counts));
        assert_eq!(what(&[3, 3]), (1, counts));
        assert_eq!(what(&[1, 4]), (1, counts));
        assert_eq!(
            what(&[0, 1, 225, 4, 4]),
            (2, "a props byte below 225 with lc + lp <= 4, or 0xff")
        );
        // lc 8 lp 0 is a valid LZMA props byte but past this format's limit.
        assert_eq!(what(&[0, 1, 8, 4, 4]).0, 2);
        assert_eq!(
            what(&[0, 1, 0xff, 4, 3]).1,
            "a stored stream's packed length equal to its unpacked length"
        );
        assert_eq!(what(&[0, 1, 0xff, 0x80]), (3, "an unpacked length varint"));
        assert_eq!(
            what(&[0, 1, 0xff, 4, 4, 1, 2]).1,
            "packed lengths adding up to the rest of the payload"
        );
        // A cut-short LZMA stream points into the stream.
        assert_eq!(
            what(&[0, 1, 0x5d, 4, 5, 0, 0, 0, 0, 0]),
            (10, "more compressed bytes (the stream is cut short)")
        );
    }
}
