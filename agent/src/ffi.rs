//! The C ABI (`ffi` feature): an opaque agent C can allocate statically,
//! vtables of flash and package callbacks, and `int32_t` status codes.
//!
//! ```c
//! static FotaAgent agent;                 /* FOTA_AGENT_SIZE bytes */
//! fota_agent_init(&agent, &config);       /* validates, copies the keys */
//! int32_t rc = fota_agent_apply(&agent, &flash, &package, work, sizeof work,
//!                               written, overwritten, sizeof written,
//!                               slots, 8, &report);
//! /* after a power cut, the same call resumes */
//! ```
//!
//! The header is `agent/include/fota_agent.h`, generated from this file by
//! cbindgen (`agent/cbindgen.toml`) and checked by the `ffi_header` test;
//! regenerate it with
//! `FOTA_BLESS=1 cargo test -p fota-agent --features ffi --test ffi_header`.
//! `agent/examples/c/harness.c` is a complete example and test. With the
//! `sim` feature, [`sim`] adds the flash simulator (`fota_sim.h`).
//!
//! Every pointer is checked for NULL, every buffer for overlap with the
//! others and every length against what it is used for; nothing here
//! panics on input. The C side owns all memory and stays the owner.

#[cfg(feature = "sim")]
pub mod sim;

use core::ffi::c_void;
use core::mem::{align_of, size_of};

use ed25519_dalek::VerifyingKey;
use fota_format::{Label, LABEL_LEN};

use crate::error::{Error, Region};
use crate::flash::{Block, Flash, FlashError};
use crate::layout::{Layout, Range, Slots};
use crate::source::PackageSource;
use crate::{apply, block_on, work_len, Buffers, Config, Report};

/// Bytes of a `FotaAgent`: the size of the agent's real state, checked
/// at compile time on both sides.
pub const FOTA_AGENT_SIZE: usize = 248;
/// Most trusted public keys an agent holds.
pub const FOTA_MAX_KEYS: usize = 4;
/// Bytes of a raw Ed25519 public key.
pub const FOTA_KEY_LEN: usize = 32;
/// Bytes of the device-class field (UTF-8, NUL-padded).
pub const FOTA_LABEL_LEN: usize = 32;

/// `FotaConfig.mode`: A/B (source slot read, target slot written).
pub const FOTA_MODE_AB: u32 = 0;
/// `FotaConfig.mode`: in place (the image rewritten, with a scratch area).
pub const FOTA_MODE_IN_PLACE: u32 = 1;

/// Success.
pub const FOTA_OK: i32 = 0;
/// A NULL, misaligned or overlapping pointer, a length that does not fit
/// its buffer, or an agent `fota_agent_init` did not accept.
pub const FOTA_ERR_ARGUMENT: i32 = -1;
/// `fota_agent_init`: the configuration is invalid (mode, key count, a key
/// that is not an Ed25519 point, device class, ranges).
pub const FOTA_ERR_CONFIG: i32 = -2;
/// The package was refused (framing, signature, device, source image, hash
/// chain, op rules); `FotaReport.detail` is one of `FOTA_PKG_*`.
pub const FOTA_ERR_PACKAGE: i32 = -3;
/// The package read callback failed (offset in `FotaReport.addr`).
pub const FOTA_ERR_PACKAGE_READ: i32 = -4;
/// A flash callback failed; `FotaReport.detail` is one of `FOTA_FLASH_*`.
pub const FOTA_ERR_FLASH: i32 = -5;
/// Power was lost: what a flash callback returns when it cannot finish,
/// and what apply then returns. Call apply again once power is back.
pub const FOTA_ERR_POWER_LOST: i32 = -6;
/// The layout or the buffers do not fit the flash or the package
/// (`FotaReport.expected` and `found` say by how much).
pub const FOTA_ERR_LAYOUT: i32 = -7;
/// An in-place update of another package is unfinished: only that package
/// can finish it.
pub const FOTA_ERR_UNFINISHED_OTHER: i32 = -8;
/// Data read back after programming differs from what was written.
pub const FOTA_ERR_VERIFY: i32 = -9;

/// `FotaReport.region`: none.
pub const FOTA_REGION_NONE: u32 = 0;
/// `FotaReport.region`: the A/B source slot.
pub const FOTA_REGION_SOURCE: u32 = 1;
/// `FotaReport.region`: the slot being written (or the in-place image).
pub const FOTA_REGION_TARGET: u32 = 2;
/// `FotaReport.region`: the in-place scratch area.
pub const FOTA_REGION_SCRATCH: u32 = 3;
/// `FotaReport.region`: the journal.
pub const FOTA_REGION_JOURNAL: u32 = 4;

/// `FotaReport.detail` for `FOTA_ERR_FLASH`: out of the device.
pub const FOTA_FLASH_OUT_OF_BOUNDS: i32 = 1;
/// `FotaReport.detail` for `FOTA_ERR_FLASH`: misaligned access.
pub const FOTA_FLASH_NOT_ALIGNED: i32 = 2;
/// `FotaReport.detail` for `FOTA_ERR_FLASH`: a read failed.
pub const FOTA_FLASH_READ_FAILED: i32 = 3;
/// `FotaReport.detail` for `FOTA_ERR_FLASH`: a program or erase failed.
pub const FOTA_FLASH_WRITE_FAILED: i32 = 4;

/// `FotaReport.detail` for `FOTA_ERR_PACKAGE`: a kind this header does
/// not name yet.
pub const FOTA_PKG_OTHER: i32 = 0;
/// Package refused: truncated.
pub const FOTA_PKG_TRUNCATED: i32 = 1;
/// Package refused: not a fota package (magic).
pub const FOTA_PKG_BAD_MAGIC: i32 = 2;
/// Package refused: format version not supported.
pub const FOTA_PKG_UNSUPPORTED_VERSION: i32 = 3;
/// Package refused: a length field is wrong.
pub const FOTA_PKG_BAD_LENGTH: i32 = 4;
/// Package refused: reserved bytes are not zero.
pub const FOTA_PKG_NON_ZERO_RESERVED: i32 = 5;
/// Package refused: a field has an invalid value.
pub const FOTA_PKG_INVALID_FIELD: i32 = 6;
/// Package refused: a text field is invalid.
pub const FOTA_PKG_INVALID_TEXT: i32 = 7;
/// Package refused: signed with a key the agent does not trust.
pub const FOTA_PKG_UNKNOWN_KEY: i32 = 8;
/// Package refused: the signature does not verify.
pub const FOTA_PKG_BAD_SIGNATURE: i32 = 9;
/// Package refused: an op does not hash as the chain says.
pub const FOTA_PKG_OP_HASH_MISMATCH: i32 = 10;
/// Package refused: bytes after the end.
pub const FOTA_PKG_TRAILING_BYTES: i32 = 11;
/// Package refused: an op breaks the layout rules.
pub const FOTA_PKG_OP_LAYOUT: i32 = 12;
/// Package refused: built for another device class.
pub const FOTA_PKG_DEVICE_CLASS_MISMATCH: i32 = 13;
/// Package refused: security counter lower than the device's (rollback).
pub const FOTA_PKG_SECURITY_COUNTER_TOO_LOW: i32 = 14;
/// Package refused: source size differs.
pub const FOTA_PKG_SOURCE_SIZE_MISMATCH: i32 = 15;
/// Package refused: the image on the device is not the package's source.
pub const FOTA_PKG_SOURCE_HASH_MISMATCH: i32 = 16;
/// Package refused: an op's source bytes do not hash right.
pub const FOTA_PKG_SOURCE_EXTENT_HASH_MISMATCH: i32 = 17;
/// Package refused: a written segment does not hash right.
pub const FOTA_PKG_SEGMENT_HASH_MISMATCH: i32 = 18;
/// Package refused: the finished target does not hash right.
pub const FOTA_PKG_TARGET_HASH_MISMATCH: i32 = 19;
/// Package refused: a patch is malformed.
pub const FOTA_PKG_PATCH_MALFORMED: i32 = 20;
/// Package refused: a patch reads outside its op's extents.
pub const FOTA_PKG_PATCH_READ_OUTSIDE_EXTENTS: i32 = 21;
/// Package refused: the payload codec failed.
pub const FOTA_PKG_PAYLOAD_CODEC: i32 = 22;

