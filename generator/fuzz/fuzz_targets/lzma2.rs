#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fota_generator_fuzz::lzma2(data);
});
