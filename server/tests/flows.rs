//! The client-initiated flow end to end over real HTTP on 127.0.0.1, for
//! both protocols, with a dropped download and a power cut during the
//! install, and every failure the issue names.

mod common;

use common::*;
use fota_server::device::flash::Faults;
use fota_server::device::{ConsentPolicy, Options};
use fota_server::registry::Capability;

async fn full_flow(cap: Capability, id: &str) {
    let f = start().await;
    f.line_with_package().await;
    let drop_at = 700;
    let (mut dev, log) = f
        .device(
            id,
            cap,
            0,
            ConsentPolicy::Accept,
            opts(Some(drop_at), Some(9)),
        )
        .await;
    let s = dev
        .check()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log.text()));
    let text = log.text();
    assert_eq!(s.result, "installed", "{text}");
    assert_eq!(s.fw_version, version(1));
    // The flash holds the new image.
    let img = dev.running_image().unwrap();
    assert_eq!(&img[..image(1).len()], &image(1)[..], "{text}");
    // Resumed download: at most the package plus the one resumed range.
    let size = s.package_size.unwrap();
    assert!(
        s.bytes_fetched <= size + (size - drop_at),
        "{} > {size} + range\n{text}",
        s.bytes_fetched
    );
    for step in [
        "redirect  302",
        "connection lost after 700 bytes",
        "resuming at byte 700",
        "POWER CUT",
        "resumed from the journal",
        "reboot",
        "emergency",
    ] {
        assert!(text.contains(step), "no {step:?} in\n{text}");
    }
    // The server's view: the update installed, the device on the new version.
    let d = f.device_json(id).await;
    assert_eq!(d["device"]["fw_version"], version(1), "{d}");
    assert_eq!(d["updates"][0]["state"], "installed", "{d}");
    assert!(
        d["updates"][0]["bytes_served"].as_i64().unwrap() as u64 <= size + (size - drop_at),
        "{d}"
    );
    let kinds: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"install-notify"), "{kinds:?}");
    // A second check finds nothing more.
    let again = dev.check().await.unwrap();
    assert_eq!(again.result, "up to date");
    f.server.stop().await.unwrap();
}

#[tokio::test]
async fn dm_device_updates_through_the_whole_flow() {
    full_flow(Capability::OmaDm, "356938035643809").await;
}

#[tokio::test]
async fn iota_device_updates_through_the_whole_flow() {
    full_flow(Capability::Iota, "A1000012345678").await;
}

#[tokio::test]
async fn dm_device_over_wbxml_with_a_download_descriptor() {
    let f = start_with(|c| c.download_descriptor = true).await;
    f.line_with_package().await;
    let (mut dev, log) = f
        .device(
            "490154203237518",
            Capability::OmaDm,
            0,
            ConsentPolicy::Accept,
            opts(None, None),
        )
        .await;
    dev.state.dm_wbxml = true;
    let s = dev
        .check()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log.text()));
    assert_eq!(s.result, "installed", "{}", log.text());
    assert!(log.text().contains("descriptor"), "{}", log.text());
}

#[tokio::test]
async fn check_in_refuses_unknown_deactivated_malformed_and_mismatching_devices() {
    let f = start().await;
    f.line_with_package().await;
    let get = |q: String| {
        let http = f.http.clone();
        let url = format!("{}/fota/check?{q}", f.base);
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (s, b) = get("id=12345678".into()).await;
    assert_eq!(s, 404, "{b}");
    assert!(b.contains("12345678") && b.contains("not known"), "{b}");
    let (s, b) = get("id=xyz".into()).await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = get(String::new()).await;
    assert_eq!(s, 400, "{b}");
    f.register("ABCDEF01", Capability::Iota, 0).await;
    let (s, b) = get("id=ABCDEF01&make=Other".into()).await;
    assert_eq!(s, 409, "{b}");
    assert!(b.contains("Other"), "{b}");
    let (s, _) = f.admin("POST", "/devices/ABCDEF01/deactivate", None).await;
    assert_eq!(s, 200);
    let (s, b) = get("id=ABCDEF01".into()).await;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("deactivated"), "{b}");
    // The simulator gets the same clear error.
    let (mut dev, _) = f
        .device(
            "DEADBEEF",
            Capability::OmaDm,
            0,
            ConsentPolicy::Accept,
            opts(None, None),
        )
        .await;
    f.admin("POST", "/devices/DEADBEEF/deactivate", None).await;
    let e = dev.check().await.unwrap_err().to_string();
    assert!(e.contains("403") && e.contains("deactivated"), "{e}");
}

#[tokio::test]
async fn a_device_on_a_version_without_package_is_told_none() {
    let f = start().await;
    f.line_with_package().await;
    for (id, cap) in [
        ("11111111", Capability::OmaDm),
        ("22222222", Capability::Iota),
    ] {
        // Version 1 has no package onwards.
        let (mut dev, log) = f
            .device(id, cap, 1, ConsentPolicy::Accept, opts(None, None))
            .await;
        let s = dev
            .check()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log.text()));
        assert_eq!(s.result, "up to date", "{}", log.text());
        assert_eq!(
            f.device_json(id).await["updates"].as_array().unwrap().len(),
            0
        );
    }
}

