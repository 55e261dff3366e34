//! The on-device applier: verifies a fota package, then applies it to
//! flash, A/B or in place, so that a power cut at any instant can be
//! resumed by running it again.
//!
//! ```text
//! package ──> PackageSource ──> apply() ──> Flash (NorFlash, async NorFlash,
//!                                │            file, C callbacks, simulator)
//!                                └─ journal records = commit points
//! ```
//!
//! * **Trust before touch**: signature, format version, device class,
//!   security counter, fit in the layout and the whole source image's
//!   sha256 are checked before the first erase or program; in place, every
//!   op is also authenticated and its reads checked first.
//! * **Redoable ops**: each op erases and rewrites one segment (or scratch
//!   slot); its inputs stay intact until a later op; a journal record
//!   after each op is its commit point. Resume = scan the journal and
//!   continue; an op whose segment already hashes right is not redone.
//! * **Bounded**: no heap (for the tiny profile), no recursion; memory is
//!   lent by the caller ([`Buffers`]).
//!
//! The core is `async` over [`Flash`] and [`PackageSource`]; blocking
//! drivers run it with [`block_on`].
#![no_std]
// Only the C ABI (`ffi` feature) needs unsafe code, in its module alone.
#![cfg_attr(not(feature = "ffi"), forbid(unsafe_code))]
#![cfg_attr(feature = "ffi", deny(unsafe_code))]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod apply;
mod block_on;
pub mod boot;
mod decode;
pub mod error;
#[cfg(feature = "ffi")]
#[allow(unsafe_code)]
pub mod ffi;
#[cfg(feature = "std")]
pub mod file;
pub mod flash;
pub mod journal;
pub mod layout;
#[cfg(feature = "sim")]
pub mod sim;
pub mod source;

pub use apply::{apply, read_manifest, work_len, Buffers, Config, Report, CHUNK};
pub use block_on::block_on;
pub use boot::{BootControl, BootState, BootStatus};
pub use error::{Error, Region, Result};
pub use flash::{AsyncNorFlashAdapter, Block, Flash, FlashError, NorFlashAdapter};
pub use layout::{Layout, Range, Slots};
pub use source::{PackageSource, SlicePackage};
