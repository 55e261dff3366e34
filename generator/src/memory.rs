//! Handing memory the generator freed back to the system between stages.
//!
//! The generator's stages each hold a few large buffers for a while: a
//! suffix array of four bytes per source byte, transformed copies of both
//! images, LZMA encoders of about ten times their dictionary. glibc keeps
//! what a stage frees in its heaps (after the first large free it serves
//! even 30 MB requests from them), so the resident set of a run grows to
//! the sum of every stage's high-water mark rather than the largest one.
//! Trimming at stage boundaries keeps the peak near the largest stage.
//!
//! Trimming gives back only whole free pages at the top of a heap or
//! between live chunks, so a process that owns its allocator also makes
//! the largest buffers mappings of their own ([`map_large_allocations`]):
//! those go back the moment they are freed, whatever lies around them.

/// Returns the free pages of the allocator's heaps to the system. A no-op
/// where the allocator is not glibc's.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` takes no pointers and only releases pages of
    // free chunks that glibc's allocator owns; it is thread-safe (it locks
    // each arena it walks).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Allocations of this many bytes or more get a mapping of their own. Set
/// at 4 MiB, not glibc's 128 KiB start: a 1 MiB threshold gave the same
/// peak on the corpus's large pairs but cost up to 10 % of generation
/// time in page faults of buffers allocated again and again.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Makes every allocation of [`MMAP_THRESHOLD`] bytes or more a mapping of
/// its own, which goes back to the system when it is freed (unless a free
/// run of the heap already holds it: glibc looks there first). glibc's own
/// threshold follows the largest mapped block freed so far (up to 32 MiB),
/// so after the first large buffer is freed the next ones come from its
/// heaps, and fragments of them stay resident: with it, generating the
/// corpus's 9 MB pairs peaked at 9 to 10 times the two images, with this
/// at under 6 times.
///
/// A setting of the whole process, so the library never makes it itself:
/// the `fota` binary does at start, and a program that links the
/// generator decides for its own process. A no-op where the allocator is
/// not glibc's.
pub fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` takes no pointers; M_MMAP_THRESHOLD only changes
    // which future allocations glibc serves by `mmap`, and glibc takes its
    // own lock to change it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}
