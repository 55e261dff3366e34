//! The one error type of the crate: every way a package can be refused.
//!
//! Variants carry the byte offset (from the start of the package, or of the
//! decoded payload where stated) and what was expected, so a device log or a
//! CLI line can say exactly where a package went wrong. The variants are
//! grouped by what they protect against; a caller may branch on them (an
//! agent treats `BadSignature` and `SourceHashMismatch` differently).

use crate::label::Label;

/// Why a package, one of its ops or an apply step was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes end before a structure that must be there.
    #[error("truncated at offset {offset}: expected {needed} bytes of {what}, found {available}")]
    Truncated {
        /// Offset of the structure that is cut short.
        offset: u64,
        /// Bytes the structure needs.
        needed: u64,
        /// Bytes actually present from `offset`.
        available: u64,
        /// The structure being read.
        what: &'static str,
    },
    /// The first eight bytes are not the package magic: not a package, or
    /// mangled in transfer (the magic contains CR, LF and 0x1A to catch that).
    #[error("bad magic at offset 0: expected 89 46 4f 54 41 0d 0a 1a, found {}", Hex8(*found))]
    BadMagic {
        /// The eight bytes found.
        found: [u8; 8],
    },
    /// The package uses a format version this decoder does not implement.
    #[error(
        "unsupported format version {found} at offset 8: this decoder reads versions 2 to {supported}"
    )]
    UnsupportedVersion {
        /// Version in the header.
        found: u16,
        /// Newest version this decoder reads (it reads every one from 2).
        supported: u16,
    },
    /// A length or count field does not hold the value the layout requires.
    #[error("bad {what} at offset {offset}: expected {expected}, found {found}")]
    BadLength {
        /// Offset of the field.
        offset: u64,
        /// The field.
        what: &'static str,
        /// Required value (or bound, see the field's documentation).
        expected: u64,
        /// Value found.
        found: u64,
    },
    /// A reserved field is not zero: written by a newer or broken encoder.
    #[error("reserved field at offset {offset} is not zero")]
    NonZeroReserved {
        /// Offset of the reserved field.
        offset: u64,
    },
    /// A field holds a value outside its enumeration or range.
    #[error("invalid {what} at offset {offset}: found {found}")]
    InvalidField {
        /// Offset of the field.
        offset: u64,
        /// The field.
        what: &'static str,
        /// Value found.
        found: u64,
    },
    /// A text field (device class, version) is not NUL-padded UTF-8.
    #[error("invalid text in {what} at offset {offset}: expected NUL-padded UTF-8")]
    InvalidText {
        /// Offset of the field.
        offset: u64,
        /// The field.
        what: &'static str,
    },
    /// None of the trusted keys has the key id the package names.
    #[error("package is signed with key id {} which is not a trusted key", Hex8(*key_id))]
    UnknownKey {
        /// The key id in the package header.
        key_id: [u8; 8],
    },
    /// The signature does not verify over the header and manifest: the
    /// package was altered or signed with another key.
    #[error("signature check failed: header or manifest altered, or signed by another key")]
    BadSignature,
    /// An op's bytes do not hash to the value the previous link of the chain
    /// (the manifest for op 0) promised: the op section was altered.
    #[error("op {op_index} at offset {offset} fails the hash chain: op bytes altered, reordered or replaced")]
    OpHashMismatch {
        /// Index of the op.
        op_index: u32,
        /// Offset of the op header.
        offset: u64,
    },
    /// Bytes follow the last op.
    #[error("{count} unexpected bytes after the last op at offset {offset}")]
    TrailingBytes {
        /// Offset just after the last op.
        offset: u64,
        /// How many bytes follow.
        count: u64,
    },
    /// An op does not write the segment the layout requires.
    #[error("op {op_index} at offset {offset}: {what}: expected {expected}, found {found}")]
    OpLayout {
        /// Index of the op.
        op_index: u32,
        /// Offset of the op header.
        offset: u64,
        /// The rule broken.
        what: &'static str,
        /// Required value.
        expected: u64,
        /// Value found.
        found: u64,
    },
    /// The package is for another kind of device.
    #[error("package is for device class \"{}\", this device is \"{}\"", .package.as_str(), .device.as_str())]
    DeviceClassMismatch {
        /// Device class in the manifest.
        package: Label,
        /// The device's own class.
        device: Label,
    },
    /// The package would roll the device back below its security counter.
    #[error("package security counter {package} is below the device's {device} (anti-rollback)")]
    SecurityCounterTooLow {
        /// Counter in the manifest.
        package: u64,
        /// The device's current counter.
        device: u64,
    },
    /// The source image has another size than the package was made from.
    #[error("source image is {found} bytes, the package was made from {expected} bytes: wrong source image")]
    SourceSizeMismatch {
        /// Size in the manifest.
        expected: u64,
        /// Size of the image at hand.
        found: u64,
    },
    /// The source image does not hash to the manifest's source hash.
    #[error("source image sha256 differs from the package's: wrong or corrupted source image")]
    SourceHashMismatch,
    /// A compressed stream of the stream table (see [`crate::streams`])
    /// cannot be decoded from the source, or coded again from the expanded
    /// target, as the table says (`offset` is in the real image).
    #[error(
        "{side} stream at image offset {stream_offset}: at stream offset {offset}: expected {what}"
    )]
    StreamCoding {
        /// "source" or "target".
        side: &'static str,
        /// Offset of the stream in its real image.
        stream_offset: u64,
        /// Offset within the compressed stream (decoding) or the parse
        /// (coding) where it went wrong.
        offset: u64,
        /// What was expected there.
        what: &'static str,
    },
    /// The bytes an op reads from the source no longer hash to the op's `src_sha256`.
    #[error("op {op_index}: source extents differ from what the package was made from")]
    SourceExtentHashMismatch {
        /// Index of the op.
        op_index: u32,
    },
    /// A segment written by an op does not hash to the op's `dst_sha256`.
    #[error("op {op_index}: segment at target offset {dst_offset} does not match its sha256 after apply")]
    SegmentHashMismatch {
        /// Index of the op.
        op_index: u32,
        /// Target offset of the segment.
        dst_offset: u64,
    },
    /// The finished target does not hash to the manifest's target hash.
    #[error("target image sha256 differs from the package's after apply")]
    TargetHashMismatch,
    /// A PATCH payload is malformed (offset within the decoded payload).
    #[error("op {op_index}: malformed patch at payload offset {offset}: {what}")]
    PatchMalformed {
        /// Index of the op.
        op_index: u32,
        /// Offset within the op's decoded payload.
        offset: u64,
        /// What was expected.
        what: &'static str,
    },
    /// A PATCH reads source bytes outside the extents its op declares.
    #[error("op {op_index}: patch reads source [{src_offset}, +{len}) outside the op's declared extents")]
    PatchReadOutsideExtents {
        /// Index of the op.
        op_index: u32,
        /// Source offset read.
        src_offset: u64,
        /// Length read.
        len: u64,
    },
    /// An LZMA payload is malformed (offset within the op's coded payload).
    #[error("op {op_index}: malformed lzma payload at offset {offset}: {what}")]
    LzmaPayload {
        /// Index of the op.
        op_index: u32,
        /// Offset within the op's payload as sent.
        offset: u64,
        /// What was expected.
        what: &'static str,
    },
    /// The memory for an op's decoded payload could not be allocated (the
    /// package may be fine: the device has too little RAM for it).
    #[error("op {op_index}: {needed} bytes of RAM for its decoded payload could not be allocated")]
    OutOfMemory {
        /// Index of the op.
        op_index: u32,
        /// Bytes asked for.
        needed: u64,
    },
    /// A payload's codec failed or decoded to another length than declared.
    #[error("op {op_index}: payload does not decode: {what}")]
    PayloadCodec {
        /// Index of the op.
        op_index: u32,
        /// What went wrong.
        what: &'static str,
    },
}

/// Formats eight bytes as spaced hex without allocating.
pub(crate) struct Hex8(pub [u8; 8]);

impl core::fmt::Display for Hex8 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
