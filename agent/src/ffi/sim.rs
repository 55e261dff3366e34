//! The flash simulator through the C ABI (features `ffi` and `sim`, so
//! std): the same [`SimFlash`] the Rust power-cut campaigns use, behind a
//! [`FotaFlash`] vtable, so a C integration can run the cut campaign on
//! its own layout and images (R13).
//!
//! ```c
//! const uint64_t blocks[] = {4096, 4096, 4096, 4096};
//! FotaSim *sim = fota_sim_new(blocks, 4, 4, 1, 0xff);
//! fota_sim_load(sim, 0, old, old_len);
//! fota_sim_allow_writes(sim, 0, 16384);     /* the layout's regions */
//! FotaFlash flash = fota_sim_flash(sim);
//! fota_sim_cut_at(sim, 7, FOTA_SIM_CUT_TORN_PROGRAM, 1);
//! fota_agent_apply(&agent, &flash, ...);     /* FOTA_ERR_POWER_LOST */
//! fota_sim_power_on(sim);
//! fota_agent_apply(&agent, &flash, ...);     /* resumes: FOTA_OK */
//! fota_sim_free(sim);
//! ```
//!
//! The header is `agent/include/fota_sim.h` (from this file, with
//! `agent/cbindgen-sim.toml`), checked by the `ffi_header` test.

use core::ffi::c_void;
use std::boxed::Box;
use std::vec::Vec;

use super::{flash_status, slice_mut, FotaFlash, Span, FOTA_ERR_ARGUMENT, FOTA_ERR_FLASH, FOTA_OK};
use crate::block_on;
use crate::flash::Flash;
use crate::sim::{CutVariant, Geometry, SimFlash, TraceOp};

/// Power is lost before the op does anything.
pub const FOTA_SIM_CUT_NOT_DONE: u32 = 0;
/// The op completes, then power is lost.
pub const FOTA_SIM_CUT_DONE: u32 = 1;
/// A program is torn: cells half programmed, words possibly unreadable
/// (an erase cut this way is not done).
pub const FOTA_SIM_CUT_TORN_PROGRAM: u32 = 2;
/// An erase is torn: half erased or random bytes (a program cut this way
/// is not done).
pub const FOTA_SIM_CUT_TORN_ERASE: u32 = 3;

/// `fota_sim_trace_op`: no such op was recorded.
pub const FOTA_SIM_OP_NONE: i32 = 0;
/// `fota_sim_trace_op`: the op was a program.
pub const FOTA_SIM_OP_PROGRAM: i32 = 1;
/// `fota_sim_trace_op`: the op was an erase.
pub const FOTA_SIM_OP_ERASE: i32 = 2;

/// Most bytes a simulated flash may hold.
const MAX_CAPACITY: u64 = 1 << 30;

/// A simulated NOR flash, owned by the library: made by `fota_sim_new`,
/// released by `fota_sim_free`. Opaque to C.
pub struct FotaSim {
    flash: SimFlash,
}

/// Counters of a simulated flash since it was made.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FotaSimStats {
    /// Programs and erases done (the cut counter).
    pub ops: u64,
    /// Bytes programmed.
    pub bytes_programmed: u64,
    /// Programs onto an already-programmed word (must stay 0).
    pub double_writes: u64,
    /// Programs and erases refused as outside the allowed ranges (must
    /// stay 0: nothing is written outside the layout).
    pub writes_outside_window: u64,
    /// Erases of all blocks.
    pub erases: u64,
    /// Erases of the most erased block.
    pub max_block_erases: u32,
}

