//! The fota differencing engine: turns an old and a new firmware image into
//! a small signed package (see the `fota-format` crate), and applies
//! packages on a host.
//!
//! Pipeline, one module a stage, with plain data between them:
//!
//! ```text
//! mmap ──> suffix (suffix array of old) ──> matcher (approximate blocks,
//!   parallel over fixed chunks of new) ──> plan (one op per segment,
//!   cheapest of copy/fill/patch/new, zstd) ──> inplace (in-place mode
//!   only: SKIP, order, STASH; checked by the format's simulator)
//!   ──> write (hash chain, sign)
//!   ──> apply (self-check: the package must reproduce the new image)
//! ```
//!
//! Output is byte-identical for any thread count: work is split at fixed
//! offsets, never by thread, and results are joined in order.
//!
//! [`export`] wraps a finished package for other update clients (a `.swu`
//! that swupdate installs, a Mender artifact and update module for
//! mender-client; both apply the package with `fota flash`).
#![warn(missing_docs)]

pub mod apply;
pub mod error;
pub mod export;
pub mod inplace;
pub mod keys;
pub mod matcher;
pub mod memory;
pub mod mmap;
pub mod payload;
pub mod plan;
mod preset_lzma;
pub mod progress;
pub mod streams;
pub mod suffix;
pub mod tiny;
pub mod write;
pub mod xform;

use std::time::Instant;

use ed25519_dalek::SigningKey;
use fota_format::{Label, Manifest, Mode, OpKind, Profile};

pub use apply::{apply, write_atomically, write_atomically_with_permissions, DeviceIdentity};
pub use error::{Error, Result};
pub use inplace::InPlaceStats;
pub use matcher::MatchParams;
pub use progress::{NoProgress, Progress, Stage};
pub use xform::{Arch, XformStats};

/// Default segment size for the zstd profile (application processors with
/// A/B slots): 4 MiB, a whole number of erase blocks on every common flash.
/// Segments are compressed independently so each op can be redone alone
/// after a power cut; at 1 MiB that independence costs 1.6 % on an x86-64
/// Go binary pair, at 4 MiB under 0.5 %.
pub const DEFAULT_SEGMENT_SIZE: u32 = 4 << 20;

/// Default zstd level for payloads.
pub const DEFAULT_LEVEL: i32 = 19;

/// Default erase block size of the device: 4 KiB, the sector of most NOR
/// flash.
pub const DEFAULT_ERASE_SIZE: u32 = 4096;

/// What to put in the manifest and how hard to work.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Worker threads; 0 uses every core.
    pub threads: usize,
    /// Destination segment size (a multiple of the device's erase block).
    /// In place, the A/B default [`DEFAULT_SEGMENT_SIZE`] stands for "not
    /// chosen" and the segment is one erase block instead (see
    /// [`DiffOptions::effective_segment_size`]).
    pub segment_size: u32,
    /// zstd level of op payloads (1 to 22; profile zstd only).
    pub level: i32,
    /// Codec profile: zstd for application processors, tiny for
    /// microcontrollers (see `fota_format::tiny`).
    pub profile: Profile,
    /// Device class the package is for.
    pub device_class: Label,
    /// Version of the old image.
    pub from_version: Label,
    /// Version of the new image.
    pub to_version: Label,
    /// Anti-rollback counter of the new image.
    pub security_counter: u64,
    /// sha256 of the release notes, zero when none.
    pub release_notes_sha256: [u8; 32],
    /// Matcher tuning.
    pub match_params: MatchParams,
    /// Apply the finished package to the old image and compare with the new
    /// one before returning it (on by default; costs one host apply).
    pub self_check: bool,
    /// A/B (the target goes to another slot) or in place (the target
    /// overwrites the source; ops are ordered and stashed to allow that).
    pub mode: Mode,
    /// The device's erase block in bytes: in place, segments are whole
    /// erase blocks (A/B packages do not use it).
    pub erase_size: u32,
    /// In place: bytes of scratch the device has for stashes; `None` is
    /// max(2 erase blocks, 2 % of the larger image). Used in whole
    /// segments, at least one.
    pub scratch_size: Option<u64>,
    /// Instruction set of the reference transform (see [`xform`]).
    /// [`Arch::Auto`] detects it and, when one applies, makes the package
    /// with and without it and keeps the smaller; a named instruction set
    /// is used whenever the images' layout is found; [`Arch::None`] never.
    pub arch: Arch,
    /// Most bytes of RAM the device lends the transform (the manifest's
    /// `xform_len`): the map is cut to fit; `None` is the format's limit.
    pub xform_ram: Option<u32>,
    /// Diff compressed streams decompressed (see [`streams`]), when the
    /// new image has some that code back bit-exactly. The package then
    /// needs the host applier: ignored for the tiny profile, whose
    /// microcontroller agents cannot re-encode a stream.
    pub decompress: bool,
    /// Authenticate the ops of an A/B package with a hash chain (format
    /// version 2), for an applier that streams the package without storing
    /// it and so cannot check the whole op section before it writes. By
    /// default A/B packages are signed whole (version 3, 32 bytes fewer per
    /// op); in-place packages always have the chain.
    pub chain: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            threads: 0,
            segment_size: DEFAULT_SEGMENT_SIZE,
            level: DEFAULT_LEVEL,
            profile: Profile::Zstd,
            device_class: Label::EMPTY,
            from_version: Label::EMPTY,
            to_version: Label::EMPTY,
            security_counter: 0,
            release_notes_sha256: [0; 32],
            match_params: MatchParams::default(),
            self_check: true,
            mode: Mode::AB,
            erase_size: DEFAULT_ERASE_SIZE,
            scratch_size: None,
            arch: Arch::Auto,
            xform_ram: None,
            decompress: true,
            chain: false,
        }
    }
}

