//! What the `omadm` fuzz target does with its input, shared with the seed
//! replay test `server/tests/omadm_fuzz_seeds.rs`, which includes this file
//! as a module (as the target does): no libfuzzer-sys here.
//!
//! Besides "no panic", it checks what the parsers promise: a message either
//! codec accepts writes back, in both forms, to the same message; a
//! server session takes any bytes as a typed error or a step.

use fota_server::omadm::notification::Notification;
use fota_server::omadm::session::{DeviceSecrets, ServerConfig, ServerSession};
use fota_server::omadm::{wbxml, xml, CONTENT_TYPE_WBXML, CONTENT_TYPE_XML};

/// SyncML DM messages (XML and WBXML), package #0 and a session's first
/// message, from device or attacker bytes.
pub fn omadm(data: &[u8]) {
    for msg in [xml::parse(data), wbxml::parse(data)].into_iter().flatten() {
        let again = xml::parse(xml::write(&msg).as_bytes());
        assert_eq!(again.as_ref(), Ok(&msg), "XML does not round-trip");
        let again = wbxml::parse(&wbxml::write(&msg));
        assert_eq!(again.as_ref(), Ok(&msg), "WBXML does not round-trip");
    }
    let _ = Notification::parse(data);
    let mut config = ServerConfig::new("http://fuzz");
    config.client_auth = None;
    for ct in [CONTENT_TYPE_XML, CONTENT_TYPE_WBXML] {
        if let Ok(mut session) = ServerSession::new(config.clone(), DeviceSecrets::default()) {
            let _ = session.receive(data, ct, None);
        }
    }
}
