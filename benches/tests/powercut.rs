//! `powercut` end to end on a small pair in a throwaway corpus: every cut
//! of both modes on two geometries resumes bit-exact, and the tables are
//! printed; a pair list naming a missing pair is only skipped, and a
//! stale cache (wrong size) is refused.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A folder standing for the workspace root, removed when dropped.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("fota-powercut-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("corpus/cache/pairs")).expect("create the root");
        Root(dir)
    }

    /// Caches pair `name` and lists it (with `listed` as the listed new size).
    fn pair(&self, name: &str, old: &[u8], new: &[u8], listed_new: usize) {
        let dir = self.0.join("corpus/cache/pairs").join(name);
        std::fs::create_dir_all(&dir).expect("create the pair folder");
        std::fs::write(dir.join("old"), old).expect("write old");
        std::fs::write(dir.join("new"), new).expect("write new");
        let row = format!(
            "{name}\traw-bin\tthumb\t{}\t{}\t{}\t{listed_new}\tlocal\n",
            "0".repeat(64),
            "0".repeat(64),
            old.len()
        );
        let list = self.0.join("pairs.tsv");
        let mut text = std::fs::read_to_string(&list).unwrap_or_else(|_| {
            "name\tcategory\tarch\told_sha256\tnew_sha256\told_bytes\tnew_bytes\tsource\n".into()
        });
        text.push_str(&row);
        std::fs::write(list, text).expect("write the pair list");
    }

    fn run(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_powercut"))
            .arg("--root")
            .arg(&self.0)
            .arg("--pairs")
            .arg(self.0.join("pairs.tsv"))
            .args(["--threads", "2"])
            .args(extra)
            .output()
            .expect("run powercut")
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A firmware-like pair: code-ish bytes, a patched region, an insertion.
fn images(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let old: Vec<u8> = (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 64 < 40 {
                (x % 16) as u8
            } else {
                x as u8
            }
        })
        .collect();
    let mut new = old.clone();
    new[1000..1100].fill(0x42);
    new.splice(len / 2..len / 2, (0..300u32).map(|i| i as u8));
    new.truncate(len);
    (old, new)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn has(out: &Output, what: &str) -> bool {
    String::from_utf8_lossy(&out.stdout).contains(what)
}

#[test]
fn every_cut_of_a_cached_pair_resumes_bit_exact() {
    let root = Root::new("ok");
    let (old, new) = images(12 * 1024);
    root.pair("tiny-fw", &old, &new, new.len());
    root.pair("not-fetched", &old, &new, new.len());
    std::fs::remove_dir_all(root.0.join("corpus/cache/pairs/not-fetched")).expect("uncache");
    let out = root.run(&[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // Two modes x two geometries, each with every op cut 4 ways.
    for case in [
        "tiny-fw/ab/tiny/e4096w4r1/ff",
        "tiny-fw/in-place/tiny/e4096w4r1/ff",
        "tiny-fw/ab/tiny/e1024w8r4/00",
        "tiny-fw/in-place/tiny/e1024w8r4/00",
    ] {
        assert!(has(&out, case), "no row {case}: {all}");
    }
    assert!(has(&out, "4 cases,") && has(&out, " 0 failures"), "{all}");
    assert!(
        has(&out, "R5: in-place / A/B package size over 1 pair(s)"),
        "{all}"
    );
    assert!(
        all.contains("skipped 1 pair(s) not in corpus/cache/pairs"),
        "{all}"
    );
}

#[test]
fn a_stale_cache_and_no_pair_are_refused() {
    let root = Root::new("stale");
    let (old, new) = images(4096);
    // The list says one more byte than the cached image has.
    root.pair("stale-fw", &old, &new, new.len() + 1);
    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("stale cache"), "{}", text(&out));

    let root = Root::new("none");
    let (old, new) = images(4096);
    root.pair("big-fw", &old, &new, new.len());
    let out = root.run(&["--max-bytes", "100"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no pair to run"), "{}", text(&out));
}