impl DiffOptions {
    /// The segment size of the package: `segment_size`, except in place
    /// when it is left at [`DEFAULT_SEGMENT_SIZE`]: then the smallest valid
    /// segment made of whole erase blocks (`erase_size` itself for any
    /// power of two from 256 B), so a stash and the rework after a power
    /// cut stay one erase block.
    pub fn effective_segment_size(&self) -> u32 {
        use fota_format::manifest::SEGMENT_ALIGN;
        if self.mode != Mode::InPlace || self.segment_size != DEFAULT_SEGMENT_SIZE {
            return self.segment_size;
        }
        let (a, b) = (u64::from(self.erase_size.max(1)), u64::from(SEGMENT_ALIGN));
        let (mut x, mut y) = (a, b);
        while y != 0 {
            (x, y) = (y, x % y);
        }
        u32::try_from(a / x * b).unwrap_or(u32::MAX)
    }

    /// In place: the scratch slots (of `segment_size` bytes) stashes may
    /// use, for images of `old_len` and `new_len` bytes: `scratch_size`,
    /// or by default max(2 erase blocks, 2 % of the larger image), rounded
    /// down to whole segments and at least one.
    ///
    /// # Errors
    /// [`Error::Option`] when an explicit `scratch_size` holds no segment.
    pub fn scratch_slots(&self, segment_size: u32, old_len: u64, new_len: u64) -> Result<u32> {
        let seg = u64::from(segment_size.max(1));
        let slots = match self.scratch_size {
            Some(bytes) if bytes < seg => {
                return Err(Error::Option {
                    option: "--scratch-size",
                    reason: format!(
                        "{bytes} bytes hold no {seg}-byte segment; in place needs at least one"
                    ),
                })
            }
            Some(bytes) => bytes / seg,
            None => {
                let two_percent = old_len.max(new_len) / 50;
                (u64::from(self.erase_size) * 2).max(two_percent) / seg
            }
        };
        Ok(u32::try_from(slots.max(1)).unwrap_or(u32::MAX))
    }
}

/// Ops and payload bytes of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Number of ops.
    pub ops: u64,
    /// Target bytes they write.
    pub target_bytes: u64,
    /// Package bytes they take (heads and payloads).
    pub package_bytes: u64,
}

