//! The host applier: the reference implementation of applying a package,
//! used by `fota apply` and by the generator to check every package it
//! makes before it hands it out.
//!
//! Order of checks ("trust before touch"): framing, signature, device class
//! and security counter, the whole source image's size and sha256; then per
//! op the hash chain (format v2; a v3 signature covered every op), the
//! source extents' sha256, the decoded payload and
//! the segment's sha256; finally the target's sha256. Output reaches the
//! file system only through [`write_atomically`], so a refused package
//! leaves nothing behind.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use fota_format::op::{Codec, OpKind};
use fota_format::streams::StreamTable;
use fota_format::{
    Error as FormatError, Extent, InPlaceTracker, Label, Manifest, Mode, Op, Package, PatchDecoder,
    PatchStep, SourcePiece, TinyDecoder, TinyStep, VerifiedPackage, Xform,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What the device (here: the host) is, for the package's device checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The device's class; empty accepts any class.
    pub device_class: Label,
    /// The device's current anti-rollback counter.
    pub security_counter: u64,
}

/// Applies `package` to `source` and returns the target image.
///
/// # Errors
/// Every [`FormatError`] a refused package or a wrong source can raise.
pub fn apply(
    source: &[u8],
    package: &[u8],
    trusted: &[VerifyingKey],
    device: &DeviceIdentity,
) -> Result<Vec<u8>, FormatError> {
    let pkg = Package::parse(package)?.verify(trusted)?;
    pkg.check_device(&device.device_class, device.security_counter)?;
    let Some((table_bytes, at)) = load_streams(&pkg)? else {
        return apply_images(&pkg, source, PARALLEL_MIN);
    };
    let m = pkg.manifest();
    let table = StreamTable::parse(table_bytes, at, m.source_size, m.target_size)?;
    let expanded = crate::streams::expand_source(source, &table)?;
    let target = apply_images(&pkg, &expanded, PARALLEL_MIN)?;
    crate::streams::pack_target(&target, &table)
}

/// Applies the ops of `pkg` to `source` (the expanded source when the
/// package has a stream table), on all threads when the images have
/// `parallel_min` bytes or more.
fn apply_images(
    pkg: &VerifiedPackage<'_>,
    source: &[u8],
    parallel_min: usize,
) -> Result<Vec<u8>, FormatError> {
    let m = *pkg.manifest();
    let target_len = || {
        usize::try_from(m.target_size).map_err(|_| FormatError::InvalidField {
            offset: fota_format::HEADER_LEN as u64,
            what: "manifest target size (fits this host's memory)",
            found: m.target_size,
        })
    };
    if m.mode == Mode::InPlace {
        pkg.check_source(source)?;
        return apply_in_place(pkg, source, target_len()?);
    }
    let xform_bytes = load_xform(pkg);
    let xform = xform_bytes
        .as_ref()
        .map_err(|&e| e)
        .and_then(|b| b.as_deref().map(|b| Xform::parse(b, 0)).transpose());
    // Small images are applied on this thread alone: starting the worker
    // threads would cost more than they save.
    let parallel =
        source.len() as u64 >= parallel_min as u64 || m.target_size >= parallel_min as u64;
    // Every op reads T of its extents, whole 256-byte blocks that T
    // rewrites on their own: T of the whole source once, on all threads,
    // serves them all (their extents overlap where code moved). It is made
    // while the source's hash is checked (it is dropped if that fails);
    // errors still come in the order a sequential applier meets them.
    let (checked, transformed) = join_if(
        parallel,
        || pkg.check_source(source),
        || match &xform {
            Ok(Some(x)) => Some(transform_source(x, source, parallel)),
            _ => None,
        },
    );
    checked?;
    let target_len = target_len()?;
    let xform = xform?;
    // A/B ops write disjoint segments from an untouched source, so they are
    // applied on all threads once the hash chain has authenticated them in
    // order. Errors come out as a sequential applier would meet them: an
    // op's own failure before a later op's broken link.
    let mut ops = Vec::new();
    let mut chain_error = None;
    for op in pkg.ops() {
        match op {
            Ok(op) => ops.push(op),
            Err(e) => {
                chain_error = Some(e);
                break;
            }
        }
    }
    let view = match &transformed {
        Some(t) => SourceView::Transformed(t),
        None => SourceView::Whole(source),
    };
    let one = |op: &Op<'_>| {
        let mut segment = Vec::new();
        apply_op(op, &view, xform.as_ref(), parallel, &mut segment).map(|()| segment)
    };
    let segments: Vec<Result<Vec<u8>, FormatError>> = if parallel {
        use rayon::prelude::*;
        ops.par_iter().map(one).collect()
    } else {
        ops.iter().map(one).collect()
    };
    let mut produced = Vec::with_capacity(ops.len());
    for (op, segment) in ops.iter().zip(segments) {
        produced.push((op, segment?));
    }
    if let Some(e) = chain_error {
        return Err(e);
    }
    // One op that wrote the whole target: the segment hash it has just
    // checked is the manifest's target hash, so the segment is the target.
    let mut writing = produced.iter_mut().filter(|(_, s)| !s.is_empty());
    if let (Some((op, segment)), None) = (writing.next(), writing.next()) {
        if op.header.dst_offset == 0
            && segment.len() == target_len
            && op.header.dst_sha256 == m.target_sha256
        {
            return Ok(std::mem::take(segment));
        }
    }
    let mut target = vec![0u8; target_len];
    for (op, segment) in &produced {
        let dst = op.header.dst_offset as usize;
        target[dst..dst + segment.len()].copy_from_slice(segment);
    }
    check_target(&m, target)
}

