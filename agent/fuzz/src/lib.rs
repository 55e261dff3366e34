//! R12, garbage persistent state: what the `resume` fuzz target does with
//! its input, shared with the seed replay test `agent/tests/fuzz_seeds.rs`,
//! which includes this file as a module (`#[path = "../fuzz/src/lib.rs"]`).
//! So: no libfuzzer-sys here, and no dependency but `fota-agent` (with
//! `sim`) and `fota-format`.
//!
//! The setup is fixed: one small image pair and its two tiny-profile
//! packages (A/B and in place, in `fixtures/`, signed with the agent
//! tests' key), on 256-byte erase blocks, write size 4, read size 4. An
//! input picks a mode and a state of the update (the flash after the
//! first `k` ops of a clean run, plus op `k` cut in one of the four
//! variants, as in R1), then overwrites any of the journal, the scratch
//! area (in place) or source slot (A/B), and the target image with its
//! own bytes, fills, well-formed journal records (valid CRC, any fields)
//! or junk in never-written journal slots. Then the agent runs once.
//!
//! [`resume`] panics (a finding) when:
//! - the agent panics, or programs or erases anything outside the
//!   layout's writable regions ([`fota_agent::sim::SimFlash::write_window`]),
//!   or writes a word twice without an erase;
//! - it returns `Ok` but the target is not the new image bit for bit, or
//!   a second run does not find the update finished without writing
//!   (after planted records whose sequence numbers lie half the space
//!   apart, [`Input::near_seq_wrap`], only that the image survives the
//!   second run: no record is the newest then);
//! - it fails with a flash error other than an unreadable word
//!   (misaligned or out-of-bounds ops are bugs), or a layout error (the
//!   layout is fixed and fits);
//! - the state was one a real device can reach (no patch, or only junk
//!   in never-written journal slots) and it did not resume bit-exact.
//!
//! Any other typed error is the expected answer to corrupt state.
//!
//! ## Input layout
//!
//! ```text
//!  0      flags: bit 0 set = in place, else A/B
//!  1..3   k, u16 LE: the state after k ops of the clean run (mod ops + 1)
//!  3      cut: (value % 5) 0..3 = CutVariant::ALL[value] applied to op k
//!         (when k < ops), 4 = none
//!  4..12  seed of a torn cut, u64 LE
//!  12..   patches until the input ends, each a tag byte (tag % 4) and:
//!   0 bytes   region u8, offset u16, len u8, then len bytes (fewer at the
//!             end of the input): loaded at the region's start + offset
//!             (mod its length), clipped to the region
//!   1 record  slot u16, kind u8, seq u32, next_op u16, pkg_offset u16,
//!             chain u8: a record with a valid CRC in journal slot
//!             (slot mod slots). kind: bits 0-1 = 1 Begin, 3 Finished,
//!             else Progress; bit 7 = another package's id. next_op mod
//!             (ops + 2). pkg_offset: bit 15 clear = the offset of op
//!             (value mod (ops + 1)), set = first op + (value & 0x7fff).
//!             chain: the hash op (value mod (ops + 1)) must have (zeros
//!             past the last op)
//!   2 fill    region u8, offset u16, len u16, value u8
//!   3 junk    n u8, len u8, then len bytes: written into the n-th (mod
//!             count) journal slot that is fully erased, as garbage a
//!             device might hold where nothing was ever written
//! ```
//! Regions (value % 3): 0 journal, 1 scratch (in place) or source slot
//! (A/B), 2 target image. Multi-byte fields are little-endian.

use std::sync::OnceLock;

use fota_agent::journal::{self, Record, RecordKind};
use fota_agent::sim::{CutVariant, Geometry, Setup, SimFlash, TraceOp};
use fota_agent::{Config, Error, Flash, FlashError, Layout, Range, Report, Slots};
use fota_format::{Label, Package, SigningKey, VerifyingKey, HEADER_LEN};

/// Seed of the signing key of the fixture packages: the agent tests' key
/// (`agent/tests/common/mod.rs`). A test key, public on purpose.
pub const KEY_SEED: [u8; 32] = [7; 32];
/// Erase block (and segment) size of the fixed setup.
pub const ERASE: u64 = 256;
/// Write size of the fixed setup.
pub const WRITE: usize = 4;
/// Read size of the fixed setup (above 1, so unaligned reads go through
/// the agent's bounce path).
pub const READ: usize = 4;
/// Scratch blocks of the in-place layout (the package uses up to 2 slots).
pub const SCRATCH_BLOCKS: u64 = 2;
/// Device class the fixture packages are for.
pub const DEVICE_CLASS: &str = "test-board";
/// Length of the input's fixed prefix (flags, k, cut, seed).
pub const PREFIX_LEN: usize = 12;