/// A finished package and the figures of its making.
#[derive(Debug, Clone)]
pub struct DiffOutput {
    /// The package bytes.
    pub package: Vec<u8>,
    /// Threads used.
    pub threads: usize,
    /// Seconds spent, total.
    pub seconds: f64,
    /// Seconds in the suffix array, matching, coding and self-check.
    pub stage_seconds: StageSeconds,
    /// Per op kind, in [`OpKind`] order copy, patch, new, fill, skip, stash.
    pub by_kind: [(OpKind, KindStats); OpKind::ALL.len()],
    /// In place: stashes, scratch slots and re-planned ops; `None` for A/B.
    pub in_place: Option<InPlaceStats>,
    /// The reference transform the package uses; `None` when it has none.
    pub xform: Option<XformStats>,
    /// Bytes of the package made the other way (with the transform when
    /// this one has none, and the reverse), an estimate under the zstd
    /// profile (payloads coded fast); `None` when no transform applied.
    pub other_len: Option<usize>,
    /// The compressed streams the package diffs decompressed; `None` when
    /// it has no stream table.
    pub streams: Option<streams::StreamStats>,
}

/// Time per pipeline stage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageSeconds {
    /// Building the suffix array.
    pub index: f64,
    /// Finding blocks.
    pub matching: f64,
    /// Coding the segments.
    pub coding: f64,
    /// Applying the package to check it.
    pub self_check: f64,
}

/// Makes a package that turns `old` into `new`, signed with `key`.
///
/// # Errors
/// [`Error::Option`] for option values the format cannot carry,
/// [`Error::Limit`] for inputs over 2 GiB, [`Error::SelfCheck`] if the
/// package does not reproduce `new` (a bug, reported rather than shipped).
pub fn diff(old: &[u8], new: &[u8], key: &SigningKey, opts: &DiffOptions) -> Result<DiffOutput> {
    diff_with_progress(old, new, key, opts, &NoProgress)
}

/// [`diff`], reporting its stages and steps to `progress`.
///
/// # Errors
/// As [`diff`].
pub fn diff_with_progress(
    old: &[u8],
    new: &[u8],
    key: &SigningKey,
    opts: &DiffOptions,
    progress: &dyn Progress,
) -> Result<DiffOutput> {
    let started = Instant::now();
    check_mode_options(opts)?;
    check_options(opts)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| Error::Option {
            option: "--threads",
            reason: e.to_string(),
        })?;
    let expanded = match opts.decompress && opts.profile == Profile::Zstd {
        true => pool.install(|| streams::prepare(old, new)),
        false => None,
    };
    let Some(x) = expanded else {
        return diff_images(old, new, None, key, opts, progress, &pool, started);
    };
    let lead = Lead {
        table: &x.table,
        real_old: old,
        real_new: new,
    };
    let mut out = diff_images(
        &x.old,
        &x.new,
        Some(&lead),
        key,
        opts,
        progress,
        &pool,
        started,
    )?;
    out.streams = Some(x.stats);
    Ok(out)
}

/// How close (in 1/1000 of the smaller) the fast estimates of the two ways
/// to build a package must be for both to be coded in full: the estimate
/// (zstd at a low level) can rank them wrongly when their sizes are near,
/// as on small updates whose transform costs about what it saves.
const CLOSE_CALL: usize = 100;

/// Largest new image whose close calls are coded both ways: on larger ones
/// the second full coding would cost as much time as the first.
const CLOSE_CALL_MAX_IMAGE: usize = 1 << 20;

/// Which ways to build a package of a `new_len`-byte image are coded in
/// full after their fast estimates `with_xform` and `raw`: first the
/// smaller (`true`: the one with the transform; a tie goes to the raw
/// way, which the applier runs faster), then the other too when the
/// estimates were a close call on a small image.
fn full_codings(with_xform: usize, raw: usize, new_len: usize) -> (bool, bool) {
    let x_first = with_xform < raw;
    let (won, lost) = (with_xform.min(raw), with_xform.max(raw));
    let close = new_len <= CLOSE_CALL_MAX_IMAGE
        && lost.saturating_mul(1000) <= won.saturating_mul(1000 + CLOSE_CALL);
    (x_first, close)
}

/// The stream stage of a package: its table and the real images the
/// expanded ones stand for.
struct Lead<'a> {
    table: &'a [u8],
    real_old: &'a [u8],
    real_new: &'a [u8],
}

