#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fota_server_fuzz::mender(data);
});
