//! `fota flash`: the device-side applier on files standing for flash.
//! A/B and in-place round trips on the bundled sample pair, resuming,
//! refusals that leave IMG and STATE untouched, and the SIGKILL campaign:
//! the command killed at 50 seeded random instants, rerun each time, must
//! end with a bit-exact image.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};

use common::Env;
use std::time::{Duration, Instant};

/// Microseconds the command sleeps before each program and erase in the
/// kill tests (its `FOTA_FLASH_DELAY_US` test hook), so that instants
/// spread over many flash operations even on a RAM-backed temp folder.
const DELAY_US: &str = "300";
/// Erase size (and segment size) of the tests: small, so an update of the
/// 36 KB sample has hundreds of flash operations.
const ERASE: &str = "256";

impl Env {
    /// A/B package `p` and in-place package `pi`, 256-byte segments.
    fn packages(&self) {
        let common = ["--key", "k/fota.key", "--segment-size", ERASE];
        self.ok(&[&["diff"], &common[..], &["old", "new", "-o", "p"]].concat());
        self.ok(&[
            &["diff"],
            &common[..],
            &["--mode", "in-place", "--erase-size", ERASE],
            &["old", "new", "-o", "pi"],
        ]
        .concat());
    }

    /// Asserts IMG starts with the new image.
    fn assert_new_image(&self, img: &str) {
        let new = self.read("new");
        let got = self.read(img);
        assert!(got.len() >= new.len(), "{img} is shorter than the target");
        assert!(
            got[..new.len()] == new[..],
            "{img} does not start with the new image"
        );
    }
}

fn ab_args<'a>(img: &'a str, state: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "flash",
        "--pubkey",
        "k/fota.pub",
        "--source",
        "old",
        "--image",
        img,
        "--state",
        state,
        "--erase-size",
        ERASE,
    ];
    v.extend_from_slice(extra);
    v.push("p");
    v
}

fn in_place_args<'a>(img: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "flash",
        "--pubkey",
        "k/fota.pub",
        "--image",
        img,
        "--state",
        state,
        "--erase-size",
        ERASE,
        "pi",
    ]
}

/// MCUboot's magic for BOOT_MAX_ALIGN 8 (docs/design.md, "Image trailer").
const MCUBOOT_MAGIC: [u8; 16] = [
    0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
];

/// The slot ends with a pending test-boot trailer: swap_info 2 (TEST),
/// copy_done and image_ok erased, magic last.
fn assert_mcuboot_pending(slot: &[u8]) {
    let t = &slot[slot.len() - 48..];
    assert_eq!(&t[32..], &MCUBOOT_MAGIC, "magic");
    assert_eq!(t[24], 0xff, "image_ok unset (test boot)");
    assert_eq!(t[16], 0xff, "copy_done unset");
    assert_eq!(t[8], 2, "swap_info: BOOT_SWAP_TYPE_TEST, image 0");
    assert_eq!(&t[..4], &[0xff; 4], "swap_size left to the bootloader");
}