/// [`diff_with_progress`] on the images the ops work on (expanded when
/// `lead` is given).
#[allow(clippy::too_many_arguments)]
fn diff_images(
    old: &[u8],
    new: &[u8],
    lead: Option<&Lead<'_>>,
    key: &SigningKey,
    opts: &DiffOptions,
    progress: &dyn Progress,
    pool: &rayon::ThreadPool,
    started: Instant,
) -> Result<DiffOutput> {
    let segment_size = opts.effective_segment_size();
    let slots = match opts.mode {
        Mode::AB => 0,
        Mode::InPlace => opts.scratch_slots(segment_size, old.len() as u64, new.len() as u64)?,
    };
    let threads = pool.current_num_threads();
    let mut stages = StageSeconds::default();
    // The raw images' index and blocks serve the raw package and the
    // transform's first round alike.
    // Finding a raw image's layout reads all of it: once.
    let old_layout = xform::layout::detect(old, opts.arch);
    let match_raw = opts.arch == Arch::Auto && old_layout.is_some();
    // Sorting the raw image's suffixes runs on one thread: the transform's
    // probe and the hashes every way of building shares take the others.
    let (raw_match, (probe, hashed)) = pool.install(|| {
        rayon::join(
            || {
                match_raw
                    .then(|| index_and_match(old, new, opts, progress, &mut stages))
                    .transpose()
            },
            || {
                let hashed = Hashed {
                    manifest: write::image_manifest(old, new, segment_size, opts.mode),
                    segments: write::SegmentHashes::new(new, segment_size),
                };
                let probe = xform::Probe::new(old, new, old_layout, opts.arch, opts.xform_ram);
                (probe, hashed)
            },
        )
    });
    let (raw_match, probe) = (raw_match?, probe?);
    // Only the tiny coder reads the index after matching: without it, the
    // index (four bytes per old byte) is freed before the transform
    // builds its own.
    let raw_match = raw_match.map(|(index, blocks)| {
        (
            Some(index).filter(|_| opts.profile == Profile::Tiny),
            blocks,
        )
    });
    memory::release_freed();
    let mut prepared = pool.install(|| {
        let blocks = raw_match.as_ref().map(|(_, b)| &b[..]);
        probe
            .map(|p| p.prepare(old, new, opts.match_params, blocks))
            .transpose()
    })?;
    memory::release_freed();
    // One package of `old` → `new`, with or without the transform.
    let build_one = |prepared: Option<&xform::Prepared>,
                     stages: &mut StageSeconds,
                     matched: Option<Matched<'_>>,
                     quick: bool| {
        pool.install(|| {
            build(
                old,
                new,
                prepared,
                opts,
                Plan {
                    segment_size,
                    slots,
                    quick,
                },
                key,
                progress,
                stages,
                matched,
                lead,
                &hashed,
            )
        })
        .inspect(|_| memory::release_freed())
    };
    // The transform's blocks (of its images) go to the pipeline.
    let x_blocks = prepared.as_mut().map(|p| std::mem::take(&mut p.blocks));
    if let Some(p) = prepared.as_ref().filter(|_| opts.arch != Arch::Auto) {
        let matched = Some(Matched {
            index: None,
            blocks: x_blocks.unwrap_or_default(),
        });
        let (built, _) = build_one(Some(p), &mut stages, matched, false)?;
        // The transformed images are not needed for the self-check.
        drop(prepared);
        memory::release_freed();
        return finish(
            old, new, lead, key, opts, progress, started, threads, stages, built, None,
        );
    }
    let raw_match = raw_match.map(|(index, blocks)| Matched { index, blocks });
    // With both ways to build, each is first coded fast for its size
    // (zstd profile: the full LZMA search is most of the time) and only
    // the smaller is coded in full.
    let quick = prepared.is_some() && opts.profile == Profile::Zstd;
    let (raw, raw_blocks) = build_one(None, &mut stages, raw_match, quick)?;
    let (built, other_len) = match &prepared {
        None => (raw, None),
        Some(p) => {
            let mut x_stages = StageSeconds::default();
            let matched = Some(Matched {
                index: None,
                blocks: x_blocks.unwrap_or_default(),
            });
            let (with, with_blocks) = build_one(Some(p), &mut x_stages, matched, quick)?;
            stages.index += x_stages.index;
            stages.matching += x_stages.matching;
            stages.coding += x_stages.coding;
            let (x_first, close) = full_codings(with.package.len(), raw.package.len(), new.len());
            let lost = with.package.len().max(raw.package.len());
            // In full: the way that won the estimate, and the other one too
            // when the estimates were a close call.
            let (first, second) = match x_first {
                true => ((true, with_blocks), (false, raw_blocks)),
                false => ((false, raw_blocks), (true, with_blocks)),
            };
            let mut in_full = |(x, blocks): (bool, Vec<matcher::Block>)| -> Result<Built> {
                let matched = Some(Matched {
                    index: None,
                    blocks,
                });
                let way = if x { Some(p) } else { None };
                let (built, _) = build_one(way, &mut x_stages, matched, false)?;
                stages.coding += x_stages.coding;
                Ok(built)
            };
            // The other way's size is an estimate unless it was coded in full.
            let (built, other_len) = match (quick, close) {
                (false, _) => (if x_first { with } else { raw }, Some(lost)),
                (true, false) => (in_full(first)?, Some(lost)),
                (true, true) => {
                    let (a, b) = (in_full(first)?, in_full(second)?);
                    match b.package.len() < a.package.len() {
                        true => (b, Some(a.package.len())),
                        false => {
                            let other = b.package.len();
                            (a, Some(other))
                        }
                    }
                }
            };
            (built, other_len)
        }
    };
    drop(prepared);
    memory::release_freed();
    finish(
        old, new, lead, key, opts, progress, started, threads, stages, built, other_len,
    )
}

