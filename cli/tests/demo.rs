//! `fota demo` end to end: the bundled sample through a server on
//! 127.0.0.1 and a simulated device, with a dropped download and a power
//! cut; it must end installed with the new image in flash.

use std::process::Command;

#[test]
fn demo_ends_installed() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(env!("CARGO_BIN_EXE_fota"))
        .arg("demo")
        .current_dir(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "redirect  302",
        "connection lost after",
        "resuming at byte",
        "notify    POST \"900 Success\"",
        "emergency calls",
        "POWER CUT after 6 flash operations",
        "resumed from the journal",
        "Generic Alert 1226: result 200",
        "update status: installed",
        "flash equals the new image: yes",
        "final status: installed",
        "server    stopped",
    ] {
        assert!(text.contains(step), "no {step:?} in\n{text}");
    }
}

#[test]
fn demo_with_missing_images_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_fota"))
        .args(["demo", "--old", "no-such-old", "--new", "no-such-new"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-old"), "{err}");
}
