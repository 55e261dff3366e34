//! `fota export mender` and `fota export mender-module` end to end: a
//! package from `fota diff`, its artifact installed by the real
//! mender-client (`mender install`, standalone) through the module, which
//! runs the built `fota flash` on files standing for the device's flash;
//! and a device whose running image is not the package's source, where
//! the install fails and the slot is left alone. Also the commands' output
//! and refusals.
//!
//! mender-client 3.4 reads its update modules and `artifact_info` from
//! fixed system paths, so the install test needs `mender` on PATH and
//! root; without them it says so and passes (CI installs mender-client and
//! runs as root). It puts back whatever was at those paths, even when it
//! fails.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;

/// How long one mender command may take before the test gives up.
const MENDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Where mender-client 3.4 looks for the update module of payload type
/// `fota` (not configurable).
const MODULE_PATH: &str = "/usr/share/mender/modules/v3/fota";

/// The file mender-client 3.4 reads the current artifact name from, and
/// needs for every module install (not configurable).
const ARTIFACT_INFO: &str = "/etc/mender/artifact_info";

/// The device type the test device has and the artifact names.
const DEVICE_TYPE: &str = "fota-test-board";

/// Where the simulated device keeps things: a folder whose name needs
/// quoting in a shell, so the module's quoting is exercised for real.
const DEVICE: &str = "device's \"flash\" $x";

/// The executable `name` on PATH, if any.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True when this process runs as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Env {
    /// `p`: an A/B package old -> new, version 1.5.0.
    fn package(&self) {
        self.ok(&[
            "diff",
            "--key",
            "k/fota.key",
            "--from-version",
            "1.0.0",
            "--to-version",
            "1.5.0",
            "old",
            "new",
            "-o",
            "p",
        ]);
    }

    /// Absolute path of `name` in the folder, as text.
    fn abs(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// `fota export mender-module` to OUT for the device in [`DEVICE`],
    /// A/B with `source` as its running image, running the built `fota`.
    fn module(&self, source: &str, out: &str) -> String {
        std::fs::create_dir_all(self.path(DEVICE)).unwrap();
        let args = [
            "export".to_string(),
            "mender-module".into(),
            "--fota".into(),
            env!("CARGO_BIN_EXE_fota").into(),
            "--pubkey".into(),
            self.abs("k/fota.pub"),
            "--source".into(),
            self.abs(source),
            "--image".into(),
            self.abs(&format!("{DEVICE}/slot.bin")),
            "--state".into(),
            self.abs(&format!("{DEVICE}/state.bin")),
            "-o".into(),
            out.into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args)
    }
}

/// What was at a system path before the test, to put back.
enum Saved {
    Missing,
    File(Vec<u8>, std::fs::Permissions),
    Symlink(PathBuf),
}

/// Puts back, when dropped (also on panic), every system path the test
/// replaced, and removes the folders it created.
#[derive(Default)]
struct SystemPaths {
    files: Vec<(PathBuf, Saved)>,
    created_dirs: Vec<PathBuf>,
}

impl SystemPaths {
    /// Creates `dir` and its missing parents, remembering which were new.
    fn create_dir(&mut self, dir: &Path) {
        let mut missing = Vec::new();
        let mut d = Some(dir);
        while let Some(p) = d {
            if p.exists() {
                break;
            }
            missing.push(p.to_path_buf());
            d = p.parent();
        }
        for p in missing.into_iter().rev() {
            std::fs::create_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            self.created_dirs.push(p);
        }
    }

