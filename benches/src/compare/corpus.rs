//! The corpus pairs a bench command runs on: the pair lists, the images
//! cached by `corpus/fetch`, and optionally the bundled sample.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::tsv;

/// Which pairs to take.
#[derive(Debug, Default)]
pub struct Selection {
    /// Only pairs of this category.
    pub category: Option<String>,
    /// Only pairs whose name matches.
    pub pair: Option<regex::Regex>,
    /// Pair lists to read instead of corpus/pairs.tsv and corpus/mcu/pairs.tsv.
    pub lists: Vec<PathBuf>,
    /// Build the bundled sample into this folder and add it as pair
    /// `sample-sensord`.
    pub sample_dir: Option<PathBuf>,
}

impl Selection {
    fn keeps(&self, p: &tsv::Pair) -> bool {
        self.category.as_ref().is_none_or(|c| &p.category == c)
            && self.pair.as_ref().is_none_or(|re| re.is_match(&p.name))
    }
}

/// The selected pairs: those with their images at hand (pair, old, new),
/// and those listed but not cached.
#[derive(Debug, Default)]
pub struct Found {
    /// Pairs whose images are cached (or built), with their paths.
    pub files: Vec<(tsv::Pair, PathBuf, PathBuf)>,
    /// Listed pairs not in `corpus/cache/pairs` (run `corpus/fetch`).
    pub missing: Vec<tsv::Pair>,
}

/// The workspace root: the nearest folder up from the current one with
/// `corpus/` and `benches/Cargo.toml`.
pub fn find_root() -> Result<PathBuf> {
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join("corpus").is_dir() && dir.join("benches/Cargo.toml").is_file() {
            return Ok(dir);
        }
        if !dir.pop() {
            bail!("cannot find the fota workspace root from the current folder; use --root");
        }
    }
}

/// `p` made absolute against the current folder.
pub fn abs(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// Reads the pair lists under `root` and finds each selected pair's
/// images; a cached image whose size is not the listed one is an error
/// (a stale cache).
pub fn select(root: &Path, sel: &Selection) -> Result<Found> {
    let mut pairs: Vec<tsv::Pair> = Vec::new();
    let lists: Vec<(PathBuf, bool)> = if sel.lists.is_empty() {
        vec![
            (root.join("corpus/pairs.tsv"), true),
            (root.join("corpus/mcu/pairs.tsv"), false),
        ]
    } else {
        sel.lists
            .iter()
            .map(|p| abs(p).map(|p| (p, true)))
            .collect::<Result<_>>()?
    };
    for (list, required) in &lists {
        if !required && !list.exists() {
            eprintln!("note: {} does not exist; no pairs from it", list.display());
            continue;
        }
        for p in tsv::read(list)? {
            if pairs.iter().any(|q| q.name == p.name) {
                bail!("{}: pair {:?} is listed twice", list.display(), p.name);
            }
            pairs.push(p);
        }
    }
    let mut found = Found::default();
    if let Some(dir) = &sel.sample_dir {
        let st = Command::new("bash")
            .arg(root.join("corpus/sample/build.sh"))
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .status()
            .context("running corpus/sample/build.sh")?;
        if !st.success() {
            bail!("corpus/sample/build.sh failed ({st})");
        }
        let len = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len());
        let p = tsv::Pair {
            name: "sample-sensord".into(),
            category: "sample".into(),
            arch: "x86_64".into(),
            old_bytes: len("old")?,
            new_bytes: len("new")?,
        };
        found.files.push((p, dir.join("old"), dir.join("new")));
    }
    for p in pairs {
        let cache = root.join("corpus/cache/pairs").join(&p.name);
        let (old, new) = (cache.join("old"), cache.join("new"));
        if !old.is_file() || !new.is_file() {
            found.missing.push(p);
            continue;
        }
        for (f, want) in [(&old, p.old_bytes), (&new, p.new_bytes)] {
            let got = std::fs::metadata(f)?.len();
            if got != want {
                bail!(
                    "{}: {got} bytes, the pair list says {want}: stale cache? re-run corpus/fetch",
                    f.display()
                );
            }
        }
        found.files.push((p, old, new));
    }
    found.files.retain(|(p, _, _)| sel.keeps(p));
    found.missing.retain(|p| sel.keeps(p));
    Ok(found)
}
