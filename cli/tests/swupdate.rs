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

#[path = "common/clients.rs"]
mod clients;

use std::path::Path;
use std::process::Command;

use clients::{fota, have, Daemon, Line, Server, MAKE, MODEL};
use fota_server::registry::Capability;
use serde_json::json;

/// swupdate polling the server as device `id` (`confirm`: started again
/// after the reboot, `-c 2`), everything it writes in `dir/swupdate-RUN`.
fn swupdate(dir: &Path, base: &str, id: &str, token: &str, confirm: bool, run: &str) -> Daemon {
    let tmp = dir.join(format!("swupdate-{run}"));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut suricatta = format!("-t DEFAULT -u {base} -i {id} -k {token} -r 2 -w 1");
    if confirm {
        suricatta.push_str(" -c 2");
    }
    let mut cmd = Command::new("swupdate");
    cmd.args(["-v", "-k"])
        .arg(dir.join("cert.pem"))
        .args(["-H", "board:1.0", "-u", &suricatta])
        .env("TMPDIR", &tmp);
    Daemon::spawn(cmd, dir.join(format!("swupdate-{run}.log")))
}

#[test]
fn swupdate_updates_through_the_ddi_api_and_reports_success_and_failure() {
    for tool in ["swupdate", "openssl"] {
        if !have(tool) {
            eprintln!("skipped: {tool} is not installed (CI installs it: apt-get install swupdate openssl)");
            return;
        }
    }
    let line = Line::new();
    let dir = line.dir();
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
    let incoming = line.device("incoming.fota").display().to_string();
    let mut args: Vec<String> = [
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
        "--device-package",
        &incoming,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(line.flash_args());
    fota(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());

    let (server, package) = Server::start(dir);
    let base = server.base.clone();
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
        let sw = swupdate(dir, &base, "gw-0001", &token, false, "install");
        let u = server.wait_update("gw-0001", 90, |s| s == "downloaded" || s == "failed");
        assert_eq!(u["state"], "downloaded", "{u}\n{}", sw.log());
    }
    assert_eq!(
        &std::fs::read(line.device("slot-b.bin")).unwrap()[..line.new.len()],
        &line.new[..],
        "the slot holds the new image"
    );
    {
        let sw = swupdate(dir, &base, "gw-0001", &token, true, "confirm");
        let u = server.wait_update("gw-0001", 60, |s| s == "installed" || s == "failed");
        assert_eq!(u["state"], "installed", "{u}\n{}", sw.log());
    }
    let (_, d) = server.admin(reqwest::Method::GET, "/devices/ID:gw-0001", None);
    assert_eq!(d["device"]["fw_version"], "1.1.0");

    // 2. Failure: this device's running image is not the package's source;
    // `fota flash` refuses it and the failure reaches the report.
    line.break_source();
    let token = register("gw-0002");
    {
        let sw = swupdate(dir, &base, "gw-0002", &token, false, "fail");
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
