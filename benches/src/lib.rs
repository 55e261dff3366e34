//! Benchmark inputs for the fota criterion benches (`cargo bench -p
//! fota-benches`).
//!
//! [`bench_pair`] picks the old/new image pair every bench uses, in this
//! order:
//!
//! 1. `FOTA_BENCH_PAIR=OLD:NEW`, two file paths;
//! 2. the first (by name) `corpus/cache/pairs/<name>/{old,new}` under the
//!    workspace root, where a corpus fetch puts real firmware pairs;
//! 3. [`generated_pair`] of [`GENERATED_SIZE`] bytes: a deterministic,
//!    synthetic "firmware-like" pair, so the benches run anywhere.
//!
//! The generated old image is laid out like a small MCU firmware: a vector
//! table of absolute function pointers, about 80 % code in fixed-width
//! 4-byte instruction words (a skewed set of opcodes, shared prologues,
//! epilogues and inlined snippets; calls and PC-relative loads carry a
//! rel32 displacement, a few loads an absolute address) and then read-only
//! data (function pointer tables, log strings, calibration tables), padded
//! with `0xFF` to a 4 KiB boundary. The new image is the same program
//! rebuilt with a block of new functions inserted in the middle of the
//! code, so every later function and all data move and displacements and
//! pointers that cross the insertion change; plus a handful of changed
//! instructions and retargeted calls, an entry added to a command table, a
//! recalibrated lookup table, new log strings and a version bump.

use std::io;
use std::path::{Path, PathBuf};

use fota_format::op::Extent;
use fota_format::{PatchDecoder, SigningKey};
use fota_generator::{matcher, plan, suffix};

/// Environment variable naming a pair of files to bench: `OLD:NEW`.
pub const PAIR_ENV: &str = "FOTA_BENCH_PAIR";

/// Size in bytes of the generated old image [`bench_pair`] falls back to.
pub const GENERATED_SIZE: usize = 4 << 20;

/// An old and a new firmware image to bench on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchPair {
    /// Short name for reports and benchmark ids (no `/`).
    pub name: String,
    /// The old (installed) image.
    pub old: Vec<u8>,
    /// The new image.
    pub new: Vec<u8>,
}

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).to_path_buf()
}