/// The package's stream table and its package offset: op 0's payload when
/// the manifest announces one (the op chain has authenticated it and
/// checked its kind and length).
fn load_streams<'a>(pkg: &VerifiedPackage<'a>) -> Result<Option<(&'a [u8], u64)>, FormatError> {
    if pkg.manifest().streams_len == 0 {
        return Ok(None);
    }
    let Some(first) = pkg.ops().next() else {
        return Ok(None);
    };
    let op = first?;
    Ok(Some((op.payload, op.payload_offset)))
}

/// The package's reference transform, expanded: the XFORM op's payload when the
/// manifest announces one (the op chain has authenticated it and checked
/// its kind), checked by [`Xform::parse`].
fn load_xform(pkg: &VerifiedPackage<'_>) -> Result<Option<Vec<u8>>, FormatError> {
    let m = pkg.manifest();
    if m.xform_len == 0 {
        return Ok(None);
    }
    // The XFORM op follows the STREAMS op when there is one.
    let Some(first) = pkg.ops().nth(usize::from(m.streams_len != 0)) else {
        return Ok(None);
    };
    let op = first?;
    let at = op.payload_offset;
    let mut out = vec![0u8; m.xform_len as usize];
    let n = fota_format::xform::expand(op.payload, at, &mut out)?;
    if n != out.len() {
        return Err(FormatError::BadLength {
            offset: at,
            what: "expanded xform (the manifest's xform length)",
            expected: out.len() as u64,
            found: n as u64,
        });
    }
    Xform::parse(&out, 0)?;
    Ok(Some(out))
}

/// Checks the finished target against the manifest.
fn check_target(m: &Manifest, mut target: Vec<u8>) -> Result<Vec<u8>, FormatError> {
    target.truncate(m.target_size as usize);
    if Sha256::digest(&target[..]).as_slice() != m.target_sha256 {
        return Err(FormatError::TargetHashMismatch);
    }
    Ok(target)
}

