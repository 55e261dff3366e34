//! Parser for the corpus pair lists (`corpus/pairs.tsv`, `corpus/mcu/pairs.tsv`).
//!
//! Columns: `name category arch old_sha256 new_sha256 old_bytes new_bytes source`.
//! Lines starting with `#` and blank lines are ignored; the header row (first
//! field `name`) is skipped.

use std::path::{Path, PathBuf};

/// One old → new image pair listed in a pair file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Unique name; the cache folder is `corpus/cache/pairs/<name>/`.
    pub name: String,
    /// Category (`elf-x86_64`, `mcu-bin`, ...), the unit of the summary.
    pub category: String,
    /// Instruction set (`x86_64`, `aarch64`, `arm`, `thumb`, ...).
    pub arch: String,
    /// Size of the old image in bytes, as listed.
    pub old_bytes: u64,
    /// Size of the new image in bytes, as listed.
    pub new_bytes: u64,
}

/// Why a pair file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TsvError {
    /// The file could not be read.
    #[error("{}: cannot read", file.display())]
    Io {
        /// The pair file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A row is malformed.
    #[error("{}:{line}: {msg}", file.display())]
    Row {
        /// The pair file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Number of tab-separated columns of a row.
const COLUMNS: usize = 8;

/// Parses the text of a pair file; `file` is only used in error messages.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Pair>, TsvError> {
    let mut pairs: Vec<Pair> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let row = raw.trim_end_matches('\r');
        if row.trim().is_empty() || row.starts_with('#') {
            continue;
        }
        let err = |msg: String| TsvError::Row {
            file: file.to_path_buf(),
            line,
            msg,
        };
        let f: Vec<&str> = row.split('\t').collect();
        if f.first() == Some(&"name") {
            continue;
        }
        if f.len() != COLUMNS {
            return Err(err(format!(
                "expected {COLUMNS} tab-separated columns, found {}",
                f.len()
            )));
        }
        let num = |idx: usize, what: &str| {
            f[idx]
                .parse::<u64>()
                .map_err(|_| err(format!("{what} is not a byte count: {:?}", f[idx])))
        };
        let name = f[0].to_string();
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(err(format!("invalid pair name {name:?}")));
        }
        if f[1].is_empty() {
            return Err(err("empty category".into()));
        }
        if pairs.iter().any(|p| p.name == name) {
            return Err(err(format!("duplicate pair name {name:?}")));
        }
        pairs.push(Pair {
            category: f[1].to_string(),
            arch: f[2].to_string(),
            old_bytes: num(5, "old_bytes")?,
            new_bytes: num(6, "new_bytes")?,
            name,
        });
    }
    Ok(pairs)
}

/// Reads and parses a pair file.
pub fn read(file: &Path) -> Result<Vec<Pair>, TsvError> {
    let text = std::fs::read_to_string(file).map_err(|source| TsvError::Io {
        file: file.to_path_buf(),
        source,
    })?;
    parse(&text, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# comment\n\
name\tcategory\tarch\told_sha256\tnew_sha256\told_bytes\tnew_bytes\tsource\n\
a\telf-x86_64\tx86_64\taa\tbb\t10\t20\tnpm:x@1..2:bin\n\
\n\
b\tmcu-bin\tthumb\tcc\tdd\t5\t6\tcrates.io lua-src 1 -> 2 (x) + fw/app.c\r\n";

    #[test]
    fn parses_rows_comments_and_header() {
        let p = parse(GOOD, Path::new("p.tsv")).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "a");
        assert_eq!(p[0].new_bytes, 20);
        assert_eq!(p[1].category, "mcu-bin");
        assert_eq!(p[1].arch, "thumb");
        assert_eq!(p[1].old_bytes, 5);
    }

    #[test]
    fn wrong_column_count_names_file_and_line() {
        let e = parse("# x\na\tb\tc\n", Path::new("dir/p.tsv")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("dir/p.tsv:2:"), "{s}");
        assert!(s.contains("8 tab-separated columns, found 3"), "{s}");
    }

    #[test]
    fn bad_number_and_duplicates_are_errors() {
        let e = parse("a\tc\tx\t1\t2\tten\t20\ts\n", Path::new("p")).unwrap_err();
        assert!(e.to_string().contains("p:1: old_bytes"), "{e}");
        let dup = "a\tc\tx\t1\t2\t1\t2\ts\na\tc\tx\t1\t2\t1\t2\ts\n";
        let e = parse(dup, Path::new("p")).unwrap_err();
        assert!(e.to_string().contains("p:2: duplicate"), "{e}");
        let e = parse("../x\tc\tx\t1\t2\t1\t2\ts\n", Path::new("p")).unwrap_err();
        assert!(e.to_string().contains("invalid pair name"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = read(Path::new("/nonexistent/pairs.tsv")).unwrap_err();
        assert!(e
            .to_string()
            .contains("/nonexistent/pairs.tsv: cannot read"));
    }
}
