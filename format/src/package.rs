//! Reading a whole package held in memory (or memory-mapped): parse, verify
//! the signature, check the device, then walk the hash-chained ops.
//!
//! ```text
//! Package::parse ──> verify(trusted keys) ──> VerifiedPackage
//!                                              ├─ check_device(class, counter)
//!                                              └─ ops(): Op, Op, ... (hash chain checked)
//! ```
//!
//! Nothing here allocates. A streaming reader (the on-device agent) uses
//! [`OpChain`] directly with the same rules.

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::header::{Header, OpAuth, HEADER_LEN, SIGNED_HEADER_LEN};
use crate::label::Label;
use crate::manifest::{segment_len, Manifest, Mode, Profile};
use crate::op::{Codec, Extent, Extents, OpContext, OpHead, OpHeader, OpKind};

/// A package whose framing is sound but whose signature is not yet checked.
#[derive(Debug, Clone, Copy)]
pub struct Package<'a> {
    header: Header,
    signed_header: [u8; SIGNED_HEADER_LEN],
    manifest: &'a [u8],
    ops: &'a [u8],
}

impl<'a> Package<'a> {
    /// Parses the header and checks that `bytes` is exactly as long as the
    /// header says.
    ///
    /// # Errors
    /// Header errors; `Truncated` when bytes are missing, `TrailingBytes`
    /// when bytes follow the op section.
    pub fn parse(bytes: &'a [u8]) -> Result<Package<'a>> {
        let header = Header::parse(bytes)?;
        let ops_offset = header.ops_offset();
        let available = bytes.len() as u64;
        if available < ops_offset {
            return Err(Error::Truncated {
                offset: HEADER_LEN as u64,
                needed: header.manifest_len.into(),
                available: available.saturating_sub(HEADER_LEN as u64),
                what: "manifest",
            });
        }
        let total = header.package_len().ok_or(Error::BadLength {
            offset: 16,
            what: "op section length",
            expected: u64::MAX - ops_offset,
            found: header.ops_len,
        })?;
        if available < total {
            return Err(Error::Truncated {
                offset: ops_offset,
                needed: header.ops_len,
                available: available - ops_offset,
                what: "op section",
            });
        }
        if available > total {
            return Err(Error::TrailingBytes {
                offset: total,
                count: available - total,
            });
        }
        // Header::parse read HEADER_LEN bytes and the lengths were checked
        // above, so these ranges are in bounds; `get` keeps that visible.
        let mut signed_header = [0u8; SIGNED_HEADER_LEN];
        for (o, b) in signed_header.iter_mut().zip(bytes) {
            *o = *b;
        }
        Ok(Package {
            header,
            signed_header,
            manifest: bytes.get(HEADER_LEN..ops_offset as usize).unwrap_or(&[]),
            ops: bytes.get(ops_offset as usize..).unwrap_or(&[]),
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Checks the signature with the trusted keys (in format version 3 over
    /// the op section too), then parses the manifest.
    ///
    /// # Errors
    /// `UnknownKey`, `BadSignature`, then manifest errors.
    pub fn verify(&self, trusted: &[VerifyingKey]) -> Result<VerifiedPackage<'a>> {
        let ops_sha256: Option<[u8; 32]> = match self.header.op_auth {
            OpAuth::Chain => None,
            OpAuth::Signature => Some(Sha256::digest(self.ops).into()),
        };
        crate::sign::verify(
            trusted,
            self.header.key_id,
            &self.header.signature,
            &self.signed_header,
            self.manifest,
            ops_sha256.as_ref(),
        )?;
        let manifest = Manifest::parse_with(self.manifest, self.header.op_auth)?;
        Ok(VerifiedPackage {
            manifest,
            ops: self.ops,
            ops_offset: self.header.ops_offset(),
        })
    }

    /// Parses the manifest without checking the signature: for inspection
    /// tools only. Never act on a manifest obtained this way.
    ///
    /// # Errors
    /// Manifest errors.
    pub fn manifest_unverified(&self) -> Result<Manifest> {
        Manifest::parse_with(self.manifest, self.header.op_auth)
    }

    /// Walks the ops of a package whose signature has not been checked, for
    /// inspection tools. The hash chain, when the package has one, is still
    /// checked from the manifest.
    ///
    /// # Errors
    /// Manifest errors.
    pub fn ops_unverified(&self) -> Result<OpIter<'a>> {
        let manifest = self.manifest_unverified()?;
        Ok(OpIter::new(manifest, self.ops, self.header.ops_offset()))
    }
}

/// A package whose signature verified with a trusted key.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedPackage<'a> {
    manifest: Manifest,
    ops: &'a [u8],
    ops_offset: u64,
}

impl<'a> VerifiedPackage<'a> {
    /// The signed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Checks the package is meant for this device: same device class (when
    /// the device has one) and a security counter not below the device's.
    ///
    /// # Errors
    /// `DeviceClassMismatch`, `SecurityCounterTooLow`.
    pub fn check_device(&self, device_class: &Label, security_counter: u64) -> Result<()> {
        self.manifest.check_device(device_class, security_counter)
    }

    /// Checks the whole source image against the manifest.
    ///
    /// # Errors
    /// `SourceSizeMismatch`, `SourceHashMismatch`.
    pub fn check_source(&self, source: &[u8]) -> Result<()> {
        if source.len() as u64 != self.manifest.source_size {
            return Err(Error::SourceSizeMismatch {
                expected: self.manifest.source_size,
                found: source.len() as u64,
            });
        }
        if Sha256::digest(source).as_slice() != self.manifest.source_sha256 {
            return Err(Error::SourceHashMismatch);
        }
        Ok(())
    }

    /// The ops, authenticated one by one through the hash chain (format
    /// version 2), or all at once by the signature (version 3).
    pub fn ops(&self) -> OpIter<'a> {
        OpIter::new(self.manifest, self.ops, self.ops_offset)
    }
}

/// One authenticated op.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// Position in the op section, from 0.
    pub index: u32,
    /// Package offset of the op head.
    pub offset: u64,
    /// Package offset of the payload (after the head).
    pub payload_offset: u64,
    /// The op header.
    pub header: OpHeader,
    /// The source extents.
    pub extents: Extents,
    /// The payload as on the wire (still coded).
    pub payload: &'a [u8],
}