/// In place: one image that starts as the source and is overwritten
/// segment by segment, plus the scratch slots STASH ops fill; the shared
/// [`InPlaceTracker`] checks every op's reads and writes and says where
/// each source byte lives now.
fn apply_in_place(
    pkg: &VerifiedPackage<'_>,
    source: &[u8],
    target_len: usize,
) -> Result<Vec<u8>, FormatError> {
    let m = *pkg.manifest();
    let seg = m.segment_size as usize;
    let bitmap = InPlaceTracker::bitmap_len(&m);
    let (mut written, mut overwritten) = (vec![0u8; bitmap], vec![0u8; bitmap]);
    let mut slot_map = vec![0u32; m.scratch_slots as usize];
    let mut tracker = InPlaceTracker::new(&m, &mut written, &mut overwritten, &mut slot_map)?;
    let mut image = source.to_vec();
    image.resize(target_len.max(source.len()), 0);
    let mut scratch = vec![0u8; m.scratch_slots as usize * seg];
    let mut segment = Vec::new();
    let parallel = image.len() >= PARALLEL_MIN;
    let xform_bytes = load_xform(pkg)?;
    let xform = xform_bytes
        .as_deref()
        .map(|b| Xform::parse(b, 0))
        .transpose()?;
    for op in pkg.ops() {
        let op = op?;
        tracker.record(op.index, op.offset, &op.header, op.extents.as_slice())?;
        let view = SourceView::InPlace {
            image: &image,
            scratch: &scratch,
            tracker: &tracker,
            segment_size: seg,
        };
        apply_op(&op, &view, xform.as_ref(), parallel, &mut segment)?;
        let dst = op.header.dst_offset as usize;
        let out = if op.header.kind == OpKind::Stash {
            &mut scratch[..]
        } else {
            &mut image[..]
        };
        out[dst..dst + segment.len()].copy_from_slice(&segment);
    }
    if !tracker.is_complete() {
        return Err(FormatError::OpLayout {
            op_index: m.op_count,
            offset: 0,
            what: "segments written (every target segment once)",
            expected: m.segment_count(),
            found: 0,
        });
    }
    check_target(&m, image)
}

/// T of the whole `source`, made (when `parallel`) on all threads.
fn transform_source(xform: &Xform<'_>, source: &[u8], parallel: bool) -> Vec<u8> {
    let mut out = source.to_vec();
    crate::xform::in_runs(&mut out, 0, parallel, |run, at| xform.source(run, at));
    out
}

/// `(a(), b())`, on two threads when `parallel`.
fn join_if<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// Images from this many bytes on are applied on all threads.
const PARALLEL_MIN: usize = 1 << 20;

/// Where an op's source bytes come from.
enum SourceView<'a> {
    /// A/B: the untouched source image.
    Whole(&'a [u8]),
    /// A/B through a transform: T of the whole source image.
    Transformed(&'a [u8]),
    /// In place: the image being overwritten and the scratch slots.
    InPlace {
        image: &'a [u8],
        scratch: &'a [u8],
        tracker: &'a InPlaceTracker<'a>,
        segment_size: usize,
    },
}

impl SourceView<'_> {
    /// Whether ops read an image that earlier ops overwrite, so each op's
    /// extents are checked against its source hash.
    fn in_place(&self) -> bool {
        matches!(self, SourceView::InPlace { .. })
    }

    /// Appends source bytes `[offset, offset + len)` to `out`; `None` when
    /// they are not available.
    fn read(&self, offset: u64, len: u64, out: &mut Vec<u8>) -> Option<()> {
        match self {
            SourceView::Whole(src) | SourceView::Transformed(src) => {
                image_reader(src)(offset, len, out)?
            }
            SourceView::InPlace {
                image,
                scratch,
                tracker,
                segment_size,
            } => {
                let (mut at, end) = (offset, offset.checked_add(len)?);
                while at < end {
                    let piece = tracker.locate(at, end - at)?;
                    let (bytes, start) = match piece {
                        SourcePiece::Image { offset, .. } => (image, offset as usize),
                        SourcePiece::Scratch { slot, offset, .. } => {
                            (scratch, slot as usize * segment_size + offset as usize)
                        }
                    };
                    out.extend_from_slice(bytes.get(start..start + piece.len() as usize)?);
                    at += piece.len();
                }
            }
        }
        Some(())
    }
}

