//! `memory::map_large_allocations` makes large buffers go back to the
//! system when freed: its own process, so no other test's allocations move
//! the resident set while it measures.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn large_buffers_leave_the_resident_set_when_freed() {
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
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