impl Op<'_> {
    /// Bytes of the op's head on the wire.
    pub fn head_len(&self) -> u64 {
        self.payload_offset - self.offset
    }

    /// Bytes of the whole op on the wire: head and payload.
    pub fn wire_len(&self) -> u64 {
        self.head_len() + self.payload.len() as u64
    }
}

/// The rules every op must meet in sequence, as a small state machine that
/// both the in-memory [`OpIter`] and a streaming agent drive.
#[derive(Debug, Clone, Copy)]
pub struct OpChain {
    manifest: ChainLimits,
    next_index: u32,
    expected_hash: [u8; 32],
}

/// The manifest fields the op rules read: a streaming applier keeps the
/// chain for the whole update, so it does not carry labels and hashes.
#[derive(Debug, Clone, Copy)]
struct ChainLimits {
    /// Whether ops are checked against the chain's hashes (format version
    /// 2); in version 3 the signature covered them all.
    chained: bool,
    mode: Mode,
    profile: Profile,
    segment_size: u32,
    op_count: u32,
    scratch_slots: u32,
    xform_len: u32,
    streams_len: u32,
    source_size: u64,
    target_size: u64,
}

impl ChainLimits {
    fn of(m: &Manifest) -> Self {
        ChainLimits {
            chained: m.op_auth == OpAuth::Chain,
            mode: m.mode,
            profile: m.profile,
            segment_size: m.segment_size,
            op_count: m.op_count,
            scratch_slots: m.scratch_slots,
            xform_len: m.xform_len,
            streams_len: m.streams_len,
            source_size: m.source_size,
            target_size: m.target_size,
        }
    }

