//! `export::swu`: the sw-description text (hashes, escaping, refusals),
//! the archive's members and order, every error path, and the generated
//! script run with `sh` against a fake `fota` that records its arguments.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::export_package as package;
use fota_format::{Label, Mode};
use fota_generator::export::swu::{
    self, Boot, FlashCommand, Signer, SwuOptions, DEFAULT_DEVICE_PACKAGE, PACKAGE_MEMBER,
    SCRIPT_MEMBER, SIGNATURE, SW_DESCRIPTION,
};
use fota_generator::export::Error;
use sha2::{Digest, Sha256};

fn ab_package() -> Vec<u8> {
    package(|_| {})
}

/// A/B options matching [`ab_package`].
fn options() -> SwuOptions {
    let mut flash = FlashCommand::new("/etc/fota/fota.pub", "/dev/slot-b", "/var/lib/fota/state");
    flash.source = Some("/dev/slot-a".into());
    SwuOptions::new(flash, vec!["1.0".into()])
}

/// The members of a newc archive: names and data, checksums checked.
fn members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        assert_eq!(&archive[at..at + 6], b"070702");
        let field = |i: usize| {
            let hex = std::str::from_utf8(&archive[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
            usize::from_str_radix(hex, 16).unwrap()
        };
        let (size, namesize, chksum) = (field(6), field(11), field(12));
        let name = String::from_utf8(archive[at + 110..at + 110 + namesize - 1].to_vec()).unwrap();
        let data_at = (at + 110 + namesize).next_multiple_of(4);
        let data = archive[data_at..data_at + size].to_vec();
        let sum = data.iter().fold(0u32, |s, b| s.wrapping_add(u32::from(*b)));
        assert_eq!(sum as usize, chksum, "checksum of {name}");
        at = (data_at + size).next_multiple_of(4);
        if name == "TRAILER!!!" {
            return out;
        }
        out.push((name, data));
    }
}

fn sha256_hex(data: &[u8]) -> String {
    swu::hex(&Sha256::digest(data))
}

fn build(package: &[u8], options: &SwuOptions) -> Result<swu::Swu, Error> {
    swu::build(package, options, None)
}

#[test]
fn sw_description_names_each_member_with_its_sha256() {
    let pkg = ab_package();
    let out = build(&pkg, &options()).unwrap();
    let m = members(&out.bytes);
    let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [SW_DESCRIPTION, SCRIPT_MEMBER, PACKAGE_MEMBER]);
    assert!(!out.signed);
    assert_eq!(m[0].1, out.sw_description.as_bytes());
    assert_eq!(m[1].1, out.script.as_bytes());
    assert_eq!(m[2].1, pkg);
    for (member, (name, data)) in out.members.iter().zip(&m) {
        assert_eq!(member.name, name);
        assert_eq!(member.len, data.len() as u64);
        assert_eq!(swu::hex(&member.sha256), sha256_hex(data));
    }

    let expected = format!(
        r#"software =
{{
	version = "1.5.0";
	description = "fota update 1.4.2 -> 1.5.0";
	hardware-compatibility: [ "1.0" ];
	files: (
		{{
			filename = "update.fota";
			path = "/var/lib/fota/update.fota";
			sha256 = "{}";
			properties = {{
				create-destination = "true";
				atomic-install = "true";
			}};
		}}
	);
	scripts: (
		{{
			filename = "fota-flash.sh";
			type = "shellscript";
			sha256 = "{}";
		}}
	);
}}
"#,
        sha256_hex(&pkg),
        sha256_hex(out.script.as_bytes())
    );
    assert_eq!(out.sw_description, expected);
    assert_eq!(out.software_version, "1.5.0");
    assert_eq!(
        out.command,
        [
            "fota",
            "flash",
            "--pubkey=/etc/fota/fota.pub",
            "--source=/dev/slot-a",
            "--image=/dev/slot-b",
            "--state=/var/lib/fota/state",
            "--",
            DEFAULT_DEVICE_PACKAGE
        ]
    );
}