/// Produces the segment of one op into `out`, reading sources through
/// `view`; with a transform, through T and F⁻¹ (see `fota_format::xform`),
/// F⁻¹ on all threads when `parallel`.
fn apply_op(
    op: &Op<'_>,
    view: &SourceView<'_>,
    xform: Option<&Xform<'_>>,
    parallel: bool,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let h = &op.header;
    if matches!(h.kind, OpKind::Xform | OpKind::Streams) {
        out.clear();
        return Ok(());
    }
    let extents = op.extents.as_slice();
    let outside = FormatError::SourceExtentHashMismatch { op_index: op.index };
    // The extents' bytes, concatenated: hashed here, and what COPY and STASH write.
    let mut extent_bytes = Vec::new();
    for e in extents {
        view.read(e.offset, e.len, &mut extent_bytes)
            .ok_or(outside)?;
    }
    // A/B ops carry no source hash: the whole source was checked first
    // and nothing writes to it (SPEC §2.3).
    if view.in_place()
        && !extents.is_empty()
        && Sha256::digest(&extent_bytes).as_slice() != h.src_sha256
    {
        return Err(outside);
    }
    out.clear();
    // Through a transform, ops that produce bytes read T(extents) and write
    // F⁻¹ of what they produce; SKIP and STASH move raw bytes.
    let xform = xform.filter(|_| !matches!(h.kind, OpKind::Skip | OpKind::Stash));
    if let Some(x) = xform {
        if !matches!(view, SourceView::Transformed(_)) {
            let mut at = 0usize;
            for e in extents {
                let len = e.len as usize;
                x.source(&mut extent_bytes[at..at + len], e.offset);
                at += len;
            }
        }
        let transformed = TransformedExtents {
            extents,
            bytes: &extent_bytes,
        };
        produce(
            op,
            &|src, len, out| transformed.read(src, len, out),
            &extent_bytes,
            out,
        )?;
        crate::xform::in_runs(out, h.dst_offset, parallel, |run, at| x.inverse(run, at));
    } else {
        produce(
            op,
            &|src, len, out| view.read(src, len, out),
            &extent_bytes,
            out,
        )?;
    }
    if Sha256::digest(&out[..]).as_slice() != h.dst_sha256 {
        return Err(FormatError::SegmentHashMismatch {
            op_index: op.index,
            dst_offset: h.dst_offset,
        });
    }
    Ok(())
}

/// The source bytes of one op's extents, already transformed.
struct TransformedExtents<'a> {
    extents: &'a [Extent],
    bytes: &'a [u8],
}

impl TransformedExtents<'_> {
    /// Appends bytes `[offset, offset + len)` of the transformed source;
    /// `None` unless they lie in one extent.
    fn read(&self, offset: u64, len: u64, out: &mut Vec<u8>) -> Option<()> {
        let mut at = 0u64;
        for e in self.extents {
            if offset >= e.offset && offset.checked_add(len)? <= e.offset + e.len {
                let start = usize::try_from(at + offset - e.offset).ok()?;
                out.extend_from_slice(self.bytes.get(start..start + len as usize)?);
                return Some(());
            }
            at += e.len;
        }
        None
    }
}

type Read<'a> = &'a dyn Fn(u64, u64, &mut Vec<u8>) -> Option<()>;

/// The op's segment as its kind and payload make it, before any inverse
/// transform: `read` serves source bytes, `extent_bytes` are the extents
/// concatenated.
fn produce(
    op: &Op<'_>,
    read: Read<'_>,
    extent_bytes: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let h = &op.header;
    let extents = op.extents.as_slice();
    match h.kind {
        OpKind::Fill => out.resize(h.dst_len as usize, h.fill_value),
        OpKind::Skip => {
            read(h.dst_offset, h.dst_len.into(), out).ok_or(FormatError::SegmentHashMismatch {
                op_index: op.index,
                dst_offset: h.dst_offset,
            })?;
        }
        OpKind::Copy | OpKind::Stash => *out = extent_bytes.to_vec(),
        OpKind::Xform | OpKind::Streams => {}
        OpKind::New | OpKind::Patch if h.codec == Codec::Tiny => {
            out.reserve(h.dst_len as usize);
            let decoder = TinyDecoder::new(op.index, h.dst_offset, h.dst_len.into());
            run_tiny(decoder, op.payload, extents, read, out)?;
        }
        OpKind::New => *out = decode_payload(op, &[])?,
        OpKind::Patch => {
            let payload = decode_payload(op, extent_bytes)?;
            out.reserve(h.dst_len as usize);
            let decoder =
                PatchDecoder::new(op.index, &payload, h.dst_offset, h.dst_len.into(), extents)?;
            run_patch(decoder, read, out)?;
        }
    }
    Ok(())
}

