//! Summary statistics per category: geometric means of per-pair ratios.

use std::collections::BTreeMap;

use super::runner::{Record, Status};
use super::tools::FOTA;

/// fota variant whose size and time are compared with the peers.
pub const FOTA_MAIN: &str = "fota:threads-2";
/// New images of at least this many bytes make a "large" pair, the ones
/// the generation targets are set for.
const LARGE_PAIR_BYTES: f64 = 4e6;
/// Single-threaded fota variant.
pub const FOTA_ONE: &str = "fota:threads-1";
/// fota with its reference transform switched off (`--no-xform`), so the
/// transform's own gain shows.
pub const FOTA_NO_XFORM: &str = "fota:no-xform";
/// fota with compressed streams diffed as they are (`--no-decompress`), so
/// the stream stage's gain shows.
pub const FOTA_NO_DECOMPRESS: &str = "fota:no-decompress";

/// Geometric mean of positive finite values; `None` when there are none.
pub fn geomean(values: &[f64]) -> Option<f64> {
    let v: Vec<f64> = values
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    Some((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// A summary table: one row per metric, one column per category (plus `all`).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Column headers: the categories, then `all`.
    pub columns: Vec<String>,
    /// Rows: metric name and one cell per column.
    pub rows: Vec<(String, Vec<String>)>,
    /// Per column: fota and best-peer size as % of the new image (geometric means).
    pub sizes: Vec<(String, Option<f64>, Option<f64>)>,
}

/// The successful runs of one pair, by `tool:variant`.
type PairRuns<'a> = BTreeMap<String, &'a Record>;

fn ratio(runs: &[PairRuns], f: impl Fn(&PairRuns) -> Option<f64>) -> Option<f64> {
    geomean(&runs.iter().filter_map(f).collect::<Vec<_>>())
}

fn best_peer(r: &PairRuns) -> Option<u64> {
    r.values()
        .filter(|x| x.tool != FOTA)
        .filter_map(|x| x.patch_bytes)
        .min()
}

fn fmt(v: Option<f64>, digits: usize, suffix: &str) -> String {
    v.map(|x| format!("{x:.digits$}{suffix}"))
        .unwrap_or_else(|| "-".into())
}

/// Builds the summary of `records`.
pub fn summarize(records: &[Record]) -> Summary {
    // pair -> (category, successful runs)
    let mut pairs: BTreeMap<&str, (&str, PairRuns)> = BTreeMap::new();
    for r in records {
        let e = pairs
            .entry(&r.pair)
            .or_insert_with(|| (&r.category, BTreeMap::new()));
        if r.status == Status::Ok {
            e.1.insert(r.label(), r);
        }
    }
    let mut peers: Vec<String> = records
        .iter()
        .filter(|r| r.tool != FOTA && r.status == Status::Ok)
        .map(|r| r.label())
        .collect();
    peers.sort();
    peers.dedup();
    let mut cats: Vec<&str> = pairs.values().map(|(c, _)| *c).collect();
    cats.sort();
    cats.dedup();
    let mut columns: Vec<String> = cats.iter().map(|c| c.to_string()).collect();
    columns.push("all".into());

    let size = |r: &PairRuns, label: &str| r.get(label).and_then(|x| x.patch_bytes);
    let secs = |r: &PairRuns, label: &str, apply: bool| {
        r.get(label)
            .and_then(|x| if apply { x.apply_s } else { x.create_s })
    };
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };

    let mut names: Vec<String> = vec![
        "pairs".into(),
        "fota size, % of new image".into(),
        "best peer size, % of new image".into(),
        "fota / best peer size".into(),
    ];
    names.extend(peers.iter().map(|p| format!("fota / {p} size")));
    names.extend(
        [
            "create time fota(2 thr) / bsdiff",
            "create time fota(2 thr) / hdiffpatch",
            "fota speed-up, 2 vs 1 thread",
            "create time fota(2 thr) / hdiffpatch, new image >= 4 MB",
            "fota create peak RSS / (old+new), max",
            "fota create peak RSS / (old+new), max, new image >= 4 MB",
            "apply time fota / bspatch",
            "xform gain: fota / fota --no-xform size",
            "streams gain: fota / fota --no-decompress size",
        ]
        .map(String::from),
    );
    let mut rows: Vec<(String, Vec<String>)> = names.into_iter().map(|n| (n, Vec::new())).collect();
    let mut sizes = Vec::new();

    for col in &columns {
        let runs: Vec<PairRuns> = pairs
            .values()
            .filter(|(c, _)| col == "all" || c == col)
            .map(|(_, r)| r.clone())
            .collect();
        let new_of = |r: &PairRuns| r.values().next().map(|x| x.new_bytes as f64);
        let fota_pct = ratio(&runs, |r| {
            div(size(r, FOTA_MAIN).map(|s| s as f64), new_of(r)).map(|x| x * 100.0)
        });
        let best_pct = ratio(&runs, |r| {
            div(best_peer(r).map(|s| s as f64), new_of(r)).map(|x| x * 100.0)
        });
        sizes.push((col.clone(), fota_pct, best_pct));
        let mut cells = vec![
            runs.len().to_string(),
            fmt(fota_pct, 2, "%"),
            fmt(best_pct, 2, "%"),
            fmt(
                ratio(&runs, |r| {
                    div(
                        size(r, FOTA_MAIN).map(|s| s as f64),
                        best_peer(r).map(|s| s as f64),
                    )
                }),
                3,
                "",
            ),
        ];
        for p in &peers {
            cells.push(fmt(
                ratio(&runs, |r| {
                    div(
                        size(r, FOTA_MAIN).map(|s| s as f64),
                        size(r, p).map(|s| s as f64),
                    )
                }),
                3,
                "",
            ));
        }
        cells.push(fmt(
            ratio(&runs, |r| {
                div(secs(r, FOTA_MAIN, false), secs(r, "bsdiff:default", false))
            }),
            3,
            "",
        ));
        cells.push(fmt(
            ratio(&runs, |r| {
                div(secs(r, FOTA_MAIN, false), secs(r, "hdiffpatch:lzma", false))
            }),
            3,
            "",
        ));
        cells.push(fmt(
            ratio(&runs, |r| {
                div(secs(r, FOTA_ONE, false), secs(r, FOTA_MAIN, false))
            }),
            2,
            "x",
        ));
        // The generation targets are for pairs of 4 MB and more:
        // on small pairs a process's own floor decides time and memory.
        let large: Vec<PairRuns> = runs
            .iter()
            .filter(|r| new_of(r).is_some_and(|n| n >= LARGE_PAIR_BYTES))
            .cloned()
            .collect();
        cells.push(fmt(
            ratio(&large, |r| {
                div(secs(r, FOTA_MAIN, false), secs(r, "hdiffpatch:lzma", false))
            }),
            3,
            "",
        ));
        let max_rss = |runs: &[PairRuns]| {
            runs.iter()
                .filter_map(|r| {
                    let x = r.get(FOTA_MAIN)?;
                    Some(x.create_rss_kb? as f64 * 1024.0 / (x.old_bytes + x.new_bytes) as f64)
                })
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        };
        cells.push(fmt(max_rss(&runs), 2, "x"));
        cells.push(fmt(max_rss(&large), 2, "x"));
        cells.push(fmt(
            ratio(&runs, |r| {
                div(secs(r, FOTA_MAIN, true), secs(r, "bsdiff:default", true))
            }),
            3,
            "",
        ));
        for other in [FOTA_NO_XFORM, FOTA_NO_DECOMPRESS] {
            cells.push(fmt(
                ratio(&runs, |r| {
                    div(
                        size(r, FOTA_MAIN).map(|s| s as f64),
                        size(r, other).map(|s| s as f64),
                    )
                }),
                3,
                "",
            ));
        }
        for (row, cell) in rows.iter_mut().zip(cells) {
            row.1.push(cell);
        }
    }
    Summary {
        columns,
        rows,
        sizes,
    }
}

impl Summary {
    /// Plain-text table for the terminal.
    pub fn text(&self) -> String {
        let w0 = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r.1[i].len())
                    .chain([self.columns[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut s = format!("{:w0$}", "metric");
        for (c, w) in self.columns.iter().zip(&widths) {
            s += &format!("  {c:>w$}");
        }
        s.push('\n');
        for (name, cells) in &self.rows {
            s += &format!("{name:w0$}");
            for (c, w) in cells.iter().zip(&widths) {
                s += &format!("  {c:>w$}");
            }
            s.push('\n');
        }
        s
    }

    /// Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!("| metric | {} |\n", self.columns.join(" | "));
        s += &format!("|---|{}\n", "---:|".repeat(self.columns.len()));
        for (name, cells) in &self.rows {
            s += &format!("| {name} | {} |\n", cells.join(" | "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geomean_math() {
        assert_eq!(geomean(&[]), None);
        assert!((geomean(&[2.0, 8.0]).unwrap() - 4.0).abs() < 1e-12);
        assert!((geomean(&[5.0]).unwrap() - 5.0).abs() < 1e-12);
        // Non-positive and non-finite values are ignored.
        assert!((geomean(&[1.0, 0.0, f64::NAN, 100.0]).unwrap() - 10.0).abs() < 1e-9);
    }

    fn rec(pair: &str, cat: &str, label: &str, patch: u64, create_s: f64) -> Record {
        let (tool, variant) = label.split_once(':').unwrap();
        Record {
            pair: pair.into(),
            category: cat.into(),
            tool: tool.into(),
            variant: variant.into(),
            old_bytes: 1000,
            new_bytes: 1000,
            patch_bytes: Some(patch),
            create_s: Some(create_s),
            create_rss_kb: Some(4),
            apply_s: Some(1.0),
            apply_rss_kb: Some(1),
            status: Status::Ok,
        }
    }

    #[test]
    fn large_pair_rows_count_only_large_pairs() {
        let large = |label: &str, s: f64, rss: u64| {
            let mut r = rec("big", "x", label, 10, s);
            (r.old_bytes, r.new_bytes, r.create_rss_kb) = (4_000_000, 4_096_000, Some(rss));
            r
        };
        let recs = vec![
            large(FOTA_MAIN, 3.0, 16_000),
            large("hdiffpatch:lzma", 1.5, 1),
            // A small pair with a far higher ratio and a slower fota.
            rec("small", "x", FOTA_MAIN, 10, 9.0),
            rec("small", "x", "hdiffpatch:lzma", 10, 1.0),
        ];
        let s = summarize(&recs);
        let row = |name: &str| &s.rows.iter().find(|r| r.0 == name).unwrap().1;
        assert_eq!(
            row("create time fota(2 thr) / hdiffpatch, new image >= 4 MB")[0],
            "2.000"
        );
        // All pairs: the geometric mean of 2 and 9.
        assert_eq!(row("create time fota(2 thr) / hdiffpatch")[0], "4.243");
        // 16,000 KiB over 8,096,000 bytes; the small pair's 4 KiB over 2,000 bytes.
        assert_eq!(
            row("fota create peak RSS / (old+new), max, new image >= 4 MB")[0],
            "2.02x"
        );
        assert_eq!(row("fota create peak RSS / (old+new), max")[0], "2.05x");
    }

    #[test]
    fn summary_ratios() {
        let mut recs = vec![
            rec("a", "x", FOTA_ONE, 10, 2.0),
            rec("a", "x", FOTA_MAIN, 10, 1.0),
            rec("a", "x", "bsdiff:default", 20, 4.0),
            rec("a", "x", "zstd:-19", 40, 1.0),
            rec("a", "x", FOTA_NO_XFORM, 20, 1.0),
            rec("a", "x", FOTA_NO_DECOMPRESS, 40, 1.0),
            rec("b", "y", FOTA_ONE, 40, 3.0),
            rec("b", "y", FOTA_MAIN, 40, 1.0),
            rec("b", "y", "bsdiff:default", 20, 1.0),
        ];
        // A failed peer run does not count as the best peer.
        let mut bad = rec("b", "y", "zstd:-19", 1, 1.0);
        bad.status = Status::Mismatch("x".into());
        recs.push(bad);
        let s = summarize(&recs);
        assert_eq!(s.columns, vec!["x", "y", "all"]);
        let row = |name: &str| &s.rows.iter().find(|r| r.0 == name).unwrap().1;
        assert_eq!(row("pairs"), &vec!["1", "1", "2"]);
        assert_eq!(
            row("fota size, % of new image"),
            &vec!["1.00%", "4.00%", "2.00%"]
        );
        // a: 10/20 = 0.5, b: 40/20 = 2 -> geomean 1.
        assert_eq!(
            row("fota / best peer size"),
            &vec!["0.500", "2.000", "1.000"]
        );
        assert_eq!(row("fota / zstd:-19 size"), &vec!["0.250", "-", "0.250"]);
        assert_eq!(
            row("xform gain: fota / fota --no-xform size"),
            &vec!["0.500", "-", "0.500"]
        );
        assert_eq!(
            row("streams gain: fota / fota --no-decompress size"),
            &vec!["0.250", "-", "0.250"]
        );
        assert_eq!(
            row("create time fota(2 thr) / bsdiff"),
            &vec!["0.250", "1.000", "0.500"]
        );
        // speed-up a: 2x, b: 3x -> sqrt(6).
        assert_eq!(row("fota speed-up, 2 vs 1 thread")[2], "2.45x");
        // 4 KiB / 2000 bytes.
        assert_eq!(row("fota create peak RSS / (old+new), max")[2], "2.05x");
        // No pair here is large.
        assert_eq!(
            row("fota create peak RSS / (old+new), max, new image >= 4 MB")[2],
            "-"
        );
        assert_eq!(s.sizes[2].1.map(|x| (x * 100.0).round()), Some(200.0));
        assert!(s
            .markdown()
            .starts_with("| metric | x | y | all |\n|---|---:|---:|---:|\n"));
        assert!(s.text().contains("fota / bsdiff:default size"));
    }
}
