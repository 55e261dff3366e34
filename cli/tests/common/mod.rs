//! The temporary folder both CLI test files work in: the bundled sample
//! pair (`old`, `new`) and a key pair (`k/`), and the `fota` binary run
//! in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Builds the sample pair and a key pair in a fresh temporary folder.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/sample/build.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "sample build failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let env = Env { dir };
        env.ok(&["keygen", "k"]);
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// The file's bytes, `None` when it does not exist.
    pub fn snapshot(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(name)).ok()
    }

    /// The file's bytes, empty when it does not exist.
    pub fn read_or_empty(&self, name: &str) -> Vec<u8> {
        self.snapshot(name).unwrap_or_default()
    }

    /// `fota ARGS` in the folder, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fota"));
        c.args(args).current_dir(self.dir.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fota {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with `code`; returns its one stderr line.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "fota {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "one line on stderr, got: {err}");
        assert!(err.starts_with("error: "), "{err}");
        err
    }
}
