//! The host applier: the reference implementation of applying a package,
//! used by `fota apply` and by the generator to check every package it
//! makes before it hands it out.
//!
//! Order of checks ("trust before touch"): framing, signature, device class
//! and security counter, the whole source image's size and sha256; then per
//! op the hash chain, the source extents' sha256, the decoded payload and
//! the segment's sha256; finally the target's sha256. Output reaches the
//! file system only through [`write_atomically`], so a refused package
//! leaves nothing behind.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use fota_format::op::{Codec, OpKind};
use fota_format::{Error as FormatError, Label, Mode, Op, Package, PatchDecoder, PatchStep};
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
    pkg.check_source(source)?;
    let m = *pkg.manifest();
    let target_len = usize::try_from(m.target_size).map_err(|_| FormatError::InvalidField {
        offset: fota_format::HEADER_LEN as u64 + 152,
        what: "target size (fits this host's memory)",
        found: m.target_size,
    })?;
    // A/B reads the untouched source; in-place reads and writes one image.
    let in_place = m.mode == Mode::InPlace;
    let mut target = if in_place {
        let mut image = source.to_vec();
        image.resize(target_len.max(source.len()), 0);
        image
    } else {
        vec![0u8; target_len]
    };
    let mut written = vec![false; m.segment_count() as usize];
    let mut segment = Vec::new();
    for op in pkg.ops() {
        let op = op?;
        let seg = (op.header.dst_offset / u64::from(m.segment_size)) as usize;
        if std::mem::replace(&mut written[seg], true) {
            return Err(FormatError::OpLayout {
                op_index: op.index,
                offset: op.offset,
                what: "destination segment (each written once)",
                expected: 0,
                found: op.header.dst_offset,
            });
        }
        apply_op(&op, if in_place { &target } else { source }, &mut segment)?;
        let dst = op.header.dst_offset as usize;
        target[dst..dst + segment.len()].copy_from_slice(&segment);
    }
    target.truncate(target_len);
    if Sha256::digest(&target[..]).as_slice() != m.target_sha256 {
        return Err(FormatError::TargetHashMismatch);
    }
    Ok(target)
}

/// Produces the segment of one op into `out`, reading `image` for sources.
fn apply_op(op: &Op<'_>, image: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
    let h = &op.header;
    let extents = op.extents.as_slice();
    if !extents.is_empty() {
        let mut hasher = Sha256::new();
        for e in extents {
            let range = e.offset as usize..(e.offset + e.len) as usize;
            let bytes = image
                .get(range)
                .ok_or(FormatError::SourceExtentHashMismatch { op_index: op.index })?;
            hasher.update(bytes);
        }
        if hasher.finalize().as_slice() != h.src_sha256 {
            return Err(FormatError::SourceExtentHashMismatch { op_index: op.index });
        }
    }
    out.clear();
    match h.kind {
        OpKind::Fill => out.resize(h.dst_len as usize, h.fill_value),
        OpKind::Skip => out.extend_from_slice(
            &image[h.dst_offset as usize..(h.dst_offset + u64::from(h.dst_len)) as usize],
        ),
        OpKind::Copy => {
            for e in extents {
                out.extend_from_slice(&image[e.offset as usize..(e.offset + e.len) as usize]);
            }
        }
        OpKind::New => *out = decode_payload(op)?,
        OpKind::Patch => {
            let payload = decode_payload(op)?;
            out.reserve(h.dst_len as usize);
            let decoder =
                PatchDecoder::new(op.index, &payload, h.dst_offset, h.dst_len.into(), extents)?;
            run_patch(decoder, image, out)?;
        }
    }
    if Sha256::digest(&out[..]).as_slice() != h.dst_sha256 {
        return Err(FormatError::SegmentHashMismatch {
            op_index: op.index,
            dst_offset: h.dst_offset,
        });
    }
    Ok(())
}

/// Runs a PATCH decoder to the end, reading source bytes from `image` and
/// appending the produced bytes to `out`.
///
/// # Errors
/// What the decoder refuses. Reads are bounds-checked against `image` too,
/// so a decoder built with extents larger than `image` fails cleanly.
pub fn run_patch(
    mut decoder: PatchDecoder<'_>,
    image: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    while let Some(step) = decoder.next() {
        match step? {
            PatchStep::Add { src, len } => {
                let at = out.len();
                let range = usize::try_from(src)
                    .ok()
                    .zip(usize::try_from(src.saturating_add(len)).ok());
                let bytes = range.and_then(|(s, e)| image.get(s..e)).ok_or(
                    FormatError::PatchReadOutsideExtents {
                        op_index: decoder.op_index(),
                        src_offset: src,
                        len,
                    },
                )?;
                out.extend_from_slice(bytes);
                decoder.add_diff(&mut out[at..])?;
            }
            PatchStep::Literal(bytes) => out.extend_from_slice(bytes),
        }
    }
    Ok(())
}

/// First bytes of a standard zstd frame (RFC 8878).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Decodes an op's payload to exactly its declared length.
fn decode_payload(op: &Op<'_>) -> Result<Vec<u8>, FormatError> {
    let want = op.header.decoded_len as usize;
    let bytes = match op.header.codec {
        Codec::Stored => op.payload.to_vec(),
        Codec::Zstd => {
            // Exactly one standard frame: no skippable or concatenated
            // frames, which a strict device decoder would refuse.
            let one_frame = op.payload.starts_with(&ZSTD_MAGIC)
                && zstd::zstd_safe::find_frame_compressed_size(op.payload) == Ok(op.payload.len());
            if !one_frame {
                return Err(FormatError::PayloadCodec {
                    op_index: op.index,
                    what: "payload is not exactly one zstd frame",
                });
            }
            zstd::bulk::decompress(op.payload, want).map_err(|_| FormatError::PayloadCodec {
                op_index: op.index,
                what: "zstd frame is corrupt or decodes to more than the declared length",
            })?
        }
    };
    if bytes.len() != want {
        return Err(FormatError::PayloadCodec {
            op_index: op.index,
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
        let err = run_patch(decoder, &[0u8; 5], &mut Vec::new()).unwrap_err();
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
        run_patch(decoder, &[2u8; 8], &mut out).unwrap();
        assert_eq!(out, b"\x03\x03\x03\x03\x03\x03\x03\x03xy");
    }
}
