//! The delta tools under comparison: how each variant creates and applies a patch.
//!
//! Commands are templates; `{old}`, `{new}`, `{patch}` and `{out}` are replaced
//! by absolute paths when a variant is run.

use std::path::{Path, PathBuf};

/// Name of the fota tool in the tables.
pub const FOTA: &str = "fota";

/// One way of running one tool (e.g. `zstd` at `-19`).
#[derive(Debug, Clone)]
pub struct Variant {
    /// Tool name (`bsdiff`, `zstd`, ...).
    pub tool: String,
    /// Variant name (`-19`, `lzma`, ...).
    pub variant: String,
    /// Command that writes `{patch}` from `{old}` and `{new}`.
    pub create: Vec<String>,
    /// Command that writes `{out}` from `{old}` and `{patch}`.
    pub apply: Vec<String>,
    /// In-place appliers: size of the memory file. `{out}` then starts as a
    /// copy of the old image padded to this size, is patched in place, and its
    /// first `new_bytes` bytes must equal the new image.
    pub in_place: Option<u64>,
    /// A variant that may not apply to every input: a failing create is
    /// recorded as skipped (with the tool's reason) instead of as an error.
    pub optional: bool,
    /// The patch must be byte-identical to the one of this variant of the same tool.
    pub same_as: Option<String>,
}

/// Where the tools are.
#[derive(Debug, Clone)]
pub struct Toolset {
    /// The fota binary.
    pub fota: PathBuf,
    /// fota secret key.
    pub key: PathBuf,
    /// fota public key.
    pub pubkey: PathBuf,
    /// The peers' Python venv (holds `bin/detools` and `bin/python`).
    pub venv: PathBuf,
    /// Our HDiffPatch command-line wrapper script.
    pub hdiff_script: PathBuf,
}

/// Facts about a pair that decide which variants apply.
#[derive(Debug, Clone)]
pub struct PairInfo {
    /// Instruction set from the pair list.
    pub arch: String,
    /// Whether both images are ELF files.
    pub elf: bool,
    /// Larger of the two image sizes.
    pub max_bytes: u64,
}

