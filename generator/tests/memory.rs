//! `memory::release_freed` hands freed heap pages back: its own process, so
//! no other test's allocations move the resident set while it measures.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_heap_pages_leave_the_resident_set() {
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
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