    /// As [`Manifest::segment_len`].
    fn segment_len(&self, index: u64) -> u64 {
        segment_len(self.target_size, self.segment_size, index)
    }

    /// As [`Manifest::source_segment_len`].
    fn source_segment_len(&self, index: u64) -> u64 {
        segment_len(self.source_size, self.segment_size, index)
    }
}

impl OpChain {
    /// Starts the chain at the manifest's head hash.
    pub fn new(manifest: &Manifest) -> Self {
        OpChain {
            manifest: ChainLimits::of(manifest),
            next_index: 0,
            expected_hash: manifest.first_op_sha256,
        }
    }

    /// Continues a chain at op `next_index`, whose hash must be
    /// `expected_hash`: for an applier resuming from its journal, which
    /// stored both when op `next_index - 1` committed.
    pub fn resume(manifest: &Manifest, next_index: u32, expected_hash: [u8; 32]) -> Self {
        OpChain {
            manifest: ChainLimits::of(manifest),
            next_index,
            expected_hash,
        }
    }

    /// The same chain moved to op `next_index`, whose hash must be
    /// `expected_hash`: [`OpChain::resume`] for a caller that no longer
    /// keeps the manifest.
    pub fn resumed(self, next_index: u32, expected_hash: [u8; 32]) -> Self {
        OpChain {
            next_index,
            expected_hash,
            ..self
        }
    }

    /// Whether ops carry hashes to check (format version 2).
    pub fn is_chained(&self) -> bool {
        self.manifest.chained
    }

    /// Index the next op must have.
    pub fn next_index(&self) -> u32 {
        self.next_index
    }

    /// The hash the next op must have (all zero without a chain).
    pub fn expected_hash(&self) -> &[u8; 32] {
        &self.expected_hash
    }

    /// True once `op_count` ops have passed.
    pub fn is_complete(&self) -> bool {
        self.next_index == self.manifest.op_count
    }