/// Self-checks the package `build` made and gathers its figures.
#[allow(clippy::too_many_arguments)]
fn finish(
    old: &[u8],
    new: &[u8],
    lead: Option<&Lead<'_>>,
    key: &SigningKey,
    opts: &DiffOptions,
    progress: &dyn Progress,
    started: Instant,
    threads: usize,
    mut stages: StageSeconds,
    built: Built,
    other_len: Option<usize>,
) -> Result<DiffOutput> {
    let Built {
        package,
        ops,
        in_place,
        xform,
    } = built;
    if opts.self_check {
        let t = Instant::now();
        progress.stage(Stage::SelfCheck, 0);
        let device = DeviceIdentity {
            device_class: opts.device_class,
            security_counter: opts.security_counter,
        };
        // The applier starts from the real old image and ends at the real new one.
        let (old, new) = lead.map_or((old, new), |l| (l.real_old, l.real_new));
        let out =
            apply(old, &package, &[key.verifying_key()], &device).map_err(Error::SelfCheck)?;
        if out != new {
            return Err(Error::SelfCheck(fota_format::Error::TargetHashMismatch));
        }
        stages.self_check = t.elapsed().as_secs_f64();
    }
    // Each op's bytes on the wire, read back from the package.
    let wire: Vec<u64> = fota_format::Package::parse(&package)
        .and_then(|p| p.ops_unverified())
        .map_err(Error::SelfCheck)?
        .map(|op| op.map(|op| op.wire_len()))
        .collect::<Result<_, _>>()
        .map_err(Error::SelfCheck)?;
    let kinds = OpKind::ALL;
    let by_kind = kinds.map(|k| {
        let mut s = KindStats::default();
        for (op, len) in ops.iter().zip(&wire).filter(|(op, _)| op.kind == k) {
            s.ops += 1;
            s.target_bytes += u64::from(op.dst_len);
            s.package_bytes += len;
        }
        (k, s)
    });
    Ok(DiffOutput {
        package,
        threads,
        seconds: started.elapsed().as_secs_f64(),
        stage_seconds: stages,
        by_kind,
        in_place,
        xform,
        other_len,
        streams: None,
    })
}

/// The suffix array of `old` and the blocks of `new` against it.
fn index_and_match<'a>(
    old: &'a [u8],
    new: &[u8],
    opts: &DiffOptions,
    progress: &dyn Progress,
    stages: &mut StageSeconds,
) -> Result<(suffix::SuffixIndex<'a>, Vec<matcher::Block>)> {
    let t = Instant::now();
    progress.stage(Stage::Index, 0);
    let index = suffix::SuffixIndex::build(old)?;
    stages.index += t.elapsed().as_secs_f64();
    let t = Instant::now();
    progress.stage(Stage::Match, new.len() as u64);
    let blocks = matcher::find_blocks(&index, new, opts.match_params, progress);
    stages.matching += t.elapsed().as_secs_f64();
    Ok((index, blocks))
}