/// The agent, opaque to C: declare one (statically if you like), then call
/// `fota_agent_init` on it. It holds only the configuration; an update's
/// progress lives in the flash journal.
#[repr(C, align(8))]
pub struct FotaAgent {
    _opaque: [u8; FOTA_AGENT_SIZE],
}

/// A byte range of the flash.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FotaRange {
    /// First address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

/// What the device is and trusts: copied by `fota_agent_init`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FotaConfig {
    /// `FOTA_MODE_AB` or `FOTA_MODE_IN_PLACE`.
    pub mode: u32,
    /// Keys used in `keys`, 1 to `FOTA_MAX_KEYS`.
    pub key_count: u32,
    /// A/B: the running image's slot (only read). In place: the image.
    pub source: FotaRange,
    /// A/B: the slot the update is written to. In place: must be zero.
    pub target: FotaRange,
    /// In place: the scratch area. A/B: must be zero.
    pub scratch: FotaRange,
    /// The journal: at least two erase blocks of its own.
    pub journal: FotaRange,
    /// The device's anti-rollback counter.
    pub security_counter: u64,
    /// The device class, UTF-8 NUL-padded; all zero accepts any package.
    pub device_class: [u8; FOTA_LABEL_LEN],
    /// Raw Ed25519 public keys packages may be signed with.
    pub keys: [[u8; FOTA_KEY_LEN]; FOTA_MAX_KEYS],
}

/// Reads `len` bytes at `addr` into `buf`; returns `FOTA_OK` or an error.
pub type FotaFlashRead =
    Option<unsafe extern "C" fn(ctx: *mut c_void, addr: u64, buf: *mut u8, len: usize) -> i32>;
/// Programs `len` bytes at `addr` (erased words only); returns `FOTA_OK`,
/// `FOTA_ERR_POWER_LOST` or another error.
pub type FotaFlashWrite =
    Option<unsafe extern "C" fn(ctx: *mut c_void, addr: u64, data: *const u8, len: usize) -> i32>;
/// Erases the blocks covering `[from, to)` (both block bounds); returns
/// `FOTA_OK`, `FOTA_ERR_POWER_LOST` or another error.
pub type FotaFlashErase = Option<unsafe extern "C" fn(ctx: *mut c_void, from: u64, to: u64) -> i32>;
/// Stores the erase block holding `addr` in `*start` and `*len`; returns
/// `FOTA_OK`, or any other value when `addr` is past the end.
pub type FotaFlashBlockAt = Option<
    unsafe extern "C" fn(ctx: *mut c_void, addr: u64, start: *mut u64, len: *mut u64) -> i32,
>;
/// Reads `len` package bytes at `offset` into `buf`; returns `FOTA_OK` or
/// an error.
pub type FotaPackageRead =
    Option<unsafe extern "C" fn(ctx: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> i32>;

/// The flash, as callbacks. Reads and writes are aligned to `read_size`
/// and `write_size`; every word is written at most once between erases.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FotaFlash {
    /// Passed to every callback.
    pub ctx: *mut c_void,
    /// Reads.
    pub read: FotaFlashRead,
    /// Programs.
    pub write: FotaFlashWrite,
    /// Erases.
    pub erase: FotaFlashErase,
    /// Describes the erase block at an address (blocks may differ in size).
    pub block_at: FotaFlashBlockAt,
    /// Bytes addressable.
    pub capacity: u64,
    /// Read unit in bytes (1 to 512).
    pub read_size: u32,
    /// Program unit in bytes (1 to 512).
    pub write_size: u32,
    /// The value of an erased byte (0xFF on most NOR, 0x00 on some).
    pub erased_value: u8,
}

/// The package, as a callback: random-access reads.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FotaPackage {
    /// Passed to the callback.
    pub ctx: *mut c_void,
    /// Total bytes.
    pub len: u64,
    /// Reads.
    pub read: FotaPackageRead,
}

/// How a run of `fota_agent_apply` ended: counters on success, where and
/// why on failure (fields that do not apply are zero).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FotaReport {
    /// The op the run started at (0 for a fresh update).
    pub started_at_op: u32,
    /// Ops executed in this run.
    pub ops_executed: u32,
    /// Ops found already done on resume.
    pub ops_found_done: u32,
    /// 1 when the run resumed an interrupted update.
    pub resumed: u8,
    /// 1 when the journal already said this package was finished.
    pub already_finished: u8,
    /// `FOTA_ERR_PACKAGE`: a `FOTA_PKG_*`; `FOTA_ERR_FLASH`: a `FOTA_FLASH_*`.
    pub detail: i32,
    /// A `FOTA_REGION_*` (flash and verify errors).
    pub region: u32,
    /// The op (verify errors).
    pub op_index: u32,
    /// Flash address (flash and verify errors) or package offset (read errors).
    pub addr: u64,
    /// `FOTA_ERR_LAYOUT`: what was needed.
    pub expected: u64,
    /// `FOTA_ERR_LAYOUT`: what was found.
    pub found: u64,
}

/// Marks an agent `fota_agent_init` accepted.
const MAGIC: u64 = u64::from_le_bytes(*b"fotaAgt1");

/// What stands behind [`FotaAgent`]: the accepted configuration (the
/// update's own state, [`crate::Agent`], lives in `fota_agent_apply`'s
/// frame). Integers only, so any bytes are a valid (if unaccepted) value.
#[repr(C)]
#[derive(Clone, Copy)]
struct Configured {
    magic: u64,
    config: FotaConfig,
}

