#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fota_format_fuzz::lzma_payload(data);
});
