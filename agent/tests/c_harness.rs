//! R13: the C ABI passes R1. The static library (`ffi` feature, no std)
//! is built, the C harness `examples/c/harness.c` is compiled against the
//! checked-in header with `gcc -std=c99 -Wall -Wextra -Werror`, and runs
//! the single-cut campaign through the callbacks on two pairs (A/B and in
//! place, tiny profile) times two geometries: every cut, then a resume,
//! must leave the new image bit for bit. It runs twice: on the harness's
//! own C flash model, and on the Rust simulator of the agent's tests
//! through `fota_sim.h` (the library built with `ffi,sim`). Skipped, with a message, only
//! when gcc is missing (`.ci/run` installs it).
//!
//! Also prints a code-size proxy: the x86_64 `.text` the agent adds to the
//! linked harness (release, panic = "abort").
#![cfg(feature = "ffi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{key, pair, tiny_opts};
use fota_format::Mode;

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("fota-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn agent_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory this test runs from (`<target>/<profile>/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| agent_dir().join("..").join("target"))
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the static library (release, panic = "abort") with `features`
/// in its own target directory `dir`, so it neither waits for nor disturbs
/// the test build.
fn build_staticlib(features: &str, dir: &str) -> PathBuf {
    let dir = target_dir().join(dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["rustc", "--release", "-p", "fota-agent"])
        .args(["--features", features, "--crate-type", "staticlib"])
        .arg("--manifest-path")
        .arg(agent_dir().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&dir)
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .output()
        .expect("run cargo");
    check(
        &format!("cargo rustc --features {features} --crate-type staticlib"),
        &out,
    );
    dir.join("release").join("libfota_agent.a")
}

/// Compiles the harness (`defines` added) and links it to `lib` with
/// `libs`; returns the object and the program.
fn build_harness(
    tmp: &Path,
    name: &str,
    defines: &[&str],
    lib: &Path,
    libs: &[&str],
) -> (PathBuf, PathBuf) {
    let object = tmp.join(format!("{name}.o"));
    let program = tmp.join(name);
    let out = Command::new("gcc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"])
        .args(defines)
        .arg("-I")
        .arg(agent_dir().join("include"))
        .arg("-c")
        .arg(agent_dir().join("examples").join("c").join("harness.c"))
        .arg("-o")
        .arg(&object)
        .output()
        .expect("run gcc");
    check(&format!("gcc -c harness.c {defines:?}"), &out);
    let out = Command::new("gcc")
        .arg(&object)
        .arg(lib)
        .args(libs)
        .arg("-Wl,--gc-sections")
        .arg("-o")
        .arg(&program)
        .output()
        .expect("run gcc");
    check(&format!("gcc (link {name})"), &out);
    (object, program)
}

/// Bytes of the `.text*` sections of an object or executable (GNU
/// `size -A`), if `size` runs.
fn text_size(path: &Path) -> Option<u64> {
    let out = Command::new("size").arg("-A").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            f.next()?
                .starts_with(".text")
                .then(|| f.next()?.parse::<u64>().ok())?
        })
        .reduce(|a, b| a + b)
}

/// Code bytes of the linked `binary` by Rust crate (GNU `nm`, demangled),
/// largest first; empty if `nm` does not run.
fn text_by_crate(binary: &Path) -> Vec<(String, u64)> {
    let Ok(out) = Command::new("nm")
        .args(["-S", "-C", "--defined-only"])
        .arg(binary)
        .output()
    else {
        return Vec::new();
    };
    let mut sizes = std::collections::BTreeMap::<String, u64>::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.splitn(4, ' ');
        let (Some(_), Some(size), Some(kind), Some(name)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if !kind.eq_ignore_ascii_case("t") {
            continue;
        }
        let Ok(size) = u64::from_str_radix(size, 16) else {
            continue;
        };
        // `<fota_agent::ffi::CFlash as ...>::read` belongs to fota_agent;
        // C symbols (the harness, the C runtime) have no `::`.
        let krate = match name.trim_start_matches('<').split_once("::") {
            Some((k, _)) if k.chars().all(|c| c.is_alphanumeric() || c == '_') => k.to_string(),
            _ if name.starts_with("fota_agent_") => "fota_agent".to_string(),
            _ => "C and other".to_string(),
        };
        *sizes.entry(krate).or_default() += size;
    }
    let mut v: Vec<_> = sizes.into_iter().collect();
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    v
}