const _: () = assert!(size_of::<Configured>() == FOTA_AGENT_SIZE);
const _: () = assert!(size_of::<FotaAgent>() == FOTA_AGENT_SIZE);
const _: () = assert!(align_of::<Configured>() <= align_of::<FotaAgent>());
const _: () = assert!(FOTA_LABEL_LEN == LABEL_LEN);

const ZERO_RANGE: FotaRange = FotaRange { start: 0, len: 0 };

/// Validates a configuration: `None` when `fota_agent_init` must refuse it.
fn check_config(c: &FotaConfig) -> Option<()> {
    let n = usize::try_from(c.key_count).ok()?;
    if n == 0 || n > FOTA_MAX_KEYS {
        return None;
    }
    for key in c.keys.get(..n)? {
        VerifyingKey::from_bytes(key).ok()?;
    }
    Label::from_bytes(c.device_class)?;
    for r in [c.source, c.target, c.scratch, c.journal] {
        r.start.checked_add(r.len)?;
    }
    match c.mode {
        FOTA_MODE_AB if c.scratch == ZERO_RANGE => Some(()),
        FOTA_MODE_IN_PLACE if c.target == ZERO_RANGE => Some(()),
        _ => None,
    }
}

fn layout_of(c: &FotaConfig) -> Layout {
    let r = |r: FotaRange| Range::new(r.start, r.len);
    let slots = if c.mode == FOTA_MODE_IN_PLACE {
        Slots::InPlace {
            image: r(c.source),
            scratch: r(c.scratch),
        }
    } else {
        Slots::AB {
            source: r(c.source),
            target: r(c.target),
        }
    };
    Layout {
        slots,
        journal: r(c.journal),
    }
}

/// Initialises `agent` from `config`: validates it (mode, 1 to
/// `FOTA_MAX_KEYS` keys that are Ed25519 points, device class, ranges that
/// do not wrap, the fields the mode does not use zero) and copies it, keys
/// included; `config` may be freed afterwards. The layout is checked
/// against the flash by `fota_agent_apply`.
///
/// Returns `FOTA_OK`, `FOTA_ERR_ARGUMENT` (a NULL pointer) or
/// `FOTA_ERR_CONFIG`; on failure the agent is left unusable.
///
/// # Safety
/// `agent` must point to `FOTA_AGENT_SIZE` writable bytes and `config` to a
/// readable `FotaConfig`, or be NULL.
#[no_mangle]
pub unsafe extern "C" fn fota_agent_init(agent: *mut FotaAgent, config: *const FotaConfig) -> i32 {
    if agent.is_null() {
        return FOTA_ERR_ARGUMENT;
    }
    let mut state = Configured {
        magic: 0,
        config: FotaConfig {
            mode: u32::MAX,
            key_count: 0,
            source: ZERO_RANGE,
            target: ZERO_RANGE,
            scratch: ZERO_RANGE,
            journal: ZERO_RANGE,
            security_counter: 0,
            device_class: [0; FOTA_LABEL_LEN],
            keys: [[0; FOTA_KEY_LEN]; FOTA_MAX_KEYS],
        },
    };
    let status = if config.is_null() {
        FOTA_ERR_ARGUMENT
    } else {
        // SAFETY: `config` is not NULL and the caller promises it points to
        // a readable FotaConfig; the read is unaligned-tolerant, and every
        // bit pattern is a valid FotaConfig (integers and arrays only).
        let c = unsafe { config.read_unaligned() };
        if check_config(&c).is_some() {
            state = Configured {
                magic: MAGIC,
                config: c,
            };
            FOTA_OK
        } else {
            FOTA_ERR_CONFIG
        }
    };
    // SAFETY: `agent` is not NULL and points to FOTA_AGENT_SIZE writable
    // bytes (the caller's promise); Configured is exactly that size (const
    // asserts above), and the write is unaligned-tolerant.
    unsafe { agent.cast::<Configured>().write_unaligned(state) };
    status
}

/// Bytes `fota_agent_apply` needs as its work buffer for a flash with
/// these write and read sizes (3 chunks of 256 bytes rounded up to both,
/// and 256 bytes for an op's source extents);
/// 0 when a size is 0 or above 512 (not supported).
#[no_mangle]
pub extern "C" fn fota_agent_work_len(write_size: u32, read_size: u32) -> usize {
    let supported = 1..=crate::journal::MAX_SLOT_LEN as u32;
    if !supported.contains(&write_size) || !supported.contains(&read_size) {
        return 0;
    }
    work_len(write_size as usize, read_size as usize)
}

/// Bytes the work buffer needs for a package whose manifest announces a
/// reference transform of `xform_len` bytes (0 for none): the work length
/// plus a 256-byte block and the transform. A device lends what its RAM
/// budget allows; `fota_agent_apply` refuses a package whose transform does
/// not fit (`FOTA_ERR_LAYOUT`) before it writes anything. 0 when a size is
/// not supported.
#[no_mangle]
pub extern "C" fn fota_agent_work_len_for(
    write_size: u32,
    read_size: u32,
    xform_len: u32,
) -> usize {
    match fota_agent_work_len(write_size, read_size) {
        0 => 0,
        _ => crate::work_len_for(write_size as usize, read_size as usize, xform_len),
    }
}

/// Bytes of a `FotaAgent` (`FOTA_AGENT_SIZE`), for callers that allocate it
/// at run time and want to check the header they were built with.
#[no_mangle]
pub extern "C" fn fota_agent_state_size() -> usize {
    size_of::<FotaAgent>()
}

/// A caller's buffer: address and byte length, for the overlap check.
#[derive(Clone, Copy)]
struct Span(usize, usize);

impl Span {
    fn of<T>(ptr: *const T, len: usize) -> Option<Span> {
        let bytes = len.checked_mul(size_of::<T>())?;
        let start = ptr as usize;
        // A slice may neither wrap around the address space nor exceed isize::MAX.
        if bytes > isize::MAX as usize || start.checked_add(bytes).is_none() {
            return None;
        }
        Some(Span(start, bytes))
    }

    fn overlaps(self, other: Span) -> bool {
        self.1 > 0 && other.1 > 0 && self.0 < other.0 + other.1 && other.0 < self.0 + self.1
    }
}