#[test]
fn ab_round_trip_then_already_finished_then_boot_handoff() {
    let env = Env::new();
    env.packages();
    let old = env.read("old");
    let out = env.ok(&ab_args("slot", "state", &[]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for (line, phase) in lines
        .iter()
        .zip(["package", "layout", "verified", "applied", "done"])
    {
        assert!(line.starts_with(phase), "{out}");
    }
    assert!(
        out.contains("ops executed, 0 ops found done, fresh start"),
        "{out}"
    );
    env.assert_new_image("slot");
    assert_eq!(env.read("old"), old, "the source slot is read only");
    assert_eq!(env.read("state").len(), 512, "two 256-byte journal blocks");

    let again = env.ok(&ab_args("slot", "state", &[]));
    assert!(again.contains("already finished"), "{again}");

    // Hand-off: an MCUboot trailer after the target's blocks.
    let out = env.ok(&ab_args("slot", "state", &["--boot", "mcuboot"]));
    assert!(out.contains("MCUboot trailer"), "{out}");
    let slot = env.read("slot");
    let target_blocks = env.read("new").len().div_ceil(256) * 256;
    assert_eq!(
        slot.len(),
        target_blocks + 256,
        "one erase block of trailer"
    );
    assert_mcuboot_pending(&slot);
    env.assert_new_image("slot");
    let before = env.read("slot");
    env.ok(&ab_args("slot", "state", &["--boot", "mcuboot"]));
    assert_eq!(
        env.read("slot"),
        before,
        "marking pending again changes nothing"
    );

    let out = env.ok(&ab_args("slot", "state", &["--boot", "file"]));
    assert!(out.contains("state.boot"), "{out}");
    assert_eq!(
        std::fs::read_to_string(env.path("state.boot")).unwrap(),
        "fota-boot 1 pending-test 1\n"
    );
}

#[test]
fn in_place_round_trip() {
    let env = Env::new();
    env.packages();
    std::fs::copy(env.path("old"), env.path("img")).unwrap();
    let out = env.ok(&in_place_args("img", "state"));
    assert!(out.contains("in place"), "{out}");
    assert!(out.contains("fresh start"), "{out}");
    env.assert_new_image("img");
    let again = env.ok(&in_place_args("img", "state"));
    assert!(again.contains("already finished"), "{again}");
    let e = env.fails(
        &[
            &in_place_args("img", "state")[..9],
            &["--boot", "file", "pi"][..],
        ]
        .concat(),
        2,
    );
    assert!(e.contains("--boot"), "{e}");
}

/// Starts the command with the delay hook; stdout piped.
fn spawn(env: &Env, args: &[&str]) -> Child {
    env.command(args)
        .env("FOTA_FLASH_DELAY_US", DELAY_US)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills `child` with SIGKILL (if still running); returns its stdout and
/// whether it had already exited successfully.
fn kill(mut child: Child) -> (String, bool) {
    let finished = match child.try_wait().unwrap() {
        Some(status) => {
            assert!(status.success(), "exited with {status} before the kill");
            true
        }
        None => {
            child.kill().unwrap(); // SIGKILL on Unix
            false
        }
    };
    let out = child.wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), finished)
}

#[test]
fn resumes_after_an_interrupted_run() {
    let env = Env::new();
    env.packages();
    std::fs::copy(env.path("old"), env.path("img")).unwrap();
    let args = in_place_args("img", "state");
    let mut child = spawn(&env, &args);
    // Kill once the update is under way.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 && !line.contains("verified") {
        line.clear();
    }
    assert!(line.contains("verified"), "the update never started");
    std::thread::sleep(Duration::from_millis(60));
    let (_, finished) = kill(child);
    assert!(!finished, "the run was too quick to interrupt");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains("applied"), "killed before the end: {rest}");

    let out = env.ok(&args);
    assert!(out.contains("resumed from op"), "{out}");
    let resumed_at: u32 = out
        .split("resumed from op ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(resumed_at > 0, "{out}");
    env.assert_new_image("img");
}

#[test]
fn refused_packages_leave_image_and_state_untouched() {
    let env = Env::new();
    env.packages();
    env.ok(&["keygen", "other"]);
    // A tampered in-place package: one byte of the last op flipped. In
    // place, every op is authenticated before the first write.
    let mut bad = env.read("pi");
    let n = bad.len();
    bad[n - 3] ^= 0x40;
    std::fs::write(env.path("bad"), &bad).unwrap();
    std::fs::copy(env.path("old"), env.path("img")).unwrap();
    std::fs::write(env.path("slot"), b"previous slot contents").unwrap();

    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            [
                &["flash", "--pubkey", "other/fota.pub"][..],
                &in_place_args("img", "state")[3..],
            ]
            .concat(),
            "pi: package is signed with key id",
            "img",
        ),
        (
            [
                &["flash", "--pubkey", "other/fota.pub"][..],
                &ab_args("slot", "state", &[])[3..],
            ]
            .concat(),
            "p: package is signed with key id",
            "slot",
        ),
        (
            ab_args("slot", "state", &[])
                .iter()
                .map(|a| if *a == "old" { "new" } else { *a })
                .collect(),
            "new: source image sha256 differs",
            "slot",
        ),
        (
            [&in_place_args("new", "state")[..9], &["pi"][..]].concat(),
            "new: source image sha256 differs",
            "new",
        ),
        (
            [&in_place_args("img", "state")[..9], &["bad"][..]].concat(),
            "bad: op",
            "img",
        ),
        (
            [
                &in_place_args("img", "state")[..9],
                &["--device-class", "other", "pi"][..],
            ]
            .concat(),
            "device class",
            "img",
        ),
    ];
    for (args, message, image) in cases {
        let before = (env.snapshot(image), env.snapshot("state"));
        let e = env.fails(&args, 1);
        assert!(e.contains(message), "{args:?}: {e}");
        assert_eq!(
            (env.snapshot(image), env.snapshot("state")),
            before,
            "{args:?} changed a file"
        );
        assert!(!env.path("state").exists(), "{args:?} created STATE");
    }
    assert_eq!(env.read("slot"), b"previous slot contents");
    assert_eq!(env.read("img"), env.read("old"));
    // Not a refusal: a geometry the package does not fit (exit 2).
    let e = env.fails(
        &[&in_place_args("img", "state")[..8], &["4096", "pi"][..]].concat(),
        2,
    );
    assert!(e.contains("pi: its 256-byte segments"), "{e}");
}

