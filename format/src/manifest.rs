//! The signed manifest: what the package updates, from what, to what.

use crate::bytes::Encoded;
use crate::bytes::Reader;
use crate::error::{Error, Result};
use crate::header::{OpAuth, HEADER_LEN};
use crate::label::{Label, LABEL_LEN};

/// Shortest manifest: empty labels, one-byte varints, no op (so no chain
/// head) and no release notes.
pub const MIN_MANIFEST_LEN: usize = 3 + 1 + 2 + 2 + 1 + 32 + 1 + 32 + 4 + 1;

/// Longest manifest: full labels, the longest varints, both optional
/// hashes. A device reads the header and this many bytes into one buffer.
pub const MAX_MANIFEST_LEN: usize =
    3 * (1 + LABEL_LEN) + 10 + 2 + 5 + 10 + 32 + 10 + 32 + 4 * 5 + 1 + 2 * 32;

/// Length of segment `index` of an image of `size` bytes cut into
/// `segment_size`-byte segments: the last one may be short, and any past
/// the end is empty.
pub fn segment_len(size: u64, segment_size: u32, index: u64) -> u64 {
    let start = index.saturating_mul(segment_size.into());
    size.saturating_sub(start).min(segment_size.into())
}

/// Manifest flag: a release-notes sha256 follows the chain head.
const FLAG_RELEASE_NOTES: u8 = 1;

/// Smallest segment: one small NOR erase block.
pub const MIN_SEGMENT_SIZE: u32 = 256;
/// Largest segment: bounds the RAM a host applier spends per op.
pub const MAX_SEGMENT_SIZE: u32 = 1 << 28;
/// Segments are whole multiples of this many bytes.
pub const SEGMENT_ALIGN: u32 = 256;

/// How the target is laid out relative to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mode {
    /// The target is written to another slot; the source slot stays readable
    /// and unchanged for the whole update.
    AB = 0,
    /// The target overwrites the source in place. Ops come in an order that
    /// never reads a segment after an earlier op overwrote it, unless a STASH
    /// op first copied that segment to a scratch slot (reads of it then come
    /// from the slot); segments no op changes are SKIP ops.
    InPlace = 1,
}

impl Mode {
    /// The mode for a manifest byte, if known.
    pub fn from_u8(v: u8) -> Option<Mode> {
        match v {
            0 => Some(Mode::AB),
            1 => Some(Mode::InPlace),
            _ => None,
        }
    }
}

/// The decoder family a device must have: picks which op codecs may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Profile {
    /// zstd payloads (and stored ones), for application processors.
    Zstd = 1,
    /// `tiny` payloads (and stored ones): an LZ-class stream whose dictionary
    /// is the flash itself, decodable in about a kilobyte of RAM, for
    /// microcontrollers.
    Tiny = 2,
}

impl Profile {
    /// The profile for a manifest byte, if known.
    pub fn from_u8(v: u8) -> Option<Profile> {
        match v {
            1 => Some(Profile::Zstd),
            2 => Some(Profile::Tiny),
            _ => None,
        }
    }
}

/// The manifest: every fact a device checks before it touches flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// Kind of device this package is for; a device refuses other classes.
    pub device_class: Label,
    /// Firmware version of the source image.
    pub from_version: Label,
    /// Firmware version of the target image.
    pub to_version: Label,
    /// Anti-rollback counter; a device refuses a package below its own.
    pub security_counter: u64,
    /// A/B or in-place.
    pub mode: Mode,
    /// Decoder family the ops use.
    pub profile: Profile,
    /// Size of every destination segment but the last (a multiple of the
    /// device's erase block).
    pub segment_size: u32,
    /// Size of the source image.
    pub source_size: u64,
    /// sha256 of the whole source image.
    pub source_sha256: [u8; 32],
    /// Size of the target image.
    pub target_size: u64,
    /// sha256 of the whole target image.
    pub target_sha256: [u8; 32],
    /// Number of ops in the op section.
    pub op_count: u32,
    /// How the ops are authenticated: the header's format version, not a
    /// manifest field on the wire (it says whether the chain head is).
    pub op_auth: OpAuth,
    /// sha256 of op 0 (header, extents, payload): the head of the hash
    /// chain. Not on the wire with [`OpAuth::Signature`] (all zero there).
    pub first_op_sha256: [u8; 32],
    /// sha256 of the release notes shown to the user, all zero when none.
    pub release_notes_sha256: [u8; 32],
    /// In-place: scratch slots (each one segment long) the device must
    /// provide for STASH ops. Zero for A/B.
    pub scratch_slots: u32,
    /// Bytes of the reference transform (see [`crate::xform`]), expanded,
    /// that the device must hold in RAM while it applies the package; zero
    /// when the package has none. When non-zero, op 0 is the XFORM op
    /// carrying it (in its smaller wire form).
    pub xform_len: u32,
    /// Bytes of the stream table (see [`crate::streams`]); zero when the
    /// package has none. When non-zero, op 0 is the STREAMS op carrying it,
    /// and the source and target above are the expanded images.
    pub streams_len: u32,
}

