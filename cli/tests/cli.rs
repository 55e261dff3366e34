//! The `fota` command as scripts use it: the exact argument forms, exit
//! codes, one-line errors naming the file, and no output left behind on
//! refusal. Runs on the bundled sample pair, built with the host compiler.

mod common;

use common::Env;

impl Env {
    fn diff(&self) {
        self.ok(&[
            "diff",
            "--key",
            "k/fota.key",
            "--device-class",
            "sensor-x",
            "--to-version",
            "1.5.0",
            "old",
            "new",
            "-o",
            "p",
        ]);
    }

    /// Files in the folder, to prove nothing was left behind.
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

#[test]
fn keygen_diff_apply_verify_inspect() {
    let env = Env::new();
    assert!(env.path("k/fota.key").exists() && env.path("k/fota.pub").exists());
    let json = env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "--json",
        "--from-version",
        "1.4.2",
        "old",
        "new",
        "-o",
        "p",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pkg_len = std::fs::metadata(env.path("p")).unwrap().len();
    assert_eq!(v["package_bytes"], pkg_len);
    assert_eq!(
        v["new_bytes"],
        std::fs::metadata(env.path("new")).unwrap().len()
    );
    assert!(v["seconds"].as_f64().unwrap() >= 0.0 && v["threads"].as_u64().unwrap() >= 1);
    assert!(
        pkg_len * 4 < v["new_bytes"].as_u64().unwrap(),
        "the sample update should be small: {json}"
    );

    env.ok(&["apply", "--pubkey", "k/fota.pub", "old", "p", "-o", "out"]);
    assert_eq!(
        std::fs::read(env.path("out")).unwrap(),
        std::fs::read(env.path("new")).unwrap()
    );
    assert!(env
        .ok(&["verify", "--pubkey", "k/fota.pub", "p"])
        .contains("OK"));
    assert!(env
        .ok(&["verify", "--pubkey", "k/fota.pub", "--source", "old", "p"])
        .contains("target"));

    let text = env.ok(&["inspect", "p"]);
    assert!(
        text.contains("1.4.2") && text.contains("segment size"),
        "{text}"
    );
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--json", "p"])).unwrap();
    assert_eq!(j["from_version"], "1.4.2");
    assert_eq!(j["package_bytes"], pkg_len);
    // The framing adds up to the package.
    let f = &j["framing"];
    let parts: u64 = [
        "header_bytes",
        "manifest_bytes",
        "op_head_bytes",
        "payload_bytes",
    ]
    .iter()
    .map(|k| f[k].as_u64().unwrap())
    .sum();
    assert_eq!(serde_json::json!(parts), pkg_len);
    assert!(
        text.contains("framing        header 96 + manifest"),
        "{text}"
    );
    let ops: u64 = ["copy", "patch", "new", "fill", "skip", "xform"]
        .iter()
        .map(|k| j["ops"][k]["ops"].as_u64().unwrap())
        .sum();
    assert_eq!(ops, j["op_count"].as_u64().unwrap());
}

#[test]
fn threads_do_not_change_the_package() {
    let env = Env::new();
    env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "--threads",
        "1",
        "--segment-size",
        "4096",
        "old",
        "new",
        "-o",
        "p1",
    ]);
    env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "--threads",
        "2",
        "--segment-size",
        "4096",
        "old",
        "new",
        "-o",
        "p2",
    ]);
    assert_eq!(
        std::fs::read(env.path("p1")).unwrap(),
        std::fs::read(env.path("p2")).unwrap()
    );
}

#[test]
fn a_flipped_byte_anywhere_is_refused_and_nothing_is_written() {
    let env = Env::new();
    env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "--segment-size",
        "4096",
        "old",
        "new",
        "-o",
        "p",
    ]);
    let good = std::fs::read(env.path("p")).unwrap();
    std::fs::write(env.path("out"), b"previous contents").unwrap();
    let before = env.listing();
    // Every byte of the header and manifest, then positions spread over the ops.
    let mut positions: Vec<usize> = (0..368.min(good.len())).collect();
    positions.extend((368..good.len()).step_by((good.len() / 150).max(1)));
    positions.push(good.len() - 1);
    for pos in positions {
        let mut bad = good.clone();
        bad[pos] ^= 0x20;
        std::fs::write(env.path("bad"), &bad).unwrap();
        let err = env.fails(
            &["apply", "--pubkey", "k/fota.pub", "old", "bad", "-o", "out"],
            1,
        );
        assert!(err.contains("bad"), "names the package: {err}");
        assert_eq!(
            std::fs::read(env.path("out")).unwrap(),
            b"previous contents",
            "flip at {pos}"
        );
    }
    let mut after = env.listing();
    after.retain(|f| f != "bad");
    assert_eq!(after, before, "no temporary or partial file left");
}

