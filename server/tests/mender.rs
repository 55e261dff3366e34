//! The Mender device API, driven with the requests mender-client 3.4
//! makes (bodies, signature, status sequence as captured from it):
//! authentication with a pinned key, inventory, deployments/next in its
//! three forms, download with Range, status and log; and the refusals.

mod common;

use base64::Engine as _;
use common::{start, Fixture, ADMIN};
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};

const DEVICE_TYPE: &str = "acme-phone";

/// A device key as mender-client makes them (RSA; 2048 bits keeps the
/// test quick, the client makes 3072).
fn rsa_key(seed: u64) -> rsa::RsaPrivateKey {
    use rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap()
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: rsa::RsaPrivateKey,
    identity: String,
    token: String,
}

impl Client {
    fn new(f: &Fixture, key: rsa::RsaPrivateKey, identity: &str) -> Client {
        Client {
            http: f.http.clone(),
            base: f.base.clone(),
            key,
            identity: identity.to_string(),
            token: String::new(),
        }
    }

    /// The auth request: Go's JSON encoding, ending in a newline, signed
    /// over its exact bytes.
    async fn auth(&mut self) -> (u16, String) {
        let pubkey = self
            .key
            .to_public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let mut body = serde_json::to_vec(&json!({
            "id_data": self.identity, "tenant_token": "", "pubkey": pubkey,
        }))
        .unwrap();
        body.push(b'\n');
        let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(self.key.clone());
        let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(&body).to_vec());
        let r = self
            .http
            .post(format!(
                "{}/api/devices/v1/authentication/auth_requests",
                self.base
            ))
            .header("Authorization", "Bearer")
            .header("Content-Type", "application/json")
            .header("X-MEN-Signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        if status == 200 {
            self.token = text.clone();
        }
        (status, text)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        if let Some(b) = body {
            r = r
                .header("Content-Type", "application/json")
                .body(format!("{b}\n"));
        }
        let resp = r.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn next(&self, artifact_name: &str) -> (u16, Value) {
        let (s, t) = self
            .call(
                reqwest::Method::POST,
                "/api/devices/v2/deployments/device/deployments/next",
                Some(json!({"device_provides": {"artifact_name": artifact_name, "device_type": DEVICE_TYPE}, "update_control_map": true})),
            )
            .await;
        (s, serde_json::from_str(&t).unwrap_or(Value::Null))
    }

    async fn status(&self, id: &str, status: &str) -> u16 {
        self.call(
            reqwest::Method::PUT,
            &format!("/api/devices/v1/deployments/device/deployments/{id}/status"),
            Some(json!({"status": status})),
        )
        .await
        .0
    }
}

/// The test line with package 0 -> 1 and its Mender artifact; its id.
async fn line_with_artifact(f: &Fixture) -> String {
    let id = f.line_with_package().await;
    let (_, b) = f.admin("GET", "/packages", None).await;
    let key = b["packages"][0]["storage_key"]
        .as_str()
        .unwrap()
        .to_string();
    let package = std::fs::read(f.dir.path().join("packages").join(key)).unwrap();
    let artifact = fota_generator::export::mender::build(
        &package,
        &fota_generator::export::mender::MenderOptions::new(vec![DEVICE_TYPE.into()]),
    )
    .unwrap();
    let (s, b) = put_artifact(f, &id, "update-1.1.0.mender", artifact.bytes).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["artifact"]["mender"]["artifact_name"], "1.1.0");
    id
}