/// Makes an erased flash of `block_count` erase blocks of the given sizes
/// (mixed sizes allowed), programmed `write_size` bytes at a time, read
/// `read_size` at a time (1 to 512 each, dividing every block size), whose
/// erased byte is `erased` (0xFF or 0x00), at most 1 GiB in all (it lives
/// in memory). NULL when a parameter is out of range.
///
/// # Safety
/// `block_sizes` must point to `block_count` readable `uint64_t`s.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_new(
    block_sizes: *const u64,
    block_count: usize,
    write_size: u32,
    read_size: u32,
    erased: u8,
) -> *mut FotaSim {
    let units = 1..=crate::journal::MAX_SLOT_LEN as u32;
    if block_count == 0
        || block_sizes.is_null()
        || block_sizes as usize % align_of::<u64>() != 0
        || Span::of(block_sizes, block_count).is_none()
        || !units.contains(&write_size)
        || !units.contains(&read_size)
        || !(erased == 0xff || erased == 0)
    {
        return core::ptr::null_mut();
    }
    // SAFETY: not NULL, aligned, `block_count` readable u64s (the caller's
    // promise), not wrapping (Span::of).
    let sizes = unsafe { core::slice::from_raw_parts(block_sizes, block_count) };
    let fits = |b: &u64| *b > 0 && b % u64::from(write_size) == 0 && b % u64::from(read_size) == 0;
    let capacity = sizes.iter().try_fold(0u64, |sum, b| sum.checked_add(*b));
    if !sizes.iter().all(fits) || capacity.is_none_or(|c| c > MAX_CAPACITY) {
        return core::ptr::null_mut();
    }
    let geometry = Geometry {
        blocks: sizes.to_vec(),
        write_size: write_size as usize,
        read_size: read_size as usize,
        erased,
    };
    Box::into_raw(Box::new(FotaSim {
        flash: SimFlash::new(geometry),
    }))
}

/// Releases a flash made by `fota_sim_new`; NULL is ignored.
///
/// # Safety
/// `sim` must be NULL or a pointer `fota_sim_new` returned, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_free(sim: *mut FotaSim) {
    if !sim.is_null() {
        // SAFETY: made by Box::into_raw in fota_sim_new, freed only once
        // (the caller's promise).
        drop(unsafe { Box::from_raw(sim) });
    }
}

/// The simulator, or `None` for NULL.
///
/// # Safety
/// `sim` must be NULL or a live `fota_sim_new` pointer no one else uses
/// during the call.
unsafe fn sim_mut<'a>(sim: *mut FotaSim) -> Option<&'a mut FotaSim> {
    // SAFETY: the caller's promise.
    unsafe { sim.as_mut() }
}

/// Writes `len` bytes of `data` at `addr` as they are, without counting an
/// op (the device's contents before the update). `FOTA_ERR_ARGUMENT` when
/// a pointer is NULL or the range is outside the flash.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call; `data` readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_load(
    sim: *mut FotaSim,
    addr: u64,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: the caller's promise.
    let (Some(sim), Some(data)) = (unsafe { sim_mut(sim) }, unsafe { slice(data, len) }) else {
        return FOTA_ERR_ARGUMENT;
    };
    if !in_flash(&sim.flash, addr, len) {
        return FOTA_ERR_ARGUMENT;
    }
    sim.flash.load(addr, data);
    FOTA_OK
}

/// Copies `len` bytes at `addr` into `buf` as they are (no read unit, no
/// ECC error): for checking the result. `FOTA_ERR_ARGUMENT` when a pointer
/// is NULL or the range is outside the flash.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call; `buf` writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_contents(
    sim: *mut FotaSim,
    addr: u64,
    buf: *mut u8,
    len: usize,
) -> i32 {
    // SAFETY: the caller's promise.
    let (Some(sim), Some(buf)) = (unsafe { sim_mut(sim) }, unsafe { slice_out(buf, len) }) else {
        return FOTA_ERR_ARGUMENT;
    };
    if !in_flash(&sim.flash, addr, len) {
        return FOTA_ERR_ARGUMENT;
    }
    let from = addr as usize;
    match sim.flash.bytes().get(from..from + len) {
        Some(bytes) => {
            buf.copy_from_slice(bytes);
            FOTA_OK
        }
        None => FOTA_ERR_ARGUMENT,
    }
}

