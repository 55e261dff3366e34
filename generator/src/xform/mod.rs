//! The reference transform (see `fota_format::xform`) on the generator's
//! side: find each image's layout, infer the address map, and hand the
//! pipeline the transformed images T(old) and F(new) to diff instead of
//! the raw ones.
//!
//! ```text
//! layout (ELF sections | Cortex-M vector table | raw code, see `raw`)
//!   ──> match raw images ──> votes ──> map M₁
//!   ──> match T₁(old) against F(new) ──> votes ──> map M₂ ──> T₂(old), F(new)
//!   ──> match T₂(old) against F(new), through T₁(old)'s suffix array ──> blocks
//! ```
//!
//! The second round matches the transformed images, whose blocks are
//! longer and so pair more references; its map is the one shipped. The
//! pipeline's blocks come from T₂(old), which differs from T₁(old) only
//! where M₂ moved a reference, so T₁(old)'s suffix array is searched over
//! it ([`SuffixIndex::rebind`]) instead of sorting a third one: on the
//! corpus's large ELF pairs generation is 3 to 15 % faster and the
//! packages are within 0.5 % (as often smaller as larger).

pub mod layout;
pub mod map;
mod raw;
pub mod synth;

use std::borrow::Cow;

use fota_format::xform::{Breakpoint, XformParts, FLAG_BRANCHES, FLAG_POINTERS, MIN_BRANCH_BITS};
use fota_format::Xform;

pub use layout::{Arch, Layout};

use crate::error::{Error, Result};
use crate::matcher::{find_blocks, Block, MatchParams};
use crate::progress::NoProgress;
use crate::suffix::{Order, SuffixIndex};

/// Rounds of matching and map inference.
const ROUNDS: usize = 2;

/// What the transform made of a pair of images.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The transform as the applier holds it (its length is the
    /// manifest's `xform_len`).
    pub payload: Vec<u8>,
    /// The XFORM op's payload: the same, with ranges, windows and map
    /// varint-coded.
    pub wire: Vec<u8>,
    /// T(old): the old image in the new image's absolute domain.
    pub old: Vec<u8>,
    /// F(new): the new image with branches made absolute.
    pub new: Vec<u8>,
    /// The blocks of `new` against `old`, for the pipeline to plan with.
    pub blocks: Vec<Block>,
    /// Figures for reports.
    pub stats: XformStats,
}

/// Figures of a transform, for `fota diff` and `fota inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XformStats {
    /// Instruction set.
    pub isa: fota_format::xform::Isa,
    /// How the old image's layout was found.
    pub layout: &'static str,
    /// Breakpoints of the address map.
    pub breakpoints: usize,
    /// References T rewrites in the old image.
    pub old_sites: usize,
    /// Branches F rewrites in the new image.
    pub new_sites: usize,
}

/// What the transform of a pair finds before any matching: both layouts,
/// F(new) and the reference sites of both images. The caller may find it
/// while it matches the raw images, which the first round needs.
pub struct Probe {
    old_layout: Layout,
    new_layout: Layout,
    /// Most breakpoints the RAM budget holds.
    max: usize,
    branch_bits: u8,
    /// The transform without a map, which finds the sites.
    probe_bytes: Vec<u8>,
    /// F(new).
    forward: Vec<u8>,
    sites: map::ProbeSites,
}

