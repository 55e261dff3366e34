//! Debian's mender-client (3.4) updates a device through `fota serve`'s
//! Mender device API: it authenticates with its own key, polls, downloads
//! the artifact `fota export mender` made, and the update module from
//! `fota export mender-module` applies the package with `fota flash` to
//! the device's file-backed flash; its status reaches the server's report:
//! success, and a failure for a second device.
//!
//! mender-client reads three fixed system paths (the running artifact's
//! name, the identity script, the update modules). The test writes them
//! and puts back what was there, even when it fails. It needs root and
//! `mender` on PATH (CI installs mender-client and runs as root); without
//! them it says so and passes.

#[path = "common/clients.rs"]
mod clients;

use std::path::{Path, PathBuf};
use std::process::Command;

use clients::{fota, have, Daemon, Line, Server, MAKE, MODEL};
use serde_json::json;

const DEVICE_TYPE: &str = "acme-gw2";

/// System files mender-client reads, written for the test and restored
/// (or removed) when dropped.
struct SystemFiles {
    saved: Vec<(PathBuf, Option<Vec<u8>>)>,
    made_dirs: Vec<PathBuf>,
}

impl SystemFiles {
    fn new() -> SystemFiles {
        SystemFiles {
            saved: Vec::new(),
            made_dirs: Vec::new(),
        }
    }

    /// Writes `path` (mode 0755 when `exec`), remembering what was there.
    fn put(&mut self, path: &str, bytes: &[u8], exec: bool) {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from(path);
        if !self.saved.iter().any(|(p, _)| *p == path) {
            self.saved.push((path.clone(), std::fs::read(&path).ok()));
        }
        let mut missing = Vec::new();
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| !d.exists()) {
            missing.push(d.to_path_buf());
            dir = d.parent();
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d).unwrap();
            self.made_dirs.push(d.clone());
        }
        std::fs::write(&path, bytes).unwrap();
        let mode = if exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

impl Drop for SystemFiles {
    fn drop(&mut self) {
        for (path, before) in self.saved.drain(..).rev() {
            match before {
                Some(b) => {
                    let _ = std::fs::write(&path, b);
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        for d in self.made_dirs.drain(..).rev() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `mender daemon` for the device whose identity is `mac`, its key and
/// database in `dir/mender-RUN`.
fn mender(sys: &mut SystemFiles, dir: &Path, base: &str, mac: &str, run: &str) -> Daemon {
    let data = dir.join(format!("mender-{run}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("device_type"),
        format!("device_type={DEVICE_TYPE}\n"),
    )
    .unwrap();
    let conf = data.join("mender.conf");
    let config = json!({
        "ServerURL": base, "TenantToken": "", "UpdatePollIntervalSeconds": 1,
        "InventoryPollIntervalSeconds": 1, "RetryPollIntervalSeconds": 1,
        "DeviceTypeFile": data.join("device_type"), "DBus": {"Enabled": false},
    });
    std::fs::write(&conf, config.to_string()).unwrap();
    sys.put(
        "/usr/share/mender/identity/mender-device-identity",
        format!("#!/bin/sh\necho mac={mac}\n").as_bytes(),
        true,
    );
    let mut cmd = Command::new("mender");
    cmd.arg("-c")
        .arg(&conf)
        .arg("-d")
        .arg(&data)
        .args(["--no-syslog", "daemon"]);
    Daemon::spawn(cmd, dir.join(format!("mender-{run}.log")))
}

#[test]
fn mender_client_updates_through_the_mender_api_and_reports_success_and_failure() {
    if !have("mender") || !is_root() {
        eprintln!(
            "skipped: needs root and mender-client (CI installs it: apt-get install mender-client)"
        );
        return;
    }
    let line = Line::new();
    let dir = line.dir();
    fota(
        dir,
        &[
            "export",
            "mender",
            "update.fota",
            "-o",
            "update.mender",
            "--device-type",
            DEVICE_TYPE,
        ],
    );
    let mut module_args: Vec<String> = ["export", "mender-module", "-o", "fota-module"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    module_args.extend(line.flash_args());
    fota(
        dir,
        &module_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let mut sys = SystemFiles::new();
    sys.put("/etc/mender/artifact_info", b"artifact_name=1.0.0\n", false);
    sys.put(
        "/usr/share/mender/modules/v3/fota",
        &std::fs::read(dir.join("fota-module")).unwrap(),
        true,
    );

    let (server, package) = Server::start(dir);
    let base = server.base.clone();
    let (s, b) = server.upload(
        &format!("/packages/{package}/artifacts/mender?filename=acme-gw2-1.1.0.mender"),
        std::fs::read(dir.join("update.mender")).unwrap(),
        false,
    );
    assert_eq!(s, 201, "{b}");
    let register = |name: &str, mac: &str| {
        let (s, b) = server.admin(
            reqwest::Method::POST,
            "/devices",
            Some(json!({"id": name, "make": MAKE, "model": MODEL, "fw_version": "1.0.0", "capability": "mender", "mender_identity": {"mac": mac}})),
        );
        assert_eq!(s, 201, "{b}");
    };

    // 1. Success: authenticated, downloaded, installed by the module.
    register("gw-m1", "02:00:00:00:00:11");
    {
        let m = mender(&mut sys, dir, &base, "02:00:00:00:00:11", "install");
        let u = server.wait_update("gw-m1", 90, |s| s == "installed" || s == "failed");
        assert_eq!(u["state"], "installed", "{u}\n{}", m.log());
    }
    assert_eq!(
        &std::fs::read(line.device("slot-b.bin")).unwrap()[..line.new.len()],
        &line.new[..],
        "the slot holds the new image"
    );
    let (_, d) = server.admin(reqwest::Method::GET, "/devices/ID:gw-m1", None);
    assert_eq!(d["device"]["fw_version"], "1.1.0");

    // 2. Failure: another device whose running image is not the package's
    // source; the module's `fota flash` refuses it.
    line.break_source();
    register("gw-m2", "02:00:00:00:00:12");
    {
        let m = mender(&mut sys, dir, &base, "02:00:00:00:00:12", "fail");
        let u = server.wait_update("gw-m2", 90, |s| s == "failed" || s == "installed");
        assert_eq!(u["state"], "failed", "{u}\n{}", m.log());
        // The client's log, uploaded after the failure, is the reason.
        let reason = u["reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("device errors: Update module terminated abnormally"),
            "{reason}"
        );
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