/// The blocks of `new` against `old`, and the suffix index that found
/// them when it is still at hand.
struct Matched<'a> {
    index: Option<suffix::SuffixIndex<'a>>,
    blocks: Vec<matcher::Block>,
}

/// How `build` cuts and codes the target.
#[derive(Clone, Copy)]
struct Plan {
    segment_size: u32,
    slots: u32,
    /// Code fast, for a size estimate.
    quick: bool,
}

/// What every package of one pair shares: the manifest's image hashes
/// and the target's segment hashes.
struct Hashed<'a> {
    manifest: Manifest,
    segments: write::SegmentHashes<'a>,
}

/// A package made one way, before its self-check.
struct Built {
    package: Vec<u8>,
    ops: Vec<plan::PlannedOp>,
    in_place: Option<InPlaceStats>,
    xform: Option<XformStats>,
}

/// Makes the package of `old` → `new`, diffing the transformed images of
/// `prepared` when given (hashes always cover the real images).
#[allow(clippy::too_many_arguments)]
fn build(
    old: &[u8],
    new: &[u8],
    prepared: Option<&xform::Prepared>,
    opts: &DiffOptions,
    plan: Plan,
    key: &SigningKey,
    progress: &dyn Progress,
    stages: &mut StageSeconds,
    matched: Option<Matched<'_>>,
    lead: Option<&Lead<'_>>,
    hashed: &Hashed<'_>,
) -> Result<(Built, Vec<matcher::Block>)> {
    let Plan {
        segment_size,
        slots,
        quick,
    } = plan;
    // What the pipeline diffs: T(old) and F(new) through a transform.
    let (wold, wnew) = prepared.map_or((old, new), |p| (&p.old[..], &p.new[..]));
    let whole_blocks = prepared.is_some();
    let Matched { index, blocks } = match matched {
        Some(m) => m,
        None => {
            let (index, blocks) = index_and_match(wold, wnew, opts, progress, stages)?;
            Matched {
                index: Some(index),
                blocks,
            }
        }
    };
    // The tiny coder also matches literals against the whole source.
    let index = match (opts.profile, index) {
        (Profile::Tiny, Some(ix)) => Some(ix),
        (Profile::Tiny, None) => Some(suffix::SuffixIndex::build(wold)?),
        _ => None,
    };
    memory::release_freed();
    let coding = match &index {
        Some(ix) => plan::Coding::Tiny { source: Some(ix) },
        None => plan::Coding::Zstd {
            level: opts.level,
            quick,
        },
    };
    let t = Instant::now();
    progress.stage(Stage::Code, new.len() as u64);
    let rules = plan::Rules {
        whole_blocks,
        in_place: opts.mode == Mode::InPlace,
    };
    let ops = plan::plan_ops(
        wold,
        wnew,
        &blocks,
        segment_size as usize,
        coding,
        rules,
        progress,
    )?;
    let (mut ops, mut in_place) = match opts.mode {
        Mode::AB => (ops, None),
        Mode::InPlace => {
            // Re-coding without some sources must read only the blocks given.
            let recoding = match coding {
                plan::Coding::Tiny { .. } => plan::Coding::Tiny { source: None },
                c => c,
            };
            let code = |b: &[matcher::Block], s, e| {
                plan::plan_segment(wold, wnew, b, s, e, recoding, rules)
            };
            // SKIP is decided on the real images: it leaves bytes as they are.
            let p = inplace::plan_in_place(old, new, &blocks, segment_size, slots, ops, &code)?;
            (p.ops, Some(p.stats))
        }
    };
    stages.coding = t.elapsed().as_secs_f64();
    let mut manifest = Manifest {
        device_class: opts.device_class,
        from_version: opts.from_version,
        to_version: opts.to_version,
        security_counter: opts.security_counter,
        release_notes_sha256: opts.release_notes_sha256,
        profile: opts.profile,
        scratch_slots: in_place.map_or(0, |p| p.scratch_slots),
        op_auth: match opts.chain {
            true => fota_format::OpAuth::Chain,
            false => write::default_op_auth(opts.mode),
        },
        ..hashed.manifest
    };
    if let Some(stats) = in_place.as_mut() {
        // The format's own rules, before anything is written.
        let mut m = manifest;
        m.op_count = u32::try_from(ops.len()).unwrap_or(u32::MAX);
        stats.stash_high_water = inplace::simulate(&m, &ops)?;
    }
    if let Some(p) = prepared {
        manifest.xform_len = p.payload.len() as u32;
        ops.insert(0, plan::PlannedOp::xform(p.wire.clone()));
    }
    if let Some(l) = lead {
        manifest.streams_len = l.table.len() as u32;
        ops.insert(0, plan::PlannedOp::streams(l.table.to_vec()));
    }
    let package = write::write_package_with(manifest, &ops, old, new, key, Some(&hashed.segments))?;
    let built = Built {
        package,
        ops,
        in_place,
        xform: prepared.map(|p| p.stats),
    };
    Ok((built, blocks))
}

