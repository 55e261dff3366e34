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

/// OMA download descriptors a device fetches: an accepted one writes back
/// to XML that reads the same.
pub fn dd(data: &[u8]) {
    use fota_server::download::Descriptor;
    if let Ok(d) = Descriptor::parse(data) {
        let again = Descriptor::parse(d.to_xml().as_bytes());
        assert_eq!(again.as_ref(), Ok(&d), "descriptor does not round-trip");
    }
}

/// Install-notify bodies a device posts: an accepted status writes back
/// to a body that reads the same status.
pub fn notify(data: &[u8]) {
    use fota_server::download::{install_notify_body, parse_install_notify};
    if let Ok((status, _)) = parse_install_notify(data) {
        let body = install_notify_body(status);
        assert_eq!(
            parse_install_notify(body.as_bytes()).map(|(s, _)| s),
            Ok(status)
        );
    }
}

/// Device CSV files and campaign id lists an operator uploads.
pub fn csv(data: &[u8]) {
    use fota_server::registry::csv_import::{parse_devices, parse_id_list};
    if let Ok(devices) = parse_devices(data) {
        let mut ids: Vec<_> = devices.iter().map(|d| d.id.clone()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate ids accepted");
    }
    let _ = parse_id_list(data);
}

/// Registry archives given back for re-import.
pub fn archive(data: &[u8]) {
    use fota_server::registry::archive::{read, write};
    if let Ok(a) = read(data) {
        let mut out = Vec::new();
        write(&mut out, a.created_at, &a.devices).unwrap();
        let again = read(&out[..]).unwrap();
        assert_eq!(again, a, "archive does not round-trip");
    }
}

/// A handset answering whatever a (possibly hostile) server sends.
pub fn handset(data: &[u8]) {
    use fota_server::iota::handset::{
        Always, Consent, HandsetConfig, HandsetPurpose, HandsetSession,
    };
    let cfg = HandsetConfig {
        esn: Some("ABCDEF01".into()),
        meid: None,
        man: "Acme".into(),
        model: "P1".into(),
        fw_version: "1.0".into(),
        trusted_domain: "example.net".into(),
    };
    let mut s = HandsetSession::new(cfg, "S", HandsetPurpose::Check);
    let _ = s.hello();
    let mut user = Always(Consent::Accept);
    // The same bytes twice: a repeat must be answered the same.
    let a = s.handle(data, &mut user);
    let b = s.handle(data, &mut user);
    if let (Ok(a), Ok(b)) = (&a, &b) {
        assert_eq!(a, b, "a repeated document got another answer");
    }
}

/// DDI feedback and configData bodies a polling device sends: an accepted
/// one, written back as plain JSON, reads the same.
pub fn ddi(data: &[u8]) {
    use fota_server::ddi::{ConfigData, ConfigMode, Feedback};
    if let Ok(f) = Feedback::parse(data) {
        let _ = (f.summary(), f.all_chunks_done());
        let mut result = serde_json::json!({ "finished": f.finished.as_str() });
        if let Some((cnt, of)) = f.progress {
            result["progress"] = serde_json::json!({ "cnt": cnt, "of": of });
        }
        let again = serde_json::json!({
            "status": { "execution": f.execution.as_str(), "result": result, "details": f.details },
        });
        let back = Feedback::parse(again.to_string().as_bytes());
        assert_eq!(back.as_ref(), Ok(&f), "feedback does not round-trip");
    }
    if let Ok(c) = ConfigData::parse(data) {
        let mode = match c.mode {
            ConfigMode::Merge => "merge",
            ConfigMode::Replace => "replace",
            ConfigMode::Remove => "remove",
        };
        let again = serde_json::json!({ "data": c.data, "mode": mode });
        let back = ConfigData::parse(again.to_string().as_bytes());
        assert_eq!(back.as_ref(), Ok(&c), "configData does not round-trip");
        let _ = c.apply(Default::default());
    }
}

/// `.swu` archives an operator uploads: the members of an accepted one,
/// written again as a cpio newc archive, read the same.
pub fn swu(data: &[u8]) {
    use fota_server::artifacts::cpio_members;
    if let Ok(members) = cpio_members(data) {
        let mut out = Vec::new();
        let trailer: [(&str, &[u8]); 1] = [("TRAILER!!!", b"")];
        let list: Vec<(&str, &[u8])> = members.iter().map(|m| (m.name, m.data)).collect();
        for (i, (name, body)) in list.iter().chain(trailer.iter()).enumerate() {
            out.extend_from_slice(b"070701");
            for v in [
                i + 1,
                0o100644,
                0,
                0,
                1,
                0,
                body.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0,
            ] {
                out.extend_from_slice(format!("{v:08X}").as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.resize(out.len().next_multiple_of(4), 0);
            out.extend_from_slice(body);
            out.resize(out.len().next_multiple_of(4), 0);
        }
        let again = cpio_members(&out).expect("a rewritten archive reads");
        let back: Vec<(&str, &[u8])> = again.iter().map(|m| (m.name, m.data)).collect();
        assert_eq!(back, list, "archive does not round-trip");
    }
}

/// Mender documents a device sends (auth request, status, inventory,
/// log) and Mender artifacts an operator uploads: no panic; an accepted
/// inventory written back as a list reads the same.
pub fn mender(data: &[u8]) {
    use fota_server::mender::{log_errors, parse_inventory, AuthRequest, Status};
    let _ = AuthRequest::verify(data, "AAAA");
    let _ = Status::parse(data);
    let _ = log_errors(data);
    if let Ok(inv) = parse_inventory(data) {
        let list: Vec<serde_json::Value> = inv
            .iter()
            .map(|(k, v)| serde_json::json!({ "name": k, "value": v }))
            .collect();
        let again = parse_inventory(serde_json::Value::from(list).to_string().as_bytes());
        assert_eq!(again.as_ref(), Ok(&inv), "inventory does not round-trip");
    }
    let _ = fota_server::artifacts::tar_members(data);
}
