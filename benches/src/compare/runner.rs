//! Runs every variant on one pair: create, apply, and check the output.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::measure::{self, Outcome};
use super::tools::Variant;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// The applied patch reproduced the new image.
    Ok,
    /// The applier's output differs from the new image.
    Mismatch(String),
    /// The patch differs from the one it must be identical to.
    NotIdentical(String),
    /// Creating the patch failed.
    CreateFailed(String),
    /// Applying the patch failed.
    ApplyFailed(String),
    /// A step was killed after the timeout (`create` or `apply`).
    Timeout(&'static str),
    /// Not run, with the reason.
    Skipped(String),
}

impl Status {
    /// Whether this run must make the comparison fail.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Status::Mismatch(_)
                | Status::NotIdentical(_)
                | Status::CreateFailed(_)
                | Status::ApplyFailed(_)
        )
    }

    /// The text of the `ok` column.
    pub fn text(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        match self {
            Status::Ok => "ok".into(),
            Status::Mismatch(m) => format!("MISMATCH: {}", clean(m)),
            Status::NotIdentical(m) => format!("NOT-IDENTICAL: {}", clean(m)),
            Status::CreateFailed(m) => format!("CREATE-FAILED: {}", clean(m)),
            Status::ApplyFailed(m) => format!("APPLY-FAILED: {}", clean(m)),
            Status::Timeout(step) => format!("timeout ({step})"),
            Status::Skipped(m) => format!("skipped: {}", clean(m)),
        }
    }
}

/// One row of `runs.tsv`.
#[derive(Debug, Clone)]
pub struct Record {
    /// Pair name.
    pub pair: String,
    /// Pair category.
    pub category: String,
    /// Tool name.
    pub tool: String,
    /// Variant name.
    pub variant: String,
    /// Old image size.
    pub old_bytes: u64,
    /// New image size.
    pub new_bytes: u64,
    /// Patch size, when one was created.
    pub patch_bytes: Option<u64>,
    /// Create wall time in seconds.
    pub create_s: Option<f64>,
    /// Create peak RSS in KiB.
    pub create_rss_kb: Option<u64>,
    /// Apply wall time in seconds.
    pub apply_s: Option<f64>,
    /// Apply peak RSS in KiB.
    pub apply_rss_kb: Option<u64>,
    /// How the run ended.
    pub status: Status,
}

impl Record {
    /// `tool:variant`.
    pub fn label(&self) -> String {
        format!("{}:{}", self.tool, self.variant)
    }
}

/// The inputs of one pair.
#[derive(Debug, Clone)]
pub struct PairFiles {
    /// Pair name.
    pub name: String,
    /// Pair category.
    pub category: String,
    /// Old image.
    pub old: PathBuf,
    /// New image.
    pub new: PathBuf,
}

/// Errors that stop the whole comparison (not a tool's failure).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Work files could not be written or read.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, RunError> {
    r.map_err(|source| RunError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn expand(template: &[String], subst: &[(&str, &Path)]) -> Vec<OsString> {
    template
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for (k, v) in subst {
                a = a.replace(k, &v.to_string_lossy());
            }
            OsString::from(a)
        })
        .collect()
}

/// Compares `out` (its first `len` bytes when `prefix`) with `expected`.
fn same_content(out: &Path, expected: &Path, prefix: bool) -> Result<Result<(), String>, RunError> {
    let want = io(expected, std::fs::read(expected))?;
    let mut got = Vec::new();
    let mut f = io(out, std::fs::File::open(out))?;
    if prefix {
        io(out, f.take(want.len() as u64).read_to_end(&mut got))?;
    } else {
        io(out, f.read_to_end(&mut got))?;
    }
    if got == want {
        return Ok(Ok(()));
    }
    if got.len() != want.len() {
        return Ok(Err(format!(
            "output has {} bytes, new image {}",
            got.len(),
            want.len()
        )));
    }
    let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
    Ok(Err(format!(
        "output differs from the new image at byte {at}"
    )))
}