impl Probe {
    /// The probe of `old` → `new` for `arch`, the transform's expanded
    /// form at most `max_ram` bytes. `old_layout` is [`layout::detect`] of
    /// `old` for `arch`, which the caller has found already. `None` when
    /// either image has no layout of that instruction set or the budget
    /// holds no transform (the pair is diffed raw).
    ///
    /// # Errors
    /// [`Error::Limit`] for images over 4 GiB, which the transform's 32-bit
    /// ranges cannot describe.
    pub fn new(
        old: &[u8],
        new: &[u8],
        old_layout: Option<Layout>,
        arch: Arch,
        max_ram: Option<u32>,
    ) -> Result<Option<Probe>> {
        let Some(lo) = old_layout else {
            return Ok(None);
        };
        let Some(ln) = layout::detect(new, arch) else {
            return Ok(None);
        };
        if lo.isa != ln.isa {
            return Ok(None);
        }
        // The device's RAM budget for the transform bounds the map.
        let fixed = parts(&lo, &ln, MIN_BRANCH_BITS, &[]).encoded_len();
        let max = match max_ram {
            None => fota_format::xform::MAX_BREAKPOINTS as usize,
            Some(ram) if (ram as usize) < fixed => return Ok(None),
            Some(ram) => (ram as usize - fixed) / fota_format::xform::BREAKPOINT_LEN,
        };
        let branch_bits = branch_bits(&lo, &ln);
        let probe_bytes = payload(&lo, &ln, branch_bits, &[])?;
        let probe = parse(&probe_bytes)?;
        let mut forward = new.to_vec();
        in_runs(&mut forward, 0, true, |run, at| probe.forward(run, at));
        let sites = map::ProbeSites::find(old, new, &probe);
        Ok(Some(Probe {
            old_layout: lo,
            new_layout: ln,
            max,
            branch_bits,
            probe_bytes,
            forward,
            sites,
        }))
    }

    /// Prepares the transform of the probed `old` → `new`, its first round
    /// starting from `raw_blocks` (the matcher's blocks of the raw images)
    /// when the caller has them.
    ///
    /// # Errors
    /// As [`Probe::new`].
    pub fn prepare(
        self,
        old: &[u8],
        new: &[u8],
        params: MatchParams,
        raw_blocks: Option<&[crate::matcher::Block]>,
    ) -> Result<Prepared> {
        let (lo, ln, max, branch_bits) =
            (self.old_layout, self.new_layout, self.max, self.branch_bits);
        let (forward, sites) = (self.forward, self.sites);
        // The images are the ones the probe read.
        debug_assert_eq!(forward.len(), new.len());
        let payload_for = |breakpoints: &[Breakpoint]| payload(&lo, &ln, branch_bits, breakpoints);
        let probe = parse(&self.probe_bytes)?;
        let mut breakpoints: Vec<Breakpoint> = Vec::new();
        // T(old) of the latest round; the images being matched are the raw
        // ones before the first round, then T(old) and F(new).
        let mut transformed: Option<Vec<u8>> = None;
        // The suffix order of the T(old) the latest round matched, and the
        // latest blocks when no round sorted a T(old).
        let mut order: Option<Order> = None;
        let mut unsorted_blocks = Vec::new();
        for round in 0..ROUNDS {
            // The first round pairs references with the raw images' blocks,
            // which the caller has (it diffs the raw images too).
            let blocks: Cow<'_, [Block]> = match raw_blocks.filter(|_| round == 0) {
                Some(b) => Cow::Borrowed(b),
                None => {
                    let (source, target) = match &transformed {
                        Some(t) => (&t[..], &forward[..]),
                        None => (old, new),
                    };
                    // The earlier round's array goes before this one is sorted.
                    drop(order.take());
                    let index = SuffixIndex::build(source)?;
                    let blocks = find_blocks(&index, target, params, &NoProgress);
                    order = Some(index.into_order());
                    Cow::Owned(blocks)
                }
            };
            // This round's T(old) is matched: it goes before the votes are
            // counted, while the suffix order is kept for the last match.
            drop(transformed.take());
            breakpoints = map::infer(new, &probe, &sites, &blocks, &ln.windows, max);
            // The last round's blocks serve the pipeline only when no round
            // sorted a T(old) to search again.
            if round + 1 == ROUNDS && order.is_none() {
                unsorted_blocks = blocks.into_owned();
            } else {
                drop(blocks);
            }
            let payload = payload_for(&breakpoints)?;
            let x = parse(&payload)?;
            let mut t = old.to_vec();
            in_runs(&mut t, 0, true, |run, at| x.source(run, at));
            transformed = Some(t);
        }
        let transformed = transformed.unwrap_or_else(|| old.to_vec());
        let (old_sites, new_sites) = (sites.old_count(), sites.new_count());
        // The sites are a few bytes per reference: gone before the last match.
        drop(sites);
        // The pipeline's blocks: F(new) against the final T(old), searched
        // through the last round's order, since the two T(old) differ only
        // where the map moved a reference.
        let blocks = match order {
            Some(order) => {
                let index = SuffixIndex::rebind(order, &transformed)?;
                find_blocks(&index, &forward, params, &NoProgress)
            }
            None => unsorted_blocks,
        };
        let payload = payload_for(&breakpoints)?;
        let mut wire = vec![0u8; 2 * payload.len() + 16];
        let n = parts(&lo, &ln, branch_bits, &breakpoints)
            .encode_wire(&mut wire)
            .ok_or(Error::Limit {
                what: "xform wire payload",
                value: payload.len() as u64,
                limit: fota_format::xform::MAX_XFORM_LEN.into(),
            })?;
        wire.truncate(n);
        Ok(Prepared {
            payload,
            wire,
            old: transformed,
            new: forward,
            blocks,
            stats: XformStats {
                isa: lo.isa,
                layout: lo.source,
                breakpoints: breakpoints.len(),
                old_sites,
                new_sites,
            },
        })
    }
}