    /// Checks the next op: its hash (of header, extents and payload as on
    /// the wire) against the chain when the package has one, then its
    /// layout against the manifest. Without a chain (format version 3)
    /// `op_sha256` is not read: the caller checked the signature over the
    /// whole op section.
    ///
    /// In-place packages may write segments in any order; this check keeps
    /// no per-segment state, so an applier of in-place packages MUST also
    /// refuse a segment written twice, count the segments written against
    /// the segment count, and check that no op reads a segment an earlier op
    /// overwrote unless a STASH saved it ([`crate::inplace::InPlaceTracker`]
    /// does all three). The state changes only when the op passes.
    ///
    /// # Errors
    /// `OpHashMismatch`, `OpLayout`, `InvalidField`, `NonZeroReserved` (the
    /// last op's next hash is not zero).
    pub fn check(
        &mut self,
        header: &OpHeader,
        extents: &[Extent],
        op_sha256: &[u8; 32],
        offset: u64,
    ) -> Result<()> {
        let index = self.next_index;
        let layout = |what, expected: u64, found: u64| {
            Err(Error::OpLayout {
                op_index: index,
                offset,
                what,
                expected,
                found,
            })
        };
        if self.is_complete() {
            return layout(
                "op count in the manifest",
                self.manifest.op_count.into(),
                u64::from(index) + 1,
            );
        }
        if self.manifest.chained && *op_sha256 != self.expected_hash {
            return Err(Error::OpHashMismatch {
                op_index: index,
                offset,
            });
        }
        let m = &self.manifest;
        let seg = u64::from(m.segment_size);
        let streams = u32::from(m.streams_len != 0);
        let leading = streams + u32::from(m.xform_len != 0);
        let lead_kind = |i: u32| match i < streams {
            true => OpKind::Streams,
            false => OpKind::Xform,
        };
        if index < leading || matches!(header.kind, OpKind::Xform | OpKind::Streams) {
            if index >= leading || header.kind != lead_kind(index) {
                return layout(
                    "op kind (streams, then xform, first, when the manifest announces them)",
                    lead_kind(index.min(leading.saturating_sub(1))) as u64,
                    header.kind as u64,
                );
            }
            let want = match header.kind {
                OpKind::Streams => m.streams_len,
                _ => header.payload_len,
            };
            if header.payload_len != want {
                return layout(
                    "streams payload length (the manifest's streams length)",
                    want.into(),
                    header.payload_len.into(),
                );
            }
            return self.advance(header, offset);
        }
        if header.kind == OpKind::Stash {
            return self.check_stash(header, extents, offset);
        }
        if header.dst_offset % seg != 0 || header.dst_offset >= m.target_size {
            return layout(
                "destination offset (a segment start inside the target)",
                0,
                header.dst_offset,
            );
        }
        let seg_len = m.segment_len(header.dst_offset / seg);
        if u64::from(header.dst_len) != seg_len {
            return layout(
                "destination length (the whole segment)",
                seg_len,
                header.dst_len.into(),
            );
        }
        match m.mode {
            Mode::AB => {
                let want = u64::from(index - leading) * seg;
                if header.dst_offset != want {
                    return layout(
                        "destination offset (A/B ops in segment order)",
                        want,
                        header.dst_offset,
                    );
                }
                if header.kind == OpKind::Skip {
                    return layout(
                        "op kind (skip is for in-place packages only)",
                        OpKind::Copy as u64,
                        OpKind::Skip as u64,
                    );
                }
            }
            Mode::InPlace => {}
        }
        self.check_codec(header, offset)?;
        let mut prev_end = 0u64;
        for (i, e) in extents.iter().enumerate() {
            let end = e.end().unwrap_or(u64::MAX);
            if end > m.source_size {
                return layout(
                    "source extent end (inside the source image)",
                    m.source_size,
                    end,
                );
            }
            // T rewrites whole blocks, so a transformed op reads whole ones.
            let block = crate::xform::XFORM_BLOCK as u64;
            let whole = e.offset % block == 0 && (end % block == 0 || end == m.source_size);
            if m.xform_len != 0 && !whole {
                return layout(
                    "source extent (whole 256-byte blocks in a package with an xform)",
                    e.offset / block * block,
                    e.offset,
                );
            }
            if i > 0 && e.offset < prev_end {
                return layout(
                    "source extent offset (sorted, not overlapping)",
                    prev_end,
                    e.offset,
                );
            }
            prev_end = end;
        }
        if header.kind == OpKind::Copy {
            let total: u64 = extents.iter().map(|e| e.len).sum();
            if total != u64::from(header.dst_len) {
                return layout(
                    "copy extent total (the segment length)",
                    header.dst_len.into(),
                    total,
                );
            }
        }
        self.advance(header, offset)
    }

    /// Codecs the manifest's profile allows.
    fn check_codec(&self, header: &OpHeader, offset: u64) -> Result<()> {
        let codec_ok = match self.manifest.profile {
            Profile::Zstd => matches!(header.codec, Codec::Stored | Codec::Zstd | Codec::Lzma),
            Profile::Tiny => matches!(header.codec, Codec::Stored | Codec::Tiny),
        };
        if !codec_ok {
            return Err(Error::InvalidField {
                offset,
                what: "op codec (not allowed by the profile)",
                found: header.codec as u64,
            });
        }
        Ok(())
    }