/// The pair to bench: `FOTA_BENCH_PAIR`, else the first corpus pair under
/// `corpus/cache/pairs/`, else [`generated_pair`]`(`[`GENERATED_SIZE`]`)`.
///
/// # Errors
/// When `FOTA_BENCH_PAIR` is set but is not `OLD:NEW` or a file cannot be
/// read, or a corpus pair's files cannot be read; the error names the path.
pub fn bench_pair() -> io::Result<BenchPair> {
    if let Some(spec) = std::env::var_os(PAIR_ENV) {
        let spec = spec.to_string_lossy().into_owned();
        let (old, new) = spec.split_once(':').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{PAIR_ENV}={spec:?} is not OLD:NEW"),
            )
        })?;
        let (old, new) = (Path::new(old), Path::new(new));
        let stem = |p: &Path| {
            p.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        };
        return Ok(BenchPair {
            name: format!("{}-{}", stem(old), stem(new)).replace('/', "_"),
            old: read(old)?,
            new: read(new)?,
        });
    }
    if let Some(dir) = first_corpus_pair(&workspace_root().join("corpus/cache/pairs")) {
        let name = dir
            .file_name()
            .map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned());
        return Ok(BenchPair {
            name,
            old: read(&dir.join("old"))?,
            new: read(&dir.join("new"))?,
        });
    }
    Ok(generated_pair(GENERATED_SIZE))
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The first subfolder of `pairs`, by name, holding files `old` and `new`.
fn first_corpus_pair(pairs: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(pairs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.join("old").is_file() && d.join("new").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// The signing key of the benches: fixed bytes, so packages are
/// reproducible.
pub fn bench_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// The decoded PATCH payload that turns `old` into `new` as one segment
/// covering all of `new`, made the way the generator makes one: suffix
/// array of `old`, approximate blocks, `plan::patch_streams`. The matcher
/// runs on the current rayon pool.
///
/// # Errors
/// When `old` is too large to index (2 GiB).
pub fn whole_image_patch(old: &[u8], new: &[u8]) -> fota_generator::Result<Vec<u8>> {
    let index = suffix::SuffixIndex::build(old)?;
    let blocks = matcher::find_blocks(
        &index,
        new,
        matcher::MatchParams::default(),
        &fota_generator::NoProgress,
    );
    Ok(plan::patch_streams(old, new, &blocks, 0, new.len()).into_payload())
}

/// Decodes a [`whole_image_patch`] payload against `old` into `out`
/// (cleared first, capacity kept): the PATCH decoder alone, one `add_diff`
/// per Add step, no hashing and no zstd.
///
/// # Errors
/// Whatever the decoder finds malformed, or a target not `target_len`
/// bytes long.
pub fn decode_patch(
    old: &[u8],
    payload: &[u8],
    target_len: usize,
    out: &mut Vec<u8>,
) -> fota_format::Result<()> {
    let extents = [Extent {
        offset: 0,
        len: old.len() as u64,
    }];
    out.clear();
    out.reserve(target_len);
    let decoder = PatchDecoder::new(0, payload, 0, target_len as u64, &extents)?;
    fota_generator::apply::run_patch(decoder, fota_generator::apply::image_reader(old), out)
}

/// A deterministic synthetic firmware pair whose old image is `size`
/// bytes rounded up to 4 KiB (see the crate docs for its layout and what
/// changes in the new image). Same `size`, same bytes, on every host.
pub fn generated_pair(size: usize) -> BenchPair {
    let program = Program::generate(size, 0x5EED_F07A_0000_0001);
    let old = program.link();
    let new = program.next_release(size).link();
    BenchPair {
        name: format!("generated-{}KiB", old.len() >> 10),
        old,
        new,
    }
}

/// Load address of the generated images (an MCU flash base).
const BASE: u32 = 0x0800_0000;
/// Entries of the vector table at the start of the image.
const VECTORS: usize = 64;
/// The filler between functions (a NOP).
const NOP: u32 = 0xD503_201F;

/// xorshift64*: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One instruction of the synthetic ISA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Insn {
    /// A position-independent word (ALU, load/store, local branch).
    Word(u32),
    /// `bl`: an opcode word, then rel32 from the end of the pair to the
    /// entry of function id `.0`.
    Call(usize),
    /// `adr`: an opcode word, then rel32 to data item `.1`; `.0` is the
    /// destination register.
    LoadRel(u32, usize),
    /// `ldr =`: an opcode word, then the absolute address of data item `.1`.
    LoadAbs(u32, usize),
}

impl Insn {
    fn len(self) -> usize {
        match self {
            Insn::Word(_) => 4,
            _ => 8,
        }
    }
}

/// Read-only data items.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    /// A table of absolute function pointers (function ids).
    Pointers(Vec<usize>),
    /// Constant bytes (strings, lookup tables).
    Bytes(Vec<u8>),
}

impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Pointers(p) => 4 * p.len(),
            Data::Bytes(b) => b.len().next_multiple_of(4),
        }
    }
}

/// A synthetic program: functions (with stable ids) in layout order, and
/// data items.
#[derive(Debug, Clone)]
struct Program {
    /// `(id, body)` in layout order; ids stay put when functions move.
    funcs: Vec<(usize, Vec<Insn>)>,
    data: Vec<Data>,
}

const WORDS: &[&str] = &[
    "sensor", "init", "failed", "config", "store", "full", "crc", "mismatch", "uart", "rx",
    "overflow", "state", "enter", "leave", "timeout", "retry", "flash", "erase", "write", "ok",
    "error", "boot", "slot", "version", "calib", "adc", "channel", "watchdog", "reset", "power",
    "low", "battery", "temp", "%d", "%u", "%s", "0x%08x", "=", ":", "->",
];

/// A skewed opcode set: moves, adds and loads dominate, as in real code.
const OPCODES: &[(u8, usize)] = &[
    (0x10, 22), // mov
    (0x11, 14), // add
    (0x12, 6),  // sub
    (0x20, 16), // ldr
    (0x21, 10), // str
    (0x30, 8),  // cmp
    (0x40, 8),  // b.cond (local)
    (0x13, 4),  // and
    (0x14, 3),  // orr
    (0x15, 3),  // lsl
    (0x16, 2),  // mul
    (0x22, 4),  // ldrb
];

