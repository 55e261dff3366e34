//! `export::mender`: the artifact's members and order, the manifest's
//! lines and checksums, header-info and type-info as JSON with exactly the
//! keys mender-client accepts, the gzip members, determinism, every
//! refusal; and the update module run with `sh` in every state against a
//! fake `fota` that records its arguments.
#![cfg(unix)]

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::export_package as package;
use fota_format::Label;
use fota_generator::export::flash::{hex, Boot, FlashCommand};
use fota_generator::export::mender::{
    self, MenderOptions, DATA_MEMBER, DEFAULT_PAYLOAD_TYPE, FORMAT_VERSION, HEADER_INFO,
    HEADER_MEMBER, MANIFEST_MEMBER, MANIFEST_PAYLOAD, PAYLOAD_FILE, TYPE_INFO, VERSION_MEMBER,
};
use fota_generator::export::Error;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn ab_package() -> Vec<u8> {
    package(|_| {})
}

fn options() -> MenderOptions {
    MenderOptions::new(vec!["board-a".into()])
}

fn build(package: &[u8], options: &MenderOptions) -> Result<mender::Artifact, Error> {
    mender::build(package, options)
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The members of a ustar archive (name, data), with the checksum of each
/// header checked, and the archive's whole-record length.
fn untar(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert_eq!(archive.len() % 10240, 0, "whole 10240-byte records");
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        let h = &archive[at..at + 512];
        if h.iter().all(|b| *b == 0) {
            assert!(archive[at..].iter().all(|b| *b == 0), "zeros to the end");
            assert!(archive.len() - at >= 1024, "two end blocks");
            return out;
        }
        let octal = |field: &[u8]| {
            let digits = std::str::from_utf8(field)
                .unwrap()
                .trim_end_matches(['\0', ' ']);
            usize::from_str_radix(digits, 8).unwrap()
        };
        let sum: usize = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    *b as usize
                }
            })
            .sum();
        assert_eq!(octal(&h[148..156]), sum, "header checksum at {at}");
        assert_eq!(&h[257..263], b"ustar\0");
        assert_eq!(h[156], b'0', "a regular file");
        assert_eq!(octal(&h[136..148]), 0, "mtime 0");
        assert_eq!(octal(&h[100..108]), 0o644, "mode");
        let end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8(h[..end].to_vec()).unwrap();
        let size = octal(&h[124..136]);
        let data = archive[at + 512..at + 512 + size].to_vec();
        out.push((name, data));
        at = (at + 512 + size).next_multiple_of(512);
    }
}

