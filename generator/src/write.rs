//! Chaining, hashing and signing the planned ops into a package.

use ed25519_dalek::SigningKey;
use fota_format::op::{OpContext, OpHead, OpHeader, OpKind};
use fota_format::{Header, Label, Manifest, Mode, OpAuth, Profile, HEADER_LEN, SIGNED_HEADER_LEN};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::plan::PlannedOp;

/// A manifest describing `source` and `target` (sizes and sha256) for the
/// given segment size and mode, with empty labels, counter 0 and no
/// release notes; `write_package` fills in the op count and chain head.
/// Its ops are authenticated as [`default_op_auth`] says for the mode.
pub fn image_manifest(source: &[u8], target: &[u8], segment_size: u32, mode: Mode) -> Manifest {
    let (source_sha256, target_sha256) =
        rayon::join(|| Sha256::digest(source), || Sha256::digest(target));
    Manifest {
        device_class: Label::EMPTY,
        from_version: Label::EMPTY,
        to_version: Label::EMPTY,
        security_counter: 0,
        mode,
        profile: Profile::Zstd,
        segment_size,
        source_size: source.len() as u64,
        source_sha256: source_sha256.into(),
        target_size: target.len() as u64,
        target_sha256: target_sha256.into(),
        op_count: 0,
        op_auth: default_op_auth(mode),
        first_op_sha256: [0; 32],
        release_notes_sha256: [0; 32],
        scratch_slots: 0,
        xform_len: 0,
        streams_len: 0,
    }
}

/// How a package of `mode` authenticates its ops unless asked otherwise:
/// A/B packages are signed whole (format version 3: no op hashes, 32 bytes
/// fewer per op), in-place ones keep the hash chain,
/// which lets the device check every op again as it reads it to apply it.
pub fn default_op_auth(mode: Mode) -> OpAuth {
    match mode {
        Mode::AB => OpAuth::Signature,
        Mode::InPlace => OpAuth::Chain,
    }
}

/// Assembles the package: with a hash chain ([`OpAuth::Chain`]) ops are
/// hashed last to first so each can carry the hash of its successor and
/// the manifest gets the head of the chain; the header and manifest are
/// signed, and without a chain the op section's sha256 with them.
///
/// `manifest.first_op_sha256` and `op_count` are filled in here; `source`
/// and `target` are read only to hash what each op reads and writes.
///
/// # Errors
/// [`Error::Limit`] when an op's extents or segment lie outside `source` or
/// `target` (a planning bug: refused rather than written).
pub fn write_package(
    manifest: Manifest,
    ops: &[PlannedOp],
    source: &[u8],
    target: &[u8],
    key: &SigningKey,
) -> Result<Vec<u8>> {
    write_package_with(manifest, ops, source, target, key, None)
}

/// The sha256 of every whole segment of a target, for packages of it that
/// are written more than once (each way the generator builds one): hashed
/// once, on all threads. It answers only for the very slice it hashed.
pub struct SegmentHashes<'a> {
    target: &'a [u8],
    segment_size: usize,
    hashes: Vec<[u8; 32]>,
}

impl<'a> SegmentHashes<'a> {
    /// Hashes the `segment_size`-byte segments of `target` (the last may
    /// be shorter).
    pub fn new(target: &'a [u8], segment_size: u32) -> Self {
        use rayon::prelude::*;
        let segment_size = (segment_size as usize).max(1);
        let hashes = target
            .par_chunks(segment_size)
            .map(|s| Sha256::digest(s).into())
            .collect();
        SegmentHashes {
            target,
            segment_size,
            hashes,
        }
    }

    /// The hash of `target[offset..offset + len]` if `target` is the slice
    /// these hashes were taken of and the range is one of its segments.
    fn get(&self, target: &[u8], offset: u64, len: u64) -> Option<[u8; 32]> {
        if !std::ptr::eq(self.target, target) {
            return None;
        }
        let offset = usize::try_from(offset).ok()?;
        let end = offset.checked_add(usize::try_from(len).ok()?)?;
        let whole = offset % self.segment_size == 0
            && end == (offset + self.segment_size).min(target.len());
        whole
            .then(|| self.hashes.get(offset / self.segment_size).copied())
            .flatten()
    }
}