/// Allows programs and erases in `[start, end)`; once any range is
/// allowed, a program or erase outside every allowed range is refused
/// with `FOTA_ERR_FLASH` and counted in `writes_outside_window`.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_allow_writes(sim: *mut FotaSim, start: u64, end: u64) -> i32 {
    // SAFETY: the caller's promise.
    let Some(sim) = (unsafe { sim_mut(sim) }) else {
        return FOTA_ERR_ARGUMENT;
    };
    if start > end || end > sim.flash.capacity() {
        return FOTA_ERR_ARGUMENT;
    }
    sim.flash
        .write_window
        .get_or_insert_with(Vec::new)
        .push((start, end));
    FOTA_OK
}

/// Starts recording the kind of every op from now on (programs and
/// erases), for `fota_sim_trace_op`.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_record_ops(sim: *mut FotaSim) -> i32 {
    // SAFETY: the caller's promise.
    let Some(sim) = (unsafe { sim_mut(sim) }) else {
        return FOTA_ERR_ARGUMENT;
    };
    sim.flash.trace = Some(Vec::new());
    FOTA_OK
}

/// The kind of the `index`th op recorded since `fota_sim_record_ops`:
/// `FOTA_SIM_OP_PROGRAM`, `FOTA_SIM_OP_ERASE`, or `FOTA_SIM_OP_NONE`.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_trace_op(sim: *mut FotaSim, index: u64) -> i32 {
    // SAFETY: the caller's promise.
    let Some(sim) = (unsafe { sim_mut(sim) }) else {
        return FOTA_SIM_OP_NONE;
    };
    let op = sim.flash.trace.as_ref().and_then(|t| {
        let i = usize::try_from(index).ok()?;
        t.get(i)
    });
    match op {
        Some(TraceOp::Write { .. }) => FOTA_SIM_OP_PROGRAM,
        Some(TraceOp::Erase { .. }) => FOTA_SIM_OP_ERASE,
        None => FOTA_SIM_OP_NONE,
    }
}

/// Cuts power at the `at`th program or erase from now (0 = the next one),
/// which ends as `variant` (`FOTA_SIM_CUT_*`; `seed` drives the torn
/// ones); from then on every program and erase fails with
/// `FOTA_ERR_POWER_LOST` until `fota_sim_power_on`.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_cut_at(
    sim: *mut FotaSim,
    at: u64,
    variant: u32,
    seed: u64,
) -> i32 {
    // SAFETY: the caller's promise.
    let Some(sim) = (unsafe { sim_mut(sim) }) else {
        return FOTA_ERR_ARGUMENT;
    };
    let Some(variant) = CutVariant::ALL.get(variant as usize) else {
        return FOTA_ERR_ARGUMENT;
    };
    sim.flash.cut_at(at, *variant, seed);
    FOTA_OK
}

/// Brings power back: no cut pending, programs and erases work again.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_power_on(sim: *mut FotaSim) -> i32 {
    // SAFETY: the caller's promise.
    let Some(sim) = (unsafe { sim_mut(sim) }) else {
        return FOTA_ERR_ARGUMENT;
    };
    sim.flash.power_on();
    FOTA_OK
}

/// Stores the flash's counters in `*stats`.
///
/// # Safety
/// `sim` as for every `fota_sim_*` call; `stats` writable.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_stats(sim: *mut FotaSim, stats: *mut FotaSimStats) -> i32 {
    // SAFETY: the caller's promise.
    let (Some(sim), Some(stats)) = (unsafe { sim_mut(sim) }, unsafe { stats.as_mut() }) else {
        return FOTA_ERR_ARGUMENT;
    };
    let f = &sim.flash;
    *stats = FotaSimStats {
        ops: f.ops,
        bytes_programmed: f.bytes_programmed,
        double_writes: f.double_writes,
        writes_outside_window: f.writes_outside_window,
        erases: f.erase_counts().iter().map(|&n| u64::from(n)).sum(),
        max_block_erases: f.erase_counts().iter().copied().max().unwrap_or(0),
    };
    FOTA_OK
}