/// The next op the journal in STATE (at its start) records, 0 when none:
/// the newest valid record's, as the agent reads it.
fn journal_progress(state: &[u8]) -> u32 {
    state
        .get(..512)
        .unwrap_or(&[])
        .chunks(64)
        .filter_map(fota_agent::journal::Record::decode)
        .max_by_key(|r| r.seq)
        .map_or(0, |r| r.next_op)
}

/// The kills left the journal at many different ops, far apart.
fn assert_spread(progress: &[u32]) {
    assert!(
        spread(progress),
        "kills not spread over the update: journal at {progress:?}"
    );
}

/// Whether the kills left the journal at 15 distinct positions or more,
/// 60 ops apart at least.
fn spread(progress: &[u32]) -> bool {
    let low = progress.iter().min().unwrap_or(&0);
    let high = progress.iter().max().unwrap_or(&0);
    let distinct: std::collections::BTreeSet<_> = progress.iter().collect();
    distinct.len() >= 15 && high - low >= 60
}

/// Kills a campaign may add, beyond its drawn instants, when runs on a
/// loaded machine went slower than the clean run and the kills bunched up.
const EXTRA_KILLS: usize = 50;

/// splitmix64: a seeded stream for the kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Campaign {
    kills: usize,
    /// Kills added because the drawn ones did not spread (see `EXTRA_KILLS`).
    extra: usize,
    /// Kills that landed after the first flash write of their run.
    mid_update: usize,
    /// Runs that finished before their kill (a new round then starts).
    finished_early: usize,
    clean_run: Duration,
    total: Duration,
    /// Distinct journal positions (next op) the kills left behind.
    progress: Vec<u32>,
}

/// Measures one clean run, then kills the command at `kills` instants
/// drawn uniformly over that duration: run i is killed after the gap
/// between instants i-1 and i, so successive resumed runs walk through the
/// whole update. Then one last run must finish it, bit-exact.
fn kill_campaign(env: &Env, args: &[&str], reset: &dyn Fn(), seed: u64, kills: usize) -> Campaign {
    let started = Instant::now();
    reset();
    let t0 = Instant::now();
    let out = spawn(env, args).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean_run = t0.elapsed();
    env.assert_new_image(args[args.iter().position(|a| *a == "--image").unwrap() + 1]);

    let mut rng = Rng(seed);
    let mut instants: Vec<f64> = (0..kills).map(|_| rng.unit()).collect();
    instants.sort_by(f64::total_cmp);
    reset();
    let mut stats = Campaign {
        kills,
        extra: 0,
        mid_update: 0,
        finished_early: 0,
        clean_run,
        total: Duration::ZERO,
        progress: Vec::new(),
    };
    let state = args[args.iter().position(|a| *a == "--state").unwrap() + 1];
    let image = args[args.iter().position(|a| *a == "--image").unwrap() + 1];
    let mut progress = Vec::new();
    // One run killed `gap` after its start: where the journal stands, and
    // whether the run got past verification or finished first.
    let kill_after = |gap: Duration, stats: &mut Campaign, progress: &mut Vec<u32>| {
        let child = spawn(env, args);
        std::thread::sleep(gap);
        let (stdout, finished) = kill(child);
        progress.push(journal_progress(&env.read_or_empty(state)));
        if finished {
            env.assert_new_image(image);
            stats.finished_early += 1;
            reset();
        } else if stdout.contains("verified") {
            stats.mid_update += 1;
        }
    };
    let mut prev = 0.0;
    for at in &instants {
        kill_after(clean_run.mul_f64(at - prev), &mut stats, &mut progress);
        prev = *at;
    }
    // Each resumed run spends its start-up (verification, source check)
    // before it writes, and on a loaded machine every run is slower than
    // the clean one: then the drawn instants bunch at the start. More kills,
    // each a tenth of a clean run or less after its start, walk on.
    let mut extra = 0;
    while extra < EXTRA_KILLS && !spread(&progress) {
        extra += 1;
        kill_after(
            clean_run.mul_f64(0.1 * rng.unit()),
            &mut stats,
            &mut progress,
        );
    }
    stats.extra = extra;
    let out = env.ok(args);
    assert!(out.contains("applied"), "{out}");
    stats.total = started.elapsed();
    progress.sort_unstable();
    progress.dedup();
    stats.progress = progress;
    stats
}