/// Runs `variants` on a pair in `work` (created; patches are left there).
pub fn run_pair(
    pair: &PairFiles,
    variants: &[Variant],
    work: &Path,
    timeout: Duration,
    mut progress: impl FnMut(&Record),
) -> Result<Vec<Record>, RunError> {
    io(work, std::fs::create_dir_all(work))?;
    let old_bytes = io(&pair.old, std::fs::metadata(&pair.old))?.len();
    let new_bytes = io(&pair.new, std::fs::metadata(&pair.new))?.len();
    let mut records: Vec<Record> = Vec::new();
    for v in variants {
        let tag = format!("{}_{}", v.tool, v.variant).replace(['/', ' '], "_");
        let patch = work.join(format!("{tag}.patch"));
        let out = work.join(format!("{tag}.out"));
        let _ = std::fs::remove_file(&patch);
        let _ = std::fs::remove_file(&out);
        let mut rec = Record {
            pair: pair.name.clone(),
            category: pair.category.clone(),
            tool: v.tool.clone(),
            variant: v.variant.clone(),
            old_bytes,
            new_bytes,
            patch_bytes: None,
            create_s: None,
            create_rss_kb: None,
            apply_s: None,
            apply_rss_kb: None,
            status: Status::Ok,
        };
        let subst = [
            ("{old}", pair.old.as_path()),
            ("{new}", pair.new.as_path()),
            ("{patch}", patch.as_path()),
            ("{out}", out.as_path()),
        ];
        rec.status = 'run: {
            let fresh = || {
                let _ = std::fs::remove_file(&patch);
                Ok(())
            };
            match fastest(
                &expand(&v.create, &subst),
                work,
                &format!("{tag}.create"),
                timeout,
                &fresh,
            )? {
                Outcome::Done { seconds, rss_kb } => {
                    rec.create_s = Some(seconds);
                    rec.create_rss_kb = rss_kb;
                }
                Outcome::Timeout => break 'run Status::Timeout("create"),
                Outcome::Failed { reason } if v.optional => break 'run Status::Skipped(reason),
                Outcome::Failed { reason } => break 'run Status::CreateFailed(reason),
            }
            match std::fs::metadata(&patch) {
                Ok(m) => rec.patch_bytes = Some(m.len()),
                Err(_) => break 'run Status::CreateFailed("no patch file written".into()),
            }
            // Each run starts from the same files: an in-place tool
            // overwrites its output, which starts as the old image.
            let fresh = || {
                let _ = std::fs::remove_file(&out);
                if let Some(mem) = v.in_place {
                    io(&out, std::fs::copy(&pair.old, &out))?;
                    let f = io(&out, std::fs::OpenOptions::new().write(true).open(&out))?;
                    io(&out, f.set_len(mem))?;
                }
                Ok(())
            };
            match fastest(
                &expand(&v.apply, &subst),
                work,
                &format!("{tag}.apply"),
                timeout,
                &fresh,
            )? {
                Outcome::Done { seconds, rss_kb } => {
                    rec.apply_s = Some(seconds);
                    rec.apply_rss_kb = rss_kb;
                }
                Outcome::Timeout => break 'run Status::Timeout("apply"),
                Outcome::Failed { reason } => break 'run Status::ApplyFailed(reason),
            }
            if !out.is_file() {
                break 'run Status::ApplyFailed("no output file written".into());
            }
            if let Err(m) = same_content(&out, &pair.new, v.in_place.is_some())? {
                break 'run Status::Mismatch(m);
            }
            if let Some(other) = &v.same_as {
                let other_tag = format!("{}_{}", v.tool, other).replace(['/', ' '], "_");
                let other_patch = work.join(format!("{other_tag}.patch"));
                if other_patch.is_file() {
                    if let Err(m) = same_content(&patch, &other_patch, false)? {
                        break 'run Status::NotIdentical(format!(
                            "patch differs from {}:{other}'s ({m})",
                            v.tool
                        ));
                    }
                }
            }
            Status::Ok
        };
        let _ = std::fs::remove_file(&out);
        progress(&rec);
        records.push(rec);
    }
    Ok(records)
}

/// Runs that take less than this many seconds are repeated: a run of a
/// few milliseconds is mostly process start-up and scheduling noise.
const REPEAT_UNDER: f64 = 0.25;

/// Most runs of one command while it stays under [`REPEAT_UNDER`].
const MAX_RUNS: usize = 5;