/// The flash callbacks for `fota_agent_apply`, bound to `sim`, with its
/// geometry (a zeroed vtable for NULL, which `fota_agent_apply` refuses).
///
/// # Safety
/// `sim` must be NULL or a live `fota_sim_new` pointer; the vtable is
/// valid until `fota_sim_free`.
#[no_mangle]
pub unsafe extern "C" fn fota_sim_flash(sim: *mut FotaSim) -> FotaFlash {
    // SAFETY: the caller's promise.
    let geometry = unsafe { sim_mut(sim) }.map(|s| {
        (
            s.flash.capacity(),
            s.flash.read_size() as u32,
            s.flash.write_size() as u32,
            s.flash.erased_value(),
        )
    });
    let Some((capacity, read_size, write_size, erased_value)) = geometry else {
        return FotaFlash {
            ctx: core::ptr::null_mut(),
            read: None,
            write: None,
            erase: None,
            block_at: None,
            capacity: 0,
            read_size: 0,
            write_size: 0,
            erased_value: 0,
        };
    };
    FotaFlash {
        ctx: sim.cast::<c_void>(),
        read: Some(sim_read),
        write: Some(sim_write),
        erase: Some(sim_erase),
        block_at: Some(sim_block_at),
        capacity,
        read_size,
        write_size,
        erased_value,
    }
}

