//! What the tests of real update clients share: a test line (images, a
//! key, a package), `fota serve` in the test, and a client process that
//! is stopped with its helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fota_server::Config;
use serde_json::{json, Value};

pub const ADMIN: &str = "client-test-admin-token-012345";
pub const MAKE: &str = "Acme";
pub const MODEL: &str = "Gateway 2";
pub const CLASS: &str = "acme-gw2";

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Firmware-like bytes: version `v` moves and changes a few blocks.
pub fn image(v: u32) -> Vec<u8> {
    let mut s = 0x2468_ace1u32;
    let mut img: Vec<u8> = (0..96 * 1024)
        .map(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if i % 5 == 0 {
                (s >> 24) as u8
            } else {
                (i / 48) as u8
            }
        })
        .collect();
    for k in 0..v {
        let at = 4096 + k as usize * 9000;
        img.splice(at..at, (0..500).map(|i| (i * 7 + k) as u8));
        img[at + 20_000] ^= 0xa5;
    }
    img
}

pub fn fota(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_fota"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fota {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary folder with the test line: `old.bin` (1.0.0), `new.bin`
/// (1.1.0), a key pair `k/`, the package `update.fota`, and `device/`
/// with the device's running image `slot-a.bin` and its `fota.pub`.
pub struct Line {
    pub tmp: tempfile::TempDir,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

impl Line {
    pub fn new() -> Line {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (old, new) = (image(0), image(1));
        std::fs::write(dir.join("old.bin"), &old).unwrap();
        std::fs::write(dir.join("new.bin"), &new).unwrap();
        fota(dir, &["keygen", "k"]);
        fota(
            dir,
            &[
                "diff",
                "--key",
                "k/fota.key",
                "--device-class",
                CLASS,
                "--from-version",
                "1.0.0",
                "--to-version",
                "1.1.0",
                "old.bin",
                "new.bin",
                "-o",
                "update.fota",
            ],
        );
        let device = dir.join("device");
        std::fs::create_dir_all(&device).unwrap();
        std::fs::write(device.join("slot-a.bin"), &old).unwrap();
        std::fs::copy(dir.join("k/fota.pub"), device.join("fota.pub")).unwrap();
        Line { tmp, old, new }
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// A file of the device's flash.
    pub fn device(&self, name: &str) -> PathBuf {
        self.dir().join("device").join(name)
    }

    /// The `fota flash` options of the device, for an export.
    pub fn flash_args(&self) -> Vec<String> {
        let p = |n: &str| self.device(n).display().to_string();
        vec![
            "--fota".into(),
            env!("CARGO_BIN_EXE_fota").into(),
            "--pubkey".into(),
            p("fota.pub"),
            "--source".into(),
            p("slot-a.bin"),
            "--image".into(),
            p("slot-b.bin"),
            "--state".into(),
            p("state.bin"),
            "--device-class".into(),
            CLASS.into(),
        ]
    }

    /// The device's running image made not the package's source, and its
    /// update's files removed: the next install must fail.
    pub fn break_source(&self) {
        let mut broken = self.old.clone();
        broken[1000] ^= 0xff;
        std::fs::write(self.device("slot-a.bin"), &broken).unwrap();
        for f in ["slot-b.bin", "state.bin", "incoming.fota"] {
            let _ = std::fs::remove_file(self.device(f));
        }
    }
}

/// A client daemon in its own process group, its output in a log file;
/// stopped (SIGTERM, then SIGKILL) with its helpers when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// `fota serve` in this process on 127.0.0.1 (a random port, SQLite in
/// the test's folder), with the admin API at hand; stopped when dropped.
pub struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<fota_server::http::Running>,
    /// Its URL.
    pub base: String,
    http: reqwest::Client,
}

impl Server {
    /// Starts a server trusting `dir/k/fota.pub`, polled every second,
    /// with the test line's two firmware versions and `dir/update.fota`
    /// uploaded; the package's id with it.
    pub fn start(dir: &Path) -> (Server, String) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}?mode=rwc", dir.join("fota.db").display()),
            package_dir: dir.join("packages"),
            archive_dir: dir.join("archive"),
            trusted_keys: vec![dir.join("k/fota.pub")],
            admin_tokens: vec![ADMIN.to_string()],
            ddi_polling_secs: 1,
            ..Config::default()
        };
        let running = rt.block_on(fota_server::http::start(config)).unwrap();
        let base = format!("http://{}", running.addr);
        let server = Server {
            rt,
            running: Some(running),
            base,
            http: reqwest::Client::new(),
        };
        for v in ["1.0.0", "1.1.0"] {
            let (s, b) = server.admin(
                reqwest::Method::POST,
                "/firmware",
                Some(json!({"make": MAKE, "model": MODEL, "version": v, "device_class": CLASS})),
            );
            assert_eq!(s, 201, "{b}");
        }
        let (s, b) = server.upload(
            "/packages",
            std::fs::read(dir.join("update.fota")).unwrap(),
            true,
        );
        assert_eq!(s, 201, "{b}");
        let package = b["package"]["id"].as_str().unwrap().to_string();
        (server, package)
    }
}

impl Server {
    pub fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/admin/v1{path}", self.base);
        self.rt.block_on(async {
            let mut r = self.http.request(method, url).bearer_auth(ADMIN);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = r.send().await.unwrap();
            let s = resp.status().as_u16();
            (s, resp.json().await.unwrap_or(Value::Null))
        })
    }

    pub fn upload(&self, path: &str, bytes: Vec<u8>, multipart: bool) -> (u16, Value) {
        let url = format!("{}/admin/v1{path}", self.base);
        self.rt.block_on(async {
            let r = match multipart {
                true => {
                    let form = reqwest::multipart::Form::new()
                        .text("make", MAKE)
                        .text("model", MODEL)
                        .part("package", reqwest::multipart::Part::bytes(bytes));
                    self.http.post(url).multipart(form)
                }
                false => self.http.put(url).body(bytes),
            };
            let resp = r.bearer_auth(ADMIN).send().await.unwrap();
            let s = resp.status().as_u16();
            (s, resp.json().await.unwrap_or(Value::Null))
        })
    }

    /// The device's newest update, once `done` says it is where it should
    /// be (or the time is up).
    pub fn wait_update(&self, id: &str, secs: u64, done: impl Fn(&str) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (s, d) = self.admin(reqwest::Method::GET, &format!("/devices/ID:{id}"), None);
            assert_eq!(s, 200, "{d}");
            let u = d["updates"][0].clone();
            if done(u["state"].as_str().unwrap_or("")) || Instant::now() > deadline {
                return u;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.stop());
        }
    }
}