#[test]
fn refusals_name_the_file_and_what_was_expected() {
    let env = Env::new();
    env.diff();
    let pkg = std::fs::read(env.path("p")).unwrap();

    std::fs::write(env.path("short"), &pkg[..pkg.len() / 2]).unwrap();
    let e = env.fails(
        &[
            "apply",
            "--pubkey",
            "k/fota.pub",
            "old",
            "short",
            "-o",
            "out",
        ],
        1,
    );
    assert!(e.contains("short: truncated at offset"), "{e}");

    env.ok(&["keygen", "other"]);
    let e = env.fails(
        &[
            "apply",
            "--pubkey",
            "other/fota.pub",
            "old",
            "p",
            "-o",
            "out",
        ],
        1,
    );
    assert!(
        e.contains("p: package is signed with key id") && e.contains("not a trusted key"),
        "{e}"
    );

    let e = env.fails(
        &["apply", "--pubkey", "k/fota.pub", "new", "p", "-o", "out"],
        1,
    );
    assert!(
        e.contains("new: source image"),
        "names the source image: {e}"
    );

    let e = env.fails(
        &[
            "apply",
            "--pubkey",
            "k/fota.pub",
            "--device-class",
            "sensor-y",
            "old",
            "p",
            "-o",
            "out",
        ],
        1,
    );
    assert!(
        e.contains("device class \"sensor-x\"") && e.contains("\"sensor-y\""),
        "{e}"
    );

    let e = env.fails(
        &[
            "apply",
            "--pubkey",
            "k/fota.pub",
            "--security-counter",
            "3",
            "old",
            "p",
            "-o",
            "out",
        ],
        1,
    );
    assert!(e.contains("anti-rollback"), "{e}");

    let e = env.fails(&["verify", "--pubkey", "other/fota.pub", "p"], 1);
    assert!(e.contains("not a trusted key"), "{e}");
    let e = env.fails(&["inspect", "old"], 1);
    assert!(e.contains("old: bad magic at offset 0"), "{e}");
    assert!(!env.path("out").exists(), "no output after refusals");

    // Errors that are not a refused package exit with 2.
    let e = env.fails(
        &[
            "apply",
            "--pubkey",
            "k/fota.pub",
            "missing",
            "p",
            "-o",
            "out",
        ],
        2,
    );
    assert!(e.contains("missing"), "{e}");
    let e = env.fails(
        &["apply", "--pubkey", "k/fota.key", "old", "p", "-o", "out"],
        2,
    );
    assert!(e.contains("fota.key") && e.contains("public key"), "{e}");
    let e = env.fails(&["keygen", "k"], 2);
    assert!(e.contains("already exists"), "{e}");
    let e = env.fails(
        &[
            "diff",
            "--key",
            "k/fota.key",
            "--segment-size",
            "1000",
            "old",
            "new",
            "-o",
            "p2",
        ],
        2,
    );
    assert!(e.contains("--segment-size"), "{e}");
    let e = env.fails(
        &[
            "diff",
            "--key",
            "k/fota.key",
            "--device-class",
            &"x".repeat(40),
            "old",
            "new",
            "-o",
            "p2",
        ],
        2,
    );
    assert!(
        e.contains("--device-class") && e.contains("at most 32"),
        "{e}"
    );
    assert!(!env.path("p2").exists());
}