#[tokio::test]
async fn consent_refused_is_recorded_for_both_protocols() {
    let f = start().await;
    f.line_with_package().await;
    for (id, cap) in [
        ("33333333", Capability::OmaDm),
        ("44444444", Capability::Iota),
    ] {
        let (mut dev, log) = f
            .device(id, cap, 0, ConsentPolicy::Refuse, opts(None, None))
            .await;
        let s = dev
            .check()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log.text()));
        assert_eq!(s.result, "refused", "{}", log.text());
        assert_eq!(s.fw_version, version(0));
        assert!(log.text().contains("the user declines"), "{}", log.text());
        let d = f.device_json(id).await;
        assert_eq!(d["updates"][0]["state"], "refused", "{d}");
        assert_eq!(dev.running_image().unwrap()[..image(0).len()], image(0)[..]);
    }
}

#[tokio::test]
async fn an_install_failure_is_reported_with_its_code() {
    let f = start().await;
    f.line_with_package().await;
    let broken = Options {
        drop_after: None,
        faults: Faults {
            cut_after_ops: None,
            broken: true,
        },
        yes: false,
    };
    for (id, cap, code) in [
        ("55555555", Capability::OmaDm, 410),
        ("66666666", Capability::Iota, 17),
    ] {
        let (mut dev, log) = f.device(id, cap, 0, ConsentPolicy::Accept, broken).await;
        let s = dev
            .check()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", log.text()));
        assert_eq!(s.result, "failed", "{}", log.text());
        let d = f.device_json(id).await;
        assert_eq!(d["updates"][0]["state"], "failed", "{d}");
        assert_eq!(d["updates"][0]["result_code"], code, "{d}");
        assert_eq!(d["device"]["fw_version"], version(0), "{d}");
    }
}

#[tokio::test]
async fn uploads_are_checked_before_they_are_offered() {
    let f = start().await;
    f.firmware(2).await;
    let notes = "notes";
    // Signed by another key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let (s, b) = f.upload(package(0, 1, notes, &other, CLASS), notes).await;
    assert_eq!(s, 422, "{b}");
    assert!(b["message"].as_str().unwrap().contains("signature"), "{b}");
    // Another device class.
    let (s, b) = f
        .upload(package(0, 1, notes, &f.key, "other-class"), notes)
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("device class"),
        "{b}"
    );
    // Notes that are not the ones signed.
    let (s, b) = f
        .upload(package(0, 1, notes, &f.key, CLASS), "other notes")
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("release notes"),
        "{b}"
    );
    // A version the repository does not know.
    let (s, b) = f.upload(package(0, 3, notes, &f.key, CLASS), notes).await;
    assert_eq!(s, 422, "{b}");
    assert!(b["message"].as_str().unwrap().contains("1.3.0"), "{b}");
    // Damaged bytes.
    let mut bad = package(0, 1, notes, &f.key, CLASS);
    let n = bad.len();
    bad[n - 10] ^= 1;
    let (s, b) = f.upload(bad, notes).await;
    assert_eq!(s, 422, "{b}");
    // Nothing was stored; a good one is, once.
    let (_, list) = f.admin("GET", "/packages", None).await;
    assert_eq!(list["packages"].as_array().unwrap().len(), 0);
    let (s, b) = f.upload(package(0, 1, notes, &f.key, CLASS), notes).await;
    assert_eq!(s, 201, "{b}");
    let (s, b) = f.upload(package(0, 1, notes, &f.key, CLASS), notes).await;
    assert_eq!(s, 409, "{b}");
    // The admin API wants its token.
    let r = f
        .http
        .get(format!("{}/admin/v1/packages", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = f
        .http
        .get(format!("{}/admin/v1/packages", f.base))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn downloads_answer_ranges_and_validators() {
    let f = start().await;
    let pkg = f.line_with_package().await;
    f.register("77777777", Capability::Iota, 0).await;
    // An update to download, as an offer would make it.
    let u = fota_server::updates::create(
        &f.server.state.db,
        "77777777",
        &pkg,
        None,
        fota_server::updates::State::Offered,
    )
    .await
    .unwrap();
    let url = format!("{}/dl/{}", f.base, u.id);
    let full = f.http.get(&url).send().await.unwrap();
    assert_eq!(full.status().as_u16(), 200);
    let etag = full.headers()["etag"].to_str().unwrap().to_string();
    let bytes = full.bytes().await.unwrap();
    let len = bytes.len();
    let r = f
        .http
        .get(&url)
        .header("range", "bytes=100-199")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{len}").as_str()
    );
    assert_eq!(r.bytes().await.unwrap()[..], bytes[100..200]);
    let r = f
        .http
        .get(&url)
        .header("range", "bytes=100-")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = f
        .http
        .get(&url)
        .header("range", format!("bytes={len}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{len}").as_str()
    );
    let r = f
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
    let r = f
        .http
        .get(format!("{}/dl/nope", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // Install notify: a bad body is refused, 900 moves the update.
    let r = f
        .http
        .post(format!("{url}/notify"))
        .body("999 What")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = f
        .http
        .post(format!("{url}/notify"))
        .body("900 Success")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let d = f.device_json("77777777").await;
    assert_eq!(d["updates"][0]["state"], "downloaded", "{d}");
}
