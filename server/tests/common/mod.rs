//! A server on 127.0.0.1 (random port, temporary SQLite unless a
//! PostgreSQL URL is given), a signing key, generated firmware images and
//! packages, and simulated devices, for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::SigningKey;
use fota_format::{Label, Mode};
use fota_server::device::flash::Faults;
use fota_server::device::{ConsentPolicy, Device, DeviceState, Options, Say};
use fota_server::http::Running;
use fota_server::registry::Capability;
use fota_server::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const MAKE: &str = "Acme";
pub const MODEL: &str = "Phone 1";
pub const CLASS: &str = "acme-phone-1";
pub const ERASE: u64 = 4096;

pub struct Fixture {
    /// Size of the test line's images, KiB.
    pub image_kb: usize,
    pub server: Running,
    pub dir: tempfile::TempDir,
    pub key: SigningKey,
    pub public_pem: String,
    pub http: reqwest::Client,
    pub base: String,
}

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// Firmware-like image number `v` (each version changes a few regions and
/// inserts a block, so code moves).
pub fn image(v: u32) -> Vec<u8> {
    image_kb(v, 96)
}

/// [`image`] of about `kb` KiB.
pub fn image_kb(v: u32, kb: usize) -> Vec<u8> {
    let mut s = 0x1234_5678u32;
    let mut img: Vec<u8> = (0..kb * 1024)
        .map(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if i % 7 == 0 {
                (s >> 24) as u8
            } else {
                (i / 64) as u8
            }
        })
        .collect();
    for k in 0..v {
        let at = (8 * 1024 + (k as usize * 13 * 1024) % (80 * 1024)) % img.len();
        let ins: Vec<u8> = (0..700).map(|i| (i as u32 * 31 + k * 7) as u8).collect();
        img.splice(at..at, ins);
        let c = (k as usize * 5000 + 3000) % img.len();
        img[c] ^= 0x5a;
    }
    img
}

pub fn package(from: u32, to: u32, notes: &str, key: &SigningKey, class: &str) -> Vec<u8> {
    package_kb(from, to, notes, key, class, 96)
}

/// [`package`] between [`image_kb`] images.
pub fn package_kb(
    from: u32,
    to: u32,
    notes: &str,
    key: &SigningKey,
    class: &str,
    kb: usize,
) -> Vec<u8> {
    let opts = fota_generator::DiffOptions {
        threads: 1,
        segment_size: 16 * 1024,
        device_class: Label::new(class).unwrap(),
        from_version: Label::new(&version(from)).unwrap(),
        to_version: Label::new(&version(to)).unwrap(),
        release_notes_sha256: if notes.is_empty() {
            [0; 32]
        } else {
            Sha256::digest(notes.as_bytes()).into()
        },
        mode: Mode::AB,
        ..Default::default()
    };
    fota_generator::diff(&image_kb(from, kb), &image_kb(to, kb), key, &opts)
        .unwrap()
        .package
}

pub fn version(v: u32) -> String {
    format!("1.{v}.0")
}

/// SQLite in the test's folder; with `FOTA_TEST_ALL_POSTGRES=1` and
/// `FOTA_TEST_POSTGRES_URL`, a fresh PostgreSQL database instead.
pub async fn database_url(dir: &Path) -> String {
    match std::env::var("FOTA_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() && std::env::var("FOTA_TEST_ALL_POSTGRES").is_ok() => {
            fresh_postgres(&u).await
        }
        _ => format!("sqlite://{}?mode=rwc", dir.join("fota.db").display()),
    }
}

/// A new database on the PostgreSQL server at `admin_url`; its URL.
pub async fn fresh_postgres(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("fota_test_{}", fota_server::db::new_id());
    let mut c = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    format!("{base}/{name}")
}

pub async fn start() -> Fixture {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = key();
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let key_path = dir.path().join("fota.pub");
    std::fs::write(&key_path, &public_pem).unwrap();
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url(dir.path()).await,
        package_dir: dir.path().join("packages"),
        archive_dir: dir.path().join("archive"),
        trusted_keys: vec![key_path],
        admin_tokens: vec![ADMIN.to_string()],
        dm_server_password: "server-secret".into(),
        ..Config::default()
    };
    tweak(&mut cfg);
    let server = fota_server::http::start(cfg).await.unwrap();
    let base = format!("http://{}", server.addr);
    Fixture {
        image_kb: 96,
        server,
        dir,
        key,
        public_pem,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        base,
    }
}