/// The old image.
pub static OLD: &[u8] = include_bytes!("../fixtures/old.bin");
/// The new image.
pub static NEW: &[u8] = include_bytes!("../fixtures/new.bin");
/// The A/B package (tiny profile, 256-byte segments).
pub static AB_PACKAGE: &[u8] = include_bytes!("../fixtures/ab.fota");
/// The in-place package (tiny profile, 256-byte segments).
pub static IP_PACKAGE: &[u8] = include_bytes!("../fixtures/ip.fota");

/// The public key the agent trusts.
pub fn verifying_key() -> VerifyingKey {
    SigningKey::from_bytes(&KEY_SEED).verifying_key()
}

fn keys() -> &'static [VerifyingKey] {
    static KEYS: OnceLock<[VerifyingKey; 1]> = OnceLock::new();
    KEYS.get_or_init(|| [verifying_key()])
}

/// The layout of the fixed setup for images of `image` bytes: A/B
/// source, target, 2 journal blocks; in place image, scratch, 2 journal
/// blocks. Every block of the flash belongs to a region.
pub fn layout(in_place: bool, image: u64) -> (Geometry, Layout) {
    let slot = image.div_ceil(ERASE) * ERASE;
    let (slots, journal) = if in_place {
        let scratch = SCRATCH_BLOCKS * ERASE;
        (
            Slots::InPlace {
                image: Range::new(0, slot),
                scratch: Range::new(slot, scratch),
            },
            Range::new(slot + scratch, 2 * ERASE),
        )
    } else {
        (
            Slots::AB {
                source: Range::new(0, slot),
                target: Range::new(slot, slot),
            },
            Range::new(2 * slot, 2 * ERASE),
        )
    };
    let blocks = (journal.end() / ERASE) as usize;
    let geometry = Geometry {
        blocks: vec![ERASE; blocks],
        write_size: WRITE,
        read_size: READ,
        erased: 0xff,
    };
    (geometry, Layout { slots, journal })
}

/// The fixed setup of one mode, its clean run's trace, and what journal
/// records of its package may say.
pub struct Fixture {
    /// The update.
    pub setup: Setup<'static>,
    /// Programs and erases of a clean run.
    pub trace: Vec<TraceOp>,
    /// Package offset of each op, then the package's end.
    pub op_offsets: Vec<u64>,
    /// The hash each op must have (the chain state before it), then zeros.
    pub chains: Vec<[u8; 32]>,
    /// The package id records carry.
    pub package_id: [u8; 8],
}

fn build(in_place: bool) -> Fixture {
    let package = if in_place { IP_PACKAGE } else { AB_PACKAGE };
    let (geometry, layout) = layout(in_place, OLD.len().max(NEW.len()) as u64);
    let setup = Setup {
        geometry,
        initial: vec![(0, OLD.to_vec())],
        layout,
        package,
        config: Config {
            layout,
            trusted: keys(),
            device_class: Label::new(DEVICE_CLASS).expect("a valid label"),
            security_counter: 0,
        },
        expected: NEW,
    };
    let (_, trace) = setup
        .golden()
        .expect("the fixture package applies (regenerate the fixtures?)");
    let pkg = Package::parse(package).expect("the fixture package parses");
    let m = pkg.manifest_unverified().expect("its manifest parses");
    let (mut op_offsets, mut chains) = (Vec::new(), vec![m.first_op_sha256]);
    for op in pkg.ops_unverified().expect("its ops parse") {
        let op = op.expect("its chain holds");
        op_offsets.push(op.offset);
        chains.push(op.header.next_op_sha256);
    }
    op_offsets.push(package.len() as u64);
    let manifest_end = HEADER_LEN + pkg.header().manifest_len as usize;
    // A version-3 package's id covers its op section's hash too.
    let ops_sha256: Option<[u8; 32]> = match pkg.header().op_auth {
        fota_format::OpAuth::Chain => None,
        fota_format::OpAuth::Signature => {
            use sha2::Digest;
            Some(sha2::Sha256::digest(&package[manifest_end..]).into())
        }
    };
    let package_id = journal::package_id(
        &package[..fota_format::SIGNED_HEADER_LEN],
        &package[HEADER_LEN..manifest_end],
        ops_sha256.as_ref(),
    );
    Fixture {
        setup,
        trace,
        op_offsets,
        chains,
        package_id,
    }
}