#[test]
fn in_place_diff_inspect_apply_and_bad_options() {
    let env = Env::new();
    let diff_json = |extra: &[&str], out: &str| -> serde_json::Value {
        let mut args = vec!["diff", "--key", "k/fota.key", "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["old", "new", "-o", out]);
        serde_json::from_str(&env.ok(&args)).unwrap()
    };
    let ab = diff_json(&[], "ab");
    let ab_4k = diff_json(&["--segment-size", "4096"], "ab4k");
    let ip = diff_json(
        &[
            "--mode",
            "in-place",
            "--erase-size",
            "4096",
            "--scratch-size",
            "8192",
        ],
        "ip",
    );
    assert_eq!(ip["mode"], "InPlace");
    assert_eq!(ip["segment_size"], 4096);
    let stats = &ip["in_place"];
    assert_eq!(stats["scratch_slots_available"], 2);
    assert!(stats["stash_high_water"].as_u64().unwrap() <= 2);
    assert_eq!(stats["stash_ops"], ip["ops"]["stash"]["ops"]);
    assert!(ab["in_place"].is_null());
    println!(
        "sample pair: A/B {} B (4 MiB segments), A/B {} B (4 KiB segments), in place {} B \
         (4 KiB segments, {} stash ops, high-water {} of 2 slots, {} re-planned)",
        ab["package_bytes"],
        ab_4k["package_bytes"],
        ip["package_bytes"],
        stats["stash_ops"],
        stats["stash_high_water"],
        stats["replanned_ops"]
    );

    env.ok(&["apply", "--pubkey", "k/fota.pub", "old", "ip", "-o", "out"]);
    assert_eq!(
        std::fs::read(env.path("out")).unwrap(),
        std::fs::read(env.path("new")).unwrap()
    );
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--json", "ip"])).unwrap();
    assert_eq!(j["mode"], "InPlace");
    assert_eq!(j["scratch_slots"], stats["scratch_slots"]);
    assert_eq!(j["stash_ops"], stats["stash_ops"]);
    let text = env.ok(&["inspect", "ip"]);
    assert!(
        text.contains("InPlace") && text.contains("scratch ") && text.contains("stash ops"),
        "{text}"
    );
    let human = env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "--mode",
        "in-place",
        "old",
        "new",
        "-o",
        "ip2",
    ]);
    assert!(
        human.contains("in place:") && human.contains("stash ops"),
        "{human}"
    );

    // Options the format or the device cannot honour exit with 2 and say why.
    let e = env.fails(
        &[
            "diff",
            "--key",
            "k/fota.key",
            "--mode",
            "in-place",
            "--segment-size",
            "6144",
            "old",
            "new",
            "-o",
            "bad",
        ],
        2,
    );
    assert!(
        e.contains("--segment-size") && e.contains("erase blocks"),
        "{e}"
    );
    let e = env.fails(
        &[
            "diff",
            "--key",
            "k/fota.key",
            "--mode",
            "in-place",
            "--scratch-size",
            "100",
            "old",
            "new",
            "-o",
            "bad",
        ],
        2,
    );
    assert!(e.contains("--scratch-size"), "{e}");
    let e = env.fails(
        &[
            "diff",
            "--key",
            "k/fota.key",
            "--scratch-size",
            "8192",
            "old",
            "new",
            "-o",
            "bad",
        ],
        2,
    );
    assert!(e.contains("in-place"), "{e}");
    assert!(!env.path("bad").exists());
}

#[test]
fn tiny_profile_diff_inspect_apply() {
    let env = Env::new();
    for (name, seg) in [("t", "4096"), ("t-big", "4194304")] {
        env.ok(&[
            "diff",
            "--key",
            "k/fota.key",
            "--profile",
            "tiny",
            "--segment-size",
            seg,
            "old",
            "new",
            "-o",
            name,
        ]);
        env.ok(&["apply", "--pubkey", "k/fota.pub", "old", name, "-o", "out"]);
        assert_eq!(
            std::fs::read(env.path("out")).unwrap(),
            std::fs::read(env.path("new")).unwrap()
        );
        let text = env.ok(&["inspect", name]);
        assert!(text.contains("Tiny"), "{text}");
        let j: serde_json::Value =
            serde_json::from_str(&env.ok(&["inspect", "--json", name])).unwrap();
        assert_eq!(j["profile"], "Tiny");
        let new_len = std::fs::metadata(env.path("new")).unwrap().len();
        let pkg_len = std::fs::metadata(env.path(name)).unwrap().len();
        assert!(pkg_len * 3 < new_len, "{name}: {pkg_len} of {new_len}");
    }
    let j: serde_json::Value = serde_json::from_str(&env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "--json",
        "old",
        "new",
        "-o",
        "z",
    ]))
    .unwrap();
    assert!(j["package_bytes"].as_u64().is_some());
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--json", "z"])).unwrap();
    assert_eq!(j["profile"], "Zstd");
    // clap refuses an unknown profile (its usage error spans several lines).
    let out = env.run(&[
        "diff",
        "--key",
        "k/fota.key",
        "--profile",
        "lz4",
        "old",
        "new",
        "-o",
        "bad",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--profile") && e.contains("tiny"), "{e}");
    assert!(!env.path("bad").exists());
}

#[test]
fn compressed_streams_are_diffed_decompressed_shown_and_applied() {
    let env = Env::new();
    let (old, new) = fota_generator::streams::synth::stream_pair(60_000, 9);
    std::fs::write(env.path("sold"), &old).unwrap();
    std::fs::write(env.path("snew"), &new).unwrap();
    let out = env.ok(&["diff", "--key", "k/fota.key", "sold", "snew", "-o", "s"]);
    assert!(out.contains("streams: 1 old and 1 new"), "{out}");
    let text = env.ok(&["inspect", "s"]);
    assert!(
        text.contains("streams        1 source and 1 target"),
        "{text}"
    );
    assert!(text.contains("target lzma at"), "{text}");
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--json", "s"])).unwrap();
    assert_eq!(j["ops"]["streams"]["ops"], 1);
    assert_eq!(j["streams"]["target_size"], new.len());
    env.ok(&["apply", "--pubkey", "k/fota.pub", "sold", "s", "-o", "sout"]);
    assert_eq!(env.read("sout"), new);
    // The device applier refuses it and says how to make one it takes.
    let flash = |pkg| {
        [
            "flash",
            "--pubkey",
            "k/fota.pub",
            "--source",
            "sold",
            "--image",
            "img",
            "--state",
            "state",
            pkg,
        ]
    };
    let err = env.fails(&flash("s"), 1);
    assert!(err.contains("--no-decompress"), "{err}");
    assert!(
        !env.path("img").exists() || env.read("img").is_empty(),
        "nothing written"
    );
    let out = env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "--no-decompress",
        "sold",
        "snew",
        "-o",
        "s2",
    ]);
    assert!(!out.contains("streams:"), "{out}");
    assert!(
        std::fs::metadata(env.path("s2")).unwrap().len()
            > 2 * std::fs::metadata(env.path("s")).unwrap().len()
    );
    env.ok(&flash("s2"));
    assert_eq!(&env.read("img")[..new.len()], &new[..]);
}