/// `data` gunzipped, after checking the gzip header carries no file name
/// and mtime 0.
fn gunzip(data: &[u8]) -> Vec<u8> {
    assert_eq!(&data[..3], [0x1f, 0x8b, 8], "gzip, deflate");
    assert_eq!(data[3], 0, "no flags: no file name, comment or extra field");
    assert_eq!(&data[4..8], [0, 0, 0, 0], "mtime 0");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn names(members: &[(String, Vec<u8>)]) -> Vec<&str> {
    members.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn members_in_order_with_the_manifest_of_their_checksums() {
    let pkg = ab_package();
    let out = build(&pkg, &options()).unwrap();
    assert!(
        out.bytes.len() >= 4096,
        "mender-client refuses smaller downloads"
    );
    let m = untar(&out.bytes);
    assert_eq!(
        names(&m),
        [VERSION_MEMBER, MANIFEST_MEMBER, HEADER_MEMBER, DATA_MEMBER]
    );
    assert_eq!(
        names(&m),
        ["version", "manifest", "header.tar.gz", "data/0000.tar.gz"]
    );
    assert_eq!(m[0].1, br#"{"format":"mender","version":3}"#);
    assert_eq!(m[0].1, FORMAT_VERSION.as_bytes());
    let v: Value = serde_json::from_slice(&m[0].1).unwrap();
    assert_eq!(v, json!({"format": "mender", "version": 3}));

    let manifest = String::from_utf8(m[1].1.clone()).unwrap();
    assert_eq!(manifest, out.manifest);
    assert_eq!(
        manifest,
        format!(
            "{}  version\n{}  header.tar.gz\n{}  data/0000/update.fota\n",
            sha256_hex(&m[0].1),
            sha256_hex(&m[2].1),
            sha256_hex(&pkg),
        ),
        "the payload's checksum is of the package, not of data/0000.tar.gz"
    );
    assert!(manifest.ends_with('\n'));
    assert_eq!(manifest.lines().count(), 3);

    for (member, (name, data)) in out.members.iter().zip(&m) {
        assert_eq!(member.name, name);
        assert_eq!(member.len, data.len() as u64);
        assert_eq!(hex(&member.sha256), sha256_hex(data));
    }
    assert_eq!(out.members.len(), 4);
    assert_eq!(out.payload.name, MANIFEST_PAYLOAD);
    assert_eq!(out.payload.name, format!("data/0000/{PAYLOAD_FILE}"));
    assert_eq!(out.payload.len, pkg.len() as u64);
    assert_eq!(hex(&out.payload.sha256), sha256_hex(&pkg));

    let data = untar(&gunzip(&m[3].1));
    assert_eq!(data, [("update.fota".to_string(), pkg.clone())]);
}

#[test]
fn header_info_and_type_info_have_exactly_the_accepted_keys() {
    let mut o = options();
    o.device_types = vec!["board-a".into(), "board-b".into()];
    let out = build(&ab_package(), &o).unwrap();
    let m = untar(&out.bytes);
    let header = untar(&gunzip(&m[2].1));
    assert_eq!(names(&header), [HEADER_INFO, TYPE_INFO]);
    assert_eq!(names(&header), ["header-info", "headers/0000/type-info"]);
    assert_eq!(header[0].1, out.header_info.as_bytes());
    assert_eq!(header[1].1, out.type_info.as_bytes());

    // serde_json's Value compares objects by their keys and values: an
    // extra key, which mender-client refuses, fails the comparison.
    let info: Value = serde_json::from_slice(&header[0].1).unwrap();
    assert_eq!(
        info,
        json!({
            "payloads": [{"type": "fota"}],
            "artifact_provides": {"artifact_name": "1.5.0"},
            "artifact_depends": {"device_type": ["board-a", "board-b"]},
        })
    );
    assert_eq!(
        out.header_info,
        r#"{"payloads":[{"type":"fota"}],"artifact_provides":{"artifact_name":"1.5.0"},"artifact_depends":{"device_type":["board-a","board-b"]}}"#
    );
    let type_info: Value = serde_json::from_slice(&header[1].1).unwrap();
    assert_eq!(
        type_info,
        json!({
            "type": "fota",
            "artifact_provides": {"rootfs-image.fota.version": "1.5.0"},
            "clears_artifact_provides": ["rootfs-image.fota.*"],
        })
    );
    assert_eq!(out.artifact_name, "1.5.0");
    assert_eq!(out.device_types, ["board-a", "board-b"]);
    assert_eq!(out.payload_type, DEFAULT_PAYLOAD_TYPE);
}

#[test]
fn values_are_escaped_for_json() {
    let mut o = options();
    o.artifact_name = Some(r#"1.5.0-"rc"\1-ünï"#.into());
    o.device_types = vec![r#"board "x" \ y"#.into(), "✓".into()];
    o.payload_type = "fota-ab_2.x".into();
    let out = build(&ab_package(), &o).unwrap();
    let info: Value = serde_json::from_str(&out.header_info).unwrap();
    assert_eq!(
        info["artifact_provides"]["artifact_name"],
        r#"1.5.0-"rc"\1-ünï"#
    );
    assert_eq!(
        info["artifact_depends"]["device_type"],
        json!([r#"board "x" \ y"#, "✓"])
    );
    assert_eq!(info["payloads"][0]["type"], "fota-ab_2.x");
    let type_info: Value = serde_json::from_str(&out.type_info).unwrap();
    assert_eq!(type_info["type"], "fota-ab_2.x");
    assert_eq!(
        type_info["artifact_provides"]["rootfs-image.fota-ab_2.x.version"],
        r#"1.5.0-"rc"\1-ünï"#
    );
    assert_eq!(
        type_info["clears_artifact_provides"],
        json!(["rootfs-image.fota-ab_2.x.*"])
    );
    assert_eq!(mender::json_string("\u{8}"), r#""\u0008""#);
}

#[test]
fn the_same_input_makes_the_same_bytes() {
    let a = build(&ab_package(), &options()).unwrap();
    let b = build(&ab_package(), &options()).unwrap();
    assert_eq!(a.bytes, b.bytes);
    let mut o = options();
    o.artifact_name = Some("1.5.1".into());
    let c = build(&ab_package(), &o).unwrap();
    assert_ne!(a.bytes, c.bytes);
    assert_eq!(a.bytes.len(), c.bytes.len());
}

#[test]
fn a_real_package_exports_with_its_version() {
    let (old, new) = common::firmware_pair(20_000, 3);
    let opts = fota_generator::DiffOptions {
        to_version: Label::new("2.0").unwrap(),
        ..common::small_opts()
    };
    let pkg = common::diff_and_apply(&old, &new, &opts, 1).package;
    let out = build(&pkg, &options()).unwrap();
    assert_eq!(out.artifact_name, "2.0");
    let m = untar(&out.bytes);
    assert_eq!(untar(&gunzip(&m[3].1))[0].1, pkg);
    assert!(out.manifest.contains(&sha256_hex(&pkg)));
}

#[test]
fn a_non_package_is_refused() {
    let pkg = ab_package();
    let mut trailing = pkg.clone();
    trailing.push(0);
    for bad in [
        Vec::new(),
        b"not a package at all".to_vec(),
        pkg[..pkg.len() - 1].to_vec(),
        trailing,
        vec![0u8; 4096],
    ] {
        let e = build(&bad, &options()).unwrap_err();
        assert!(matches!(e, Error::NotAPackage(_)), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}

#[test]
fn at_least_one_device_type() {
    let e = build(&ab_package(), &MenderOptions::new(Vec::new())).unwrap_err();
    assert!(matches!(e, Error::NoDeviceType), "{e}");
    assert!(e.to_string().contains("--device-type"), "{e}");
}

/// `value` in `option` is refused with a reason containing `reason`.
fn refused(o: &MenderOptions, option: &str, reason: &str) {
    let e = build(&ab_package(), o).unwrap_err();
    assert!(
        matches!(&e, Error::BadValue { option: got, reason: r, .. } if *got == option && r.contains(reason)),
        "{option} {reason}: {e}"
    );
    assert!(e.to_string().starts_with(option), "{e}");
}

#[test]
fn device_types_mender_cannot_match_are_refused() {
    for (t, reason) in [
        ("", "empty"),
        ("a\nb", "newline"),
        ("a\0b", "NUL"),
        ("a\tb", "control character"),
        ("a\u{1b}b", "control character"),
        ("a=b", "'='"),
        (" board", "whitespace"),
        ("board ", "whitespace"),
    ] {
        let mut o = options();
        o.device_types.push(t.into());
        refused(&o, "--device-type", reason);
    }
    // Inner spaces are kept (mender-client trims only the ends).
    let mut o = options();
    o.device_types = vec!["my board".into()];
    build(&ab_package(), &o).unwrap();
}

#[test]
fn artifact_names_mender_cannot_record_are_refused() {
    for (name, reason) in [
        ("", "empty"),
        ("a\nb", "newline"),
        ("a\0b", "NUL"),
        ("a\u{7f}b", "control character"),
        ("a b", "whitespace"),
        ("a\tb", "control character"),
        ("a\u{a0}b", "whitespace"),
    ] {
        let mut o = options();
        o.artifact_name = Some(name.into());
        refused(&o, "--artifact-name", reason);
    }
    // A package without a to-version needs a name.
    let unversioned = package(|m| m.to_version = Label::EMPTY);
    let e = build(&unversioned, &options()).unwrap_err();
    assert!(
        matches!(&e, Error::BadValue { option: "--artifact-name", reason, .. } if reason.contains("no to-version")),
        "{e}"
    );
    let mut o = options();
    o.artifact_name = Some("release-7".into());
    assert_eq!(build(&unversioned, &o).unwrap().artifact_name, "release-7");
    // A to-version with whitespace is refused the same way.
    let spaced = package(|m| m.to_version = Label::new("1.5 beta").unwrap());
    let e = build(&spaced, &options()).unwrap_err();
    assert!(
        matches!(&e, Error::BadValue { option: "--artifact-name", reason, .. } if reason.contains("whitespace")),
        "{e}"
    );
}

#[test]
fn payload_types_that_are_not_file_names_are_refused() {
    for (t, reason) in [
        ("", "empty"),
        ("a/b", "plain file name"),
        ("..", "'.'"),
        (".hidden", "'.'"),
        ("a b", "plain file name"),
        ("ünï", "plain file name"),
        ("a\nb", "newline"),
    ] {
        let mut o = options();
        o.payload_type = t.into();
        refused(&o, "--payload-type", reason);
    }
}

// The update module.

/// A work folder as mender-client 3.4 leaves it at ArtifactInstall (with
/// `files/update.fota`), the module made from `flash`, and a fake `fota`
/// first on PATH that writes its arguments, one a line, to `args` and
/// exits with `$FAKE_FOTA_STATUS`.
struct ModuleRun {
    dir: tempfile::TempDir,
    module: mender::Module,
}

impl ModuleRun {
    fn new(flash: &FlashCommand) -> ModuleRun {
        let module = mender::module(flash).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let fake = "#!/bin/sh\n\
             for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$FAKE_FOTA_ARGS\"\n\
             echo 'fake fota ran'\n\
             exit \"${FAKE_FOTA_STATUS:-0}\"\n";
        write_executable(&bin.join("fota"), fake);
        std::fs::write(dir.path().join("fota-module"), &module.script).unwrap();
        let run = ModuleRun { dir, module };
        std::fs::create_dir_all(run.work().join("files")).unwrap();
        std::fs::write(run.work().join("files").join(PAYLOAD_FILE), b"package").unwrap();
        run
    }

    /// The work folder, with characters a shell would expand unquoted.
    fn work(&self) -> PathBuf {
        self.dir.path().join("payloads/0000 'tree' \"$x\" `id`")
    }

    /// Runs `sh <module> STATE <work folder>` in the work folder, as
    /// mender-client does; returns (exit code, stdout, stderr).
    fn run(&self, state: &str, status: i32) -> (i32, String, String) {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(self.dir.path().join("fota-module"))
            .arg(state)
            .arg(self.work())
            .env("PATH", path)
            .env("FAKE_FOTA_ARGS", self.dir.path().join("args"))
            .env("FAKE_FOTA_STATUS", status.to_string())
            .current_dir(self.work())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// The arguments the fake fota got, `None` when it did not run.
    fn args(&self) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("args")).ok()?;
        Some(text.lines().map(str::to_string).collect())
    }
}

fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

fn flash() -> FlashCommand {
    let mut f = FlashCommand::new("/etc/fota/fota.pub", "/dev/slot-b", "/var/lib/fota/state");
    f.source = Some("/dev/slot-a".into());
    f
}

#[test]
fn module_answers_no_to_reboot_and_rollback() {
    let run = ModuleRun::new(&flash());
    for state in ["SupportsRollback", "NeedsArtifactReboot"] {
        assert_eq!(
            run.run(state, 0),
            (0, "No\n".to_string(), String::new()),
            "{state}"
        );
    }
    assert_eq!(run.args(), None, "fota does not run for a query");
    assert!(!run.module.script.contains("Automatic"));
}

#[test]
fn module_does_nothing_in_every_other_state() {
    let run = ModuleRun::new(&flash());
    for state in [
        "Download",
        "ArtifactReboot",
        "ArtifactVerifyReboot",
        "ArtifactCommit",
        "ArtifactRollback",
        "ArtifactRollbackReboot",
        "ArtifactVerifyRollbackReboot",
        "ArtifactFailure",
        "Cleanup",
        // A state a later client may add.
        "ProvidePayloadFileSizes",
        "",
    ] {
        assert_eq!(
            run.run(state, 7),
            (0, String::new(), String::new()),
            "{state}"
        );
    }
    assert_eq!(run.args(), None, "fota never ran");
}

#[test]
fn module_install_passes_the_exact_arguments() {
    let mut f = flash();
    let awkward = [
        "/keys/it's a \"key\".pub",
        "/dev/slot b $HOME `id` $(id) * ? [a] \\ ; & | > <",
        "-state starting with a dash",
        "/old/ünïcode\ttab '' \"\"",
    ];
    f.pubkey = awkward[0].into();
    f.image = awkward[1].into();
    f.state = awkward[2].into();
    f.source = Some(awkward[3].into());
    f.erase_size = Some(1024);
    f.write_size = Some(8);
    f.boot = Some(Boot::File);
    f.device_class = Some("sensor x".into());
    f.security_counter = Some(0);
    let run = ModuleRun::new(&f);
    let (code, stdout, stderr) = run.run("ArtifactInstall", 0);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let package = run.work().join("files/update.fota").display().to_string();
    let expected = f.argv(&package);
    assert_eq!(run.module.command, expected[..expected.len() - 1]);
    assert_eq!(
        run.args().unwrap(),
        expected[1..],
        "fota gets every argument as given"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("fota module: applying {package}: 'fota' 'flash'")),
        "{stdout}"
    );
    assert!(lines[0].ends_with(&format!("'--' {package}")), "{stdout}");
    assert_eq!(lines[1], "fake fota ran");
    assert_eq!(lines[2], "fota module: fota flash finished");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn module_install_returns_the_exit_status_of_fota_flash() {
    let run = ModuleRun::new(&flash());
    for status in [1, 2, 3, 125] {
        let (code, stdout, stderr) = run.run("ArtifactInstall", status);
        assert_eq!(code, status, "{stdout}{stderr}");
        assert!(
            stderr.contains(&format!("fota flash failed with exit status {status}")),
            "{stderr}"
        );
        assert!(!stdout.contains("finished"), "{stdout}");
    }
}

#[test]
fn module_install_without_the_payload_fails_before_fota_runs() {
    let run = ModuleRun::new(&flash());
    std::fs::remove_file(run.work().join("files/update.fota")).unwrap();
    let (code, stdout, stderr) = run.run("ArtifactInstall", 0);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("files/update.fota"), "{stderr}");
    assert!(stderr.contains("fota export mender"), "{stderr}");
    assert_eq!(run.args(), None);
}

#[test]
fn module_runs_the_fota_binary_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let fota = dir.path().join("my tools").join("fota");
    std::fs::create_dir(fota.parent().unwrap()).unwrap();
    write_executable(&fota, "#!/bin/sh\necho \"other fota: $1\"\nexit 0\n");
    let mut f = flash();
    f.fota = fota.display().to_string();
    let run = ModuleRun::new(&f);
    let (code, stdout, _) = run.run("ArtifactInstall", 0);
    assert_eq!(code, 0);
    assert!(stdout.contains("other fota: flash"), "{stdout}");
    assert_eq!(run.args(), None, "the fota on PATH is not used");
}

#[test]
fn module_script_is_posix_sh() {
    let module = mender::module(&flash()).unwrap();
    assert!(module.script.starts_with("#!/bin/sh\n"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fota");
    std::fs::write(&path, &module.script).unwrap();
    // `sh -n` parses without running; dash (Debian's sh) is strict POSIX.
    for shell in ["sh", "dash", "bash"] {
        match Command::new(shell).arg("-n").arg(&path).output() {
            Ok(out) => assert!(
                out.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("{shell} not run: {e}"),
        }
    }
}

#[test]
fn module_options_no_device_can_run_are_refused() {
    type Edit = fn(&mut FlashCommand);
    let cases: [(&str, Edit); 9] = [
        ("--fota", |f| f.fota.clear()),
        ("--pubkey", |f| f.pubkey.clear()),
        ("--image", |f| f.image.clear()),
        ("--state", |f| f.state.clear()),
        ("--source", |f| f.source = Some(String::new())),
        ("--state", |f| f.state = "a\nb".into()),
        ("--device-class", |f| f.device_class = Some("x".repeat(33))),
        ("--erase-size", |f| f.erase_size = Some(0)),
        ("--write-size", |f| f.write_size = Some(0)),
    ];
    for (option, edit) in cases {
        let mut f = flash();
        edit(&mut f);
        let e = mender::module(&f).unwrap_err();
        assert!(
            matches!(&e, Error::BadValue { option: got, .. } if *got == option),
            "{option}: {e}"
        );
    }
    // In place (no --source) is fine: the package decides, on the device.
    let mut f = flash();
    f.source = None;
    mender::module(&f).unwrap();
}