/// The fixture of a mode, built once.
pub fn fixture(in_place: bool) -> &'static Fixture {
    static F: [OnceLock<Fixture>; 2] = [OnceLock::new(), OnceLock::new()];
    F[usize::from(in_place)].get_or_init(|| build(in_place))
}

/// A patch of the flash, as the input encodes it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// Raw bytes into a region.
    Bytes {
        /// 0 journal, 1 scratch or source, 2 target.
        region: u8,
        /// Offset in the region (mod its length).
        offset: u16,
        /// The bytes (at most 255).
        data: Vec<u8>,
    },
    /// A journal record with a valid CRC.
    Record {
        /// Journal slot (mod slots).
        slot: u16,
        /// Kind byte.
        kind: u8,
        /// Sequence number.
        seq: u32,
        /// Next op (mod ops + 2).
        next_op: u16,
        /// Package offset selector.
        pkg_offset: u16,
        /// Chain selector.
        chain: u8,
    },
    /// A run of one value.
    Fill {
        /// 0 journal, 1 scratch or source, 2 target.
        region: u8,
        /// Offset in the region (mod its length).
        offset: u16,
        /// Bytes.
        len: u16,
        /// Value.
        value: u8,
    },
    /// Garbage in a journal slot nothing was written to.
    Junk {
        /// Which erased slot (mod their count).
        n: u8,
        /// The bytes (at most 255; a slot's worth is used).
        data: Vec<u8>,
    },
}

/// A decoded input (see the module docs for the byte layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// In place, else A/B.
    pub in_place: bool,
    /// Ops of the clean run done (mod ops + 1).
    pub k: u16,
    /// The cut of op `k` and its seed, if any.
    pub cut: Option<(CutVariant, u64)>,
    /// The patches, in order.
    pub patches: Vec<Patch>,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.is_empty() {
            return None;
        }
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        Some(a)
    }
    fn exact<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.0.get(..N)?.try_into().ok()?;
        self.0 = &self.0[N..];
        Some(b)
    }
    fn u8(&mut self) -> Option<u8> {
        self.exact::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.exact().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.exact().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.exact().map(u64::from_le_bytes)
    }
}

impl Input {
    /// Decodes an input; `None` when shorter than [`PREFIX_LEN`]. A patch
    /// cut short by the end of the input is dropped (bytes and junk keep
    /// what there is).
    pub fn parse(data: &[u8]) -> Option<Input> {
        let mut r = Reader(data);
        let flags = r.u8()?;
        let k = r.u16()?;
        let cut = r.u8()?;
        let seed = r.u64()?;
        let mut patches = Vec::new();
        while let Some(tag) = r.u8() {
            let p = match tag % 4 {
                0 => (|| {
                    let (region, offset, len) = (r.u8()?, r.u16()?, r.u8()?);
                    let data = r.bytes(len.into()).unwrap_or(&[]).to_vec();
                    Some(Patch::Bytes {
                        region,
                        offset,
                        data,
                    })
                })(),
                1 => (|| {
                    Some(Patch::Record {
                        slot: r.u16()?,
                        kind: r.u8()?,
                        seq: r.u32()?,
                        next_op: r.u16()?,
                        pkg_offset: r.u16()?,
                        chain: r.u8()?,
                    })
                })(),
                2 => (|| {
                    Some(Patch::Fill {
                        region: r.u8()?,
                        offset: r.u16()?,
                        len: r.u16()?,
                        value: r.u8()?,
                    })
                })(),
                _ => (|| {
                    let (n, len) = (r.u8()?, r.u8()?);
                    let data = r.bytes(len.into()).unwrap_or(&[]).to_vec();
                    Some(Patch::Junk { n, data })
                })(),
            };
            match p {
                Some(p) => patches.push(p),
                None => break,
            }
        }
        Some(Input {
            in_place: flags & 1 == 1,
            k,
            cut: CutVariant::ALL
                .get(usize::from(cut % 5))
                .map(|v| (*v, seed)),
            patches,
        })
    }