#[test]
fn sigkill_at_50_random_instants_in_place_and_ab() {
    let env = Env::new();
    env.packages();
    let old = env.read("old");

    let in_place = in_place_args("img", "state");
    let reset_in_place = || {
        std::fs::copy(env.path("old"), env.path("img")).unwrap();
        let _ = std::fs::remove_file(env.path("state"));
    };
    let c = kill_campaign(&env, &in_place, &reset_in_place, 0x5eed_0001, 50);
    env.assert_new_image("img");
    eprintln!(
        "in place: clean run {:.2} s; {} kills (+{} to spread), {} mid-update, {} runs finished first; {:.1} s in all; journal at {:?}",
        c.clean_run.as_secs_f64(),
        c.kills,
        c.extra,
        c.mid_update,
        c.finished_early,
        c.total.as_secs_f64(),
        c.progress
    );
    assert!(
        c.mid_update >= c.kills / 2,
        "too few kills landed mid-update"
    );
    assert_spread(&c.progress);

    let ab = ab_args("slot", "abstate", &["--boot", "mcuboot"]);
    let reset_ab = || {
        let _ = std::fs::remove_file(env.path("slot"));
        let _ = std::fs::remove_file(env.path("abstate"));
    };
    let c = kill_campaign(&env, &ab, &reset_ab, 0x5eed_0002, 50);
    env.assert_new_image("slot");
    assert_mcuboot_pending(&env.read("slot"));
    assert_eq!(env.read("old"), old, "the A/B source was never written");
    eprintln!(
        "A/B: clean run {:.2} s; {} kills (+{} to spread), {} mid-update, {} runs finished first; {:.1} s in all; journal at {:?}",
        c.clean_run.as_secs_f64(),
        c.kills,
        c.extra,
        c.mid_update,
        c.finished_early,
        c.total.as_secs_f64(),
        c.progress
    );
    assert!(
        c.mid_update >= c.kills / 2,
        "too few kills landed mid-update"
    );
    assert_spread(&c.progress);
}