/// A caller's buffer as a slice: empty when `len` is 0 (whatever `ptr`),
/// `None` when `ptr` is NULL or misaligned.
///
/// # Safety
/// When `len` > 0, `ptr` must point to `len` writable `T`s that nothing
/// else accesses while the slice lives; the span was checked by
/// [`Span::of`].
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> Option<&'a mut [T]> {
    if len == 0 {
        return Some(&mut []);
    }
    if ptr.is_null() || ptr as usize % align_of::<T>() != 0 {
        return None;
    }
    // SAFETY: not NULL, aligned, `len` elements valid and not aliased (the
    // caller's promise, overlap checked by the caller), not wrapping and at
    // most isize::MAX bytes (Span::of).
    Some(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// Applies, or resumes applying, the package to the flash; a resume after
/// a power cut is this same call again.
///
/// * `work`: at least `fota_agent_work_len(write_size, read_size)` bytes.
/// * `written`, `overwritten`: in place, one bit per segment of the larger
///   image each (`bitmap_len` bytes each, at least
///   ceil(ceil(image length / segment size) / 8)); may be NULL with
///   `bitmap_len` 0 for A/B.
/// * `slots`: in place, one entry per scratch slot of the package (the
///   scratch area's length / segment size is always enough); may be NULL
///   with `slots_len` 0 for A/B.
/// * `report`: filled on return (success or failure) unless NULL.
///
/// The buffers must not overlap each other or the agent. Returns `FOTA_OK`
/// when the target holds the new image (verified) and the journal says
/// finished, or a negative `FOTA_ERR_*`.
///
/// # Safety
/// Each pointer must be NULL or valid for what it describes: `agent` an
/// initialised (or at least `FOTA_AGENT_SIZE` readable bytes) agent,
/// `flash` and `package` readable vtables whose callbacks honour their
/// contracts, each buffer writable for its length, `report` writable.
/// None may be used by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn fota_agent_apply(
    agent: *const FotaAgent,
    flash: *const FotaFlash,
    package: *const FotaPackage,
    work: *mut u8,
    work_len: usize,
    written: *mut u8,
    overwritten: *mut u8,
    bitmap_len: usize,
    slots: *mut u32,
    slots_len: usize,
    report: *mut FotaReport,
) -> i32 {
    let mut out = FotaReport::default();
    // SAFETY: the caller's promises, passed on unchanged.
    let status = match unsafe {
        checked_apply(
            agent,
            flash,
            package,
            [
                (work, work_len),
                (written, bitmap_len),
                (overwritten, bitmap_len),
            ],
            (slots, slots_len),
        )
    } {
        Ok(Ok(r)) => {
            out.started_at_op = r.started_at_op;
            out.ops_executed = r.ops_executed;
            out.ops_found_done = r.ops_found_done;
            out.resumed = r.resumed.into();
            out.already_finished = r.already_finished.into();
            FOTA_OK
        }
        Ok(Err(e)) => error_status(&e, &mut out),
        Err(status) => status,
    };
    if !report.is_null() {
        // SAFETY: not NULL; the caller promises it is writable; the write
        // is unaligned-tolerant. No slice into the caller's buffers lives
        // any more.
        unsafe { report.write_unaligned(out) };
    }
    status
}

/// The argument checks, then the update.
///
/// # Safety
/// As [`fota_agent_apply`].
unsafe fn checked_apply(
    agent: *const FotaAgent,
    flash: *const FotaFlash,
    package: *const FotaPackage,
    bytes: [(*mut u8, usize); 3],
    slots: (*mut u32, usize),
) -> Result<crate::Result<Report>, i32> {
    if agent.is_null() || flash.is_null() || package.is_null() {
        return Err(FOTA_ERR_ARGUMENT);
    }
    // SAFETY: not NULL; the caller promises FOTA_AGENT_SIZE readable bytes,
    // which is Configured's size; any bytes are a valid Configured (integers only);
    // unaligned-tolerant. A copy: no reference into the agent is kept.
    let state = unsafe { agent.cast::<Configured>().read_unaligned() };
    // SAFETY: not NULL; the caller promises readable vtables; raw pointers,
    // integers and nullable function pointers are valid for any bits.
    let (flash, package) = unsafe { (flash.read_unaligned(), package.read_unaligned()) };
    if state.magic != MAGIC || check_config(&state.config).is_none() {
        return Err(FOTA_ERR_ARGUMENT);
    }
    let c = &state.config;
    let (Some(read), Some(write), Some(erase), Some(block_at), Some(pkg_read)) = (
        flash.read,
        flash.write,
        flash.erase,
        flash.block_at,
        package.read,
    ) else {
        return Err(FOTA_ERR_ARGUMENT);
    };

    let mut spans = [Span(0, 0); 5];
    for (s, (ptr, len)) in spans.iter_mut().zip(bytes) {
        *s = Span::of(ptr, len).ok_or(FOTA_ERR_ARGUMENT)?;
    }
    if let Some(s) = spans.get_mut(3) {
        *s = Span::of(slots.0, slots.1).ok_or(FOTA_ERR_ARGUMENT)?;
    }
    if let Some(s) = spans.get_mut(4) {
        *s = Span::of(agent, 1).ok_or(FOTA_ERR_ARGUMENT)?;
    }
    for (i, a) in spans.iter().enumerate() {
        if spans.iter().skip(i + 1).any(|b| a.overlaps(*b)) {
            return Err(FOTA_ERR_ARGUMENT);
        }
    }
    let [(work, work_len), (written, bitmap_len), (overwritten, _)] = bytes;
    // SAFETY (the three blocks): each span was checked (no wrap, at most
    // isize::MAX bytes, no overlap with another buffer or the agent);
    // validity for the length is the caller's promise.
    let work = unsafe { slice_mut(work, work_len) }.ok_or(FOTA_ERR_ARGUMENT)?;
    // SAFETY: as above.
    let written = unsafe { slice_mut(written, bitmap_len) }.ok_or(FOTA_ERR_ARGUMENT)?;
    // SAFETY: as above.
    let overwritten = unsafe { slice_mut(overwritten, bitmap_len) }.ok_or(FOTA_ERR_ARGUMENT)?;
    // SAFETY: as above; `slice_mut` checks the u32 alignment.
    let slots = unsafe { slice_mut(slots.0, slots.1) }.ok_or(FOTA_ERR_ARGUMENT)?;

    // Keys were checked by init and again just above.
    let n = (c.key_count as usize).min(FOTA_MAX_KEYS);
    let first = c.keys.first().ok_or(FOTA_ERR_ARGUMENT)?;
    let first = VerifyingKey::from_bytes(first).map_err(|_| FOTA_ERR_ARGUMENT)?;
    let mut keys = [first; FOTA_MAX_KEYS];
    for (k, raw) in keys.iter_mut().zip(&c.keys).take(n) {
        *k = VerifyingKey::from_bytes(raw).map_err(|_| FOTA_ERR_ARGUMENT)?;
    }
    let config = Config {
        layout: layout_of(c),
        trusted: keys.get(..n).unwrap_or(&[]),
        device_class: Label::from_bytes(c.device_class).ok_or(FOTA_ERR_ARGUMENT)?,
        security_counter: c.security_counter,
    };
    let mut flash = CFlash {
        ctx: flash.ctx,
        read,
        write,
        erase,
        block_at,
        capacity: flash.capacity,
        read_size: flash.read_size as usize,
        write_size: flash.write_size as usize,
        erased_value: flash.erased_value,
    };
    let mut package = CPackage {
        ctx: package.ctx,
        len: package.len,
        read: pkg_read,
    };
    Ok(block_on(apply(
        &mut flash,
        &mut package,
        &config,
        Buffers {
            work,
            written,
            overwritten,
            slots,
        },
    )))
}

