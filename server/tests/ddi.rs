//! hawkBit DDI on the server, driven with the requests swupdate 2022.12's
//! suricatta makes (order, headers and bodies as captured from it, raw
//! newlines in failure details included): poll, configData, deployment,
//! artifact download with a resumed range, feedback; and the refusals.

mod common;

use common::{start, Fixture, ADMIN};
use fota_server::registry::Capability;
use serde_json::{json, Value};
use sha1::{Digest as _, Sha1};

/// A cpio newc archive of `files`, as `fota export swu` writes them.
fn swu(files: &[(&str, &[u8])]) -> Vec<u8> {
    fota_generator::export::cpio::archive(files.iter().copied()).unwrap()
}

struct Ddi {
    f: Fixture,
    token: String,
    url: String,
    package_id: String,
    swu: Vec<u8>,
}

/// A server with the test line, package 0 -> 1 and its `.swu`, and DDI
/// device `id` running version 0.
async fn setup(id: &str) -> Ddi {
    let f = start().await;
    let package_id = f.line_with_package().await;
    let package = package_bytes(&f, &package_id).await;
    let swu = swu(&[
        ("sw-description", b"software = { version = \"1.1.0\"; };"),
        ("sw-description.sig", b"signature"),
        ("update.fota", &package),
    ]);
    let (s, b) = put_artifact(&f, &package_id, "update-1.1.0.swu", swu.clone()).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        b["artifact"]["sha1"].as_str().unwrap(),
        hex::encode(Sha1::digest(&swu))
    );
    let token = f.register(id, Capability::Ddi, 0).await;
    let url = format!("{}/DEFAULT/controller/v1/{id}", f.base);
    Ddi {
        f,
        token,
        url,
        package_id,
        swu,
    }
}