fn random_word(rng: &mut Rng) -> u32 {
    let total: usize = OPCODES.iter().map(|o| o.1).sum();
    let mut pick = rng.below(total);
    let mut op = OPCODES[0].0;
    for &(o, w) in OPCODES {
        if pick < w {
            op = o;
            break;
        }
        pick -= w;
    }
    // Low registers and small immediates are the common case.
    let reg = |rng: &mut Rng| if rng.chance(85) { rng.below(8) } else { rng.below(16) } as u32;
    let imm = match rng.below(4) {
        0 => 0,
        1 | 2 => rng.below(64) as u32 * 4,
        _ => rng.below(1 << 16) as u32,
    };
    u32::from(op) << 24 | reg(rng) << 20 | reg(rng) << 16 | imm
}

/// Bytes of one readable log string, NUL-terminated.
fn random_string(rng: &mut Rng) -> Vec<u8> {
    let n = 2 + rng.below(7);
    let words: Vec<&str> = (0..n).map(|_| WORDS[rng.below(WORDS.len())]).collect();
    let mut s = words.join(" ").into_bytes();
    s.extend_from_slice(b"\n\0");
    s
}

/// A smooth calibration curve of `n` little-endian u16 values.
fn curve(n: usize, k: u32) -> Vec<u8> {
    (0..n as u32)
        .flat_map(|i| {
            let v = 4000u32.saturating_sub(i * i * k / 64 + i * 7);
            (v as u16).to_le_bytes()
        })
        .collect()
}

impl Program {
    /// Functions until about 80 % of `size`, then data up to `size`.
    fn generate(size: usize, seed: u64) -> Program {
        let mut rng = Rng(seed);
        // Inlined helpers and idioms shared by many functions.
        let snippets: Vec<Vec<u32>> = (0..48)
            .map(|_| {
                (0..4 + rng.below(20))
                    .map(|_| random_word(&mut rng))
                    .collect()
            })
            .collect();
        let mut funcs = Vec::new();
        let mut offset = 4 * VECTORS;
        while offset < size * 4 / 5 {
            let body = Self::function(&mut rng, &snippets);
            offset += func_len(&body);
            funcs.push((funcs.len(), body));
        }
        let n = funcs.len().max(1);
        let mut data = Vec::new();
        let mut data_len = 0;
        while offset + data_len < size.saturating_sub(2048) {
            let item = match rng.below(8) {
                0 => Data::Pointers((0..8 + rng.below(40)).map(|_| rng.below(n)).collect()),
                1 => Data::Bytes(curve(32 + rng.below(96), 1 + rng.below(9) as u32)),
                _ => Data::Bytes(random_string(&mut rng)),
            };
            data_len += item.len();
            data.push(item);
        }
        let d = data.len().max(1);
        // Callees and data were drawn as raw numbers; map them onto real
        // ids, half of the calls going to a few popular helpers.
        for (_, body) in &mut funcs {
            for insn in body.iter_mut() {
                *insn = match *insn {
                    Insn::Call(raw) if raw % 2 == 0 => Insn::Call((raw / 2) % (n / 20).max(1)),
                    Insn::Call(raw) => Insn::Call((raw / 2) % n),
                    Insn::LoadRel(r, raw) => Insn::LoadRel(r, raw % d),
                    Insn::LoadAbs(r, raw) => Insn::LoadAbs(r, raw % d),
                    w => w,
                };
            }
        }
        Program { funcs, data }
    }

    /// One function body; calls and data references hold raw random
    /// numbers until [`Program::generate`] maps them.
    fn function(rng: &mut Rng, snippets: &[Vec<u32>]) -> Vec<Insn> {
        let frame = rng.below(8) as u32 * 16;
        let mut body = vec![
            Insn::Word(0xA9BF_7BFD),         // push {fp, lr}
            Insn::Word(0x9100_03FD),         // mov fp, sp
            Insn::Word(0xD100_03FF | frame), // sub sp, sp, #frame
        ];
        let len = 6 + rng.below(120);
        while body.len() < len {
            match rng.below(100) {
                0..=9 => body.push(Insn::Call(rng.below(1 << 30))),
                10..=14 => body.push(Insn::LoadRel(rng.below(8) as u32, rng.below(1 << 30))),
                15 => body.push(Insn::LoadAbs(rng.below(8) as u32, rng.below(1 << 30))),
                16..=21 => {
                    let s = &snippets[rng.below(snippets.len())];
                    body.extend(s.iter().map(|&w| Insn::Word(w)));
                }
                _ => body.push(Insn::Word(random_word(rng))),
            }
        }
        body.extend([
            Insn::Word(0x9100_03BF | frame), // add sp, sp, #frame
            Insn::Word(0xA8C1_7BFD),         // pop {fp, lr}
            Insn::Word(0xD65F_03C0),         // ret
        ]);
        body
    }