    /// The rules of a STASH op: in-place only, a scratch slot the manifest
    /// declares, and exactly one whole source segment as its extent.
    fn check_stash(&mut self, header: &OpHeader, extents: &[Extent], offset: u64) -> Result<()> {
        let index = self.next_index;
        let m = &self.manifest;
        let seg = u64::from(m.segment_size);
        let layout = |what, expected: u64, found: u64| {
            Err(Error::OpLayout {
                op_index: index,
                offset,
                what,
                expected,
                found,
            })
        };
        if m.mode != Mode::InPlace {
            return layout(
                "op kind (stash is for in-place packages only)",
                OpKind::Copy as u64,
                OpKind::Stash as u64,
            );
        }
        let slot = header.dst_offset / seg;
        if header.dst_offset % seg != 0 || slot >= u64::from(m.scratch_slots) {
            return layout(
                "stash slot offset (a slot start inside the manifest's scratch slots)",
                u64::from(m.scratch_slots) * seg,
                header.dst_offset,
            );
        }
        let Some(e) = extents.first() else {
            return layout("stash extent count", 1, 0);
        };
        let want_len = m.source_segment_len(e.offset / seg);
        if e.offset % seg != 0 || e.offset >= m.source_size || e.len != want_len {
            return layout("stash extent (one whole source segment)", want_len, e.len);
        }
        if u64::from(header.dst_len) != e.len {
            return layout(
                "stash length (the stashed segment's length)",
                e.len,
                header.dst_len.into(),
            );
        }
        self.advance(header, offset)
    }

    /// Moves to the next op once every rule held.
    fn advance(&mut self, header: &OpHeader, offset: u64) -> Result<()> {
        let last = self.next_index + 1 == self.manifest.op_count;
        if last && header.next_op_sha256 != [0; 32] {
            // Not on the wire (SPEC §2.3): only a header built in memory
            // can have it.
            return Err(Error::NonZeroReserved { offset });
        }
        self.next_index += 1;
        self.expected_hash = header.next_op_sha256;
        Ok(())
    }
}

/// Iterates the ops of an in-memory op section, authenticating each.
pub struct OpIter<'a> {
    manifest: Manifest,
    chain: OpChain,
    ops: &'a [u8],
    pos: usize,
    base: u64,
    failed: bool,
}

impl<'a> OpIter<'a> {
    fn new(manifest: Manifest, ops: &'a [u8], base: u64) -> Self {
        OpIter {
            chain: OpChain::new(&manifest),
            manifest,
            ops,
            pos: 0,
            base,
            failed: false,
        }
    }

    fn next_op(&mut self) -> Result<Option<Op<'a>>> {
        let offset = self.base.saturating_add(self.pos as u64);
        let rest = self.ops.get(self.pos..).unwrap_or(&[]);
        if self.chain.is_complete() {
            if !rest.is_empty() {
                return Err(Error::TrailingBytes {
                    offset,
                    count: rest.len() as u64,
                });
            }
            return Ok(None);
        }
        // The head's structure gives the op's length; its bytes and the
        // payload are hashed and checked against the chain before the op
        // is used.
        let ctx = OpContext::new(&self.manifest, self.chain.next_index());
        let head = OpHead::parse(rest, offset, &ctx)?;
        let total = head.total_len();
        let Some(op_bytes) = usize::try_from(total).ok().and_then(|t| rest.get(..t)) else {
            return Err(Error::Truncated {
                offset,
                needed: total,
                available: rest.len() as u64,
                what: "op",
            });
        };
        // Without a chain the signature covered the op (the check reads no
        // hash), so the op is not hashed again.
        let hash: [u8; 32] = match self.chain.is_chained() {
            true => Sha256::digest(op_bytes).into(),
            false => [0; 32],
        };
        let index = self.chain.next_index();
        self.chain
            .check(&head.header, head.extents.as_slice(), &hash, offset)?;
        self.pos += op_bytes.len();
        Ok(Some(Op {
            index,
            offset,
            payload_offset: offset.saturating_add(head.len as u64),
            header: head.header,
            extents: head.extents,
            payload: op_bytes.get(head.len..).unwrap_or(&[]),
        }))
    }
}

impl<'a> Iterator for OpIter<'a> {
    type Item = Result<Op<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.next_op();
        if !matches!(r, Ok(Some(_))) {
            self.failed = true;
        }
        r.transpose()
    }
}