/// Maps an error to its status code and fills the report's details.
fn error_status(e: &Error, out: &mut FotaReport) -> i32 {
    let region = |r: &Region| match r {
        Region::Source => FOTA_REGION_SOURCE,
        Region::Target => FOTA_REGION_TARGET,
        Region::Scratch => FOTA_REGION_SCRATCH,
        Region::Journal => FOTA_REGION_JOURNAL,
    };
    match e {
        Error::Package(f) => {
            out.detail = package_detail(f);
            FOTA_ERR_PACKAGE
        }
        Error::PackageRead { offset, .. } => {
            out.addr = *offset;
            FOTA_ERR_PACKAGE_READ
        }
        Error::Flash {
            region: r,
            addr,
            error,
        } => {
            out.region = region(r);
            out.addr = *addr;
            out.detail = match error {
                FlashError::PowerLost => return FOTA_ERR_POWER_LOST,
                FlashError::OutOfBounds => FOTA_FLASH_OUT_OF_BOUNDS,
                FlashError::NotAligned => FOTA_FLASH_NOT_ALIGNED,
                FlashError::ReadFailed => FOTA_FLASH_READ_FAILED,
                FlashError::WriteFailed => FOTA_FLASH_WRITE_FAILED,
            };
            FOTA_ERR_FLASH
        }
        Error::Layout {
            expected, found, ..
        } => {
            out.expected = *expected;
            out.found = *found;
            FOTA_ERR_LAYOUT
        }
        Error::UnfinishedOtherUpdate { .. } => FOTA_ERR_UNFINISHED_OTHER,
        Error::Verify {
            region: r,
            addr,
            op_index,
        } => {
            out.region = region(r);
            out.addr = *addr;
            out.op_index = *op_index;
            FOTA_ERR_VERIFY
        }
    }
}

fn package_detail(e: &fota_format::Error) -> i32 {
    use fota_format::Error as E;
    match e {
        E::Truncated { .. } => FOTA_PKG_TRUNCATED,
        E::BadMagic { .. } => FOTA_PKG_BAD_MAGIC,
        E::UnsupportedVersion { .. } => FOTA_PKG_UNSUPPORTED_VERSION,
        E::BadLength { .. } => FOTA_PKG_BAD_LENGTH,
        E::NonZeroReserved { .. } => FOTA_PKG_NON_ZERO_RESERVED,
        E::InvalidField { .. } => FOTA_PKG_INVALID_FIELD,
        E::InvalidText { .. } => FOTA_PKG_INVALID_TEXT,
        E::UnknownKey { .. } => FOTA_PKG_UNKNOWN_KEY,
        E::BadSignature => FOTA_PKG_BAD_SIGNATURE,
        E::OpHashMismatch { .. } => FOTA_PKG_OP_HASH_MISMATCH,
        E::TrailingBytes { .. } => FOTA_PKG_TRAILING_BYTES,
        E::OpLayout { .. } => FOTA_PKG_OP_LAYOUT,
        E::DeviceClassMismatch { .. } => FOTA_PKG_DEVICE_CLASS_MISMATCH,
        E::SecurityCounterTooLow { .. } => FOTA_PKG_SECURITY_COUNTER_TOO_LOW,
        E::SourceSizeMismatch { .. } => FOTA_PKG_SOURCE_SIZE_MISMATCH,
        E::SourceHashMismatch => FOTA_PKG_SOURCE_HASH_MISMATCH,
        E::SourceExtentHashMismatch { .. } => FOTA_PKG_SOURCE_EXTENT_HASH_MISMATCH,
        E::SegmentHashMismatch { .. } => FOTA_PKG_SEGMENT_HASH_MISMATCH,
        E::TargetHashMismatch => FOTA_PKG_TARGET_HASH_MISMATCH,
        E::PatchMalformed { .. } => FOTA_PKG_PATCH_MALFORMED,
        E::PatchReadOutsideExtents { .. } => FOTA_PKG_PATCH_READ_OUTSIDE_EXTENTS,
        E::PayloadCodec { .. } | E::LzmaPayload { .. } => FOTA_PKG_PAYLOAD_CODEC,
        _ => FOTA_PKG_OTHER,
    }
}

type ReadFn = unsafe extern "C" fn(*mut c_void, u64, *mut u8, usize) -> i32;
type WriteFn = unsafe extern "C" fn(*mut c_void, u64, *const u8, usize) -> i32;
type EraseFn = unsafe extern "C" fn(*mut c_void, u64, u64) -> i32;
type BlockAtFn = unsafe extern "C" fn(*mut c_void, u64, *mut u64, *mut u64) -> i32;

/// The C flash vtable as a [`Flash`]: ranges are checked against the
/// capacity before a callback sees them, block descriptions after.
struct CFlash {
    ctx: *mut c_void,
    read: ReadFn,
    write: WriteFn,
    erase: EraseFn,
    block_at: BlockAtFn,
    capacity: u64,
    read_size: usize,
    write_size: usize,
    erased_value: u8,
}

impl CFlash {
    fn check(&self, addr: u64, len: usize) -> Result<(), FlashError> {
        match addr.checked_add(len as u64) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(FlashError::OutOfBounds),
        }
    }
}

fn write_status(rc: i32) -> Result<(), FlashError> {
    match rc {
        FOTA_OK => Ok(()),
        FOTA_ERR_POWER_LOST => Err(FlashError::PowerLost),
        _ => Err(FlashError::WriteFailed),
    }
}

/// The other way: the status a flash callback over a Rust [`Flash`]
/// returns for an operation's outcome (the simulator's callbacks, tests').
#[cfg(any(test, feature = "sim"))]
fn flash_status(r: Result<(), FlashError>) -> i32 {
    match r {
        Ok(()) => FOTA_OK,
        Err(FlashError::PowerLost) => FOTA_ERR_POWER_LOST,
        Err(_) => FOTA_ERR_FLASH,
    }
}