    /// Encodes the input (the inverse of [`Input::parse`] for well-formed
    /// inputs: byte runs of at most 255).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.in_place)];
        out.extend_from_slice(&self.k.to_le_bytes());
        let (cut, seed) = match self.cut {
            Some((v, s)) => (CutVariant::ALL.iter().position(|x| *x == v).unwrap_or(4), s),
            None => (4, 0),
        };
        out.push(cut as u8);
        out.extend_from_slice(&seed.to_le_bytes());
        for p in &self.patches {
            match p {
                Patch::Bytes {
                    region,
                    offset,
                    data,
                } => {
                    out.extend_from_slice(&[0, *region]);
                    out.extend_from_slice(&offset.to_le_bytes());
                    let data = &data[..data.len().min(255)];
                    out.push(data.len() as u8);
                    out.extend_from_slice(data);
                }
                Patch::Record {
                    slot,
                    kind,
                    seq,
                    next_op,
                    pkg_offset,
                    chain,
                } => {
                    out.push(1);
                    out.extend_from_slice(&slot.to_le_bytes());
                    out.push(*kind);
                    out.extend_from_slice(&seq.to_le_bytes());
                    out.extend_from_slice(&next_op.to_le_bytes());
                    out.extend_from_slice(&pkg_offset.to_le_bytes());
                    out.push(*chain);
                }
                Patch::Fill {
                    region,
                    offset,
                    len,
                    value,
                } => {
                    out.extend_from_slice(&[2, *region]);
                    out.extend_from_slice(&offset.to_le_bytes());
                    out.extend_from_slice(&len.to_le_bytes());
                    out.push(*value);
                }
                Patch::Junk { n, data } => {
                    let data = &data[..data.len().min(255)];
                    out.extend_from_slice(&[3, *n, data.len() as u8]);
                    out.extend_from_slice(data);
                }
            }
        }
        out
    }

    /// Whether planted records have sequence numbers 2^30 or more apart
    /// (serial-number distance): the journal compares sequence numbers in
    /// serial arithmetic (wrapping past `u32::MAX` is fine), which has no
    /// newest record among numbers half the space apart. Only forged
    /// records (a valid CRC written by someone else) can do that.
    pub fn near_seq_wrap(&self) -> bool {
        let seqs = || {
            self.patches.iter().filter_map(|p| match p {
                Patch::Record { seq, .. } => Some(*seq),
                _ => None,
            })
        };
        seqs().any(|a| {
            seqs().any(|b| {
                let d = a.wrapping_sub(b);
                d.min(d.wrapping_neg()) >= 1 << 30
            })
        })
    }

    /// Whether the state is one a device can reach: no patch but junk in
    /// never-written journal slots. The agent must then resume bit-exact.
    pub fn reachable(&self) -> bool {
        self.patches.iter().all(|p| matches!(p, Patch::Junk { .. }))
    }
}

fn region(setup: &Setup<'_>, r: u8) -> Range {
    let l = &setup.layout;
    match r % 3 {
        0 => l.journal,
        1 if matches!(l.slots, Slots::InPlace { .. }) => l.scratch(),
        1 => l.source(),
        _ => l.target(),
    }
}

/// Loads `data` at `offset` (mod the region's length) inside `r`, clipped.
fn load_in(flash: &mut SimFlash, r: Range, offset: u64, data: &[u8]) {
    if r.len == 0 {
        return;
    }
    let at = offset % r.len;
    let n = (data.len() as u64).min(r.len - at) as usize;
    flash.load(r.start + at, &data[..n]);
}