impl Fixture {
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/admin/v1{path}", self.base);
        let mut r = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        }
        .bearer_auth(ADMIN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn admin_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/admin/v1{path}", self.base))
            .bearer_auth(ADMIN)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Firmware versions 0..=n of the test line.
    pub async fn firmware(&self, n: u32) {
        for v in 0..=n {
            let (s, b) = self
                .admin(
                    "POST",
                    "/firmware",
                    Some(json!({"make": MAKE, "model": MODEL, "version": version(v), "device_class": CLASS})),
                )
                .await;
            assert_eq!(s, 201, "{b}");
        }
    }

    pub async fn upload(&self, bytes: Vec<u8>, notes: &str) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("make", MAKE)
            .text("model", MODEL)
            .text("notes", notes.to_string())
            .part(
                "package",
                reqwest::multipart::Part::bytes(bytes).file_name("update.fota"),
            );
        let resp = self
            .http
            .post(format!("{}/admin/v1/packages", self.base))
            .bearer_auth(ADMIN)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Versions 0..=1 and the package 0 -> 1 with notes; its id.
    pub async fn line_with_package(&self) -> String {
        self.firmware(1).await;
        let notes = "Fixes the modem crash; improves battery life.";
        let (s, b) = self
            .upload(
                package_kb(0, 1, notes, &self.key, CLASS, self.image_kb),
                notes,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["package"]["id"].as_str().unwrap().to_string()
    }

    pub async fn register(&self, id: &str, cap: Capability, fw: u32) -> String {
        let (s, b) = self
            .admin(
                "POST",
                "/devices",
                Some(json!({"id": id, "make": MAKE, "model": MODEL, "fw_version": version(fw), "capability": cap.as_str()})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["dm_password"].as_str().unwrap().to_string()
    }

    /// A simulated device registered here, running version `fw`.
    pub async fn device(
        &self,
        id: &str,
        cap: Capability,
        fw: u32,
        consent: ConsentPolicy,
        opts: Options,
    ) -> (Device, Log) {
        let password = self.register(id, cap, fw).await;
        self.device_with_password(id, cap, fw, consent, opts, &password)
    }

    pub fn device_with_password(
        &self,
        id: &str,
        cap: Capability,
        fw: u32,
        consent: ConsentPolicy,
        opts: Options,
        password: &str,
    ) -> (Device, Log) {
        let state = DeviceState {
            id: id.to_string(),
            make: MAKE.into(),
            model: MODEL.into(),
            fw_version: version(fw),
            capability: cap,
            consent,
            fota_url: format!("{}/fota/check", self.base),
            trusted_domain: "127.0.0.1".into(),
            dm_password: password.to_string(),
            dm_server_id: "fota".into(),
            dm_server_password: "server-secret".into(),
            dm_wbxml: false,
            dm_nonce: String::new(),
            device_class: CLASS.into(),
            security_counter: 0,
            public_key_pem: self.public_pem.clone(),
            erase_size: ERASE,
            write_size: 4,
            active_slot: 0,
            pending: None,
            to_report: None,
        };
        let log = Log::default();
        let dev = Device::create(
            &self.dir.path().join("devices").join(id),
            state,
            &image_kb(fw, self.image_kb),
            opts,
            log.say(),
        )
        .unwrap();
        (dev, log)
    }

    pub async fn device_json(&self, id: &str) -> Value {
        let (s, b) = self.admin("GET", &format!("/devices/{id}"), None).await;
        assert_eq!(s, 200, "{b}");
        b
    }

    pub fn devices_dir(&self) -> PathBuf {
        self.dir.path().join("devices")
    }
}

/// Collects a device's steps.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn say(&self) -> Say {
        let l = self.0.clone();
        Arc::new(move |s: &str| l.lock().unwrap().push(s.to_string()))
    }
    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

pub fn opts(drop_after: Option<u64>, cut: Option<u64>) -> Options {
    Options {
        drop_after,
        faults: Faults {
            cut_after_ops: cut,
            broken: false,
        },
        yes: false,
    }
}