/// Runs a PATCH decoder to the end, appending the produced bytes to `out`.
/// `read(src, len, out)` appends source bytes `[src, src + len)` to `out`,
/// or returns `None` when they are not available.
///
/// # Errors
/// What the decoder refuses, and `PatchReadOutsideExtents` for a read
/// `read` cannot serve (a decoder built with extents larger than the
/// image fails cleanly).
pub fn run_patch(
    mut decoder: PatchDecoder<'_>,
    mut read: impl FnMut(u64, u64, &mut Vec<u8>) -> Option<()>,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    while let Some(step) = decoder.next() {
        match step? {
            PatchStep::Add { src, len } => {
                let at = out.len();
                if read(src, len, out).is_none() {
                    out.truncate(at);
                    return Err(FormatError::PatchReadOutsideExtents {
                        op_index: decoder.op_index(),
                        src_offset: src,
                        len,
                    });
                }
                decoder.add_diff(&mut out[at..])?;
            }
            PatchStep::Literal(bytes) => out.extend_from_slice(bytes),
        }
    }
    Ok(())
}

/// Runs a tiny decoder over the whole `payload`, appending the segment to
/// `out` (which must hold only this op's output so far, usually nothing).
/// `read(src, len, out)` appends source bytes `[src, src + len)` to `out`,
/// or returns `None` when they are not available.
///
/// # Errors
/// What the decoder refuses (a payload that ends early or has bytes after
/// the segment is complete included), and `PatchReadOutsideExtents` for a
/// read `read` cannot serve.
pub fn run_tiny(
    mut decoder: TinyDecoder,
    payload: &[u8],
    extents: &[Extent],
    mut read: impl FnMut(u64, u64, &mut Vec<u8>) -> Option<()>,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let base = out.len();
    let mut pos = 0usize;
    loop {
        let input = payload.get(pos..).unwrap_or(&[]);
        let (used, step) = decoder.step(input, extents)?;
        pos += used;
        match step {
            TinyStep::NeedInput | TinyStep::End => break,
            TinyStep::Literal { len } => out.extend_from_slice(&payload[pos - len..pos]),
            TinyStep::AddSource { src, len } => {
                let at = out.len();
                if read(src, len as u64, out).is_none() {
                    out.truncate(at);
                    return Err(FormatError::PatchReadOutsideExtents {
                        op_index: decoder.op_index(),
                        src_offset: src,
                        len: len as u64,
                    });
                }
                for (b, d) in out[at..].iter_mut().zip(&payload[pos - len..pos]) {
                    *b = b.wrapping_add(*d);
                }
            }
            TinyStep::CopySource { src, len } => {
                let at = out.len();
                if read(src, len, out).is_none() {
                    out.truncate(at);
                    return Err(FormatError::PatchReadOutsideExtents {
                        op_index: decoder.op_index(),
                        src_offset: src,
                        len,
                    });
                }
            }
            TinyStep::CopyOutput { back, len } => {
                // The decoder checked 1 <= back <= bytes produced so far.
                let from = out.len() - back as usize;
                for i in 0..len as usize {
                    let b = out[from + i];
                    out.push(b);
                }
            }
        }
    }
    decoder.finish(payload.len() as u64)?;
    debug_assert_eq!(out.len() - base, decoder.produced() as usize);
    Ok(())
}

/// A `read` for [`run_patch`] over one in-memory image.
pub fn image_reader(image: &[u8]) -> impl FnMut(u64, u64, &mut Vec<u8>) -> Option<()> + '_ {
    move |src, len, out| {
        let start = usize::try_from(src).ok()?;
        let end = usize::try_from(src.checked_add(len)?).ok()?;
        out.extend_from_slice(image.get(start..end)?);
        Some(())
    }
}

/// Decodes an op's payload to exactly its declared length; `source` is
/// the op's source as its patch reads it.
fn decode_payload(op: &Op<'_>, source: &[u8]) -> Result<Vec<u8>, FormatError> {
    let h = &op.header;
    decode_coded(
        op.index,
        h.codec,
        op.payload,
        h.decoded_len as usize,
        h.dst_len as usize,
        source,
    )
}