/// The transform's payload (as the applier holds it) for these layouts,
/// branch window and map.
fn payload(
    lo: &Layout,
    ln: &Layout,
    branch_bits: u8,
    breakpoints: &[Breakpoint],
) -> Result<Vec<u8>> {
    let parts = parts(lo, ln, branch_bits, breakpoints);
    let mut out = vec![0u8; parts.encoded_len()];
    let n = parts.encode(&mut out).ok_or(Error::Limit {
        what: "xform payload records",
        value: breakpoints.len() as u64,
        limit: fota_format::xform::MAX_BREAKPOINTS.into(),
    })?;
    out.truncate(n);
    Ok(out)
}

/// Bytes of an image one thread transforms: whole transform blocks, so
/// that runs are independent (T, F and F⁻¹ rewrite each block on its own).
const TRANSFORM_RUN: usize = 64 * fota_format::xform::XFORM_BLOCK;

/// Runs a transform (`rewrite(run, image offset)`) over `bytes`, which
/// start at image offset `offset` (a multiple of the transform's block):
/// when `parallel`, on all threads in runs of whole blocks, else on this
/// thread in one call.
pub(crate) fn in_runs(
    bytes: &mut [u8],
    offset: u64,
    parallel: bool,
    rewrite: impl Fn(&mut [u8], u64) + Sync,
) {
    use rayon::prelude::*;
    if parallel && bytes.len() > TRANSFORM_RUN {
        bytes
            .par_chunks_mut(TRANSFORM_RUN)
            .enumerate()
            .for_each(|(k, run)| rewrite(run, offset + (k * TRANSFORM_RUN) as u64));
    } else {
        rewrite(bytes, offset);
    }
}

/// The transform of a pair with these layouts, window and map.
fn parts<'a>(
    old: &'a Layout,
    new: &'a Layout,
    branch_bits: u8,
    breakpoints: &'a [Breakpoint],
) -> XformParts<'a> {
    XformParts {
        isa: old.isa,
        branch_bits,
        flags: FLAG_BRANCHES | FLAG_POINTERS,
        old_ranges: &old.ranges,
        new_ranges: &new.ranges,
        windows: &old.windows,
        breakpoints,
    }
}

/// The narrowest branch window that still reaches across either image: a
/// displacement of the whole address span, in half-words, signed.
fn branch_bits(old: &Layout, new: &Layout) -> u8 {
    use fota_format::xform::Isa;
    let unit = match old.isa {
        Isa::Thumb2 => 2,
        Isa::Aarch64 => 4,
        Isa::X86_64 => 1,
        Isa::Arm => 4,
    };
    let units = old.span.max(new.span).div_ceil(unit).max(1);
    let bits = 64 - (units - 1).leading_zeros() + 1;
    (bits as u8).clamp(MIN_BRANCH_BITS, old.isa.max_branch_bits())
}

/// Parses a payload this module encoded: failing is a bug, reported.
fn parse(payload: &[u8]) -> Result<Xform<'_>> {
    Xform::parse(payload, 0).map_err(Error::SelfCheck)
}