async fn package_bytes(f: &Fixture, id: &str) -> Vec<u8> {
    let (s, b) = f.admin("GET", "/packages", None).await;
    assert_eq!(s, 200);
    let p = b["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap()
        .clone();
    let key = p["storage_key"].as_str().unwrap();
    std::fs::read(f.dir.path().join("packages").join(key)).unwrap()
}

async fn put_artifact(f: &Fixture, package: &str, name: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = f
        .http
        .put(format!(
            "{}/admin/v1/packages/{package}/artifacts/swu?filename={name}",
            f.base
        ))
        .bearer_auth(ADMIN)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

impl Ddi {
    /// A request as suricatta sends it (JSON headers, its token).
    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.f
            .http
            .request(method, url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("charsets", "utf-8")
            .header("Authorization", format!("TargetToken {}", self.token))
    }

    async fn get(&self, url: &str) -> (u16, Value) {
        let r = self.req(reqwest::Method::GET, url).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, method: reqwest::Method, url: &str, body: &str) -> (u16, String) {
        let r = self
            .req(method, url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn feedback(&self, action: &str, body: &str) -> u16 {
        let url = format!("{}/deploymentBase/{action}/feedback", self.url);
        self.send(reqwest::Method::POST, &url, body).await.0
    }

    /// A feedback on `action` as suricatta writes it.
    async fn report(
        &self,
        action: &str,
        cnt: u64,
        of: u64,
        finished: &str,
        execution: &str,
        details: &str,
    ) -> u16 {
        let id: u64 = action.parse().unwrap();
        let body = progress(id, cnt, of, finished, execution, details);
        self.feedback(action, &body).await
    }

    /// The action a poll offers (its deployment fetched, as a client does).
    async fn offered_action(&self) -> String {
        let (_, b) = self.get(&self.url).await;
        let (_, d) = self
            .get(b["_links"]["deploymentBase"]["href"].as_str().unwrap())
            .await;
        d["id"].as_str().unwrap().to_string()
    }

    async fn update_state(&self, id: &str) -> (String, String) {
        let d = self.f.device_json(&format!("ID:{id}")).await;
        let u = &d["updates"][0];
        (
            u["state"].as_str().unwrap_or("").to_string(),
            u["reason"].as_str().unwrap_or("").to_string(),
        )
    }
}

fn progress(
    action: u64,
    cnt: u64,
    of: u64,
    finished: &str,
    execution: &str,
    details: &str,
) -> String {
    format!(
        "{{ \"id\": {action}, \"time\": \"20261207T003603\", \"status\": {{ \"result\": {{ \"progress\": {{ \"cnt\" : {cnt}, \"of\" : {of} }}, \"finished\": \"{finished}\" }}, \"execution\": \"{execution}\", \"details\" : [ {details} ] }} }}"
    )
}

#[tokio::test]
async fn a_swupdate_device_is_offered_downloads_and_reports_success() {
    let t = setup("dev1").await;
    // First poll: the deployment and the request for attributes.
    let (s, b) = t.get(&t.url).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["config"]["polling"]["sleep"], "00:05:00");
    let deployment = b["_links"]["deploymentBase"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(b["_links"]["configData"]["href"]
        .as_str()
        .unwrap()
        .ends_with("/dev1/configData"));
    // configData as suricatta sends it (no mode), then the link is gone.
    let cfg = r#"{ "id": "", "time": "20261207T003600", "status": { "result": { "finished": "success" }, "execution": "closed", "details" : [ "" ] }, "data" : {  "serialNo": "42","hwId": "testboard" } }"#;
    let (s, _) = t
        .send(reqwest::Method::PUT, &format!("{}/configData", t.url), cfg)
        .await;
    assert_eq!(s, 200);
    let (_, b) = t.get(&t.url).await;
    assert!(b["_links"].get("configData").is_none(), "{b}");
    assert_eq!(b["_links"]["deploymentBase"]["href"], deployment.as_str());
    // The deployment: one chunk, one .swu with its hashes and links.
    let (s, d) = t.get(&deployment).await;
    assert_eq!(s, 200, "{d}");
    let action = d["id"].as_str().unwrap().to_string();
    assert!(action.parse::<u64>().is_ok(), "{action}");
    assert_eq!(d["deployment"]["update"], "attempt");
    let chunk = &d["deployment"]["chunks"][0];
    assert_eq!(
        (chunk["part"].as_str(), chunk["version"].as_str()),
        (Some("os"), Some("1.1.0"))
    );
    let art = &chunk["artifacts"][0];
    assert_eq!(art["filename"], "update-1.1.0.swu");
    assert_eq!(art["size"], t.swu.len());
    assert_eq!(
        art["hashes"]["sha1"].as_str().unwrap(),
        hex::encode(Sha1::digest(&t.swu))
    );
    let href = art["_links"]["download-http"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    // Installing: proceeding, then HEAD and a GET cut short and resumed.
    assert_eq!(
        t.report(
            &action,
            0,
            1,
            "none",
            "proceeding",
            "\"Installing Update Chunk Artifacts.\""
        )
        .await,
        200
    );
    assert_eq!(t.update_state("dev1").await.0, "downloading");
    let head = t.req(reqwest::Method::HEAD, &href).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        t.swu.len().to_string()
    );
    let half = t.swu.len() / 2;
    let first = t
        .req(reqwest::Method::GET, &href)
        .header("Range", format!("bytes=0-{}", half - 1))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 206);
    let mut got = first.bytes().await.unwrap().to_vec();
    let rest = t
        .req(reqwest::Method::GET, &href)
        .header("Range", format!("bytes={half}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 206);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(got, t.swu);
    let md5 = t
        .req(reqwest::Method::GET, &format!("{href}.MD5SUM"))
        .send()
        .await
        .unwrap();
    assert!(md5.text().await.unwrap().ends_with("  update-1.1.0.swu\n"));
    // Log lines (cnt and of swapped, as suricatta's log thread sends them).
    assert_eq!(
        t.report(
            &action,
            1,
            0,
            "none",
            "proceeding",
            "\"[network_initializer] : Valid image found: copying to FLASH\""
        )
        .await,
        200
    );
    assert_eq!(t.update_state("dev1").await.0, "downloading");
    assert_eq!(
        t.report(
            &action,
            1,
            1,
            "none",
            "proceeding",
            "\"All Chunks Installed.\""
        )
        .await,
        200
    );
    assert_eq!(t.update_state("dev1").await.0, "downloaded");
    // After its reboot (-c 2) the device confirms.
    assert_eq!(
        t.report(&action, 0, 0, "success", "closed", "\"Update Installed.\"")
            .await,
        200
    );
    let (state, reason) = t.update_state("dev1").await;
    assert_eq!(state, "installed", "{reason}");
    let d = t.f.device_json("ID:dev1").await;
    assert_eq!(d["device"]["fw_version"], "1.1.0");
    // An ended update serves its artifact no more (410).
    let gone = t.req(reqwest::Method::GET, &href).send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 410);
    // Nothing more to offer; a repeated report is only logged.
    let (_, b) = t.get(&t.url).await;
    assert!(b["_links"].get("deploymentBase").is_none(), "{b}");
    assert_eq!(
        t.report(&action, 0, 0, "success", "closed", "\"Update Installed.\"")
            .await,
        200
    );
    let (s, r) = t.f.admin("GET", "/reports/updates", None).await;
    assert_eq!(s, 200);
    assert_eq!(r["updates"]["installed"], 1, "{r}");
    let _ = t.package_id;
}

#[tokio::test]
async fn a_failure_with_raw_newlines_reaches_the_report() {
    let t = setup("dev2").await;
    let action = t.offered_action().await;
    let a: u64 = action.parse().unwrap();
    // The log swupdate forwards while installing, then its closing words.
    let log = progress(a, 1, 0, "none", "proceeding", "\"[run_system_cmd] : fota-flash.sh postinst\",\"ERROR : error: slot-a.bin: source image sha256 differs\"");
    assert_eq!(t.feedback(&action, &log).await, 200);
    let body = progress(
        a,
        0,
        0,
        "failure",
        "closed",
        "\"ERROR : fota flash: source hash mismatch\n\",\"Installation failed !\"",
    );
    assert!(body.contains('\n'));
    assert_eq!(t.feedback(&action, &body).await, 200);
    let (state, reason) = t.update_state("dev2").await;
    assert_eq!(state, "failed");
    assert!(
        reason.contains("source hash mismatch") && reason.contains("Installation failed"),
        "{reason}"
    );
    let (_, quoted) = reason.split_once("; device errors: ").unwrap();
    assert!(
        quoted.contains("error: slot-a.bin: source image sha256 differs"),
        "{reason}"
    );
    let (_, r) = t.f.admin("GET", "/reports/updates", None).await;
    assert_eq!(r["updates"]["failed"], 1, "{r}");
    // The device still runs 1.0.0.
    assert_eq!(
        t.f.device_json("ID:dev2").await["device"]["fw_version"],
        "1.0.0"
    );
}

#[tokio::test]
async fn a_campaign_counts_ddi_devices() {
    let t = setup("dev3").await;
    let (s, c) =
        t.f.admin(
            "POST",
            "/campaigns",
            Some(json!({"name": "ddi", "package_id": t.package_id, "device_ids_csv": "ID:dev3"})),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["campaign"]["notified"], 1);
    let cid = c["campaign"]["id"].as_str().unwrap().to_string();
    // No push for a polling device: nothing in the outbox.
    let (_, o) = t.f.admin("GET", "/outbox", None).await;
    assert_eq!(o["outbox"].as_array().map_or(0, Vec::len), 0, "{o}");
    let action = t.offered_action().await;
    assert_eq!(
        t.report(&action, 0, 0, "success", "closed", "\"Update Installed.\"")
            .await,
        200
    );
    let (_, p) = t.f.admin("GET", &format!("/campaigns/{cid}"), None).await;
    assert_eq!(p["progress"]["by_state"]["installed"], 1, "{p}");
}

#[tokio::test]
async fn refusals_say_why() {
    let t = setup("dev4").await;
    // No token, a wrong one, another tenant, an unknown device.
    let r = t.f.http.get(&t.url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r =
        t.f.http
            .get(&t.url)
            .header("Authorization", "TargetToken wrong")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let other = t.url.replace("/DEFAULT/", "/OTHER/");
    assert_eq!(t.get(&other).await.0, 404);
    assert_eq!(t.get(&t.url.replace("dev4", "nobody")).await.0, 404);
    // A DM device is not a DDI device.
    let dm_password = t.f.register("490154203237518", Capability::OmaDm, 0).await;
    let r =
        t.f.http
            .get(format!(
                "{}/DEFAULT/controller/v1/490154203237518",
                t.f.base
            ))
            .header("Authorization", format!("TargetToken {dm_password}"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    // Unknown actions, another device's action, bad feedback.
    let action = t.offered_action().await;
    assert_eq!(t.get(&format!("{}/deploymentBase/999", t.url)).await.0, 404);
    assert_eq!(t.get(&format!("{}/deploymentBase/x", t.url)).await.0, 404);
    let other_token = t.f.register("dev5", Capability::Ddi, 0).await;
    let r =
        t.f.http
            .get(format!(
                "{}/DEFAULT/controller/v1/dev5/deploymentBase/{action}",
                t.f.base
            ))
            .header("Authorization", format!("TargetToken {other_token}"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (s, body) = t
        .send(
            reqwest::Method::POST,
            &format!("{}/deploymentBase/{action}/feedback", t.url),
            r#"{"id":1,"status":{"execution":"exploded"}}"#,
        )
        .await;
    assert_eq!(s, 400);
    assert!(body.contains("status.execution"), "{body}");
    let (s, body) = t
        .send(reqwest::Method::PUT, &format!("{}/configData", t.url), "{}")
        .await;
    assert_eq!(s, 400);
    assert!(body.contains("data"), "{body}");
    // An artifact that is not a .swu of the package.
    let (s, b) = put_artifact(
        &t.f,
        &t.package_id,
        "x.swu",
        b"not a cpio archive ".repeat(8),
    )
    .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().contains("magic"), "{b}");
    let other = swu(&[("sw-description", b"s"), ("update.fota", b"another")]);
    let (s, b) = put_artifact(&t.f, &t.package_id, "x.swu", other).await;
    assert_eq!(s, 400);
    assert!(
        b["message"].as_str().unwrap().contains("update.fota"),
        "{b}"
    );
    let (s, _) = put_artifact(&t.f, &t.package_id, "../x.swu", t.swu.clone()).await;
    assert_eq!(s, 400);
    let (s, _) = put_artifact(&t.f, "nope", "x.swu", t.swu.clone()).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_package_without_a_swu_is_not_offered_over_ddi() {
    let f = start().await;
    f.line_with_package().await;
    let token = f.register("dev6", Capability::Ddi, 0).await;
    let r = f
        .http
        .get(format!("{}/DEFAULT/controller/v1/dev6", f.base))
        .header("Authorization", format!("TargetToken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().await.unwrap();
    assert!(b["_links"].get("deploymentBase").is_none(), "{b}");
}

#[tokio::test]
async fn an_operator_cancel_reaches_the_device_and_its_answer_the_report() {
    let t = setup("dev7").await;
    let action = t.offered_action().await;
    let d = t.f.device_json("ID:dev7").await;
    let update = d["updates"][0]["id"].as_str().unwrap().to_string();
    let (s, b) =
        t.f.admin("POST", &format!("/updates/{update}/cancel"), None)
            .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("canceling")), "{b}");
    // The next poll tells the device to stop, and offers nothing else.
    let (_, p) = t.get(&t.url).await;
    assert!(p["_links"].get("deploymentBase").is_none(), "{p}");
    let href = p["_links"]["cancelAction"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, c) = t.get(&href).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["cancelAction"]["stopId"], action.as_str());
    // swupdate's answer: closed/success with the stop id, no progress.
    let body = format!(
        "{{ \"id\": {action}, \"time\": \"20261207T003743\", \"status\": {{ \"result\": {{ \"finished\": \"success\" }}, \"execution\": \"closed\", \"details\" : [ \"cancellation acknowledged.\" ] }} }}"
    );
    let (s, _) = t
        .send(reqwest::Method::POST, &format!("{href}/feedback"), &body)
        .await;
    assert_eq!(s, 200);
    let (state, reason) = t.update_state("dev7").await;
    assert_eq!(state, "canceled", "{reason}");
    assert!(reason.contains("cancellation acknowledged"), "{reason}");
    let (_, p) = t.get(&t.url).await;
    assert!(p["_links"].get("cancelAction").is_none(), "{p}");
    let (_, r) = t.f.admin("GET", "/reports/updates", None).await;
    assert_eq!(r["updates"]["canceled"], 1, "{r}");
    // Nothing more to cancel; an unknown update is not found.
    let (s, b) =
        t.f.admin("POST", &format!("/updates/{update}/cancel"), None)
            .await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(t.f.admin("POST", "/updates/nope/cancel", None).await.0, 404);
}

#[tokio::test]
async fn a_device_that_cannot_cancel_goes_on() {
    let t = setup("dev8").await;
    let action = t.offered_action().await;
    let d = t.f.device_json("ID:dev8").await;
    let update = d["updates"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        t.f.admin("POST", &format!("/updates/{update}/cancel"), None)
            .await
            .0,
        200
    );
    let href = format!("{}/cancelAction/{action}", t.url);
    let body = format!("{{\"id\":{action},\"status\":{{\"result\":{{\"finished\":\"failure\"}},\"execution\":\"closed\",\"details\":[\"installing\"]}}}}");
    let (s, _) = t
        .send(reqwest::Method::POST, &format!("{href}/feedback"), &body)
        .await;
    assert_eq!(s, 200);
    assert_eq!(t.update_state("dev8").await.0, "downloading");
    // It finishes the action after all.
    assert_eq!(
        t.report(&action, 0, 0, "success", "closed", "\"Update Installed.\"")
            .await,
        200
    );
    assert_eq!(t.update_state("dev8").await.0, "installed");
    // A cancel of an action not being canceled is not found.
    assert_eq!(t.get(&href).await.0, 404);
}

#[tokio::test]
async fn a_cancel_before_the_device_looked_needs_no_word_from_it() {
    let t = setup("dev9").await;
    let (s, c) =
        t.f.admin(
            "POST",
            "/campaigns",
            Some(json!({"name": "c", "package_id": t.package_id, "device_ids_csv": "ID:dev9"})),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let d = t.f.device_json("ID:dev9").await;
    let update = d["updates"][0]["id"].as_str().unwrap().to_string();
    let (_, b) =
        t.f.admin("POST", &format!("/updates/{update}/cancel"), None)
            .await;
    assert_eq!(b["state"], "canceled");
    // Neither told to stop nor offered the package again.
    let (_, p) = t.get(&t.url).await;
    assert!(p["_links"].get("cancelAction").is_none(), "{p}");
    assert!(p["_links"].get("deploymentBase").is_none(), "{p}");
    assert_eq!(
        t.f.device_json("ID:dev9").await["updates"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