/// Decodes op `op_index`'s `payload` of `codec` to exactly `decoded_len`
/// bytes; `dst_len` is the length of the segment it writes, and `source`
/// the op's source as its patch reads it (an LZMA literal stream may
/// follow part of it).
///
/// # Errors
/// The codec's error for a payload that does not decode, or one that
/// decodes to another length (a tiny payload is never decoded to a buffer).
pub fn decode_coded(
    op_index: u32,
    codec: Codec,
    payload: &[u8],
    decoded_len: usize,
    dst_len: usize,
    source: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let bytes = match codec {
        Codec::Stored => payload.to_vec(),
        // Tiny payloads produce their segment directly (`run_tiny`).
        Codec::Tiny => {
            return Err(FormatError::PayloadCodec {
                op_index,
                what: "a tiny payload is a command stream, not a buffer to decode",
            })
        }
        Codec::Zstd => fota_format::zstd_payload::decode(op_index, payload, decoded_len)?,
        Codec::Lzma => {
            fota_format::lzma_payload::decode(op_index, payload, decoded_len, dst_len, source)?
        }
    };
    if bytes.len() != decoded_len {
        return Err(FormatError::PayloadCodec {
            op_index,
            what: "payload decodes to another length than declared",
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same folder,
/// synced and then renamed, so `path` either keeps its old contents or has
/// all of the new ones.
///
/// # Errors
/// [`Error::Io`] naming the output.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_inner(path, bytes, None)
}

/// As [`write_atomically`], with `permissions` set on the file before it
/// is renamed into place (an executable script appears executable, never
/// without its mode for a moment).
///
/// # Errors
/// [`Error::Io`] naming the output.
pub fn write_atomically_with_permissions(
    path: &Path,
    bytes: &[u8],
    permissions: std::fs::Permissions,
) -> Result<()> {
    write_atomically_inner(path, bytes, Some(permissions))
}

fn write_atomically_inner(
    path: &Path,
    bytes: &[u8],
    permissions: Option<std::fs::Permissions>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".fota-partial-")
        .tempfile_in(dir)
        .map_err(Error::io(dir))?;
    tmp.write_all(bytes)
        .map_err(Error::io(tmp.path().to_path_buf()))?;
    if let Some(p) = permissions {
        tmp.as_file()
            .set_permissions(p)
            .map_err(Error::io(tmp.path().to_path_buf()))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(Error::io(tmp.path().to_path_buf()))?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PatchStreams;
    use fota_format::Extent;

    #[test]
    fn run_patch_refuses_reads_past_the_image() {
        let mut p = PatchStreams::default();
        p.push_record(0, 0, vec![1u8; 8], b"xy");
        let payload = p.into_payload();
        // Extents claim more source than the image has.
        let extents = [Extent {
            offset: 0,
            len: 100,
        }];
        let decoder = PatchDecoder::new(4, &payload, 0, 10, &extents).unwrap();
        let err = run_patch(decoder, image_reader(&[0u8; 5]), &mut Vec::new()).unwrap_err();
        assert_eq!(
            err,
            FormatError::PatchReadOutsideExtents {
                op_index: 4,
                src_offset: 0,
                len: 8
            }
        );
        // With the whole source there, the same patch applies.
        let decoder = PatchDecoder::new(4, &payload, 0, 10, &extents).unwrap();
        let mut out = Vec::new();
        run_patch(decoder, image_reader(&[2u8; 8]), &mut out).unwrap();
        assert_eq!(out, b"\x03\x03\x03\x03\x03\x03\x03\x03xy");
    }

    #[test]
    fn small_and_large_images_apply_alike() {
        // The same transformed package applied on this thread alone and on
        // all threads (as images from PARALLEL_MIN bytes on are).
        let (old, new) = crate::xform::synth::firmware_pair(400, 4, 11);
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        // T and F⁻¹ split into runs of 64 blocks: the image and (with the
        // default segment size) one op's segment are longer than that.
        assert!(old.len() > 64 * fota_format::xform::XFORM_BLOCK);
        for segment_size in [4096, crate::DEFAULT_SEGMENT_SIZE] {
            let opts = crate::DiffOptions {
                segment_size,
                ..crate::DiffOptions::default()
            };
            let out = crate::diff(&old, &new, &key, &opts).unwrap();
            assert!(out.xform.is_some());
            let pkg = Package::parse(&out.package)
                .unwrap()
                .verify(&[key.verifying_key()])
                .unwrap();
            for parallel_min in [0, usize::MAX] {
                assert_eq!(apply_images(&pkg, &old, parallel_min).unwrap(), new);
            }
        }
    }
}