/// Checks the mode, erase size and scratch options.
fn check_mode_options(opts: &DiffOptions) -> Result<()> {
    use fota_format::manifest::MAX_SEGMENT_SIZE;
    let erase = opts.erase_size;
    if erase == 0 || erase > MAX_SEGMENT_SIZE {
        return Err(Error::Option {
            option: "--erase-size",
            reason: format!("{erase} is not from 1 to {MAX_SEGMENT_SIZE}"),
        });
    }
    match opts.mode {
        Mode::AB if opts.scratch_size.is_some() => Err(Error::Option {
            option: "--scratch-size",
            reason: "only in-place packages use scratch (add --mode in-place)".into(),
        }),
        Mode::AB => Ok(()),
        Mode::InPlace => {
            let seg = opts.effective_segment_size();
            if seg > MAX_SEGMENT_SIZE {
                return Err(Error::Option {
                    option: "--erase-size",
                    reason: format!(
                        "{erase}: no segment of whole erase blocks is a multiple of 256 up to {MAX_SEGMENT_SIZE}"
                    ),
                });
            }
            if seg % erase != 0 {
                return Err(Error::Option {
                    option: "--segment-size",
                    reason: format!(
                        "{seg} is not a whole number of erase blocks ({erase} bytes); in place every segment is erased alone"
                    ),
                });
            }
            Ok(())
        }
    }
}

fn check_options(opts: &DiffOptions) -> Result<()> {
    use fota_format::manifest::{MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, SEGMENT_ALIGN};
    let s = opts.effective_segment_size();
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&s) || s % SEGMENT_ALIGN != 0 {
        return Err(Error::Option {
            option: "--segment-size",
            reason: format!("{s} is not a multiple of {SEGMENT_ALIGN} from {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE}"),
        });
    }
    if !(1..=22).contains(&opts.level) {
        return Err(Error::Option {
            option: "--level",
            reason: format!("{} is not from 1 to 22", opts.level),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_calls_on_small_images_are_coded_both_ways() {
        // A small update whose transform costs about what it saves (the
        // corpus-like zlib 1.3 -> 1.3.1 pair: 264 against 276 bytes fast,
        // 264 against 251 in full).
        assert_eq!(full_codings(264, 276, 32 << 10), (true, true));
        assert_eq!(full_codings(276, 264, 32 << 10), (false, true));
        // Exactly at the margin, and just past it.
        assert_eq!(full_codings(1000, 1100, 32 << 10), (true, true));
        assert_eq!(full_codings(1000, 1101, 32 << 10), (true, false));
        // A transform that takes a third off: one full coding.
        assert_eq!(full_codings(400, 600, 32 << 10), (true, false));
        // A tie goes to the raw way.
        assert_eq!(full_codings(500, 500, 32 << 10), (false, true));
        // Large images are coded once, however close the call.
        assert_eq!(full_codings(264, 276, CLOSE_CALL_MAX_IMAGE), (true, true));
        assert_eq!(
            full_codings(264, 276, CLOSE_CALL_MAX_IMAGE + 1),
            (true, false)
        );
        // Estimates too large to scale do not overflow.
        assert_eq!(full_codings(usize::MAX, usize::MAX - 1, 1), (false, true));
    }
}