async fn put_artifact(f: &Fixture, package: &str, name: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = f
        .http
        .put(format!(
            "{}/admin/v1/packages/{package}/artifacts/mender?filename={name}",
            f.base
        ))
        .bearer_auth(ADMIN)
        .body(body)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

async fn register(f: &Fixture, name: &str, identity: Value) -> (u16, Value) {
    f.admin(
        "POST",
        "/devices",
        Some(json!({"id": name, "make": common::MAKE, "model": common::MODEL, "fw_version": common::version(0), "capability": "mender", "mender_identity": identity})),
    )
    .await
}

#[tokio::test]
async fn a_mender_client_authenticates_is_offered_downloads_and_reports_success() {
    let f = start().await;
    let package = line_with_artifact(&f).await;
    let (s, b) = register(
        &f,
        "gw-1",
        json!({"mac": "02:00:00:00:00:01", "serial": "SN-1"}),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    // The client sorts its identity's keys; so does the server.
    let mut c = Client::new(
        &f,
        rsa_key(1),
        r#"{"mac":"02:00:00:00:00:01","serial":"SN-1"}"#,
    );
    let (s, token) = c.auth().await;
    assert_eq!(s, 200, "{token}");
    assert!(!token.ends_with('\n') && !token.is_empty());
    // A JWT naming the device.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "ID:gw-1");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    // Inventory: 200, and the running artifact is the device's version.
    let inv = json!([{"name":"mender_client_version","value":"3.4.0"},{"name":"device_type","value":DEVICE_TYPE},{"name":"artifact_name","value":"1.0.0"}]);
    let (s, _) = c
        .call(
            reqwest::Method::PUT,
            "/api/devices/v1/inventory/device/attributes",
            Some(inv),
        )
        .await;
    assert_eq!(s, 200);
    // The deployment.
    let (s, d) = c.next("1.0.0").await;
    assert_eq!(s, 200, "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["artifact"]["artifact_name"], "1.1.0");
    assert_eq!(
        d["artifact"]["device_types_compatible"],
        json!([DEVICE_TYPE])
    );
    let uri = d["artifact"]["source"]["uri"].as_str().unwrap().to_string();
    assert_eq!(c.status(&id, "downloading").await, 204);
    // The download carries no token; it resumes with Range.
    let full = f.http.get(&uri).send().await.unwrap();
    assert_eq!(full.status().as_u16(), 200);
    let len: usize = full.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(len >= 4096, "{len}");
    let whole = full.bytes().await.unwrap();
    let tail = f
        .http
        .get(&uri)
        .header("Range", format!("bytes={}-", len - 100))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(tail.bytes().await.unwrap(), whole[len - 100..]);
    for s in ["downloading", "downloading", "installing"] {
        assert_eq!(c.status(&id, s).await, 204);
    }
    // It authenticates again before the commit, with the same key.
    assert_eq!(c.auth().await.0, 200);
    assert_eq!(c.status(&id, "installing").await, 204);
    assert_eq!(c.status(&id, "success").await, 204);
    let d = f.device_json("ID:gw-1").await;
    assert_eq!(d["updates"][0]["state"], "installed", "{d}");
    assert_eq!(d["device"]["fw_version"], "1.1.0");
    // An ended update's artifact is gone (410).
    assert_eq!(
        f.http.get(&uri).send().await.unwrap().status().as_u16(),
        410
    );
    // Nothing more; the inventory now says 1.1.0.
    assert_eq!(c.next("1.1.0").await.0, 204);
    let (_, r) = f.admin("GET", "/reports/updates", None).await;
    assert_eq!(r["updates"]["installed"], 1, "{r}");
    let _ = package;
}

#[tokio::test]
async fn a_failure_and_its_log_reach_the_report() {
    let f = start().await;
    line_with_artifact(&f).await;
    register(&f, "gw-2", json!({"mac": "02:00:00:00:00:02"})).await;
    let mut c = Client::new(&f, rsa_key(2), r#"{"mac":"02:00:00:00:00:02"}"#);
    assert_eq!(c.auth().await.0, 200);
    // The v1 forms a client falls back to.
    let (s, t) = c
        .call(
            reqwest::Method::POST,
            "/api/devices/v1/deployments/device/deployments/next",
            Some(json!({"artifact_name": "1.0.0", "device_type": DEVICE_TYPE})),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, t2) = c
        .call(
            reqwest::Method::GET,
            &format!("/api/devices/v1/deployments/device/deployments/next?artifact_name=1.0.0&device_type={DEVICE_TYPE}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let id = serde_json::from_str::<Value>(&t).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        serde_json::from_str::<Value>(&t2).unwrap()["id"],
        id.as_str()
    );
    assert_eq!(c.status(&id, "downloading").await, 204);
    assert_eq!(c.status(&id, "installing").await, 204);
    assert_eq!(c.status(&id, "failure").await, 204);
    let log = json!({"messages": [
        {"level": "info", "message": "Running Mender client version: 3.4.0", "timestamp": "2026-12-07T01:39:32Z"},
        {"level": "error", "message": "fota flash: source image sha256 differs", "timestamp": "2026-12-07T01:39:33Z"},
    ]});
    let (s, _) = c
        .call(
            reqwest::Method::PUT,
            &format!("/api/devices/v1/deployments/device/deployments/{id}/log"),
            Some(log),
        )
        .await;
    assert_eq!(s, 204);
    let d = f.device_json("ID:gw-2").await;
    let u = &d["updates"][0];
    assert_eq!(u["state"], "failed");
    assert!(
        u["reason"]
            .as_str()
            .unwrap()
            .contains("source image sha256 differs"),
        "{u}"
    );
    assert_eq!(d["device"]["fw_version"], "1.0.0");
}

#[tokio::test]
async fn a_canceled_deployment_answers_409() {
    let f = start().await;
    line_with_artifact(&f).await;
    register(&f, "gw-3", json!({"mac": "02:00:00:00:00:03"})).await;
    let mut c = Client::new(&f, rsa_key(3), r#"{"mac":"02:00:00:00:00:03"}"#);
    c.auth().await;
    let (_, d) = c.next("1.0.0").await;
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(c.status(&id, "downloading").await, 204);
    let (s, b) = f
        .admin("POST", &format!("/updates/{id}/cancel"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(c.status(&id, "installing").await, 409);
    assert_eq!(
        f.device_json("ID:gw-3").await["updates"][0]["state"],
        "canceled"
    );
    assert_eq!(c.next("1.0.0").await.0, 204, "not offered again");
}

#[tokio::test]
async fn refusals_say_why() {
    let f = start().await;
    line_with_artifact(&f).await;
    register(&f, "gw-4", json!({"mac": "02:00:00:00:00:04"})).await;
    // An unknown identity, then a bad signature.
    let mut stranger = Client::new(&f, rsa_key(4), r#"{"mac":"02:00:00:00:00:99"}"#);
    let (s, t) = stranger.auth().await;
    assert_eq!(s, 401);
    assert!(t.contains("no device is registered with identity"), "{t}");
    let r = f
        .http
        .post(format!(
            "{}/api/devices/v1/authentication/auth_requests",
            f.base
        ))
        .header("X-MEN-Signature", "AAAA")
        .body(r#"{"id_data":"{\"mac\":\"02:00:00:00:00:04\"}","tenant_token":"","pubkey":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The first key is pinned: another key for the same identity is refused.
    let mut c = Client::new(&f, rsa_key(5), r#"{"mac":"02:00:00:00:00:04"}"#);
    assert_eq!(c.auth().await.0, 200);
    let mut thief = Client::new(&f, rsa_key(6), r#"{"mac":"02:00:00:00:00:04"}"#);
    let (s, t) = thief.auth().await;
    assert_eq!(s, 401);
    assert!(t.contains("another key"), "{t}");
    // No token, a wrong one; another device's deployment.
    let mut nobody = Client::new(&f, rsa_key(5), "");
    nobody.token = "wrong".into();
    assert_eq!(nobody.next("1.0.0").await.0, 401);
    let (_, d) = c.next("1.0.0").await;
    let id = d["id"].as_str().unwrap().to_string();
    register(&f, "gw-5", json!({"mac": "02:00:00:00:00:05"})).await;
    let mut other = Client::new(&f, rsa_key(7), r#"{"mac":"02:00:00:00:00:05"}"#);
    assert_eq!(other.auth().await.0, 200);
    assert_eq!(other.status(&id, "success").await, 404);
    assert_eq!(c.status(&id, "exploded").await, 400);
    // Registration: identity required, unique.
    let (s, b) = f
        .admin(
            "POST",
            "/devices",
            Some(json!({"id": "gw-6", "make": common::MAKE, "model": common::MODEL, "fw_version": "1.0.0", "capability": "mender"})),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        register(&f, "gw-7", json!({"mac": "02:00:00:00:00:05"}))
            .await
            .0,
        409
    );
    // Artifacts that are not Mender artifacts of the package.
    let (s, b) = put_artifact(&f, "nope", "x.mender", vec![0; 1024]).await;
    assert_eq!(s, 404, "{b}");
    let (_, p) = f.admin("GET", "/packages", None).await;
    let pid = p["packages"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = put_artifact(&f, &pid, "x.mender", b"not a tar".repeat(100)).await;
    assert_eq!(s, 400, "{b}");
    let other = fota_generator::export::mender::build(
        &common::package(0, 1, "other notes", &f.key, common::CLASS),
        &fota_generator::export::mender::MenderOptions::new(vec![DEVICE_TYPE.into()]),
    )
    .unwrap();
    let (s, b) = put_artifact(&f, &pid, "x.mender", other.bytes).await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("manifest line for the package"),
        "{b}"
    );
}