#[test]
fn inspect_counts_patches_whose_literals_follow_the_source() {
    // Thumb-like code and a rebuild made of short pieces of it between new
    // instructions: the literals are coded after the old image.
    let env = Env::new();
    let ops = [0xb5u8, 0xbd, 0x46, 0x68, 0xf7, 0x20];
    let mut x = 0x9e37_79b9u32;
    let mut next = move |n: u32| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x % n
    };
    let old: Vec<u8> = (0..12_000)
        .flat_map(|_| [next(24) as u8, ops[next(6) as usize]])
        .collect();
    let mut new = Vec::new();
    while new.len() < old.len() {
        let len = 8 + 2 * next(17) as usize;
        let at = 2 * next(((old.len() - len) / 2) as u32) as usize;
        new.extend_from_slice(&old[at..at + len]);
        new.extend_from_slice(&[next(24) as u8, ops[next(6) as usize]]);
    }
    std::fs::write(env.path("code-old"), &old).unwrap();
    std::fs::write(env.path("code-new"), &new).unwrap();
    env.ok(&[
        "diff",
        "--key",
        "k/fota.key",
        "code-old",
        "code-new",
        "-o",
        "cp",
    ]);
    let j: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", "--json", "cp"])).unwrap();
    assert_eq!(j["literals_after_source_ops"], 1, "{j}");
    let text = env.ok(&["inspect", "cp"]);
    assert!(
        text.contains("1 patch ops code their literals after the op's source"),
        "{text}"
    );
    env.ok(&[
        "apply",
        "--pubkey",
        "k/fota.pub",
        "code-old",
        "cp",
        "-o",
        "out",
    ]);
    assert_eq!(std::fs::read(env.path("out")).unwrap(), new);
}

/// A/B packages are format v3 (the signature covers the ops) unless
/// `--chain` asks for v2's hash chain: 32 bytes more per op, and both
/// apply. `inspect` says which.
#[test]
fn chain_makes_a_hash_chained_v2_package() {
    let env = Env::new();
    env.diff();
    let mut args = vec!["diff", "--key", "k/fota.key", "--device-class", "sensor-x"];
    args.extend(["--to-version", "1.5.0", "--chain", "old", "new", "-o", "pc"]);
    env.ok(&args);
    let whole: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", "p"])).unwrap();
    let chained: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "--json", "pc"])).unwrap();
    assert_eq!(
        (&whole["format_version"], &whole["ops_authenticated_by"]),
        (&serde_json::json!(3), &serde_json::json!("signature"))
    );
    assert_eq!(
        (&chained["format_version"], &chained["ops_authenticated_by"]),
        (&serde_json::json!(2), &serde_json::json!("hash chain"))
    );
    let ops = whole["op_count"].as_u64().unwrap();
    assert_eq!(
        chained["package_bytes"].as_u64().unwrap(),
        whole["package_bytes"].as_u64().unwrap() + 32 * ops,
        "the chain head and a link per op but the last"
    );
    assert!(env
        .ok(&["inspect", "pc"])
        .contains("format v2, ops authenticated by hash chain"));
    for pkg in ["p", "pc"] {
        env.ok(&["apply", "--pubkey", "k/fota.pub", "old", pkg, "-o", "out"]);
        assert_eq!(
            std::fs::read(env.path("out")).unwrap(),
            std::fs::read(env.path("new")).unwrap()
        );
    }
}