#[test]
fn sim_runs_the_power_cut_campaign_and_replays() {
    let env = Env::new();
    env.packages();
    let out = env.ok(&[
        "sim",
        "--pubkey",
        "k/fota.pub",
        "--erase-size",
        ERASE,
        "--cuts",
        "60",
        "--random",
        "20",
        "old",
        "pi",
    ]);
    assert!(out.contains("in-place update"), "{out}");
    assert!(out.contains("failures           0"), "{out}");
    assert!(out.contains("cuts torn-erase"), "{out}");
    assert!(out.contains("20 random multi-cut runs"), "{out}");
    let out = env.ok(&[
        "sim",
        "--pubkey",
        "k/fota.pub",
        "--mode",
        "ab",
        "--erase-size",
        ERASE,
        "--write-size",
        "8",
        "--erased",
        "0",
        "--cuts",
        "40",
        "old",
        "p",
    ]);
    assert!(
        out.contains("A/B update") && out.contains("failures           0"),
        "{out}"
    );
    let out = env.ok(&[
        "sim",
        "--pubkey",
        "k/fota.pub",
        "--erase-size",
        ERASE,
        "--replay",
        "x:torn-program@9/4,done@30/2",
        "old",
        "pi",
    ]);
    assert!(out.contains("bit-exact after resume"), "{out}");
    // Wrong mode, segments that are not whole erase blocks, a bad id.
    let e = env.fails(
        &[
            "sim",
            "--pubkey",
            "k/fota.pub",
            "--mode",
            "ab",
            "--erase-size",
            ERASE,
            "old",
            "pi",
        ],
        2,
    );
    assert!(e.contains("--mode"), "{e}");
    let e = env.fails(
        &[
            "sim",
            "--pubkey",
            "k/fota.pub",
            "--erase-size",
            "512",
            "old",
            "pi",
        ],
        2,
    );
    assert!(e.contains("whole erase blocks"), "{e}");
    // A program unit that does not divide the erase block, an erased
    // value flash does not have.
    for (flag, value, want) in [
        ("--write-size", "3", "divide the erase size"),
        ("--erased", "7", "flash erases to 255 or 0"),
    ] {
        let e = env.fails(
            &[
                "sim",
                "--pubkey",
                "k/fota.pub",
                "--erase-size",
                ERASE,
                flag,
                value,
                "old",
                "pi",
            ],
            2,
        );
        assert!(e.contains(want), "{flag} {value}: {e}");
    }
    let e = env.fails(
        &[
            "sim",
            "--pubkey",
            "k/fota.pub",
            "--erase-size",
            ERASE,
            "--replay",
            "nonsense",
            "old",
            "pi",
        ],
        2,
    );
    assert!(e.contains("bad replay id"), "{e}");
}

/// R1 on a real pair: `fota sim --cuts all` on the bundled sample (two
/// builds of one C program, about 36 KB), in place and A/B, on two
/// geometries. Every program and erase of the update is cut in each of
/// the four ways and resumed; every run must end bit-exact.
#[test]
fn every_single_cut_on_the_sample_pair_resumes_bit_exact() {
    let env = Env::new();
    // (erase = segment size, write size, erased value)
    for (erase, write, erased) in [("256", "1", "255"), ("1024", "8", "0")] {
        for mode in ["in-place", "ab"] {
            let pkg = format!("{mode}-{erase}");
            env.ok(&[
                "diff",
                "--key",
                "k/fota.key",
                "--segment-size",
                erase,
                "--mode",
                mode,
                "--erase-size",
                erase,
                "old",
                "new",
                "-o",
                &pkg,
            ]);
            let out = env.ok(&[
                "sim",
                "--pubkey",
                "k/fota.pub",
                "--erase-size",
                erase,
                "--write-size",
                write,
                "--erased",
                erased,
                "--cuts",
                "all",
                "old",
                &pkg,
            ]);
            let what = format!("{mode}, erase {erase}, write {write}, erased {erased}");
            assert!(out.contains("failures           0"), "{what}: {out}");
            // Every program and erase of the clean run was cut "not done".
            let number = |prefix: &str| -> u64 {
                out.lines()
                    .find_map(|l| l.trim_start().strip_prefix(prefix))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{what}: no `{prefix}` line in {out}"))
            };
            let clean = out
                .lines()
                .find_map(|l| l.split("clean run ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{what}: no clean run line in {out}"));
            assert!(clean > 50, "{what}: {clean} flash operations");
            assert_eq!(number("cuts not-done"), clean, "{what}: {out}");
            println!("{what}: {clean} flash operations, every one cut 4 ways, 0 failures");
        }
    }
}

/// The running image given as both `--source` and `--image`: the agent
/// would erase the slot it reads from. Refused before any write, naming
/// the file.
#[test]
fn the_same_file_as_source_and_image_is_refused_untouched() {
    let env = Env::new();
    env.packages();
    let before = env.read("old");
    let err = env.fails(&ab_args("old", "state", &[]), 2);
    assert!(err.contains("old") && err.contains("mapped twice"), "{err}");
    assert_eq!(env.read("old"), before);
}
