//! Handing memory the generator freed back to the system between stages.
//!
//! The generator's stages each hold a few large buffers for a while: a
//! suffix array of four bytes per source byte, transformed copies of both
//! images, LZMA encoders of about ten times their dictionary. glibc keeps
//! what a stage frees in its heaps (after the first large free it serves
//! even 30 MB requests from them), so the resident set of a run grows to
//! the sum of every stage's high-water mark rather than the largest one.
//! Trimming at stage boundaries keeps the peak near the largest stage,
//! without making every large allocation a fresh `mmap` (which costs its
//! page faults each time: about 10 % of generation time when tried).

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