/// The flash of input `input` before the agent runs: the state after `k`
/// ops of the clean run, op `k` cut as asked, then the patches.
pub fn state(input: &Input) -> SimFlash {
    let fx = fixture(input.in_place);
    let setup = &fx.setup;
    let ops = fx.trace.len();
    let k = usize::from(input.k) % (ops + 1);
    let mut flash = setup.fresh_flash();
    for op in &fx.trace[..k] {
        flash.apply_op(op);
    }
    if let (Some(op), Some((variant, seed))) = (fx.trace.get(k), input.cut) {
        flash.apply_faulty(op, variant, seed);
    }
    let journal = setup.layout.journal;
    let slot = journal::slot_len(&flash);
    let slots = journal.len / slot;
    let erased = flash.erased_value();
    for p in &input.patches {
        match p {
            Patch::Bytes {
                region: r,
                offset,
                data,
            } => load_in(&mut flash, region(setup, *r), (*offset).into(), data),
            Patch::Fill {
                region: r,
                offset,
                len,
                value,
            } => {
                let data = vec![*value; usize::from(*len)];
                load_in(&mut flash, region(setup, *r), (*offset).into(), &data);
            }
            Patch::Record {
                slot: s,
                kind,
                seq,
                next_op,
                pkg_offset,
                chain,
            } => {
                let n_ops = fx.op_offsets.len() as u64; // ops + 1
                let pkg_offset = if pkg_offset & 0x8000 == 0 {
                    fx.op_offsets[(u64::from(*pkg_offset) % n_ops) as usize]
                } else {
                    fx.op_offsets[0] + u64::from(pkg_offset & 0x7fff)
                };
                let mut package_id = fx.package_id;
                if kind & 0x80 != 0 {
                    package_id[0] ^= 1;
                }
                let record = Record {
                    kind: match kind & 3 {
                        1 => RecordKind::Begin,
                        3 => RecordKind::Finished,
                        _ => RecordKind::Progress,
                    },
                    seq: *seq,
                    next_op: (u64::from(*next_op) % (n_ops + 1)) as u32,
                    pkg_offset,
                    package_id,
                    chain: fx.chains[(u64::from(*chain) % n_ops) as usize],
                };
                let mut bytes = vec![erased; slot as usize];
                bytes[..journal::RECORD_LEN].copy_from_slice(&record.encode());
                let at = journal.start + (u64::from(*s) % slots) * slot;
                flash.load(at, &bytes);
            }
            Patch::Junk { n, data } => {
                let free: Vec<u64> = (0..slots)
                    .map(|i| journal.start + i * slot)
                    .filter(|&a| {
                        flash.bytes()[a as usize..(a + slot) as usize]
                            .iter()
                            .all(|b| *b == erased)
                    })
                    .collect();
                if !free.is_empty() {
                    let at = free[usize::from(*n) % free.len()];
                    let len = data.len().min(slot as usize);
                    flash.load(at, &data[..len]);
                }
            }
        }
    }
    flash
}

/// What one input did.
#[derive(Debug)]
pub struct Outcome {
    /// The input, decoded.
    pub input: Input,
    /// The agent's answer.
    pub result: Result<Report, Error>,
}

/// The `resume` target: builds the state the input describes, runs the
/// agent once on it and checks the outcome (see the module docs for what
/// panics). `None` when the input is too short to say which state.
pub fn resume(data: &[u8]) -> Option<Outcome> {
    let input = Input::parse(data)?;
    let fx = fixture(input.in_place);
    let setup = &fx.setup;
    let mut flash = state(&input);
    flash.reset_counters();
    flash.power_on();
    flash.write_window = Some(setup.write_window());
    let result = setup.run(&mut flash);
    assert_eq!(
        flash.writes_outside_window, 0,
        "programmed or erased outside the layout: {result:?}"
    );
    assert_eq!(
        flash.double_writes, 0,
        "wrote a word twice without an erase: {result:?}"
    );
    match &result {
        Ok(_) => {
            assert!(
                setup.is_done(&flash),
                "Ok, but the target is not the new image"
            );
            flash.reset_counters();
            let again = setup.run(&mut flash);
            if input.near_seq_wrap() {
                // Forged records half the sequence space apart: no newest
                // one exists, so the second run may redo ops. It must not
                // harm the image.
                assert_eq!(flash.writes_outside_window, 0);
                assert!(setup.is_done(&flash), "after a wrap: {again:?}");
            } else {
                assert!(
                    matches!(again, Ok(r) if r.already_finished),
                    "a second run after Ok: {again:?}"
                );
                assert_eq!(flash.ops, 0, "a second run after Ok wrote");
            }
        }
        Err(e) => {
            assert!(
                !input.reachable(),
                "a reachable state (k {}, cut {:?}) did not resume: {e}",
                input.k,
                input.cut
            );
            match e {
                Error::Flash { error, .. } => assert_eq!(
                    *error,
                    FlashError::ReadFailed,
                    "the agent issued a bad flash op: {e}"
                ),
                Error::Layout { .. } => panic!("a layout error on a fitting layout: {e}"),
                _ => {}
            }
        }
    }
    Some(Outcome { input, result })
}