    /// Replaces `path` with `bytes` (mode `mode`), after saving what was
    /// there.
    fn put(&mut self, path: &str, bytes: &[u8], mode: u32) {
        let path = PathBuf::from(path);
        if !self.files.iter().any(|(p, _)| *p == path) {
            let saved = match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::Missing,
                Err(e) => panic!("{}: {e}", path.display()),
                Ok(m) if m.file_type().is_symlink() => {
                    Saved::Symlink(std::fs::read_link(&path).unwrap())
                }
                Ok(m) => Saved::File(std::fs::read(&path).unwrap(), m.permissions()),
            };
            self.files.push((path.clone(), saved));
        }
        if let Some(dir) = path.parent() {
            self.create_dir(dir);
        }
        // Never write through a symlink into another file.
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

impl Drop for SystemPaths {
    fn drop(&mut self) {
        for (path, saved) in self.files.drain(..).rev() {
            let _ = std::fs::remove_file(&path);
            let restored = match saved {
                Saved::Missing => Ok(()),
                Saved::File(bytes, permissions) => std::fs::write(&path, bytes)
                    .and_then(|()| std::fs::set_permissions(&path, permissions)),
                Saved::Symlink(target) => std::os::unix::fs::symlink(target, &path),
            };
            if let Err(e) = restored {
                eprintln!("could not restore {}: {e}", path.display());
            }
        }
        for dir in self.created_dirs.drain(..).rev() {
            if let Err(e) = std::fs::remove_dir(&dir) {
                eprintln!("could not remove {}: {e}", dir.display());
            }
        }
    }
}

/// A mender-client with its configuration, fallback configuration, data
/// folder and device_type file in `dir`.
struct Mender {
    dir: PathBuf,
}

impl Mender {
    fn new(dir: PathBuf) -> Mender {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let device_type = dir.join("device_type");
        std::fs::write(&device_type, format!("device_type={DEVICE_TYPE}\n")).unwrap();
        let config = serde_json::json!({
            "DeviceTypeFile": device_type,
            "DBus": {"Enabled": false},
        });
        std::fs::write(dir.join("mender.conf"), config.to_string()).unwrap();
        std::fs::write(dir.join("fallback.conf"), "{}").unwrap();
        Mender { dir }
    }