    /// The next release: new functions in the middle, small fixes, table
    /// and string changes. Deterministic for a given `size`.
    fn next_release(&self, size: usize) -> Program {
        let mut rng = Rng(0xC0DE_2024_0600_0001 ^ size as u64);
        let mut p = self.clone();
        let n = p.funcs.len();
        let d = p.data.len();
        // New functions (about 2 % of the image) in the middle of the code;
        // they call old code, get called from a few old call sites and a
        // command table, and use new strings.
        let mut new_ids = Vec::new();
        let mut block = Vec::new();
        let mut block_len = 0;
        let snippets: Vec<Vec<u32>> = (0..8)
            .map(|_| {
                (0..4 + rng.below(12))
                    .map(|_| random_word(&mut rng))
                    .collect()
            })
            .collect();
        let first_new_data = d;
        let new_strings = 4 + rng.below(8);
        while block_len < size / 50 {
            let mut body = Self::function(&mut rng, &snippets);
            for insn in &mut body {
                *insn = match *insn {
                    Insn::Call(r) => Insn::Call(r % n),
                    Insn::LoadRel(reg, r) if r % 2 == 0 => {
                        Insn::LoadRel(reg, first_new_data + r / 2 % new_strings)
                    }
                    Insn::LoadRel(reg, r) => Insn::LoadRel(reg, r % d),
                    Insn::LoadAbs(reg, r) => Insn::LoadAbs(reg, r % d),
                    w => w,
                };
            }
            block_len += func_len(&body);
            let id = n + new_ids.len();
            new_ids.push(id);
            block.push((id, body));
        }
        let mid = n / 2;
        p.funcs.splice(mid..mid, block);
        // Bug fixes: one word changed in a few functions.
        for _ in 0..16 {
            let f = rng.below(p.funcs.len());
            let body = &mut p.funcs[f].1;
            let i = 3 + rng.below(body.len() - 6);
            if let Insn::Word(w) = body[i] {
                body[i] = Insn::Word(w ^ (1 + rng.below(255) as u32));
            }
        }
        // A few old call sites now call new functions.
        for k in 0..8 {
            let f = rng.below(n);
            if let Some((_, body)) = p.funcs.iter_mut().find(|(id, _)| *id == f) {
                if let Some(i) = body.iter().position(|x| matches!(x, Insn::Call(_))) {
                    body[i] = Insn::Call(new_ids[k % new_ids.len()]);
                }
            }
        }
        // A command table gains an entry in the middle, a calibration table
        // is recalibrated, a version string is bumped.
        if let Some(Data::Pointers(t)) = p.data.iter_mut().find(|x| matches!(x, Data::Pointers(_)))
        {
            t.insert(t.len() / 2, new_ids[0]);
        }
        if let Some(Data::Bytes(c)) = p
            .data
            .iter_mut()
            .find(|x| matches!(x, Data::Bytes(b) if b.len() > 64 && b.last() != Some(&0)))
        {
            let n = c.len() / 2;
            *c = curve(n, 5)
                .iter()
                .zip(c.iter())
                .map(|(a, b)| a ^ (b & 3))
                .collect();
        }
        if let Some(Data::Bytes(s)) = p
            .data
            .iter_mut()
            .find(|x| matches!(x, Data::Bytes(b) if b.last() == Some(&0)))
        {
            *s = b"sensord 1.5.0 rel-2024.06\n\0".to_vec();
        }
        for _ in 0..new_strings {
            p.data.push(Data::Bytes(random_string(&mut rng)));
        }
        p
    }

