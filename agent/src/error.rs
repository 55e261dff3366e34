//! Everything the agent can refuse or fail with, each naming where.

use crate::flash::FlashError;

/// Which part of the layout an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// The A/B source slot.
    Source,
    /// The slot being written (A/B target, or the in-place image).
    Target,
    /// The in-place scratch area.
    Scratch,
    /// The journal blocks.
    Journal,
}

impl core::fmt::Display for Region {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Region::Source => "source",
            Region::Target => "target",
            Region::Scratch => "scratch",
            Region::Journal => "journal",
        })
    }
}

/// Why the agent stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The package was refused: framing, signature, device, source image,
    /// hash chain or op rules (the format crate's typed error).
    Package(fota_format::Error),
    /// The package source could not deliver `len` bytes at `offset`.
    PackageRead {
        /// Package offset.
        offset: u64,
        /// Bytes asked for.
        len: u64,
    },
    /// A flash operation failed.
    Flash {
        /// The region it addressed.
        region: Region,
        /// Flash address.
        addr: u64,
        /// What the driver said.
        error: FlashError,
    },
    /// The layout or the caller's buffers do not fit this device or this
    /// package.
    Layout {
        /// The rule.
        what: &'static str,
        /// What was needed.
        expected: u64,
        /// What was found.
        found: u64,
    },
    /// An in-place update of another package is unfinished: only that
    /// package can finish it (its manifest id is in the journal).
    UnfinishedOtherUpdate {
        /// First bytes of the unfinished package's manifest id.
        journal_id: [u8; 8],
    },
    /// Data read back after programming does not match what was written:
    /// a failing flash or a package changed while being applied.
    Verify {
        /// The region.
        region: Region,
        /// Address of the segment.
        addr: u64,
        /// Op index.
        op_index: u32,
    },
}

impl From<fota_format::Error> for Error {
    fn from(e: fota_format::Error) -> Self {
        Error::Package(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Package(e) => write!(f, "package refused: {e}"),
            Error::PackageRead { offset, len } => {
                write!(f, "cannot read {len} package bytes at offset {offset}")
            }
            Error::Flash {
                region,
                addr,
                error,
            } => write!(f, "flash {error} in the {region} region at {addr:#x}"),
            Error::Layout {
                what,
                expected,
                found,
            } => write!(f, "layout: {what}: expected {expected}, found {found}"),
            Error::UnfinishedOtherUpdate { journal_id } => write!(
                f,
                "an in-place update of another package (id {}) is unfinished; only that package can finish it",
                Hex(journal_id)
            ),
            Error::Verify {
                region,
                addr,
                op_index,
            } => write!(
                f,
                "op {op_index}: the {region} segment at {addr:#x} does not read back as written"
            ),
        }
    }
}

/// Lower-case hex of a byte slice, for messages.
pub(crate) struct Hex<'a>(pub &'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Result with the agent's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
