//! The on-device applier: verifies a fota package, then applies it to
//! flash, A/B or in place, so that a power cut at any instant can be
//! resumed by running it again.
//!
//! ```text
//!                 Agent::step() ── Request ──> the driver (apply(), or yours)
//!                   ^  (sans-IO,      ReadPackage ─> PackageSource
//!                   |   ≤ 1 KiB)      Read/Write/EraseFlash ─> Flash (NorFlash,
//!                   └── result ───────              async NorFlash, file,
//!                                                   C callbacks, simulator)
//! ```
//!
//! * **Trust before touch**: signature, format version, device class,
//!   security counter, fit in the layout and the whole source image's
//!   sha256 are checked before the first erase or program; in place, every
//!   op is also authenticated and its reads checked first. A format-v3
//!   package (A/B) is read whole for its signature, which covers its ops;
//!   a v2 package authenticates each op by its hash chain as it is read.
//! * **Redoable ops**: each op erases and rewrites one segment (or scratch
//!   slot); its inputs stay intact until a later op; a journal record
//!   after each op is its commit point. Resume = scan the journal and
//!   continue; an op whose segment already hashes right is not redone.
//! * **Bounded**: no heap (for the tiny profile), no recursion; memory is
//!   lent by the caller ([`Buffers`]).
//!
//! The core is [`Agent`], a step machine that does no I/O: it says what
//! to read, program or erase next, and its whole state is at most
//! [`AGENT_STATE_MAX`] bytes (the bytes moved live in the caller's work
//! buffer). [`apply`] drives it over [`Flash`] and [`PackageSource`] as
//! one `async` loop; blocking drivers run that with [`block_on`].
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
pub mod error;
#[cfg(feature = "ffi")]
#[allow(unsafe_code)]
pub mod ffi;
#[cfg(feature = "std")]
pub mod file;
pub mod flash;
pub mod journal;
pub mod layout;
pub mod machine;
#[cfg(feature = "sim")]
pub mod sim;
pub mod source;

pub use apply::{apply, read_manifest, work_len, work_len_for, Buffers, Config, Report, CHUNK};
pub use block_on::block_on;
pub use boot::{BootControl, BootState, BootStatus};
pub use error::{Error, Region, Result};
pub use flash::{AsyncNorFlashAdapter, Block, Flash, FlashError, NorFlashAdapter};
pub use layout::{Layout, Range, Slots};
pub use machine::{Agent, BufSpan, Request, AGENT_STATE_MAX};
pub use source::{PackageSource, SlicePackage};