impl Flash for CFlash {
    fn read_size(&self) -> usize {
        self.read_size
    }
    fn write_size(&self) -> usize {
        self.write_size
    }
    fn erased_value(&self) -> u8 {
        self.erased_value
    }
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn block_at(&self, addr: u64) -> Option<Block> {
        if addr >= self.capacity {
            return None;
        }
        let (mut start, mut len) = (0u64, 0u64);
        // SAFETY: the callback's contract; both out-pointers are to live
        // locals.
        let rc = unsafe { (self.block_at)(self.ctx, addr, &mut start, &mut len) };
        // A block that does not hold `addr`, is empty or leaves the device
        // is refused: the core would loop or misplace an erase on it.
        let end = start.checked_add(len)?;
        (rc == FOTA_OK && len > 0 && start <= addr && addr < end && end <= self.capacity)
            .then_some(Block { start, len })
    }
    async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.check(addr, buf.len())?;
        // SAFETY: the callback's contract; `buf` is a live, writable slice
        // of `buf.len()` bytes.
        match unsafe { (self.read)(self.ctx, addr, buf.as_mut_ptr(), buf.len()) } {
            FOTA_OK => Ok(()),
            FOTA_ERR_POWER_LOST => Err(FlashError::PowerLost),
            _ => Err(FlashError::ReadFailed),
        }
    }
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        self.check(addr, data.len())?;
        // SAFETY: the callback's contract; `data` is a live slice of
        // `data.len()` bytes.
        write_status(unsafe { (self.write)(self.ctx, addr, data.as_ptr(), data.len()) })
    }
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        if from > to || to > self.capacity {
            return Err(FlashError::OutOfBounds);
        }
        // SAFETY: the callback's contract; plain integers.
        write_status(unsafe { (self.erase)(self.ctx, from, to) })
    }
}

/// The C package vtable as a [`PackageSource`].
struct CPackage {
    ctx: *mut c_void,
    len: u64,
    read: ReadFn,
}

impl PackageSource for CPackage {
    fn len(&self) -> u64 {
        self.len
    }
    async fn read(&mut self, offset: u64, buf: &mut [u8]) -> bool {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return false;
        }
        // SAFETY: the callback's contract; `buf` is a live, writable slice
        // of `buf.len()` bytes.
        unsafe { (self.read)(self.ctx, offset, buf.as_mut_ptr(), buf.len()) == FOTA_OK }
    }
}

/// core for hosted targets is prebuilt with unwinding, and its unwind
/// tables name this routine; with `panic = "abort"` nothing unwinds, so it
/// is never called (targets whose core aborts do not reference it).
#[cfg(all(
    feature = "panic-handler",
    not(feature = "std"),
    not(test),
    panic = "abort"
))]
#[no_mangle]
extern "C" fn rust_eh_personality() {}

