//! `memory::release_freed` hands freed heap pages back, and
//! `memory::map_large_allocations` makes large buffers go back when freed:
//! one test in its own process, so no other test's allocations move the
//! resident set while it measures.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_memory_leaves_the_resident_set() {
    // First, while the heap has no free run as large as the buffers: glibc
    // serves a request from free heap chunks before it maps anything.
    large_buffers_leave_when_freed();
    freed_heap_pages_leave_on_release();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn freed_heap_pages_leave_on_release() {
    // 32 MiB in chunks small enough for the heap (not one mmap each), then
    // a small allocation after them, so that freeing them leaves free
    // chunks inside the heap that the allocator keeps by itself.
    let mut chunks: Vec<Vec<u8>> = (0..512).map(|i| vec![i as u8 | 1; 64 << 10]).collect();
    let pin = std::hint::black_box(vec![7u8; 64]);
    let touched = resident_bytes();
    chunks.clear();
    chunks.shrink_to_fit();
    let kept = resident_bytes();
    fota_generator::memory::release_freed();
    let after = resident_bytes();
    assert_eq!(pin[63], 7);
    println!("touched {touched}, after free {kept}, after release {after}");
    assert!(
        kept + (8 << 20) > touched,
        "the allocator kept the pages itself"
    );
    assert!(
        after + (16 << 20) < kept,
        "release gave back at least 16 MiB"
    );
}

/// Sets the mapping threshold for the rest of the process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn large_buffers_leave_when_freed() {
    // Without this call the freed 8 MiB below stays resident (glibc 2.36).
    fota_generator::memory::map_large_allocations();
    // A 16 MiB buffer freed: glibc's own threshold would now serve
    // anything smaller from its heap.
    drop(std::hint::black_box(vec![1u8; 16 << 20]));
    // An 8 MiB buffer with a small allocation after it, so that its pages
    // are not at the top of the heap, where glibc trims by itself.
    let big = std::hint::black_box(vec![3u8; 8 << 20]);
    let pin = std::hint::black_box(vec![7u8; 64]);
    let touched = resident_bytes();
    drop(big);
    let after = resident_bytes();
    assert_eq!(pin[63], 7);
    println!("touched {touched}, after free {after}");
    assert!(
        after + (6 << 20) < touched,
        "the freed 8 MiB stayed resident"
    );
}