/// A variant that is listed but cannot run on a pair, with the reason.
#[derive(Debug, Clone)]
pub struct NotApplicable {
    /// Tool name.
    pub tool: String,
    /// Variant name.
    pub variant: String,
    /// Why it does not apply.
    pub reason: String,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Segment size of the detools in-place variant (a typical large flash sector).
pub const IN_PLACE_SEGMENT: u64 = 64 * 1024;

/// Every variant run on a pair, and the listed variants that do not apply to it.
pub fn variants(t: &Toolset, info: &PairInfo) -> (Vec<Variant>, Vec<NotApplicable>) {
    let mut v = Vec::new();
    let mut na = Vec::new();
    let mk = |tool: &str, variant: &str, create: Vec<String>, apply: Vec<String>| Variant {
        tool: tool.into(),
        variant: variant.into(),
        create,
        apply,
        in_place: None,
        optional: false,
        same_as: None,
    };
    let fota_apply = vec![
        p(&t.fota),
        "apply".into(),
        "--pubkey".into(),
        p(&t.pubkey),
        "{old}".into(),
        "{patch}".into(),
        "-o".into(),
        "{out}".into(),
    ];
    // `fota diff` at `threads` threads with `extra` options.
    let fota_diff = |threads: &str, extra: &[&str]| {
        let mut args = vec![
            p(&t.fota),
            "diff".into(),
            "--key".into(),
            p(&t.key),
            "--threads".into(),
            threads.into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(s(&["{old}", "{new}", "-o", "{patch}"]));
        args
    };
    for threads in ["1", "2"] {
        let mut f = mk(
            FOTA,
            &format!("threads-{threads}"),
            fota_diff(threads, &[]),
            fota_apply.clone(),
        );
        if threads == "2" {
            f.same_as = Some("threads-1".into());
        }
        v.push(f);
    }
    // The same without the reference transform, and with compressed
    // streams diffed as they are: each stage's own gain per category.
    for (variant, option) in [
        ("no-xform", "--no-xform"),
        ("no-decompress", "--no-decompress"),
    ] {
        v.push(mk(
            FOTA,
            variant,
            fota_diff("2", &[option]),
            fota_apply.clone(),
        ));
    }
    v.push(mk(
        "bsdiff",
        "default",
        s(&["bsdiff", "{old}", "{new}", "{patch}"]),
        s(&["bspatch", "{old}", "{out}", "{patch}"]),
    ));
    v.push(mk(
        "xdelta3",
        "-9",
        s(&[
            "xdelta3", "-e", "-9", "-f", "-s", "{old}", "{new}", "{patch}",
        ]),
        s(&["xdelta3", "-d", "-f", "-s", "{old}", "{patch}", "{out}"]),
    ));
    let zstd_apply = s(&[
        "zstd",
        "-q",
        "-f",
        "-d",
        "--long=31",
        "--patch-from={old}",
        "{patch}",
        "-o",
        "{out}",
    ]);
    v.push(mk(
        "zstd",
        "-19",
        s(&[
            "zstd",
            "-q",
            "-f",
            "-19",
            "--patch-from={old}",
            "{new}",
            "-o",
            "{patch}",
        ]),
        zstd_apply.clone(),
    ));
    v.push(mk(
        "zstd",
        "-22-long31",
        s(&[
            "zstd",
            "-q",
            "-f",
            "--ultra",
            "-22",
            "--long=31",
            "--patch-from={old}",
            "{new}",
            "-o",
            "{patch}",
        ]),
        zstd_apply,
    ));
    let detools = p(&t.venv.join("bin/detools"));
    let dt_apply = vec![
        detools.clone(),
        "apply_patch".into(),
        "{old}".into(),
        "{patch}".into(),
        "{out}".into(),
    ];
    let dt_create = |extra: &[String]| {
        let mut c = vec![detools.clone(), "create_patch".into()];
        c.extend_from_slice(extra);
        c.extend(s(&["{old}", "{new}", "{patch}"]));
        c
    };
    for comp in ["none", "lzma", "heatshrink"] {
        v.push(mk(
            "detools",
            comp,
            dt_create(&s(&["-c", comp])),
            dt_apply.clone(),
        ));
    }
    let data_format = match info.arch.as_str() {
        "arm" | "thumb" => Some("arm-cortex-m4"),
        "aarch64" => Some("aarch64"),
        _ => None,
    };
    if let Some(df) = data_format {
        let mut extra = s(&["-c", "lzma", "--data-format", df]);
        if info.elf {
            // The images are the ELF files themselves: offset 0.
            extra.extend(s(&[
                "--from-elf-file",
                "{old}",
                "--from-elf-offset",
                "0",
                "--to-elf-file",
                "{new}",
                "--to-elf-offset",
                "0",
            ]));
        }
        let mut d = mk(
            "detools",
            &format!("lzma-{df}"),
            dt_create(&extra),
            dt_apply.clone(),
        );
        d.optional = true;
        v.push(d);
    } else {
        na.push(NotApplicable {
            tool: "detools".into(),
            variant: "lzma-data-format".into(),
            reason: format!("no detools data format for arch {:?}", info.arch),
        });
    }
    let seg = IN_PLACE_SEGMENT;
    let memory = info.max_bytes.div_ceil(seg) * seg + seg;
    let mut ip = mk(
        "detools",
        "in-place-lzma",
        vec![
            detools.clone(),
            "create_patch_in_place".into(),
            "-c".into(),
            "lzma".into(),
            "--memory-size".into(),
            memory.to_string(),
            "--segment-size".into(),
            seg.to_string(),
            "{old}".into(),
            "{new}".into(),
            "{patch}".into(),
        ],
        vec![
            detools,
            "apply_patch_in_place".into(),
            "{out}".into(),
            "{patch}".into(),
        ],
    );
    ip.in_place = Some(memory);
    ip.optional = true;
    v.push(ip);
    let py = p(&t.venv.join("bin/python"));
    let hs = p(&t.hdiff_script);
    v.push(mk(
        "hdiffpatch",
        "lzma",
        vec![
            py.clone(),
            hs.clone(),
            "diff".into(),
            "{old}".into(),
            "{new}".into(),
            "{patch}".into(),
        ],
        vec![
            py,
            hs,
            "apply".into(),
            "{old}".into(),
            "{patch}".into(),
            "{out}".into(),
        ],
    ));
    (v, na)
}

/// Finds `prog` on `PATH`.
fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// Peer tools that are not installed, each with what is missing.
pub fn missing_tools(t: &Toolset) -> Vec<(String, String)> {
    let mut m = Vec::new();
    for (tool, progs) in [
        ("bsdiff", &["bsdiff", "bspatch"][..]),
        ("xdelta3", &["xdelta3"][..]),
        ("zstd", &["zstd"][..]),
    ] {
        for prog in progs {
            if !on_path(prog) {
                m.push((tool.to_string(), format!("`{prog}` not on PATH")));
                break;
            }
        }
    }
    let detools = t.venv.join("bin/detools");
    if !detools.is_file() {
        m.push(("detools".into(), format!("{} not found", detools.display())));
    }
    let py = t.venv.join("bin/python");
    let hdiff_ok = py.is_file()
        && std::process::Command::new(&py)
            .args(["-c", "import hdiffpatch"])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !hdiff_ok {
        m.push((
            "hdiffpatch".into(),
            format!(
                "python module hdiffpatch not importable by {}",
                py.display()
            ),
        ));
    }
    if !t.hdiff_script.is_file() {
        m.push((
            "hdiffpatch".into(),
            format!("{} not found", t.hdiff_script.display()),
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toolset() -> Toolset {
        Toolset {
            fota: "f".into(),
            key: "k".into(),
            pubkey: "pk".into(),
            venv: "v".into(),
            hdiff_script: "h.py".into(),
        }
    }

    #[test]
    fn data_format_variant_only_for_arm_and_aarch64() {
        let info = |arch: &str, elf| PairInfo {
            arch: arch.into(),
            elf,
            max_bytes: 100_000,
        };
        let (v, na) = variants(&toolset(), &info("x86_64", true));
        assert!(!v.iter().any(|x| x.variant.contains("cortex")));
        assert_eq!(na.len(), 1);
        let (v, _) = variants(&toolset(), &info("thumb", false));
        let d = v
            .iter()
            .find(|x| x.variant == "lzma-arm-cortex-m4")
            .unwrap();
        assert!(d.optional && !d.create.iter().any(|a| a == "--from-elf-file"));
        let (v, _) = variants(&toolset(), &info("aarch64", true));
        let d = v.iter().find(|x| x.variant == "lzma-aarch64").unwrap();
        assert!(d.create.iter().any(|a| a == "--from-elf-file"));
        let ip = v.iter().find(|x| x.variant == "in-place-lzma").unwrap();
        assert_eq!(ip.in_place, Some(2 * IN_PLACE_SEGMENT + IN_PLACE_SEGMENT));
    }
}
