//! The generator's error type.

use std::path::PathBuf;

/// Why a diff, a key operation or a host apply failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key file is not what it should be.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The package, or applying it, was refused (see [`fota_format::Error`]).
    #[error(transparent)]
    Package(#[from] fota_format::Error),
    /// An input is outside what the engine handles.
    #[error("{what}: {value} (limit {limit})")]
    Limit {
        /// What is too large or out of range.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// An option has a value the package format cannot carry.
    #[error("invalid option {option}: {reason}")]
    Option {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// The compressor failed (an internal error of libzstd).
    #[error("zstd: {0}")]
    Compress(std::io::Error),
    /// The generator's own check of the package it made failed: a bug.
    #[error(
        "internal error: the package does not reproduce the new image ({0}); please report this"
    )]
    SelfCheck(fota_format::Error),
    /// The in-place op order broke a rule of the format's simulator
    /// (`fota_format::InPlaceTracker`): a bug, reported rather than shipped.
    #[error("internal error: the in-place op order is refused ({0}); please report this")]
    InPlaceOrder(fota_format::Error),
}

impl Error {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
