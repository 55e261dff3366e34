//! Runs one child process with a timeout and measures its wall time and peak RSS.
//!
//! Peak RSS comes from GNU time (`/usr/bin/time -f %M`, Debian package `time`)
//! wrapped around the command; without it the run is still timed and the RSS
//! is reported as unknown.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// GNU time, used for the peak RSS of a child.
const GNU_TIME: &str = "/usr/bin/time";

/// Result of one measured run.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The command exited with status 0.
    Done {
        /// Wall time in seconds.
        seconds: f64,
        /// Peak resident set size in KiB, if GNU time was available.
        rss_kb: Option<u64>,
    },
    /// The command failed to start or exited non-zero.
    Failed {
        /// A short reason (exit status and the end of stderr).
        reason: String,
    },
    /// The command was killed after the timeout.
    Timeout,
}

/// Whether GNU time is installed.
pub fn have_gnu_time() -> bool {
    Path::new(GNU_TIME).is_file()
}

/// Runs `argv` (program first) in `dir`, killing its whole process group after
/// `timeout`. Stdout and stderr are kept in `log_dir/<tag>.out|.err`.
pub fn run(argv: &[OsString], dir: &Path, log_dir: &Path, tag: &str, timeout: Duration) -> Outcome {
    let Some((prog, args)) = argv.split_first() else {
        return Outcome::Failed {
            reason: "empty command".into(),
        };
    };
    let rss_file: PathBuf = log_dir.join(format!("{tag}.rss"));
    let _ = std::fs::remove_file(&rss_file);
    let mut cmd = if have_gnu_time() {
        let mut c = Command::new(GNU_TIME);
        c.arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(prog)
            .args(args);
        c
    } else {
        let mut c = Command::new(prog);
        c.args(args);
        c
    };
    let out_path = log_dir.join(format!("{tag}.out"));
    let err_path = log_dir.join(format!("{tag}.err"));
    let (stdout, stderr) = match (
        std::fs::File::create(&out_path),
        std::fs::File::create(&err_path),
    ) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome::Failed {
                reason: format!("cannot create log files in {}: {e}", log_dir.display()),
            }
        }
    };
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Failed {
                reason: format!("cannot start {}: {e}", prog.to_string_lossy()),
            }
        }
    };
    // A thread waits for the child, so the clock stops when it exits (a
    // polling loop would round every run up to its polling step, which on
    // runs of a few milliseconds is most of the figure).
    let group = child.id();
    let (done, exited) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let seconds = start.elapsed().as_secs_f64();
        let _ = done.send((status, seconds));
    });
    let (status, seconds) = match exited.recv_timeout(timeout) {
        Ok((Ok(status), seconds)) => (status, seconds),
        Ok((Err(e), _)) => {
            return Outcome::Failed {
                reason: format!("wait failed: {e}"),
            }
        }
        Err(_) => {
            // Kill the whole group: GNU time and the tool under it. The
            // waiter then reaps the child.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
            let _ = waiter.join();
            return Outcome::Timeout;
        }
    };
    let _ = waiter.join();
    if !status.success() {
        return Outcome::Failed {
            reason: format!("{status}: {}", tail(&err_path)),
        };
    }
    let rss_kb = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()));
    Outcome::Done { seconds, rss_kb }
}

/// The last non-empty line of a log file (for error messages).
fn tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with("Command exited with"))
        .unwrap_or("(no stderr)")
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn success_failure_and_timeout() {
        let dir = std::env::temp_dir().join(format!("fota-measure-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Duration::from_secs(20);
        assert!(matches!(
            run(&argv(&["true"]), &dir, &dir, "a", t),
            Outcome::Done { .. }
        ));
        match run(
            &argv(&["sh", "-c", "echo boom >&2; exit 3"]),
            &dir,
            &dir,
            "b",
            t,
        ) {
            Outcome::Failed { reason } => assert!(reason.contains("boom"), "{reason}"),
            o => panic!("{o:?}"),
        }
        let o = run(
            &argv(&["sleep", "5"]),
            &dir,
            &dir,
            "c",
            Duration::from_millis(200),
        );
        assert!(matches!(o, Outcome::Timeout), "{o:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