/// One pair for the harness: images, package, mode, geometry.
struct Case {
    name: &'static str,
    mode: Mode,
    seed: u64,
    erase: u64,
    write: u32,
    read: u32,
    erased: u8,
}

#[test]
fn the_c_harness_passes_every_single_cut() {
    if Command::new("gcc").arg("--version").output().is_err() {
        println!("skipped: gcc is not installed (.ci/run installs it)");
        return;
    }
    let tmp = TempDir::new("c-harness");
    // The harness on its own C flash model, linked to the no-std library
    // (the code-size proxy below is of this one) ...
    let lib = build_staticlib("ffi,panic-handler", "ffi-staticlib");
    let (harness_o, harness) = build_harness(&tmp.0, "harness", &[], &lib, &[]);
    // ... and on the Rust simulator of the agent's own tests (fota_sim.h).
    let sim_lib = build_staticlib("ffi,sim", "ffi-sim-staticlib");
    let (_, sim_harness) = build_harness(
        &tmp.0,
        "sim-harness",
        &["-DFOTA_HARNESS_RUST_SIM"],
        &sim_lib,
        &["-lpthread", "-ldl", "-lm"],
    );
    if let (Some(all), Some(own)) = (text_size(&harness), text_size(&harness_o)) {
        let by_crate: Vec<String> = text_by_crate(&harness)
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "code-size proxy (x86_64, release, panic=abort, --gc-sections): the agent adds \
             {} B of .text to the harness ({all} B linked - {own} B harness.o), crypto and \
             sha256 included; by crate (B): {}",
            all.saturating_sub(own),
            by_crate.join(", ")
        );
    }

    let cases = [
        Case {
            name: "ab",
            mode: Mode::AB,
            seed: 31,
            erase: 1024,
            write: 4,
            read: 1,
            erased: 0xff,
        },
        Case {
            name: "ab",
            mode: Mode::AB,
            seed: 31,
            erase: 2048,
            write: 16,
            read: 4,
            erased: 0x00,
        },
        Case {
            name: "in-place",
            mode: Mode::InPlace,
            seed: 32,
            erase: 1024,
            write: 4,
            read: 1,
            erased: 0xff,
        },
        Case {
            name: "in-place",
            mode: Mode::InPlace,
            seed: 32,
            erase: 2048,
            write: 16,
            read: 4,
            erased: 0x00,
        },
    ];
    let key_path = tmp.0.join("key.bin");
    std::fs::write(&key_path, key().verifying_key().to_bytes()).expect("write the key");
    let mut total_cuts = 0u64;
    for (i, c) in cases.iter().enumerate() {
        let (old, new) = pair(12 * 1024, c.seed);
        let pkg = fota_generator::diff(&old, &new, &key(), &tiny_opts(c.mode, c.erase as u32))
            .expect("diff")
            .package;
        let manifest = fota_format::Package::parse(&pkg)
            .and_then(|p| p.manifest_unverified())
            .expect("the package's manifest");
        let paths: Vec<PathBuf> = ["old", "new", "pkg"]
            .iter()
            .map(|n| tmp.0.join(format!("{i}-{n}.bin")))
            .collect();
        for (p, bytes) in paths.iter().zip([&old, &new, &pkg]) {
            std::fs::write(p, bytes).expect("write an input");
        }
        // Scratch: the package's slots (one segment = one block) plus room.
        let scratch_blocks = u64::from(manifest.scratch_slots).max(2) + 2;
        for program in [&harness, &sim_harness] {
            let out = Command::new(program)
                .arg(c.name)
                .args(&paths)
                .arg(&key_path)
                .args([
                    c.erase.to_string(),
                    c.write.to_string(),
                    c.read.to_string(),
                    c.erased.to_string(),
                    scratch_blocks.to_string(),
                ])
                .output()
                .expect("run the harness");
            print!("{}", String::from_utf8_lossy(&out.stdout));
            check(&format!("the C harness on case {i} ({})", c.name), &out);
            let line = String::from_utf8_lossy(&out.stdout);
            let cuts: u64 = line
                .split("cuts ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .expect("the harness prints its cut count");
            assert!(cuts > 40, "too few cuts: {cuts}");
            assert!(line.contains("failures 0"), "{line}");
            total_cuts += cuts;
        }
    }
    println!("C harness: {total_cuts} single cuts, every resume bit-exact");
}
