//! What the server's fuzz targets do with their input, shared with the
//! seed replay test `server/tests/fuzz_seeds.rs`, which includes this file
//! as a module. So: no libfuzzer-sys here, only `fota-server`.
//!
//! Besides "no panic", each function checks what the parser promises: a
//! document it accepts writes back to XML that parses to the same
//! document.

use fota_server::iota::mmc::{Mmc, MmcResult};

/// MMC documents of both directions, from handset or attacker bytes.
pub fn mmc(data: &[u8]) {
    if let Ok(doc) = Mmc::parse(data) {
        let again = Mmc::parse(doc.to_xml().as_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&doc),
            "server document does not round-trip"
        );
    }
    if let Ok(doc) = MmcResult::parse(data) {
        let again = MmcResult::parse(doc.to_xml().as_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&doc),
            "handset document does not round-trip"
        );
    }
}
