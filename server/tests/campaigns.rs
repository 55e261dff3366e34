//! Network-initiated campaigns over real HTTP: notifications in the
//! outbox (WAP push for IOTA, package #0 for DM), delivered to simulated
//! devices; mandatory updates installed after N postponements; progress.

mod common;

use std::collections::HashMap;

use common::*;
use fota_server::device::{ConsentPolicy, Device};
use fota_server::registry::Capability;
use serde_json::json;

async fn deliver(f: &Fixture, devices: &mut HashMap<String, Device>) -> HashMap<String, String> {
    let (s, b) = f.admin("GET", "/outbox", None).await;
    assert_eq!(s, 200, "{b}");
    let mut results = HashMap::new();
    for item in b["outbox"].as_array().unwrap() {
        let id = item["device_id"].as_str().unwrap();
        let dev = devices.get_mut(id).unwrap();
        let s = dev
            .on_notification(
                item["transport"].as_str().unwrap(),
                item["payload"].as_str().unwrap(),
            )
            .await
            .unwrap();
        results.insert(id.to_string(), s.result);
        let (st, _) = f
            .admin(
                "POST",
                &format!("/outbox/{}/sent", item["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(st, 200);
    }
    results
}

#[tokio::test]
async fn a_mandatory_campaign_installs_after_the_postponements() {
    let f = start().await;
    let pkg = f.line_with_package().await;
    let mut devices = HashMap::new();
    let plan = [
        ("10000001", Capability::OmaDm, ConsentPolicy::Accept),
        ("10000002", Capability::OmaDm, ConsentPolicy::Refuse),
        ("10000003", Capability::Iota, ConsentPolicy::Accept),
        ("10000004", Capability::Iota, ConsentPolicy::Refuse),
    ];
    for (id, cap, consent) in plan {
        let (d, _) = f.device(id, cap, 0, consent, opts(None, None)).await;
        devices.insert(id.to_string(), d);
    }
    // Another model's device and one on another version are not selected.
    f.register("10000005", Capability::Iota, 1).await;
    let (s, b) = f
        .admin("POST", "/campaigns", Some(json!({"name": "spring", "package_id": pkg, "mandatory": true, "max_postponements": 1})))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["campaign"]["notified"], 4, "{b}");
    let cid = b["campaign"]["id"].as_str().unwrap().to_string();
    let (_, out) = f.admin("GET", "/outbox", None).await;
    let items = out["outbox"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for it in items {
        let (transport, app_id) = (
            it["transport"].as_str().unwrap(),
            it["app_id"].as_u64().unwrap(),
        );
        match transport {
            "wap-push" => {
                assert_eq!(app_id, 0x8010);
                assert!(it["payload"].as_str().unwrap().len() <= 128);
            }
            "dm-notification" => assert_eq!(app_id, 0x44),
            t => panic!("transport {t}"),
        }
    }
    let r = deliver(&f, &mut devices).await;
    assert_eq!(r["10000001"], "installed");
    assert_eq!(r["10000003"], "installed");
    assert_eq!(r["10000002"], "refused");
    assert_eq!(r["10000004"], "refused");
    let (_, p) = f.admin("GET", &format!("/campaigns/{cid}"), None).await;
    assert_eq!(p["progress"]["by_state"]["installed"], 2, "{p}");
    assert_eq!(p["progress"]["by_state"]["postponed"], 2, "{p}");
    // Out of postponements: the next push installs without asking.
    let (s, b) = f
        .admin("POST", &format!("/campaigns/{cid}/renotify"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["renotified"], 2);
    let r = deliver(&f, &mut devices).await;
    assert_eq!(r["10000002"], "installed", "{r:?}");
    assert_eq!(r["10000004"], "installed", "{r:?}");
    let (_, p) = f.admin("GET", &format!("/campaigns/{cid}"), None).await;
    assert_eq!(p["progress"]["by_state"]["installed"], 4, "{p}");
    assert_eq!(p["progress"]["total"], 4, "{p}");
    for d in devices.values() {
        assert_eq!(d.state.fw_version, version(1));
        assert_eq!(d.running_image().unwrap()[..image(1).len()], image(1)[..]);
    }
}

#[tokio::test]
async fn a_campaign_by_id_list_refuses_unknown_ids_and_skips_the_unfit() {
    let f = start().await;
    let pkg = f.line_with_package().await;
    f.register("20000001", Capability::OmaDm, 0).await;
    f.register("20000002", Capability::OmaDm, 1).await;
    let (s, b) = f
        .admin(
            "POST",
            "/campaigns",
            Some(json!({"name": "x", "package_id": pkg, "device_ids_csv": "20000001\n99999999\n"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("99999999"), "{b}");
    let (s, b) = f
        .admin("POST", "/campaigns", Some(json!({"name": "x", "package_id": pkg, "device_ids_csv": "id\n20000001\n20000002\n20000001\n"})))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["campaign"]["notified"], 1, "{b}");
    assert!(
        b["campaign"]["skipped"][0][1]
            .as_str()
            .unwrap()
            .contains("runs 1.1.0"),
        "{b}"
    );
    let (s, b) = f
        .admin(
            "POST",
            "/campaigns",
            Some(json!({"name": "x", "package_id": "nope"})),
        )
        .await;
    assert_eq!(s, 404, "{b}");
}

#[tokio::test]
async fn a_tampered_push_is_dropped() {
    let f = start().await;
    let pkg = f.line_with_package().await;
    let (mut dm, _) = f
        .device(
            "30000001",
            Capability::OmaDm,
            0,
            ConsentPolicy::Accept,
            opts(None, None),
        )
        .await;
    let (mut iota, _) = f
        .device(
            "30000002",
            Capability::Iota,
            0,
            ConsentPolicy::Accept,
            opts(None, None),
        )
        .await;
    f.admin(
        "POST",
        "/campaigns",
        Some(json!({"name": "x", "package_id": pkg})),
    )
    .await;
    let (_, out) = f.admin("GET", "/outbox", None).await;
    for it in out["outbox"].as_array().unwrap() {
        let payload = it["payload"].as_str().unwrap();
        match it["transport"].as_str().unwrap() {
            "wap-push" => {
                let evil = payload.replace("127.0.0.1", "evil.example");
                let e = iota
                    .on_notification("wap-push", &evil)
                    .await
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("not trusted"), "{e}");
            }
            _ => {
                use base64::Engine as _;
                let mut b = base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .unwrap();
                b[0] ^= 1;
                let bad = base64::engine::general_purpose::STANDARD.encode(b);
                let e = dm
                    .on_notification("dm-notification", &bad)
                    .await
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("package #0"), "{e}");
            }
        }
    }
}

#[tokio::test]
async fn esn_change_keeps_history_and_moves_the_pending_update() {
    let f = start().await;
    let pkg = f.line_with_package().await;
    f.register("40000001", Capability::Iota, 0).await;
    f.admin(
        "POST",
        "/campaigns",
        Some(json!({"name": "x", "package_id": pkg})),
    )
    .await;
    let (s, b) = f
        .admin(
            "POST",
            "/devices/40000001/change-id",
            Some(json!({"new_id": "40000002"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["device"]["previous_ids"][0][0], "40000001", "{b}");
    let d = f.device_json("40000002").await;
    assert_eq!(d["updates"][0]["state"], "notified", "{d}");
    let (s, _) = f.admin("GET", "/devices/40000001", None).await;
    assert_eq!(s, 404);
    let (s, b) = f
        .admin(
            "POST",
            "/devices/40000002/change-id",
            Some(json!({"new_id": "bad"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    // The outbox notification follows the device.
    let (_, out) = f.admin("GET", "/outbox", None).await;
    assert_eq!(out["outbox"][0]["device_id"], "40000002");
}

#[tokio::test]
async fn purge_archives_old_deactivated_devices_and_reimport_restores_them() {
    let f = start().await;
    let csv = "esn,make,model,version,capability,subscriber,active\n\
               50000001,Acme,Phone 1,1.0.0,iota,alice,true\n\
               50000002,Acme,Phone 1,1.0.0,oma-dm,\"bob, jr\",false\n\
               50000003,Acme,Phone 1,1.0.0,iota,carol,yes\n";
    let (s, b) = f
        .admin_raw("/devices/import", csv.as_bytes().to_vec())
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["imported"], 3);
    // All or nothing: a file with a known id imports none.
    let (s, b) = f
        .admin_raw(
            "/devices/import",
            b"id,make,model,fw_version,capability\n50000009,A,B,1,iota\n50000001,A,B,1,iota\n"
                .to_vec(),
        )
        .await;
    assert_eq!(s, 409, "{b}");
    let (s, _) = f.admin("GET", "/devices/50000009", None).await;
    assert_eq!(s, 404);
    let (s, b) = f
        .admin_raw(
            "/devices/import",
            b"id,make,model,fw_version,capability,colour\n".to_vec(),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("colour"), "{b}");
    f.admin(
        "POST",
        "/devices/50000003/change-id",
        Some(json!({"new_id": "50000004"})),
    )
    .await;
    f.admin("POST", "/devices/50000004/deactivate", None).await;
    // Not yet due with the default period.
    let (_, b) = f.admin("POST", "/purge", None).await;
    assert_eq!(b["purge"]["purged"], 0, "{b}");
    let (s, b) = f.admin("POST", "/purge?after_days=0", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["purge"]["purged"], 2, "{b}");
    let archive = b["purge"]["archive"].as_str().unwrap().to_string();
    for id in ["50000002", "50000004"] {
        let (s, _) = f.admin("GET", &format!("/devices/{id}"), None).await;
        assert_eq!(s, 404);
    }
    let (s, _) = f.admin("GET", "/devices/50000001", None).await;
    assert_eq!(s, 200);
    let bytes = std::fs::read(&archive).unwrap();
    let (s, b) = f.admin_raw("/archive/import", bytes.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["restored"], 2);
    let d = f.device_json("50000004").await;
    assert_eq!(d["device"]["active"], false, "{d}");
    assert_eq!(d["device"]["subscriber"], "carol", "{d}");
    assert_eq!(d["device"]["previous_ids"][0][0], "50000003", "{d}");
    let d = f.device_json("50000002").await;
    assert_eq!(d["device"]["subscriber"], "bob, jr", "{d}");
    // Twice is a conflict, a damaged archive an error.
    let (s, _) = f.admin_raw("/archive/import", bytes.clone()).await;
    assert_eq!(s, 409);
    let (s, b) = f
        .admin_raw("/archive/import", bytes[..bytes.len() / 2].to_vec())
        .await;
    assert_eq!(s, 400, "{b}");
}
