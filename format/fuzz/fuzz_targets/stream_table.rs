#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = fota_format_fuzz::stream_table(data);
});
