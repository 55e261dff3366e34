//! The signed FOTA update package, shared by the generator, the on-device
//! agent and the server.
//!
//! A package is read front to back, once, by a device with little RAM, so it
//! is a compact little-endian layout of varints and hashes (see `SPEC.md`
//! beside this crate):
//!
//! ```text
//! header (96 B) │ manifest (≤ 285 B, signed) │ op 0 │ op 1 │ … │ op n-1
//!   magic, version, lengths, key id, Ed25519ph signature
//!                 device class, versions, security counter, mode,
//!                 segment size, source/target size + sha256, op count,
//!                 sha256 of op 0 ──────────> op 0 carries sha256 of op 1 …
//! ```
//!
//! Each op is a head of at most [`MAX_OP_HEAD_LEN`] bytes (its kind, the
//! varint fields its kind needs, its hashes and source extents) and its
//! payload. It writes one whole destination segment and carries the sha256
//! of that segment, of the source bytes it reads (in place only: an A/B
//! source is checked whole and never written) and of the next op, so the
//! whole package is authenticated by the one signature with 32 bytes of
//! state on the device. Fields that the manifest or the op's place gives
//! (the segment's offset and length, the last op's link) are not sent:
//! on small microcontroller updates the framing was most of the package.
//!
//! The crate is `no_std` and never allocates. Every parser returns an
//! [`Error`] naming the byte offset and what was expected; none panics on
//! any input (fuzzed: `fuzz/`).
//!
//! Non-features: general-purpose compression codecs (zstd) live with the
//! code that decodes them (host applier, agent); this crate only names
//! them. The `tiny` codec is the exception: its streaming decoder
//! ([`tiny::TinyDecoder`]) is part of the format, since every device of the
//! tiny profile runs exactly it.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

#[cfg(feature = "zstd")]
extern crate std;

#[cfg(feature = "lzma")]
extern crate alloc;

mod bytes;
pub mod error;
pub mod header;
pub mod inplace;
pub mod label;
#[cfg(feature = "lzma")]
pub mod lzma;
#[cfg(feature = "lzma")]
pub mod lzma_payload;
pub mod manifest;
pub mod op;
pub mod package;
pub mod patch;
pub mod sign;
pub mod streams;
pub mod tiny;
pub mod xform;
#[cfg(feature = "zstd")]
pub mod zstd_payload;

pub use bytes::Encoded;
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{Error, Result};
pub use header::{
    Header, OpAuth, FORMAT_VERSION, FORMAT_VERSION_SIGNED_OPS, HEADER_LEN, MAGIC, SIGNED_HEADER_LEN,
};
pub use inplace::{InPlaceTracker, SourcePiece};
pub use label::{Label, LabelError, LABEL_LEN};
pub use manifest::{Manifest, Mode, Profile, MAX_MANIFEST_LEN, MIN_MANIFEST_LEN};
pub use op::{
    Codec, Extent, Extents, OpContext, OpHead, OpHeader, OpKind, EXTENT_LEN, MAX_EXTENTS,
    MAX_OP_HEAD_LEN,
};
pub use package::{Op, OpChain, OpIter, Package, VerifiedPackage};
pub use patch::{PatchDecoder, PatchStep};
pub use tiny::{TinyCommand, TinyDecoder, TinyStep};
pub use xform::Xform;
