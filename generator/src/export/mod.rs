//! Wrapping a fota package for other update clients, so that a fleet that
//! already runs one can carry fota's small delta packages without a new
//! agent on the device.
//!
//! * [`swu`]: a `.swu` for swupdate. swupdate checks the image (CMS
//!   signature, sha256 of every member, hardware revision), writes the
//!   package to a file on the device, then runs a generated shell script
//!   that applies it with `fota flash` (power-cut safe, resumable).
//! * [`cpio`]: the "newc" cpio writer the `.swu` container needs.
//! * [`mender`]: a Mender artifact (format v3) for mender-client, whose
//!   payload is the package, and the update module that mender-client runs
//!   to install it: it applies the package with `fota flash`.
//! * [`tar`]: the ustar writer the artifact needs.
//! * [`flash`]: the `fota flash` command both updates run on the device,
//!   with the checks and `sh` quoting they share.
//!
//! Everything here is pure: bytes in, bytes out. Signing is the caller's
//! [`swu::Signer`] (the `fota` command runs `openssl cms`), so the library
//! spawns no process and reads no file.

pub mod cpio;
pub mod flash;
pub mod mender;
pub mod swu;
pub mod tar;

/// Why an export was refused. Nothing is written when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a fota package (or its manifest is unreadable):
    /// wrapping it would make an update every device refuses.
    #[error("not a fota package")]
    NotAPackage(#[source] fota_format::Error),
    /// The options name a device setup the package cannot be applied on
    /// (`fota flash` would refuse it on every device, after the download).
    #[error("{reason}")]
    Mismatch {
        /// What does not fit, and what to change.
        reason: String,
    },
    /// A text value cannot go into the update: a newline or NUL (which
    /// neither sw-description nor the script's command line can carry), an
    /// empty value where one is needed, or a path the device cannot use.
    #[error("{option} {value:?}: {reason}")]
    BadValue {
        /// The option the value came from (as the `fota` command spells it).
        option: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No hardware revision was given: swupdate refuses a sw-description
    /// without `hardware-compatibility`.
    #[error(
        "no hardware revision: swupdate needs at least one in sw-description's hardware-compatibility (--hardware-compatibility)"
    )]
    NoHardwareRevision,
    /// A cpio member name the archive cannot hold (empty, with a NUL, or
    /// the end marker's name).
    #[error("cpio member name {name:?}: {reason}")]
    CpioName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A cpio member or the archive is larger than the newc format's
    /// 32-bit fields can describe.
    #[error("cpio member {name:?}: {what} is {value}, the newc format holds at most {limit}")]
    CpioLimit {
        /// The member.
        name: String,
        /// The field that overflows.
        what: &'static str,
        /// The value that does not fit.
        value: u64,
        /// The most the field holds.
        limit: u64,
    },
    /// The caller's signer failed; its error says why (a missing tool, an
    /// unreadable key, ...).
    #[error("signing sw-description")]
    Sign(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The signer returned no bytes: swupdate would refuse the image.
    #[error("signing sw-description: the signer returned an empty signature")]
    EmptySignature,
    /// No device type was given: mender-client refuses an artifact whose
    /// `artifact_depends.device_type` is missing or empty.
    #[error(
        "no device type: mender-client needs at least one in the artifact's header (--device-type)"
    )]
    NoDeviceType,
    /// A tar member name the archive cannot hold (empty, with a NUL, or
    /// longer than a ustar name).
    #[error("tar member name {name:?}: {reason}")]
    TarName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tar member is larger than the ustar size field can describe.
    #[error("tar member {name:?}: {size} bytes, the ustar format holds at most {limit}")]
    TarLimit {
        /// The member.
        name: String,
        /// Its size.
        size: u64,
        /// The most the size field holds.
        limit: u64,
    },
    /// gzip compression of an archive member failed (it writes to memory,
    /// so this does not happen in practice).
    #[error("compressing {member}")]
    Compress {
        /// The member being compressed.
        member: &'static str,
        /// What the compressor reported.
        #[source]
        source: std::io::Error,
    },
}

/// One member of an exported archive, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name in the archive.
    pub name: &'static str,
    /// Its size in bytes.
    pub len: u64,
    /// Its sha256.
    pub sha256: [u8; 32],
}

/// Shorthand for this module's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::{tar, Error};

    /// Every variant builds and formats, so `Display` cannot rot.
    #[test]
    fn every_error_formats() {
        let all = [
            Error::NotAPackage(fota_format::Error::TrailingBytes {
                offset: 1,
                count: 2,
            }),
            Error::Mismatch {
                reason: "an A/B package".into(),
            },
            Error::BadValue {
                option: "--description",
                value: "a\nb".into(),
                reason: "contains a newline",
            },
            Error::NoHardwareRevision,
            Error::CpioName {
                name: String::new(),
                reason: "empty",
            },
            Error::CpioLimit {
                name: "x".into(),
                what: "size",
                value: 1 << 32,
                limit: u32::MAX.into(),
            },
            Error::Sign("openssl failed".into()),
            Error::EmptySignature,
            Error::NoDeviceType,
            Error::TarName {
                name: String::new(),
                reason: "empty",
            },
            Error::TarLimit {
                name: "x".into(),
                size: 1 << 33,
                limit: tar::MAX_SIZE,
            },
            Error::Compress {
                member: "header.tar.gz",
                source: std::io::Error::other("out of memory"),
            },
        ];
        for e in all {
            let text = e.to_string();
            assert!(!text.is_empty(), "{e:?}");
            assert!(
                text.chars().next().is_some_and(|c| !c.is_uppercase()),
                "lower-case: {text}"
            );
        }
    }
}