#[test]
fn a_real_package_exports_with_its_versions() {
    let (old, new) = common::firmware_pair(20_000, 3);
    let opts = fota_generator::DiffOptions {
        to_version: Label::new("2.0").unwrap(),
        ..common::small_opts()
    };
    let pkg = common::diff_and_apply(&old, &new, &opts, 1).package;
    let mut o = options();
    o.flash.erase_size = Some(1024);
    let out = build(&pkg, &o).unwrap();
    assert_eq!(out.software_version, "2.0");
    assert!(out
        .sw_description
        .contains("description = \"fota update to 2.0\";"));
    assert_eq!(members(&out.bytes)[2].1, pkg);
}

#[test]
fn signed_archives_carry_the_signature_of_sw_description_second() {
    let seen = std::cell::RefCell::new(Vec::new());
    let signer = |data: &[u8]| -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        seen.borrow_mut().extend_from_slice(data);
        Ok(b"CMS".to_vec())
    };
    let out = swu::build(&ab_package(), &options(), Some(&signer)).unwrap();
    assert!(out.signed);
    assert_eq!(*seen.borrow(), out.sw_description.as_bytes());
    let m = members(&out.bytes);
    let names: Vec<&str> = m.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [SW_DESCRIPTION, SIGNATURE, SCRIPT_MEMBER, PACKAGE_MEMBER]
    );
    assert_eq!(m[1].1, b"CMS");
}

#[test]
fn signer_failures_are_reported() {
    let failing = |_: &[u8]| -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Err("openssl: key.pem: no such file".into())
    };
    let e = swu::build(&ab_package(), &options(), Some(&failing)).unwrap_err();
    assert!(matches!(e, Error::Sign(_)), "{e}");
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.contains("key.pem"), "{source}");

    let empty =
        |_: &[u8]| -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> { Ok(Vec::new()) };
    let e = swu::build(&ab_package(), &options(), Some(&empty as &dyn Signer)).unwrap_err();
    assert!(matches!(e, Error::EmptySignature), "{e}");
}