    /// Runs `mender ARGS` with this client's files; returns (success,
    /// stdout and stderr). Kills it and fails if it runs past
    /// [`MENDER_TIMEOUT`].
    fn run(&self, args: &[&str]) -> (bool, String) {
        let log_path = self.dir.join(format!("mender-{}.log", args[0]));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new("mender")
            .arg("-c")
            .arg(self.dir.join("mender.conf"))
            .arg("-b")
            .arg(self.dir.join("fallback.conf"))
            .arg("-d")
            .arg(self.dir.join("data"))
            .arg("--no-syslog")
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > MENDER_TIMEOUT {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!(
                    "mender {args:?} still running after {MENDER_TIMEOUT:?}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).into_owned();
        (status.success(), log)
    }

    /// `mender show-artifact`: the artifact name the client records.
    fn artifact_name(&self) -> String {
        let (ok, out) = self.run(&["show-artifact"]);
        assert!(ok, "{out}");
        // The name is the one line that is not a log line.
        out.lines()
            .filter(|l| !l.starts_with("time="))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Both cases in one test: they share the module path and artifact_info.
#[test]
fn mender_installs_the_artifact_and_fota_flash_writes_the_new_image() {
    if on_path("mender").is_none() {
        eprintln!("skipped: mender not on PATH (CI installs mender-client)");
        return;
    }
    if !is_root() {
        eprintln!(
            "skipped: not root; mender-client installs modules only from {MODULE_PATH} and needs {ARTIFACT_INFO} (CI runs as root)"
        );
        return;
    }
    let before = (
        std::fs::read(MODULE_PATH).ok(),
        std::fs::read(ARTIFACT_INFO).ok(),
    );
    let env = Env::new();
    env.package();
    let json = env.ok(&[
        "export",
        "mender",
        "--device-type",
        "other-board",
        "--device-type",
        DEVICE_TYPE,
        "--json",
        "p",
        "-o",
        "update.mender",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["artifact_name"], "1.5.0");
    let mut system = SystemPaths::default();
    system.put(ARTIFACT_INFO, b"artifact_name=1.0.0\n", 0o644);
    let artifact = env.abs("update.mender");

    // The device runs `old`, the package's source.
    env.module("old", "module");
    system.put(MODULE_PATH, &env.read("module"), 0o755);
    let good = Mender::new(env.path("good"));
    let (ok, log) = good.run(&["install", &artifact]);
    assert!(ok, "{log}");
    assert!(log.contains("fota module: applying "), "{log}");
    assert!(log.contains("fota module: fota flash finished"), "{log}");
    let new = env.read("new");
    let slot = env.read(&format!("{DEVICE}/slot.bin"));
    assert!(slot.len() >= new.len(), "{log}");
    assert!(slot[..new.len()] == new[..], "the slot holds the new image");
    assert!(
        slot[new.len()..].iter().all(|b| *b == 0xff),
        "and erased bytes to the end of its last erase block"
    );
    // Standalone, with no rollback, the install is committed at once.
    assert!(log.contains("Committing"), "{log}");
    assert_eq!(good.artifact_name(), "1.5.0");
    let (ok, provides) = good.run(&["show-provides"]);
    assert!(ok, "{provides}");
    assert!(provides.contains("artifact_name=1.5.0"), "{provides}");
    assert!(
        provides.contains("rootfs-image.fota.version=1.5.0"),
        "{provides}"
    );

    // The device runs `new`, not the package's source `old`.
    std::fs::remove_file(env.path(&format!("{DEVICE}/state.bin"))).unwrap();
    std::fs::write(env.path(&format!("{DEVICE}/slot.bin")), b"previous slot").unwrap();
    env.module("new", "module");
    system.put(MODULE_PATH, &env.read("module"), 0o755);
    let wrong = Mender::new(env.path("wrong"));
    let (ok, log) = wrong.run(&["install", &artifact]);
    assert!(!ok, "{log}");
    assert!(log.contains("source image sha256 differs"), "{log}");
    assert!(
        log.contains("fota flash failed with exit status 1"),
        "{log}"
    );
    assert_eq!(
        env.read(&format!("{DEVICE}/slot.bin")),
        b"previous slot",
        "the slot is untouched"
    );
    let name = wrong.artifact_name();
    assert_ne!(name, "1.5.0", "the failed install is not recorded");
    drop(system);
    assert_eq!(
        (
            std::fs::read(MODULE_PATH).ok(),
            std::fs::read(ARTIFACT_INFO).ok()
        ),
        before,
        "the system paths are put back"
    );
}

/// Files in the folder, to show a refused export leaves nothing behind.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn export_mender_summary_json_and_determinism() {
    let env = Env::new();
    env.package();
    let text = env.ok(&[
        "export",
        "mender",
        "--device-type",
        "b1",
        "p",
        "-o",
        "a.mender",
    ]);
    assert!(text.starts_with("a.mender: "), "{text}");
    assert!(
        text.contains("unsigned; artifact \"1.5.0\" for device types b1"),
        "{text}"
    );
    for name in [
        "version",
        "manifest",
        "header.tar.gz",
        "data/0000.tar.gz",
        "data/0000/update.fota",
    ] {
        assert!(text.contains(name), "{name}: {text}");
    }
    assert!(text.contains("/usr/share/mender/modules/v3/fota"), "{text}");
    let a = env.read("a.mender");
    assert!(a.len() >= 4096 && a.len() % 10240 == 0, "{}", a.len());
    assert_eq!(&a[..8], b"version\0");

    let json = env.ok(&[
        "export",
        "mender",
        "--device-type",
        "b1",
        "--device-type",
        "b 2",
        "--artifact-name",
        "rel-\"7\"",
        "--payload-type",
        "fota-ab",
        "--json",
        "p",
        "-o",
        "b.mender",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["package"], "p");
    assert_eq!(v["output"], "b.mender");
    assert_eq!(v["output_bytes"], env.read("b.mender").len());
    assert_eq!(v["artifact_name"], "rel-\"7\"");
    assert_eq!(v["device_types"], serde_json::json!(["b1", "b 2"]));
    assert_eq!(v["payload_type"], "fota-ab");
    assert_eq!(v["module"], "/usr/share/mender/modules/v3/fota-ab");
    let names: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "version",
            "manifest",
            "header.tar.gz",
            "data/0000.tar.gz",
            "data/0000/update.fota"
        ]
    );
    let p = env.read("p");
    assert_eq!(v["members"][4]["bytes"], p.len());

    // The same command makes the same file.
    env.ok(&[
        "export",
        "mender",
        "--device-type",
        "b1",
        "p",
        "-o",
        "c.mender",
    ]);
    assert_eq!(env.read("c.mender"), a);

    // `tar` reads the artifact, when it is installed.
    if let Ok(out) = Command::new("tar")
        .arg("-tf")
        .arg(env.path("a.mender"))
        .output()
    {
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "version\nmanifest\nheader.tar.gz\ndata/0000.tar.gz\n"
        );
    }

    let help = env.ok(&["export", "mender", "--help"]);
    for word in [
        "mender-client",
        "--device-type",
        "--artifact-name",
        "--payload-type",
        "mender-module",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
}

#[test]
fn export_mender_refusals_name_the_file_or_option() {
    let env = Env::new();
    env.package();
    let before = listing(env.dir.path());

    // Usage error (clap): no device type.
    let out = env.run(&["export", "mender", "p", "-o", "out.mender"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--device-type"));

    let args = |package: &'static str, extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["export", "mender", "--device-type", "b1"];
        v.extend_from_slice(extra);
        v.extend_from_slice(&[package, "-o", "out.mender"]);
        v
    };
    // Not a package: exit 1, like every refused package.
    let e = env.fails(&args("old", &[]), 1);
    assert!(e.contains("old: not a fota package: "), "{e}");
    let e = env.fails(&args("missing.fota", &[]), 2);
    assert!(e.contains("missing.fota: No such file"), "{e}");
    let cases: [(&[&str], &str); 5] = [
        (
            &["--device-type", "a=b"],
            "--device-type \"a=b\": contains '='",
        ),
        (&["--device-type", ""], "--device-type \"\": empty"),
        (
            &["--artifact-name", "1.5 beta"],
            "--artifact-name \"1.5 beta\": contains whitespace",
        ),
        (
            &["--artifact-name", "two\nlines"],
            "--artifact-name \"two\\nlines\": contains a newline",
        ),
        (
            &["--payload-type", "../fota"],
            "--payload-type \"../fota\": not a plain file name",
        ),
    ];
    for (extra, message) in cases {
        let e = env.fails(&args("p", extra), 2);
        assert!(e.contains(message), "{extra:?}: {e}");
    }
    assert_eq!(listing(env.dir.path()), before, "nothing written");
}

#[test]
fn export_mender_module_writes_an_executable_script() {
    let env = Env::new();
    let base = [
        "export",
        "mender-module",
        "--pubkey",
        "/etc/fota/fota.pub",
        "--source",
        "/dev/slot-a",
        "--image",
        "/dev/slot-b",
        "--state",
        "/var/lib/fota/state",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    };
    // An existing file is replaced whole, and gets the script's mode.
    std::fs::write(env.path("fota-module"), "old").unwrap();
    let text = env.ok(&with(&["--boot", "file", "-o", "fota-module"]));
    assert!(
        text.contains("install on the device as /usr/share/mender/modules/v3/fota (mode 0755)"),
        "{text}"
    );
    assert!(
        text.contains("ArtifactInstall runs: 'fota' 'flash' '--pubkey=/etc/fota/fota.pub' '--source=/dev/slot-a' '--image=/dev/slot-b' '--state=/var/lib/fota/state' '--boot=file' '--' <work folder>/files/update.fota"),
        "{text}"
    );
    let script = std::fs::read_to_string(env.path("fota-module")).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert!(script.contains("'--boot=file'"), "{script}");
    let mode = std::fs::metadata(env.path("fota-module"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // Executable as it is: a query state answers No.
    let out = Command::new(env.path("fota-module"))
        .args(["NeedsArtifactReboot", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"No\n");

    // Refusals: nothing written.
    let before = listing(env.dir.path());
    let e = env.fails(&with(&["--erase-size", "0", "-o", "m2"]), 2);
    assert!(
        e.contains("--erase-size \"0\": a flash unit of zero bytes"),
        "{e}"
    );
    let e = env.fails(&with(&["--fota", "", "-o", "m2"]), 2);
    assert!(e.contains("--fota \"\": empty"), "{e}");
    let e = env.fails(&with(&["-o", "no-dir/m2"]), 2);
    assert!(e.contains("no-dir"), "{e}");
    let out = env.run(&[
        "export",
        "mender-module",
        "--image",
        "i",
        "--state",
        "s",
        "-o",
        "m2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pubkey"));
    assert_eq!(listing(env.dir.path()), before, "nothing written");

    let help = env.ok(&["export", "mender-module", "--help"]);
    for word in [
        "/usr/share/mender/modules/v3/fota",
        "NeedsArtifactReboot",
        "On the device",
        "--pubkey",
        "--boot",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
}