    /// Lays the program out at [`BASE`] and encodes it, padding with 0xFF
    /// to a 4 KiB boundary.
    fn link(&self) -> Vec<u8> {
        let max_id = self.funcs.iter().map(|f| f.0).max().map_or(0, |m| m + 1);
        let mut func_addr = vec![0u32; max_id];
        let mut at = 4 * VECTORS;
        for (id, body) in &self.funcs {
            func_addr[*id] = BASE + at as u32;
            at += func_len(body);
        }
        let mut data_addr = Vec::with_capacity(self.data.len());
        for item in &self.data {
            data_addr.push(BASE + at as u32);
            at += item.len();
        }
        let mut out = Vec::with_capacity(at.next_multiple_of(4096));
        let put = |out: &mut Vec<u8>, w: u32| out.extend_from_slice(&w.to_le_bytes());
        for v in 0..VECTORS {
            put(&mut out, func_addr[v % max_id.max(1)] | 1);
        }
        for (_, body) in &self.funcs {
            for &insn in body {
                let pc = BASE + out.len() as u32;
                match insn {
                    Insn::Word(w) => put(&mut out, w),
                    Insn::Call(f) => {
                        put(&mut out, 0x9400_0000);
                        put(&mut out, func_addr[f].wrapping_sub(pc + 8));
                    }
                    Insn::LoadRel(r, i) => {
                        put(&mut out, 0x9000_0000 | r);
                        put(&mut out, data_addr[i].wrapping_sub(pc + 8));
                    }
                    Insn::LoadAbs(r, i) => {
                        put(&mut out, 0x5800_0000 | r);
                        put(&mut out, data_addr[i]);
                    }
                }
            }
            while out.len() % 16 != 0 {
                put(&mut out, NOP);
            }
        }
        for item in &self.data {
            match item {
                Data::Pointers(p) => p.iter().for_each(|&f| put(&mut out, func_addr[f] | 1)),
                Data::Bytes(b) => {
                    out.extend_from_slice(b);
                    out.resize(out.len().next_multiple_of(4), 0);
                }
            }
        }
        out.resize(out.len().next_multiple_of(4096), 0xFF);
        out
    }
}

/// Bytes a function takes, padded to 16.
fn func_len(body: &[Insn]) -> usize {
    body.iter()
        .map(|i| i.len())
        .sum::<usize>()
        .next_multiple_of(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fota_generator::{apply, diff, DeviceIdentity, DiffOptions};

    const SIZE: usize = 256 << 10;

    #[test]
    fn generated_pair_is_deterministic_and_firmware_like() {
        let a = generated_pair(SIZE);
        let b = generated_pair(SIZE);
        assert_eq!(a, b);
        assert_eq!(a.old.len(), SIZE);
        assert!(a.new.len() > a.old.len());
        // The insertion moved the second half, so most of it differs at the
        // same offset but is still there, shifted.
        let same = a.old.iter().zip(&a.new).filter(|(x, y)| x == y).count();
        assert!(same < a.old.len() * 3 / 4, "{same}");
        assert_ne!(generated_pair(SIZE / 2).old, a.old[..SIZE / 2]);
    }

    #[test]
    fn generated_pair_round_trips_through_diff_and_apply() {
        let pair = generated_pair(SIZE);
        let key = bench_key();
        let opts = DiffOptions {
            threads: 2,
            segment_size: 64 << 10,
            level: 3,
            self_check: false,
            ..DiffOptions::default()
        };
        let out = diff(&pair.old, &pair.new, &key, &opts).unwrap();
        // Firmware-like: the package is far smaller than the image.
        assert!(
            out.package.len() < pair.new.len() / 8,
            "{}",
            out.package.len()
        );
        let target = apply(
            &pair.old,
            &out.package,
            &[key.verifying_key()],
            &DeviceIdentity::default(),
        )
        .unwrap();
        assert!(target == pair.new);
    }

    #[test]
    fn first_corpus_pair_is_the_first_complete_one_by_name() {
        let root = std::env::temp_dir().join(format!("fota-benches-{}", std::process::id()));
        for (name, files) in [
            ("b", &["old", "new"][..]),
            ("a", &["old"]),
            ("c", &["old", "new"]),
        ] {
            std::fs::create_dir_all(root.join(name)).unwrap();
            for f in files {
                std::fs::write(root.join(name).join(f), b"x").unwrap();
            }
        }
        let found = first_corpus_pair(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, Some(root.join("b")));
        assert_eq!(first_corpus_pair(&root), None);
    }

    #[test]
    fn whole_image_patch_decodes_to_the_new_image() {
        let pair = generated_pair(SIZE);
        let payload = whole_image_patch(&pair.old, &pair.new).unwrap();
        let mut out = Vec::new();
        decode_patch(&pair.old, &payload, pair.new.len(), &mut out).unwrap();
        assert!(out == pair.new);
    }
}