/// For a C firmware without Rust's std: a panic (none is reachable from
/// input) stops here, and the watchdog's reset resumes the update.
#[cfg(all(feature = "panic-handler", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    //! Each unsafe block above, exercised: init's config read and agent
    //! write, apply's agent and vtable reads, the buffer slices, every
    //! callback call, and the report write. The callbacks here wrap the
    //! simulator.

    extern crate std;

    use std::vec;
    use std::vec::Vec;

    use ed25519_dalek::SigningKey;
    use fota_format::{Label, Mode, Profile};

    use super::*;
    use crate::sim::{CutVariant, Geometry, SimFlash};

    const ERASE: u64 = 1024;

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    /// An A/B package for a 4 KiB image.
    fn package() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let old: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = old.clone();
        new[100..140].fill(0x5a);
        new.splice(2000..2000, [1u8, 2, 3, 4, 5]);
        new.truncate(4096);
        let opts = fota_generator::DiffOptions {
            threads: 1,
            segment_size: ERASE as u32,
            erase_size: ERASE as u32,
            profile: Profile::Tiny,
            mode: Mode::AB,
            device_class: Label::new("test-board").unwrap(),
            ..Default::default()
        };
        let pkg = fota_generator::diff(&old, &new, &signing_key(), &opts)
            .unwrap()
            .package;
        (old, new, pkg)
    }

    fn config() -> FotaConfig {
        let mut device_class = [0u8; FOTA_LABEL_LEN];
        device_class[..10].copy_from_slice(b"test-board");
        let mut keys = [[0u8; FOTA_KEY_LEN]; FOTA_MAX_KEYS];
        keys[0] = signing_key().verifying_key().to_bytes();
        FotaConfig {
            mode: FOTA_MODE_AB,
            key_count: 1,
            source: FotaRange {
                start: 0,
                len: 4 * ERASE,
            },
            target: FotaRange {
                start: 4 * ERASE,
                len: 4 * ERASE,
            },
            scratch: ZERO_RANGE,
            journal: FotaRange {
                start: 8 * ERASE,
                len: 2 * ERASE,
            },
            security_counter: 0,
            device_class,
            keys,
        }
    }

    /// The simulator, plus switches that make callbacks misbehave.
    struct Device {
        sim: SimFlash,
        package: Vec<u8>,
        fail_reads: bool,
        fail_package_reads: bool,
        empty_blocks: bool,
    }

    impl Device {
        fn new(old: &[u8], package: Vec<u8>) -> Device {
            let mut sim = SimFlash::new(Geometry::uniform(10, ERASE, 4, 1));
            crate::block_on(sim.write(0, old)).unwrap();
            sim.ops = 0;
            Device {
                sim,
                package,
                fail_reads: false,
                fail_package_reads: false,
                empty_blocks: false,
            }
        }
    }

    /// # Safety
    /// `ctx` is a live `Device`; `buf` holds `len` writable bytes.
    unsafe extern "C" fn read(ctx: *mut c_void, addr: u64, buf: *mut u8, len: usize) -> i32 {
        // SAFETY: the contract above (this test's own callers).
        let (d, buf) = unsafe {
            (
                &mut *ctx.cast::<Device>(),
                core::slice::from_raw_parts_mut(buf, len),
            )
        };
        if d.fail_reads {
            return FOTA_ERR_FLASH;
        }
        flash_status(crate::block_on(d.sim.read(addr, buf)))
    }

    /// # Safety
    /// `ctx` is a live `Device`; `data` holds `len` bytes.
    unsafe extern "C" fn write(ctx: *mut c_void, addr: u64, data: *const u8, len: usize) -> i32 {
        // SAFETY: the contract above.
        let (d, data) = unsafe {
            (
                &mut *ctx.cast::<Device>(),
                core::slice::from_raw_parts(data, len),
            )
        };
        flash_status(crate::block_on(d.sim.write(addr, data)))
    }

    /// # Safety
    /// `ctx` is a live `Device`.
    unsafe extern "C" fn erase(ctx: *mut c_void, from: u64, to: u64) -> i32 {
        // SAFETY: the contract above.
        let d = unsafe { &mut *ctx.cast::<Device>() };
        flash_status(crate::block_on(d.sim.erase(from, to)))
    }

    /// # Safety
    /// `ctx` is a live `Device`; `start` and `len` are writable.
    unsafe extern "C" fn block_at(
        ctx: *mut c_void,
        addr: u64,
        start: *mut u64,
        len: *mut u64,
    ) -> i32 {
        // SAFETY: the contract above.
        let d = unsafe { &*ctx.cast::<Device>() };
        let Some(b) = d.sim.block_at(addr) else {
            return FOTA_ERR_FLASH;
        };
        // SAFETY: the contract above.
        unsafe {
            *start = b.start;
            *len = if d.empty_blocks { 0 } else { b.len };
        }
        FOTA_OK
    }

    /// # Safety
    /// `ctx` is a live `Device`; `buf` holds `len` writable bytes.
    unsafe extern "C" fn package_read(
        ctx: *mut c_void,
        offset: u64,
        buf: *mut u8,
        len: usize,
    ) -> i32 {
        // SAFETY: the contract above.
        let (d, buf) = unsafe {
            (
                &*ctx.cast::<Device>(),
                core::slice::from_raw_parts_mut(buf, len),
            )
        };
        let src = d.package.get(offset as usize..offset as usize + len);
        match src {
            Some(src) if !d.fail_package_reads => {
                buf.copy_from_slice(src);
                FOTA_OK
            }
            _ => FOTA_ERR_PACKAGE_READ,
        }
    }

    fn vtables(d: &mut Device) -> (FotaFlash, FotaPackage) {
        let ctx = (d as *mut Device).cast::<c_void>();
        (
            FotaFlash {
                ctx,
                read: Some(read),
                write: Some(write),
                erase: Some(erase),
                block_at: Some(block_at),
                capacity: d.sim.capacity(),
                read_size: 1,
                write_size: 4,
                erased_value: 0xff,
            },
            FotaPackage {
                ctx,
                len: d.package.len() as u64,
                read: Some(package_read),
            },
        )
    }

    fn init(agent: &mut FotaAgent, c: &FotaConfig) -> i32 {
        // SAFETY: both are live Rust values.
        unsafe { fota_agent_init(agent, c) }
    }

    fn new_agent() -> FotaAgent {
        FotaAgent {
            _opaque: [0; FOTA_AGENT_SIZE],
        }
    }

    /// Runs apply with ample buffers; returns the status and the report.
    fn run(agent: *const FotaAgent, d: &mut Device) -> (i32, FotaReport) {
        let (flash, package) = vtables(d);
        let mut work = vec![0u8; work_len(4, 1)];
        let mut report = FotaReport {
            detail: 99,
            ..FotaReport::default()
        };
        // SAFETY: every pointer is to a live value of the stated length
        // (the agent possibly unaligned: it is read unaligned).
        let rc = unsafe {
            fota_agent_apply(
                agent,
                &flash,
                &package,
                work.as_mut_ptr(),
                work.len(),
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                0,
                core::ptr::null_mut(),
                0,
                &mut report,
            )
        };
        (rc, report)
    }

    #[test]
    fn sizes_and_work_len() {
        assert_eq!(fota_agent_state_size(), FOTA_AGENT_SIZE);
        assert_eq!(fota_agent_work_len(4, 1), work_len(4, 1));
        assert_eq!(fota_agent_work_len(0, 1), 0);
        assert_eq!(fota_agent_work_len(4, 1024), 0);
        assert_eq!(fota_agent_work_len_for(4, 1, 0), work_len(4, 1));
        assert_eq!(fota_agent_work_len_for(4, 1, 100), work_len(4, 1) + 356);
        assert_eq!(fota_agent_work_len_for(0, 1, 100), 0);
        assert_eq!(size_of::<FotaConfig>(), 240);
    }

    #[test]
    fn init_validates_and_copies_the_config() {
        let mut agent = new_agent();
        let good = config();
        // SAFETY: NULL pointers are what is being tested.
        unsafe {
            assert_eq!(
                fota_agent_init(core::ptr::null_mut(), &good),
                FOTA_ERR_ARGUMENT
            );
            assert_eq!(
                fota_agent_init(&mut agent, core::ptr::null()),
                FOTA_ERR_ARGUMENT
            );
        }
        let mut not_a_point = [0u8; 32];
        // Find y bytes that decompress to no curve point.
        for b in 2..=255u8 {
            not_a_point[0] = b;
            if VerifyingKey::from_bytes(&not_a_point).is_err() {
                break;
            }
        }
        let mutations: [fn(&mut FotaConfig, [u8; 32]); 8] = [
            |c, _| c.key_count = 0,
            |c, _| c.key_count = FOTA_MAX_KEYS as u32 + 1,
            |c, bad| c.keys[0] = bad,
            |c, _| c.mode = 2,
            |c, _| c.scratch.len = ERASE,
            |c, _| {
                c.mode = FOTA_MODE_IN_PLACE;
                c.scratch = c.target;
            },
            |c, _| c.journal.start = u64::MAX,
            |c, _| c.device_class[0] = 0xff,
        ];
        for (i, m) in mutations.iter().enumerate() {
            let mut c = good;
            m(&mut c, not_a_point);
            assert_eq!(init(&mut agent, &c), FOTA_ERR_CONFIG, "mutation {i}");
        }
        // Refused: the agent is unusable.
        let (old, _, pkg) = package();
        let mut d = Device::new(&old, pkg);
        assert_eq!(run(&agent, &mut d).0, FOTA_ERR_ARGUMENT);
        assert_eq!(init(&mut agent, &good), FOTA_OK);
        let mut in_place = good;
        in_place.mode = FOTA_MODE_IN_PLACE;
        in_place.scratch = in_place.target;
        in_place.target = ZERO_RANGE;
        assert_eq!(init(&mut new_agent(), &in_place), FOTA_OK);
        // Keys are copied: the config can go away.
        let c = std::boxed::Box::new(good);
        assert_eq!(init(&mut agent, &c), FOTA_OK);
        drop(c);
        let (rc, _) = run(&agent, &mut d);
        assert_eq!(rc, FOTA_OK);
    }

    #[test]
    fn init_and_apply_take_unaligned_pointers() {
        // An agent and a config at odd addresses: both are copied with
        // unaligned reads and writes.
        let mut bytes = vec![0u8; FOTA_AGENT_SIZE + 1];
        let agent = bytes[1..].as_mut_ptr().cast::<FotaAgent>();
        let mut cbytes = vec![0u8; size_of::<FotaConfig>() + 1];
        let cfg = cbytes[1..].as_mut_ptr().cast::<FotaConfig>();
        // SAFETY: both buffers hold the type's size from the pointer on.
        unsafe {
            cfg.write_unaligned(config());
            assert_eq!(fota_agent_init(agent, cfg), FOTA_OK);
        }
        let (old, new, pkg) = package();
        let mut d = Device::new(&old, pkg);
        // Valid for FOTA_AGENT_SIZE bytes; read unaligned inside.
        let (rc, report) = run(agent, &mut d);
        assert_eq!(rc, FOTA_OK, "{report:?}");
        let mut target = vec![0u8; new.len()];
        crate::block_on(d.sim.read(4 * ERASE, &mut target)).unwrap();
        assert_eq!(target, new);
    }

    #[test]
    fn apply_checks_every_pointer_and_length() {
        let mut agent = new_agent();
        assert_eq!(init(&mut agent, &config()), FOTA_OK);
        let (old, _, pkg) = package();
        let mut d = Device::new(&old, pkg);
        let (flash, package) = vtables(&mut d);
        let mut work = vec![0u8; 2048];
        let mut slots = [0u32; 4];
        let wp = work.as_mut_ptr();
        let null = core::ptr::null_mut::<u8>();
        let call = |a: *const FotaAgent,
                    f: *const FotaFlash,
                    p: *const FotaPackage,
                    work: (*mut u8, usize),
                    bitmaps: (*mut u8, *mut u8, usize),
                    slots: (*mut u32, usize)| {
            // SAFETY: the pointers are live or NULL, lengths within their
            // buffers unless the case tests exactly that (refused first).
            unsafe {
                fota_agent_apply(
                    a,
                    f,
                    p,
                    work.0,
                    work.1,
                    bitmaps.0,
                    bitmaps.1,
                    bitmaps.2,
                    slots.0,
                    slots.1,
                    core::ptr::null_mut(),
                )
            }
        };
        let none = (null, null, 0);
        let no_slots = (core::ptr::null_mut(), 0);
        let used = work_len(4, 1);
        let w = (wp, used);
        let refused = [
            call(core::ptr::null(), &flash, &package, w, none, no_slots),
            call(&agent, core::ptr::null(), &package, w, none, no_slots),
            call(&agent, &flash, core::ptr::null(), w, none, no_slots),
            // A NULL buffer with a length.
            call(&agent, &flash, &package, (null, used), none, no_slots),
            call(&agent, &flash, &package, w, (null, null, 8), no_slots),
            // Overlapping buffers.
            call(
                &agent,
                &flash,
                &package,
                w,
                (wp.wrapping_add(used - 4), wp.wrapping_add(used + 200), 8),
                no_slots,
            ),
            // Two bitmaps inside `work`'s spare part, overlapping each other.
            call(
                &agent,
                &flash,
                &package,
                w,
                (wp.wrapping_add(used + 32), wp.wrapping_add(used + 36), 8),
                no_slots,
            ),
            // Slots misaligned for u32.
            // Inside `work`'s spare part.
            call(
                &agent,
                &flash,
                &package,
                w,
                none,
                (wp.wrapping_add(used + 1).cast(), 2),
            ),
            // A length that wraps the address space.
            call(&agent, &flash, &package, (wp, usize::MAX), none, no_slots),
        ];
        for (i, rc) in refused.iter().enumerate() {
            assert_eq!(*rc, FOTA_ERR_ARGUMENT, "case {i}");
        }
        for missing in 0..5 {
            let (mut f, mut p) = (flash, package);
            match missing {
                0 => f.read = None,
                1 => f.write = None,
                2 => f.erase = None,
                3 => f.block_at = None,
                _ => p.read = None,
            }
            assert_eq!(call(&agent, &f, &p, w, none, no_slots), FOTA_ERR_ARGUMENT);
        }
        // Nothing was written by any refused call.
        assert_eq!(d.sim.ops, 0);
        // A short work buffer is the core's layout error, with the sizes.
        let mut report = FotaReport::default();
        // SAFETY: live buffers of the stated lengths.
        let rc = unsafe {
            fota_agent_apply(
                &agent,
                &flash,
                &package,
                wp,
                100,
                null,
                null,
                0,
                slots.as_mut_ptr(),
                slots.len(),
                &mut report,
            )
        };
        assert_eq!(rc, FOTA_ERR_LAYOUT);
        assert_eq!((report.expected, report.found), (used as u64, 100));
    }

    #[test]
    fn a_cut_returns_power_lost_and_apply_again_resumes() {
        let mut agent = new_agent();
        assert_eq!(init(&mut agent, &config()), FOTA_OK);
        let (old, new, pkg) = package();
        let mut d = Device::new(&old, pkg);
        d.sim.cut_at(5, CutVariant::TornProgram, 3);
        let (rc, report) = run(&agent, &mut d);
        assert_eq!(rc, FOTA_ERR_POWER_LOST);
        assert_ne!(report.region, FOTA_REGION_NONE);
        d.sim.power_on();
        let (rc, report) = run(&agent, &mut d);
        assert_eq!(rc, FOTA_OK, "{report:?}");
        assert_eq!(report.resumed, 1);
        assert!(report.ops_executed > 0);
        let mut target = vec![0u8; new.len()];
        crate::block_on(d.sim.read(4 * ERASE, &mut target)).unwrap();
        assert_eq!(target, new);
        let (rc, report) = run(&agent, &mut d);
        assert_eq!((rc, report.already_finished), (FOTA_OK, 1));
    }

    #[test]
    fn errors_map_to_their_codes() {
        let (old, _, pkg) = package();
        let mut agent = new_agent();
        // An untrusted key: refused before any write, with the kind.
        let mut c = config();
        c.keys[0] = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
        assert_eq!(init(&mut agent, &c), FOTA_OK);
        let mut d = Device::new(&old, pkg.clone());
        let (rc, report) = run(&agent, &mut d);
        assert_eq!(
            (rc, report.detail),
            (FOTA_ERR_PACKAGE, FOTA_PKG_UNKNOWN_KEY)
        );

        assert_eq!(init(&mut agent, &config()), FOTA_OK);
        d.fail_package_reads = true;
        assert_eq!(run(&agent, &mut d).0, FOTA_ERR_PACKAGE_READ);
        d.fail_package_reads = false;

        d.fail_reads = true;
        let (rc, report) = run(&agent, &mut d);
        assert_eq!(
            (rc, report.detail),
            (FOTA_ERR_FLASH, FOTA_FLASH_READ_FAILED)
        );
        d.fail_reads = false;

        // Empty erase blocks from the callback: a layout error, not a hang.
        d.empty_blocks = true;
        assert_eq!(run(&agent, &mut d).0, FOTA_ERR_LAYOUT);
        d.empty_blocks = false;

        // Another source image: refused, with the kind.
        let mut other = old.clone();
        other[0] ^= 1;
        let mut d = Device::new(&other, pkg);
        let (rc, report) = run(&agent, &mut d);
        assert_eq!(
            (rc, report.detail),
            (FOTA_ERR_PACKAGE, FOTA_PKG_SOURCE_HASH_MISMATCH)
        );
        // Error codes are distinct.
        let codes = [
            FOTA_ERR_ARGUMENT,
            FOTA_ERR_CONFIG,
            FOTA_ERR_PACKAGE,
            FOTA_ERR_PACKAGE_READ,
            FOTA_ERR_FLASH,
            FOTA_ERR_POWER_LOST,
            FOTA_ERR_LAYOUT,
            FOTA_ERR_UNFINISHED_OTHER,
            FOTA_ERR_VERIFY,
        ];
        for (i, a) in codes.iter().enumerate() {
            assert!(*a < 0 && !codes[i + 1..].contains(a));
        }
    }
}