impl Manifest {
    /// Checks the package is meant for this device: same device class (when
    /// the device has one) and a security counter not below the device's.
    ///
    /// # Errors
    /// `DeviceClassMismatch`, `SecurityCounterTooLow`.
    pub fn check_device(&self, device_class: &Label, security_counter: u64) -> Result<()> {
        if !device_class.is_empty() && *device_class != self.device_class {
            return Err(Error::DeviceClassMismatch {
                package: self.device_class,
                device: *device_class,
            });
        }
        if self.security_counter < security_counter {
            return Err(Error::SecurityCounterTooLow {
                package: self.security_counter,
                device: security_counter,
            });
        }
        Ok(())
    }

    /// Ops that write nothing: the STREAMS op, then the XFORM op, when
    /// the package has them.
    pub fn leading_ops(&self) -> u32 {
        u32::from(self.streams_len != 0) + u32::from(self.xform_len != 0)
    }

    /// Number of destination segments the target is cut into.
    pub fn segment_count(&self) -> u64 {
        self.target_size
            .div_ceil(u64::from(self.segment_size.max(1)))
    }

    /// Length of segment `index` (the last one may be short).
    pub fn segment_len(&self, index: u64) -> u64 {
        segment_len(self.target_size, self.segment_size, index)
    }

    /// Length of the source image's segment `index` (the grid in-place
    /// STASH ops use; the last one may be short).
    pub fn source_segment_len(&self, index: u64) -> u64 {
        segment_len(self.source_size, self.segment_size, index)
    }