/// [`measure::run`] in `work`, repeated while the fastest run so far is
/// short, each run after `fresh` has reset its files: the fastest time and
/// the largest peak RSS of the runs. Any run that fails or times out is
/// the outcome.
fn fastest<E>(
    argv: &[OsString],
    work: &Path,
    tag: &str,
    timeout: Duration,
    fresh: &dyn Fn() -> Result<(), E>,
) -> Result<Outcome, E> {
    fresh()?;
    let mut best = measure::run(argv, work, work, tag, timeout);
    for _ in 1..MAX_RUNS {
        let Outcome::Done { seconds, rss_kb } = best else {
            break;
        };
        if seconds >= REPEAT_UNDER {
            break;
        }
        fresh()?;
        best = match measure::run(argv, work, work, tag, timeout) {
            Outcome::Done {
                seconds: s,
                rss_kb: r,
            } => Outcome::Done {
                seconds: seconds.min(s),
                rss_kb: rss_kb.max(r),
            },
            other => other,
        };
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(tool: &str, variant: &str, create: &str, apply: &str) -> Variant {
        Variant {
            tool: tool.into(),
            variant: variant.into(),
            create: vec!["sh".into(), "-c".into(), create.into()],
            apply: vec!["sh".into(), "-c".into(), apply.into()],
            in_place: None,
            optional: false,
            same_as: None,
        }
    }

    fn setup(name: &str) -> (PathBuf, PairFiles) {
        let dir = std::env::temp_dir().join(format!("fota-runner-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("old"), b"hello old image").unwrap();
        std::fs::write(dir.join("new"), b"hello new image!").unwrap();
        let pair = PairFiles {
            name: "p".into(),
            category: "c".into(),
            old: dir.join("old"),
            new: dir.join("new"),
        };
        (dir, pair)
    }

    /// Short runs are repeated from fresh files and the fastest kept; a
    /// long run is run once; a repeat that fails is the outcome.
    #[test]
    fn short_runs_are_repeated_from_fresh_files() {
        let (dir, _) = setup("fastest");
        let runs = dir.join("runs");
        let argv = |script: &str| -> Vec<OsString> {
            ["sh", "-c", script].iter().map(OsString::from).collect()
        };
        let t = Duration::from_secs(20);
        let resets = std::cell::Cell::new(0);
        let fresh = || -> Result<(), RunError> {
            resets.set(resets.get() + 1);
            Ok(())
        };
        let o = fastest(&argv("echo x >> runs"), &dir, "short", t, &fresh).unwrap();
        assert!(matches!(o, Outcome::Done { .. }), "{o:?}");
        let count = std::fs::read_to_string(&runs).unwrap().lines().count();
        assert_eq!((count, resets.get()), (MAX_RUNS, MAX_RUNS));
        std::fs::remove_file(&runs).unwrap();
        let o = fastest(&argv("echo x >> runs; sleep 0.3"), &dir, "long", t, &fresh).unwrap();
        assert!(
            matches!(o, Outcome::Done { seconds, .. } if seconds >= 0.3),
            "{o:?}"
        );
        assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 1);
        // The third run fails: the outcome is that failure.
        std::fs::remove_file(&runs).unwrap();
        let script = "echo x >> runs; test $(wc -l < runs) -lt 3 || { echo third >&2; exit 1; }";
        match fastest(&argv(script), &dir, "flaky", t, &fresh).unwrap() {
            Outcome::Failed { reason } => assert!(reason.contains("third"), "{reason}"),
            o => panic!("{o:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wrong_output_is_a_failure() {
        let (dir, pair) = setup("wrong");
        let variants = vec![
            // Honest "tool": the patch is the new image.
            fake("good", "v", "cp {new} {patch}", "cp {patch} {out}"),
            // Broken "tool": its applier returns the old image.
            fake("bad", "v", "cp {new} {patch}", "cp {old} {out}"),
            // Applier that appends a byte.
            fake(
                "bad2",
                "v",
                "cp {new} {patch}",
                "cp {patch} {out}; echo x >> {out}",
            ),
            // Creator that fails.
            fake("bad3", "v", "exit 1", "true"),
        ];
        let recs = run_pair(
            &pair,
            &variants,
            &dir.join("w"),
            Duration::from_secs(30),
            |_| {},
        )
        .unwrap();
        assert_eq!(recs[0].status, Status::Ok);
        assert_eq!(recs[0].patch_bytes, Some(16));
        assert!(recs[0].create_s.is_some() && recs[0].apply_s.is_some());
        assert!(
            matches!(recs[1].status, Status::Mismatch(_)),
            "{:?}",
            recs[1]
        );
        assert!(recs[1].status.is_failure());
        assert!(matches!(recs[2].status, Status::Mismatch(ref m) if m.contains("18 bytes")));
        assert!(matches!(recs[3].status, Status::CreateFailed(_)));
        let failures: Vec<_> = recs.iter().filter(|r| r.status.is_failure()).collect();
        assert_eq!(failures.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn optional_create_failure_is_skipped_and_same_as_is_checked() {
        let (dir, pair) = setup("opt");
        let mut opt = fake("t", "opt", "echo unsupported >&2; exit 2", "true");
        opt.optional = true;
        let a = fake("t", "a", "cp {new} {patch}", "cp {patch} {out}");
        let mut b = fake(
            "t",
            "b",
            "cp {new} {patch}; echo >> {patch}",
            "head -c 16 {patch} > {out}",
        );
        b.same_as = Some("a".into());
        let mut inplace = fake(
            "t",
            "ip",
            "cp {new} {patch}",
            "dd if={patch} of={out} conv=notrunc 2>/dev/null",
        );
        inplace.in_place = Some(64);
        let recs = run_pair(
            &pair,
            &[opt, a, b, inplace],
            &dir.join("w"),
            Duration::from_secs(30),
            |_| {},
        )
        .unwrap();
        assert!(matches!(recs[0].status, Status::Skipped(ref m) if m.contains("unsupported")));
        assert!(!recs[0].status.is_failure());
        assert_eq!(recs[1].status, Status::Ok);
        assert!(
            matches!(recs[2].status, Status::NotIdentical(_)),
            "{:?}",
            recs[2]
        );
        assert_eq!(recs[3].status, Status::Ok, "{:?}", recs[3]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