#[test]
fn values_are_escaped_for_libconfig() {
    let mut o = options();
    o.software_version = Some(r#"1.5.0-"rc"\1"#.into());
    o.description = Some(r#"say "hi" \ to C:\fw	(tab) 'single' ünïcode"#.into());
    o.hardware_compatibility = vec!["1.0".into(), r"#RE:^2\.[0-9]+$".into()];
    o.device_package = r#"/data/my "pkgs"\x/update.fota"#.into();
    let out = build(&ab_package(), &o).unwrap();
    let d = &out.sw_description;
    assert!(d.contains(r#"version = "1.5.0-\"rc\"\\1";"#), "{d}");
    assert!(
        d.contains(r#"description = "say \"hi\" \\ to C:\\fw	(tab) 'single' ünïcode";"#),
        "{d}"
    );
    assert!(
        d.contains(r##"hardware-compatibility: [ "1.0", "#RE:^2\\.[0-9]+$" ];"##),
        "{d}"
    );
    assert!(
        d.contains(r#"path = "/data/my \"pkgs\"\\x/update.fota";"#),
        "{d}"
    );
    assert_eq!(out.software_version, r#"1.5.0-"rc"\1"#);
    assert_eq!(swu::libconfig_string(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(swu::sh_quote("it's"), r"'it'\''s'");
}

/// Sets one option of [`SwuOptions`] to a value.
type SetOption = Box<dyn Fn(&mut SwuOptions, String)>;

/// Every text option, set to `value`.
fn with_each_text_option(value: &str) -> Vec<(&'static str, SwuOptions)> {
    let set: Vec<(&'static str, SetOption)> = vec![
        (
            "--software-version",
            Box::new(|o, v| o.software_version = Some(v)),
        ),
        ("--description", Box::new(|o, v| o.description = Some(v))),
        (
            "--hardware-compatibility",
            Box::new(|o, v| o.hardware_compatibility.push(v)),
        ),
        (
            "--device-package",
            Box::new(|o, v| o.device_package = format!("/p/{v}")),
        ),
        ("--fota", Box::new(|o, v| o.flash.fota = v)),
        ("--pubkey", Box::new(|o, v| o.flash.pubkey = v)),
        ("--image", Box::new(|o, v| o.flash.image = v)),
        ("--state", Box::new(|o, v| o.flash.state = v)),
        ("--source", Box::new(|o, v| o.flash.source = Some(v))),
        (
            "--device-class",
            Box::new(|o, v| o.flash.device_class = Some(v)),
        ),
    ];
    set.into_iter()
        .map(|(name, f)| {
            let mut o = options();
            f(&mut o, value.to_string());
            (name, o)
        })
        .collect()
}

#[test]
fn newlines_and_nul_are_refused_in_every_value() {
    for (bad, what) in [("a\nb", "newline"), ("a\0b", "NUL"), ("\n", "newline")] {
        for (option, o) in with_each_text_option(bad) {
            let e = build(&ab_package(), &o).unwrap_err();
            match &e {
                Error::BadValue {
                    option: got,
                    reason,
                    ..
                } => {
                    assert_eq!(*got, option);
                    assert!(reason.contains(what), "{option}: {e}");
                }
                _ => panic!("{option} {bad:?}: {e}"),
            }
            assert!(e.to_string().starts_with(option), "{e}");
        }
    }
    // The same values without the newline are fine (the device class
    // aside, which the package names).
    for (option, o) in with_each_text_option("a b") {
        let r = build(&ab_package(), &o);
        assert_eq!(r.is_ok(), option != "--device-class", "{option}: {r:?}");
    }
}

#[test]
fn at_least_one_nonempty_hardware_revision() {
    let mut o = options();
    o.hardware_compatibility.clear();
    let e = build(&ab_package(), &o).unwrap_err();
    assert!(matches!(e, Error::NoHardwareRevision), "{e}");
    assert!(e.to_string().contains("hardware-compatibility"));
    o.hardware_compatibility = vec!["1.0".into(), String::new()];
    let e = build(&ab_package(), &o).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadValue {
                option: "--hardware-compatibility",
                reason: "empty",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn the_version_comes_from_the_package_or_the_options() {
    let mut o = options();
    o.software_version = Some("2024.05".into());
    assert_eq!(
        build(&ab_package(), &o).unwrap().software_version,
        "2024.05"
    );
    assert!(build(&ab_package(), &o)
        .unwrap()
        .sw_description
        .contains("description = \"fota update 1.4.2 -> 2024.05\";"));

    o.software_version = Some(String::new());
    let e = build(&ab_package(), &o).unwrap_err();
    assert!(
        matches!(e, Error::BadValue { option: "--software-version", reason, .. } if reason.contains("requires a version")),
        "{e}"
    );

    let unversioned = package(|m| m.to_version = Label::EMPTY);
    let e = build(&unversioned, &options()).unwrap_err();
    assert!(
        matches!(e, Error::BadValue { option: "--software-version", reason, .. } if reason.contains("no to-version")),
        "{e}"
    );
    o.software_version = Some("3".into());
    assert_eq!(build(&unversioned, &o).unwrap().software_version, "3");
}

#[test]
fn device_package_paths_swupdate_cannot_use_are_refused() {
    let long = format!("/{}", "a".repeat(swu::MAX_DEVICE_PATH));
    for (path, reason) in [
        ("", "empty"),
        ("update.fota", "absolute"),
        ("var/lib/fota/update.fota", "absolute"),
        ("/var/lib/fota/", "directory"),
        (long.as_str(), "250 bytes"),
    ] {
        let mut o = options();
        o.device_package = path.into();
        let e = build(&ab_package(), &o).unwrap_err();
        assert!(
            matches!(&e, Error::BadValue { option: "--device-package", reason: r, .. } if r.contains(reason)),
            "{path:?}: {e}"
        );
    }
    let mut o = options();
    o.device_package = format!("/{}", "a".repeat(swu::MAX_DEVICE_PATH - 1));
    build(&ab_package(), &o).unwrap();
}

#[test]
fn empty_paths_and_bad_flash_values_are_refused() {
    type Edit = fn(&mut FlashCommand);
    let cases: [(&str, Edit); 8] = [
        ("--fota", |f| f.fota.clear()),
        ("--pubkey", |f| f.pubkey.clear()),
        ("--image", |f| f.image.clear()),
        ("--state", |f| f.state.clear()),
        ("--source", |f| f.source = Some(String::new())),
        ("--device-class", |f| f.device_class = Some("x".repeat(33))),
        ("--erase-size", |f| f.erase_size = Some(0)),
        ("--write-size", |f| f.write_size = Some(0)),
    ];
    for (option, edit) in cases {
        let mut o = options();
        edit(&mut o.flash);
        let e = build(&ab_package(), &o).unwrap_err();
        assert!(
            matches!(&e, Error::BadValue { option: got, .. } if *got == option),
            "{option}: {e}"
        );
    }
}

#[test]
fn setups_fota_flash_would_refuse_are_refused() {
    let in_place = package(|m| {
        m.mode = Mode::InPlace;
        m.op_auth = fota_format::OpAuth::Chain;
    });
    let streams = package(|m| {
        m.streams_len = 40;
        m.op_count = 1;
    });
    let classed = package(|m| {
        m.device_class = Label::new("sensor-x").unwrap();
        m.security_counter = 5;
    });
    let mut no_source = options();
    no_source.flash.source = None;
    let mut boot_file = no_source.clone();
    boot_file.flash.boot = Some(Boot::File);
    let mut other_class = options();
    other_class.flash.device_class = Some("sensor-y".into());
    let mut newer_device = options();
    newer_device.flash.security_counter = Some(6);
    let mut big_erase = options();
    big_erase.flash.erase_size = Some(8192);
    let cases = [
        (&ab_package(), &no_source, "A/B package"),
        (&in_place, &options(), "in-place package"),
        (&in_place, &boot_file, "--boot"),
        (&streams, &options(), "--no-decompress"),
        (&classed, &other_class, "device class \"sensor-x\""),
        (&classed, &newer_device, "security counter 5"),
        (&ab_package(), &big_erase, "erase blocks of 8192"),
    ];
    for (pkg, o, message) in cases {
        let e = build(pkg, o).unwrap_err();
        assert!(
            matches!(&e, Error::Mismatch { reason } if reason.contains(message)),
            "{message}: {e}"
        );
    }
    // What fota flash accepts passes.
    build(&in_place, &no_source).unwrap();
    let mut boot_none = no_source.clone();
    boot_none.flash.boot = Some(Boot::None);
    build(&in_place, &boot_none).unwrap();
    let mut ok = options();
    ok.flash.device_class = Some("sensor-x".into());
    ok.flash.security_counter = Some(5);
    ok.flash.erase_size = Some(1024);
    ok.flash.boot = Some(Boot::Mcuboot);
    build(&classed, &ok).unwrap();
    let mut any_class = options();
    any_class.flash.device_class = Some(String::new());
    build(&classed, &any_class).unwrap();
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
fn every_flash_option_reaches_the_command_line() {
    let mut f = FlashCommand::new("k.pub", "img", "st");
    f.fota = "/opt/fota/bin/fota".into();
    f.source = Some("old".into());
    f.erase_size = Some(1024);
    f.write_size = Some(8);
    f.boot = Some(Boot::Mcuboot);
    f.device_class = Some("sensor-x".into());
    f.security_counter = Some(7);
    assert_eq!(
        f.argv("/p"),
        [
            "/opt/fota/bin/fota",
            "flash",
            "--pubkey=k.pub",
            "--source=old",
            "--image=img",
            "--state=st",
            "--erase-size=1024",
            "--write-size=8",
            "--boot=mcuboot",
            "--device-class=sensor-x",
            "--security-counter=7",
            "--",
            "/p",
        ]
    );
}

/// A temporary folder with the script of `o` (executable, as swupdate
/// leaves it) and a fake `fota` first on PATH that writes its arguments,
/// one a line, to `args` and exits with `$FAKE_FOTA_STATUS`.
struct ScriptRun {
    dir: tempfile::TempDir,
}

impl ScriptRun {
    fn new(o: &SwuOptions) -> ScriptRun {
        let out = build(&ab_package(), o).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let fake = "#!/bin/sh\n\
             for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$FAKE_FOTA_ARGS\"\n\
             echo 'fake fota ran'\n\
             exit \"${FAKE_FOTA_STATUS:-0}\"\n";
        write_executable(&bin.join("fota"), fake);
        write_executable(&dir.path().join(SCRIPT_MEMBER), &out.script);
        ScriptRun { dir }
    }

    /// Runs `fota-flash.sh PHASE`; returns (exit code, stdout, stderr).
    fn run(&self, phase: &str, status: i32) -> (i32, String, String) {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(self.dir.path().join(SCRIPT_MEMBER))
            .arg(phase)
            .env("PATH", path)
            .env("FAKE_FOTA_ARGS", self.dir.path().join("args"))
            .env("FAKE_FOTA_STATUS", status.to_string())
            .current_dir(self.dir.path())
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

#[test]
fn script_preinst_does_nothing() {
    let run = ScriptRun::new(&options());
    assert_eq!(run.run("preinst", 0), (0, String::new(), String::new()));
    assert_eq!(
        run.args(),
        None,
        "fota must not run before the package is written"
    );
    // A phase a later swupdate may add is not an error either.
    assert_eq!(run.run("postfailure", 0).0, 0);
    assert_eq!(run.args(), None);
}

#[test]
fn script_postinst_passes_the_exact_arguments() {
    let mut o = options();
    let awkward = [
        "/keys/it's a \"key\".pub",
        "/dev/slot b $HOME `id` $(id) * ? [a] \\ ; & | > <",
        "-state starting with a dash",
        "/old/ünïcode\ttab '' \"\"",
    ];
    o.flash.pubkey = awkward[0].into();
    o.flash.image = awkward[1].into();
    o.flash.state = awkward[2].into();
    o.flash.source = Some(awkward[3].into());
    o.flash.erase_size = Some(1024);
    o.flash.security_counter = Some(0);
    o.device_package = "/data/a 'b' \"c\" $d/update.fota".into();
    let run = ScriptRun::new(&o);
    let (code, stdout, stderr) = run.run("postinst", 0);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let expected = o.flash.argv(&o.device_package);
    assert_eq!(
        run.args().unwrap(),
        expected[1..],
        "fota gets every argument as given"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(
            "fota-flash.sh: applying /data/a 'b' \"c\" $d/update.fota: 'fota' 'flash'"
        ),
        "{stdout}"
    );
    assert_eq!(lines[1], "fake fota ran");
    assert_eq!(lines[2], "fota-flash.sh: fota flash finished");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn script_postinst_returns_the_exit_status_of_fota_flash() {
    let run = ScriptRun::new(&options());
    for status in [1, 2, 3] {
        let (code, stdout, stderr) = run.run("postinst", status);
        assert_eq!(code, status, "{stdout}{stderr}");
        assert!(
            stderr.contains(&format!("fota flash failed with exit status {status}")),
            "{stderr}"
        );
        assert!(!stdout.contains("finished"), "{stdout}");
    }
}

#[test]
fn script_runs_the_fota_binary_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let fota = dir.path().join("my tools").join("fota");
    std::fs::create_dir(fota.parent().unwrap()).unwrap();
    write_executable(&fota, "#!/bin/sh\necho \"other fota: $1\"\nexit 0\n");
    let mut o = options();
    o.flash.fota = fota.display().to_string();
    let run = ScriptRun::new(&o);
    let (code, stdout, _) = run.run("postinst", 0);
    assert_eq!(code, 0);
    assert!(stdout.contains("other fota: flash"), "{stdout}");
    assert_eq!(run.args(), None, "the fota on PATH is not used");
}