    /// Parses and checks the manifest of a hash-chained package (format
    /// version 2): [`Manifest::parse_with`] and [`OpAuth::Chain`].
    ///
    /// # Errors
    /// As [`Manifest::parse_with`].
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        Manifest::parse_with(bytes, OpAuth::Chain)
    }

    /// Parses and checks a manifest: `bytes` are exactly the header's
    /// `manifest_len` bytes, `op_auth` what the header's version says;
    /// offsets in errors are package offsets.
    ///
    /// Call this only on a manifest whose signature has been verified when
    /// acting on it; parsing itself is safe on any bytes.
    ///
    /// # Errors
    /// `Truncated`, `InvalidText`, `InvalidField` (an in-place manifest in
    /// a package whose signature covers its ops, among others),
    /// `NonZeroReserved`, `BadLength`, `TrailingBytes`.
    pub fn parse_with(bytes: &[u8], op_auth: OpAuth) -> Result<Manifest> {
        let base = HEADER_LEN as u64;
        let mut r = Reader::new(bytes, base);
        let label = |r: &mut Reader<'_>, what: &'static str| -> Result<Label> {
            let offset = r.offset();
            let len = r.u8(what)?;
            if usize::from(len) > LABEL_LEN {
                return Err(Error::BadLength {
                    offset,
                    what,
                    expected: LABEL_LEN as u64,
                    found: len.into(),
                });
            }
            let text = r.take(len.into(), what)?;
            core::str::from_utf8(text)
                .ok()
                .and_then(|t| Label::new(t).ok())
                .ok_or(Error::InvalidText { offset, what })
        };
        let device_class = label(&mut r, "device class")?;
        let from_version = label(&mut r, "from version")?;
        let to_version = label(&mut r, "to version")?;
        let security_counter = r.varint("security counter", u64::MAX)?;
        let offset = r.offset();
        let mode_byte = r.u8("mode")?;
        let mode = Mode::from_u8(mode_byte).ok_or(Error::InvalidField {
            offset,
            what: "mode (0 = A/B, 1 = in-place)",
            found: mode_byte.into(),
        })?;
        // Between the check of a version-3 op section and its apply, the
        // package is read twice: only an A/B target, checked whole before
        // it is used, may come from bytes read after the check.
        if op_auth == OpAuth::Signature && mode != Mode::AB {
            return Err(Error::InvalidField {
                offset,
                what: "mode (0 = A/B: a package whose signature covers its ops, format version 3, is A/B only)",
                found: mode_byte.into(),
            });
        }
        let offset = r.offset();
        let profile_byte = r.u8("codec profile")?;
        let profile = Profile::from_u8(profile_byte).ok_or(Error::InvalidField {
            offset,
            what: "codec profile (1 = zstd, 2 = tiny)",
            found: profile_byte.into(),
        })?;
        let offset = r.offset();
        let segment_size = r.varint_u32("segment size")?;
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&segment_size)
            || segment_size % SEGMENT_ALIGN != 0
        {
            return Err(Error::InvalidField {
                offset,
                what: "segment size (a multiple of 256 from 256 B to 256 MiB)",
                found: segment_size.into(),
            });
        }
        let source_size = r.varint("source size", u64::MAX)?;
        let source_sha256 = r.array("source sha256")?;
        let target_size = r.varint("target size", u64::MAX)?;
        let target_sha256 = r.array("target sha256")?;
        let op_count_offset = r.offset();
        let op_count = r.varint_u32("op count")?;
        let streams_offset = r.offset();
        let streams_len = r.varint_u32("stream table length")?;
        if streams_len > crate::streams::MAX_STREAMS_LEN {
            return Err(Error::BadLength {
                offset: streams_offset,
                what: "stream table length (at most the largest table)",
                expected: crate::streams::MAX_STREAMS_LEN.into(),
                found: streams_len.into(),
            });
        }
        let xform_offset = r.offset();
        let xform_len = r.varint_u32("xform length")?;
        if xform_len > crate::xform::MAX_XFORM_LEN {
            return Err(Error::BadLength {
                offset: xform_offset,
                what: "xform length (at most the largest transform payload)",
                expected: crate::xform::MAX_XFORM_LEN.into(),
                found: xform_len.into(),
            });
        }
        let scratch_offset = r.offset();
        let scratch_slots = r.varint_u32("scratch slots")?;
        let flags_offset = r.offset();
        let flags = r.u8("manifest flags")?;
        if flags & !FLAG_RELEASE_NOTES != 0 {
            return Err(Error::NonZeroReserved {
                offset: flags_offset,
            });
        }
        // An empty target has no ops, so no chain head either; nor has a
        // package whose signature covers its ops.
        let first_op_sha256 = match (op_auth, op_count) {
            (OpAuth::Chain, 1..) => r.array("first op sha256")?,
            _ => [0; 32],
        };
        let notes_at = r.offset();
        let release_notes_sha256 = match flags & FLAG_RELEASE_NOTES {
            0 => [0; 32],
            _ => r.array("release notes sha256")?,
        };
        // All zero means "none", which has one encoding: the flag clear.
        if flags & FLAG_RELEASE_NOTES != 0 && release_notes_sha256 == [0; 32] {
            return Err(Error::InvalidField {
                offset: notes_at,
                what: "release notes sha256 (not all zero when the flag announces it)",
                found: 0,
            });
        }
        if r.consumed() < bytes.len() {
            return Err(Error::TrailingBytes {
                offset: r.offset(),
                count: (bytes.len() - r.consumed()) as u64,
            });
        }
        let m = Manifest {
            device_class,
            from_version,
            to_version,
            security_counter,
            mode,
            profile,
            segment_size,
            source_size,
            source_sha256,
            target_size,
            target_sha256,
            op_count,
            op_auth,
            first_op_sha256,
            release_notes_sha256,
            scratch_slots,
            xform_len,
            streams_len,
        };
        // Every segment is written by exactly one op; in-place packages add
        // one STASH op per stashed segment, and A/B ones have no scratch;
        // a transform adds its XFORM op in front.
        let segments = m.segment_count() + u64::from(m.leading_ops());
        let op_count_ok = match mode {
            Mode::AB => u64::from(op_count) == segments,
            Mode::InPlace => u64::from(op_count) >= segments,
        };
        if !op_count_ok {
            return Err(Error::BadLength {
                offset: op_count_offset,
                what:
                    "op count (one op per target segment, plus the streams and xform ops and stashes in place)",
                expected: segments,
                found: op_count.into(),
            });
        }
        if mode == Mode::AB && scratch_slots != 0 {
            return Err(Error::InvalidField {
                offset: scratch_offset,
                what: "scratch slots (none for A/B)",
                found: scratch_slots.into(),
            });
        }
        Ok(m)
    }

    /// Encodes the manifest. A chain head with no op, or a label, cannot be
    /// out of range, so every manifest has an encoding; a non-zero
    /// `first_op_sha256` with `op_count` 0 or [`OpAuth::Signature`] is not
    /// written (it has no field).
    pub fn to_bytes(&self) -> Encoded<MAX_MANIFEST_LEN> {
        Encoded::build(|w| {
            for label in [&self.device_class, &self.from_version, &self.to_version] {
                let text = label.as_str().as_bytes();
                w.u8(text.len() as u8);
                w.bytes(text);
            }
            w.varint(self.security_counter);
            w.u8(self.mode as u8);
            w.u8(self.profile as u8);
            w.varint(self.segment_size.into());
            w.varint(self.source_size);
            w.bytes(&self.source_sha256);
            w.varint(self.target_size);
            w.bytes(&self.target_sha256);
            w.varint(self.op_count.into());
            w.varint(self.streams_len.into());
            w.varint(self.xform_len.into());
            w.varint(self.scratch_slots.into());
            let notes = self.release_notes_sha256 != [0; 32];
            w.u8(if notes { FLAG_RELEASE_NOTES } else { 0 });
            if self.op_count != 0 && self.op_auth == OpAuth::Chain {
                w.bytes(&self.first_op_sha256);
            }
            if notes {
                w.bytes(&self.release_notes_sha256);
            }
        })
    }
}