/// [`write_package`], taking the hash of each op's segment from `segments`
/// when they hold it.
///
/// # Errors
/// As [`write_package`].
pub fn write_package_with(
    mut manifest: Manifest,
    ops: &[PlannedOp],
    source: &[u8],
    target: &[u8],
    key: &SigningKey,
    segments: Option<&SegmentHashes<'_>>,
) -> Result<Vec<u8>> {
    let outside = |what, value: u64, limit: usize| Error::Limit {
        what,
        value,
        limit: limit as u64,
    };
    if manifest.op_auth == OpAuth::Signature && manifest.mode != Mode::AB {
        return Err(Error::Option {
            option: "--chain",
            reason: "an in-place package keeps the op hash chain: its device checks every op again as it applies it".into(),
        });
    }
    manifest.op_count = ops.len() as u32;
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(ops.len());
    let mut next = [0u8; 32];
    for (index, op) in ops.iter().enumerate().rev() {
        // A/B packages carry no per-op source hash (SPEC §2.3): the whole
        // source is checked before the first op.
        let hashes_source = manifest.mode == Mode::InPlace || op.kind == OpKind::Stash;
        let mut h = Sha256::new();
        for e in &op.extents {
            let end = e.offset.saturating_add(e.len);
            let bytes = source.get(e.offset as usize..end as usize).ok_or(outside(
                "op source extent end",
                end,
                source.len(),
            ))?;
            if hashes_source {
                h.update(bytes);
            }
        }
        let src_sha256 = if op.extents.is_empty() || !hashes_source {
            [0; 32]
        } else {
            h.finalize().into()
        };
        // A stash writes its source bytes to a scratch slot, not the target.
        let dst_sha256 = if op.kind == OpKind::Stash {
            src_sha256
        } else if matches!(op.kind, OpKind::Xform | OpKind::Streams) {
            [0; 32]
        } else {
            let dst_end = op.dst_offset + u64::from(op.dst_len);
            let dst = target
                .get(op.dst_offset as usize..dst_end as usize)
                .ok_or(outside("op segment end", dst_end, target.len()))?;
            segments
                .and_then(|h| h.get(target, op.dst_offset, u64::from(op.dst_len)))
                .unwrap_or_else(|| Sha256::digest(dst).into())
        };
        let header = OpHeader {
            kind: op.kind,
            codec: op.codec,
            fill_value: op.fill_value,
            extent_count: op.extents.len() as u16,
            payload_len: op.payload.len() as u32,
            decoded_len: op.decoded_len,
            dst_offset: op.dst_offset,
            dst_len: op.dst_len,
            dst_sha256,
            src_sha256,
            next_op_sha256: next,
        };
        let ctx = OpContext::new(&manifest, index as u32);
        let head = header.encode(&op.extents, &ctx);
        // Fields the context gives are not written: a planned op that
        // disagrees with them would be read back as another op.
        let back = OpHead::parse(&head, 0, &ctx).map_err(Error::SelfCheck)?;
        if back.header != header || back.extents.as_slice() != op.extents.as_slice() {
            return Err(Error::Limit {
                what: "op fields the package layout implies (segment, extents, lengths, hashes)",
                value: index as u64,
                limit: ops.len() as u64,
            });
        }
        let mut bytes = Vec::with_capacity(head.len() + op.payload.len());
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(&op.payload);
        if ctx.chained {
            next = Sha256::digest(&bytes).into();
        }
        encoded.push(bytes);
    }
    manifest.first_op_sha256 = next;
    let ops_sha256: Option<[u8; 32]> = match manifest.op_auth {
        OpAuth::Chain => None,
        OpAuth::Signature => {
            let mut h = Sha256::new();
            for bytes in encoded.iter().rev() {
                h.update(bytes);
            }
            Some(h.finalize().into())
        }
    };
    let manifest_bytes = manifest.to_bytes();
    let ops_len: u64 = encoded.iter().map(|b| b.len() as u64).sum();
    let mut header = Header {
        op_auth: manifest.op_auth,
        manifest_len: manifest_bytes.len() as u32,
        ops_len,
        key_id: fota_format::sign::key_id(&key.verifying_key()),
        signature: [0; 64],
    };
    let mut signed = [0u8; SIGNED_HEADER_LEN];
    signed.copy_from_slice(&header.to_bytes()[..SIGNED_HEADER_LEN]);
    header.signature = fota_format::sign::sign(key, &signed, &manifest_bytes, ops_sha256.as_ref());
    let mut out = Vec::with_capacity(HEADER_LEN + manifest_bytes.len() + ops_len as usize);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&manifest_bytes);
    for bytes in encoded.iter().rev() {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fota_format::{Codec, Extent};

    fn fill(dst_offset: u64, dst_len: u32, value: u8) -> PlannedOp {
        PlannedOp {
            kind: OpKind::Fill,
            codec: Codec::Stored,
            fill_value: value,
            dst_offset,
            dst_len,
            extents: Vec::<Extent>::new(),
            payload: Vec::new(),
            decoded_len: 0,
        }
    }

    #[test]
    fn segment_hashes_give_the_package_hashing_each_segment_gives() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let old = vec![1u8; 2500];
        let new: Vec<u8> = [vec![0u8; 1024], vec![5; 1024], vec![9; 452]].concat();
        let ops = [fill(0, 1024, 0), fill(1024, 1024, 5), fill(2048, 452, 9)];
        let m = image_manifest(&old, &new, 1024, Mode::AB);
        let plain = write_package(m, &ops, &old, &new, &key).unwrap();
        let hashes = SegmentHashes::new(&new, 1024);
        let with = write_package_with(m, &ops, &old, &new, &key, Some(&hashes)).unwrap();
        assert_eq!(plain, with);
        // Only whole segments are taken from the table.
        assert_eq!(
            hashes.get(&new, 2048, 452),
            Some(Sha256::digest(&new[2048..]).into())
        );
        assert_eq!(hashes.get(&new, 0, 512), None);
        assert_eq!(hashes.get(&new, 512, 1024), None);
        assert_eq!(hashes.get(&new, 3072, 1024), None);
        // Another target of the same length gets no hash from the table.
        let other = new.clone();
        assert_eq!(hashes.get(&other, 0, 1024), None);
        let again = write_package_with(m, &ops, &old, &other, &key, Some(&hashes)).unwrap();
        assert_eq!(plain, again);
    }
}
