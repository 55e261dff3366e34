#![no_main]

#[path = "../src/omadm.rs"]
mod omadm;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    omadm::omadm(data);
});