/// A caller's read-only buffer as a slice: empty when `len` is 0, `None`
/// when `ptr` is NULL or the span wraps.
///
/// # Safety
/// When `len` > 0, `ptr` must point to `len` readable bytes.
unsafe fn slice<'a>(ptr: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    Span::of(ptr, len)?;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: not NULL, `len` readable bytes (the caller's promise), not
    // wrapping (Span::of); u8 needs no alignment.
    Some(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// A caller's writable buffer as a slice: [`slice_mut`] once the span is
/// checked (`None` when it wraps).
///
/// # Safety
/// When `len` > 0, `ptr` must point to `len` writable bytes nothing else
/// accesses while the slice lives.
unsafe fn slice_out<'a>(ptr: *mut u8, len: usize) -> Option<&'a mut [u8]> {
    Span::of(ptr, len)?;
    // SAFETY: the caller's promise; the span is checked above.
    unsafe { slice_mut(ptr, len) }
}

fn in_flash(flash: &SimFlash, addr: u64, len: usize) -> bool {
    addr.checked_add(len as u64)
        .is_some_and(|end| end <= flash.capacity())
}

/// # Safety
/// `ctx` is the `FotaSim` of `fota_sim_flash`; `buf` writable for `len`.
unsafe extern "C" fn sim_read(ctx: *mut c_void, addr: u64, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: the vtable's contract.
    let (Some(sim), Some(buf)) = (unsafe { sim_mut(ctx.cast()) }, unsafe {
        slice_out(buf, len)
    }) else {
        return FOTA_ERR_ARGUMENT;
    };
    flash_status(block_on(sim.flash.read(addr, buf)))
}

/// # Safety
/// `ctx` is the `FotaSim` of `fota_sim_flash`; `data` readable for `len`.
unsafe extern "C" fn sim_write(ctx: *mut c_void, addr: u64, data: *const u8, len: usize) -> i32 {
    // SAFETY: the vtable's contract.
    let (Some(sim), Some(data)) = (unsafe { sim_mut(ctx.cast()) }, unsafe { slice(data, len) })
    else {
        return FOTA_ERR_ARGUMENT;
    };
    flash_status(block_on(sim.flash.write(addr, data)))
}

/// # Safety
/// `ctx` is the `FotaSim` of `fota_sim_flash`.
unsafe extern "C" fn sim_erase(ctx: *mut c_void, from: u64, to: u64) -> i32 {
    // SAFETY: the vtable's contract.
    let Some(sim) = (unsafe { sim_mut(ctx.cast()) }) else {
        return FOTA_ERR_ARGUMENT;
    };
    flash_status(block_on(sim.flash.erase(from, to)))
}

/// # Safety
/// `ctx` is the `FotaSim` of `fota_sim_flash`; `start` and `len` writable.
unsafe extern "C" fn sim_block_at(
    ctx: *mut c_void,
    addr: u64,
    start: *mut u64,
    len: *mut u64,
) -> i32 {
    // SAFETY: the vtable's contract.
    let (Some(sim), Some(start), Some(len)) = (
        unsafe { sim_mut(ctx.cast()) },
        unsafe { start.as_mut() },
        unsafe { len.as_mut() },
    ) else {
        return FOTA_ERR_ARGUMENT;
    };
    match sim.flash.block_at(addr) {
        Some(b) => {
            *start = b.start;
            *len = b.len;
            FOTA_OK
        }
        None => FOTA_ERR_FLASH,
    }
}

#[cfg(test)]
mod tests {
    use super::super::FOTA_ERR_POWER_LOST;
    use super::*;

    /// Every entry point refuses NULL and out-of-range input.
    #[test]
    fn bad_arguments_are_refused() {
        let blocks = [1024u64; 4];
        let null = core::ptr::null_mut::<FotaSim>();
        // SAFETY: NULL or live pointers to the stated lengths.
        unsafe {
            assert!(fota_sim_new(core::ptr::null(), 4, 4, 1, 0xff).is_null());
            assert!(fota_sim_new(blocks.as_ptr(), 0, 4, 1, 0xff).is_null());
            assert!(fota_sim_new(blocks.as_ptr(), 4, 0, 1, 0xff).is_null());
            assert!(fota_sim_new(blocks.as_ptr(), 4, 4, 1, 0x7f).is_null());
            assert!(fota_sim_new([1000u64].as_ptr(), 1, 16, 1, 0xff).is_null());
            assert_eq!(fota_sim_load(null, 0, [1u8].as_ptr(), 1), FOTA_ERR_ARGUMENT);
            assert_eq!(fota_sim_power_on(null), FOTA_ERR_ARGUMENT);
            assert_eq!(fota_sim_trace_op(null, 0), FOTA_SIM_OP_NONE);
            assert!(fota_sim_flash(null).read.is_none());
            fota_sim_free(null);

            let sim = fota_sim_new(blocks.as_ptr(), 4, 4, 1, 0xff);
            assert!(!sim.is_null());
            assert_eq!(
                fota_sim_load(sim, 4090, [0u8; 8].as_ptr(), 8),
                FOTA_ERR_ARGUMENT
            );
            assert_eq!(
                fota_sim_load(sim, 0, core::ptr::null(), 8),
                FOTA_ERR_ARGUMENT
            );
            let mut buf = [0u8; 8];
            assert_eq!(
                fota_sim_contents(sim, u64::MAX - 2, buf.as_mut_ptr(), 8),
                FOTA_ERR_ARGUMENT
            );
            // A buffer that wraps the address space (never dereferenced).
            let wrapping = (usize::MAX - 2) as *mut u8;
            assert_eq!(fota_sim_contents(sim, 0, wrapping, 8), FOTA_ERR_ARGUMENT);
            assert_eq!(fota_sim_load(sim, 0, wrapping, 8), FOTA_ERR_ARGUMENT);
            assert_eq!(fota_sim_allow_writes(sim, 2048, 1024), FOTA_ERR_ARGUMENT);
            assert_eq!(fota_sim_allow_writes(sim, 0, 8192), FOTA_ERR_ARGUMENT);
            assert_eq!(fota_sim_cut_at(sim, 0, 4, 0), FOTA_ERR_ARGUMENT);
            assert_eq!(
                fota_sim_stats(sim, core::ptr::null_mut()),
                FOTA_ERR_ARGUMENT
            );
            fota_sim_free(sim);
        }
    }

    /// Through the vtable: a window, a cut, power back, and the counters.
    #[test]
    fn the_vtable_drives_the_simulator() {
        let blocks = [256u64, 256, 512];
        // SAFETY: live pointers to the stated lengths; `sim` freed once.
        unsafe {
            let sim = fota_sim_new(blocks.as_ptr(), blocks.len(), 4, 1, 0xff);
            assert_eq!(fota_sim_load(sim, 0, [7u8; 16].as_ptr(), 16), FOTA_OK);
            assert_eq!(fota_sim_allow_writes(sim, 256, 1024), FOTA_OK);
            assert_eq!(fota_sim_record_ops(sim), FOTA_OK);
            let f = fota_sim_flash(sim);
            assert_eq!((f.capacity, f.write_size, f.erased_value), (1024, 4, 0xff));
            let (read, write, erase, block_at) = (
                f.read.unwrap(),
                f.write.unwrap(),
                f.erase.unwrap(),
                f.block_at.unwrap(),
            );
            let (mut start, mut len) = (0, 0);
            assert_eq!(block_at(f.ctx, 600, &mut start, &mut len), FOTA_OK);
            assert_eq!((start, len), (512, 512));
            assert_eq!(block_at(f.ctx, 1024, &mut start, &mut len), FOTA_ERR_FLASH);
            // Outside the window: refused, counted, not an op.
            assert_eq!(write(f.ctx, 0, [0u8; 4].as_ptr(), 4), FOTA_ERR_FLASH);
            assert_eq!(erase(f.ctx, 256, 512), FOTA_OK);
            assert_eq!(write(f.ctx, 256, [1u8, 2, 3, 4].as_ptr(), 4), FOTA_OK);
            let mut got = [0u8; 4];
            assert_eq!(read(f.ctx, 256, got.as_mut_ptr(), 4), FOTA_OK);
            assert_eq!(got, [1, 2, 3, 4]);
            assert_eq!(fota_sim_trace_op(sim, 0), FOTA_SIM_OP_ERASE);
            assert_eq!(fota_sim_trace_op(sim, 1), FOTA_SIM_OP_PROGRAM);
            assert_eq!(fota_sim_trace_op(sim, 2), FOTA_SIM_OP_NONE);
            // A cut at the next op: it and every later one fail.
            assert_eq!(fota_sim_cut_at(sim, 0, FOTA_SIM_CUT_NOT_DONE, 1), FOTA_OK);
            assert_eq!(write(f.ctx, 260, [5u8; 4].as_ptr(), 4), FOTA_ERR_POWER_LOST);
            assert_eq!(erase(f.ctx, 512, 1024), FOTA_ERR_POWER_LOST);
            assert_eq!(fota_sim_power_on(sim), FOTA_OK);
            assert_eq!(write(f.ctx, 260, [5u8; 4].as_ptr(), 4), FOTA_OK);
            let mut stats = FotaSimStats::default();
            assert_eq!(fota_sim_stats(sim, &mut stats), FOTA_OK);
            assert_eq!(stats.writes_outside_window, 1);
            assert_eq!((stats.erases, stats.max_block_erases), (1, 1));
            assert_eq!(stats.double_writes, 0);
            let mut raw = [0u8; 8];
            assert_eq!(fota_sim_contents(sim, 256, raw.as_mut_ptr(), 8), FOTA_OK);
            assert_eq!(raw, [1, 2, 3, 4, 5, 5, 5, 5]);
            assert_eq!(fota_sim_contents(sim, 0, raw.as_mut_ptr(), 8), FOTA_OK);
            assert_eq!(raw, [7; 8]);
            fota_sim_free(sim);
        }
    }
}
