//! Debian's swupdate, in its hawkBit mode (suricatta), updates a device
//! through `fota serve`'s DDI API: it polls, downloads the `.swu` that
//! `fota export swu` made, its shell script applies the package with
//! `fota flash` to the device's file-backed flash, and its reports reach
//! the server's update report: success, and a failure in a second run.
//!
//! swupdate keeps its update state in RAM here (its Debian build has no
//! bootloader backend), so "installed, now confirm" is what a real device
//! does after its reboot: swupdate started again with `-c 2`.
//!
//! Needs `swupdate` and `openssl` on PATH (CI installs both); without
//! them the test says so and passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fota_server::registry::Capability;
use fota_server::Config;
use serde_json::{json, Value};

const ADMIN: &str = "swupdate-test-admin-token-0123";
const MAKE: &str = "Acme";
const MODEL: &str = "Gateway 2";
const CLASS: &str = "acme-gw2";

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Firmware-like bytes: version `v` moves and changes a few blocks.
fn image(v: u32) -> Vec<u8> {
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

fn fota(dir: &Path, args: &[&str]) {
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

/// swupdate polling the server as device `id`, in its own process group
/// so that stopping it stops its helpers too.
struct Swupdate {
    child: Child,
    log: PathBuf,
}

impl Swupdate {
    fn start(dir: &Path, base: &str, id: &str, token: &str, confirm: bool, run: &str) -> Swupdate {
        use std::os::unix::process::CommandExt;
        let tmp = dir.join(format!("swupdate-{run}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let log = dir.join(format!("swupdate-{run}.log"));
        let mut suricatta = format!("-t DEFAULT -u {base} -i {id} -k {token} -r 2 -w 1");
        if confirm {
            suricatta.push_str(" -c 2");
        }
        let child = Command::new("swupdate")
            .args(["-v", "-k"])
            .arg(dir.join("cert.pem"))
            .args(["-H", "board:1.0", "-u", &suricatta])
            .env("TMPDIR", &tmp)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .process_group(0)
            .spawn()
            .unwrap();
        Swupdate { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Swupdate {
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

struct Server {
    rt: tokio::runtime::Runtime,
    running: Option<fota_server::http::Running>,
    base: String,
    http: reqwest::Client,
}

impl Server {
    fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
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

    fn upload(&self, path: &str, bytes: Vec<u8>, multipart: bool) -> (u16, Value) {
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
    fn wait_update(&self, id: &str, secs: u64, done: impl Fn(&str) -> bool) -> Value {
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

#[test]
fn swupdate_updates_through_the_ddi_api_and_reports_success_and_failure() {
    for tool in ["swupdate", "openssl"] {
        if !have(tool) {
            eprintln!("skipped: {tool} is not installed (CI installs it: apt-get install swupdate openssl)");
            return;
        }
    }
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
    let cert = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "30",
            "-subj",
            "/CN=fota-test",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        cert.status.success(),
        "{}",
        String::from_utf8_lossy(&cert.stderr)
    );
    // The device's flash: the running image (A/B source), the slot the
    // update writes, the agent's journal.
    let device = dir.join("device");
    std::fs::create_dir_all(&device).unwrap();
    let path = |n: &str| device.join(n).display().to_string();
    std::fs::write(device.join("slot-a.bin"), &old).unwrap();
    std::fs::copy(dir.join("k/fota.pub"), device.join("fota.pub")).unwrap();
    fota(
        dir,
        &[
            "export",
            "swu",
            "update.fota",
            "-o",
            "update.swu",
            "--hardware",
            "1.0",
            "--cms-cert",
            "cert.pem",
            "--cms-key",
            "key.pem",
            "--fota",
            env!("CARGO_BIN_EXE_fota"),
            "--device-package",
            &path("incoming.fota"),
            "--pubkey",
            &path("fota.pub"),
            "--source",
            &path("slot-a.bin"),
            "--image",
            &path("slot-b.bin"),
            "--state",
            &path("state.bin"),
            "--device-class",
            CLASS,
        ],
    );

    // The server: DDI polls every second, no device authentication off.
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
        base: base.clone(),
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
    let (s, b) = server.upload(
        &format!("/packages/{package}/artifacts/swu?filename=acme-gw2-1.1.0.swu"),
        std::fs::read(dir.join("update.swu")).unwrap(),
        false,
    );
    assert_eq!(s, 201, "{b}");
    let register = |id: &str| -> String {
        let (s, b) = server.admin(
            reqwest::Method::POST,
            "/devices",
            Some(json!({"id": id, "make": MAKE, "model": MODEL, "fw_version": "1.0.0", "capability": Capability::Ddi.as_str()})),
        );
        assert_eq!(s, 201, "{b}");
        b["ddi_target_token"].as_str().unwrap().to_string()
    };

    // 1. Success: installed, then confirmed after the "reboot".
    let token = register("gw-0001");
    {
        let sw = Swupdate::start(dir, &base, "gw-0001", &token, false, "install");
        let u = server.wait_update("gw-0001", 90, |s| s == "downloaded" || s == "failed");
        assert_eq!(u["state"], "downloaded", "{u}\n{}", sw.log());
    }
    assert_eq!(
        &std::fs::read(device.join("slot-b.bin")).unwrap()[..new.len()],
        &new[..],
        "the slot holds the new image"
    );
    {
        let sw = Swupdate::start(dir, &base, "gw-0001", &token, true, "confirm");
        let u = server.wait_update("gw-0001", 60, |s| s == "installed" || s == "failed");
        assert_eq!(u["state"], "installed", "{u}\n{}", sw.log());
    }
    let (_, d) = server.admin(reqwest::Method::GET, "/devices/ID:gw-0001", None);
    assert_eq!(d["device"]["fw_version"], "1.1.0");

    // 2. Failure: this device's running image is not the package's source;
    // `fota flash` refuses it and the failure reaches the report.
    let mut broken = old.clone();
    broken[1000] ^= 0xff;
    std::fs::write(device.join("slot-a.bin"), &broken).unwrap();
    for f in ["slot-b.bin", "state.bin", "incoming.fota"] {
        let _ = std::fs::remove_file(device.join(f));
    }
    let token = register("gw-0002");
    {
        let sw = Swupdate::start(dir, &base, "gw-0002", &token, false, "fail");
        let u = server.wait_update("gw-0002", 90, |s| s == "failed" || s == "installed");
        assert_eq!(u["state"], "failed", "{u}\n{}", sw.log());
        let reason = u["reason"].as_str().unwrap_or("");
        assert!(reason.starts_with("closed/failure"), "{reason}");
        // fota flash's own words, from the log swupdate forwarded.
        assert!(reason.contains("source image sha256 differs"), "{reason}");
    }
    let (s, r) = server.admin(reqwest::Method::GET, "/reports/updates", None);
    assert_eq!(s, 200);
    assert_eq!(
        (
            r["updates"]["installed"].as_i64(),
            r["updates"]["failed"].as_i64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );
}
