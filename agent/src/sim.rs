//! A faulty-flash simulator and the power-cut campaign, shipped as a
//! product feature so device makers can run them on their own layouts and
//! images (`sim` feature, `fota sim`).
//!
//! [`SimFlash`] models NOR flash: erase blocks of any sizes, a write unit,
//! a read unit, an erased value (0xFF or 0x00), writes that AND into the
//! cell and may touch each word only once between erases, per-block erase
//! counters, and a trace of every program and erase. A cut can be set at
//! any op, with four outcomes ([`CutVariant`]): the op not done, done,
//! torn program (each word `old AND random`, or unreadable as an ECC
//! error), torn erase (random bytes, or half erased).
//!
//! [`Setup`]'s campaigns run the golden-trace method: one clean run records the
//! trace; the flash state after k ops is the initial image plus the first
//! k ops of that trace (the agent is deterministic), so every single cut
//! costs one resume, not one whole update.

use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use crate::flash::{Block, Flash, FlashError};

/// Where and how flash is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutVariant {
    /// The op never happened (MCUboot's model).
    NotDone,
    /// The op completed, then power went (littlefs's model).
    Done,
    /// A program was torn: every word it wrote holds `old AND random`, or
    /// (every other word, seeded) reads back as an ECC error.
    TornProgram,
    /// An erase was torn: the block holds random bytes or is half erased.
    TornErase,
}

impl CutVariant {
    /// The four variants.
    pub const ALL: [CutVariant; 4] = [
        CutVariant::NotDone,
        CutVariant::Done,
        CutVariant::TornProgram,
        CutVariant::TornErase,
    ];

    /// Short name, for reports and replay ids.
    pub fn name(self) -> &'static str {
        match self {
            CutVariant::NotDone => "not-done",
            CutVariant::Done => "done",
            CutVariant::TornProgram => "torn-program",
            CutVariant::TornErase => "torn-erase",
        }
    }
}

/// One program or erase, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceOp {
    /// Erase of `[from, to)`.
    Erase {
        /// First address.
        from: u64,
        /// One past the last.
        to: u64,
    },
    /// Program of `data` at `addr`.
    Write {
        /// Address.
        addr: u64,
        /// Bytes.
        data: Vec<u8>,
    },
}

impl TraceOp {
    /// True for erases.
    pub fn is_erase(&self) -> bool {
        matches!(self, TraceOp::Erase { .. })
    }
}

/// The flash's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Erase block sizes, in address order.
    pub blocks: Vec<u64>,
    /// Program unit.
    pub write_size: usize,
    /// Read unit.
    pub read_size: usize,
    /// Value of an erased byte.
    pub erased: u8,
}

impl Geometry {
    /// `count` blocks of `erase_size` bytes.
    pub fn uniform(count: usize, erase_size: u64, write_size: usize, read_size: usize) -> Self {
        Geometry {
            blocks: vec![erase_size; count],
            write_size,
            read_size,
            erased: 0xff,
        }
    }

    /// Total bytes.
    pub fn capacity(&self) -> u64 {
        self.blocks.iter().sum()
    }
}

/// A small seeded generator (xorshift64*), so every run is replayable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Simulated NOR flash with cut injection, counters and a trace.
#[derive(Debug, Clone)]
pub struct SimFlash {
    geometry: Geometry,
    block_starts: Vec<u64>,
    data: Vec<u8>,
    /// One flag per write unit: programmed since the last erase.
    written: Vec<bool>,
    /// One flag per write unit: reads fail (torn word on ECC flash).
    ecc_bad: Vec<bool>,
    erase_counts: Vec<u32>,
    /// Programs and erases done (the cut counter).
    pub ops: u64,
    /// Bytes programmed.
    pub bytes_programmed: u64,
    /// Record every op here when set.
    pub trace: Option<Vec<TraceOp>>,
    cut: Option<(u64, CutVariant, u64)>,
    dead: bool,
    /// Writes that hit an already-programmed word (a write-once violation).
    pub double_writes: u64,
    /// When set, any program or erase is refused with `WriteFailed` and
    /// counted in `writes_refused` (to prove nothing is written before a
    /// check).
    pub read_only: bool,
    /// Programs and erases refused because of `read_only`.
    pub writes_refused: u64,
    /// When set, the only address ranges `[start, end)` programs and
    /// erases may touch (for the agent: the layout's writable regions, see
    /// [`Setup::write_window`]). A program or erase not wholly inside one
    /// window is refused with `WriteFailed`, changes nothing, is not
    /// counted as an op, and is counted in `writes_outside_window`: tests
    /// assert that count is 0 (R12: no write outside the layout, whatever
    /// the persistent state).
    pub write_window: Option<Vec<(u64, u64)>>,
    /// Programs and erases refused because of `write_window`.
    pub writes_outside_window: u64,
}

impl SimFlash {
    /// A fully erased flash of this geometry.
    pub fn new(geometry: Geometry) -> Self {
        let cap = geometry.capacity() as usize;
        let units = cap / geometry.write_size.max(1);
        let mut starts = Vec::with_capacity(geometry.blocks.len());
        let mut at = 0;
        for b in &geometry.blocks {
            starts.push(at);
            at += b;
        }
        SimFlash {
            data: vec![geometry.erased; cap],
            written: vec![false; units],
            ecc_bad: vec![false; units],
            erase_counts: vec![0; geometry.blocks.len()],
            block_starts: starts,
            geometry,
            ops: 0,
            bytes_programmed: 0,
            trace: None,
            cut: None,
            dead: false,
            double_writes: 0,
            read_only: false,
            writes_refused: 0,
            write_window: None,
            writes_outside_window: 0,
        }
    }

    /// The geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The raw contents.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Loads bytes at `addr` as if programmed at the factory (no counters,
    /// no write-once marks).
    pub fn load(&mut self, addr: u64, bytes: &[u8]) {
        let a = addr as usize;
        self.data[a..a + bytes.len()].copy_from_slice(bytes);
    }

    /// Erase count of each block.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erase_counts
    }

    /// Resets the erase counters, op counter and trace (not the data).
    pub fn reset_counters(&mut self) {
        self.erase_counts.iter_mut().for_each(|c| *c = 0);
        self.ops = 0;
        self.bytes_programmed = 0;
        self.double_writes = 0;
        self.writes_refused = 0;
        self.writes_outside_window = 0;
        if let Some(t) = self.trace.as_mut() {
            t.clear();
        }
    }

    /// Cuts power at op `at` (counted from now, 0-based) with `variant`;
    /// `seed` drives the torn variants.
    pub fn cut_at(&mut self, at: u64, variant: CutVariant, seed: u64) {
        self.cut = Some((self.ops + at, variant, seed));
        self.dead = false;
    }

    /// Restores power: no cut pending, ops allowed again.
    pub fn power_on(&mut self) {
        self.cut = None;
        self.dead = false;
    }

    /// True once a cut fired.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    fn block_index(&self, addr: u64) -> Option<usize> {
        if addr >= self.geometry.capacity() {
            return None;
        }
        Some(match self.block_starts.binary_search(&addr) {
            Ok(i) => i,
            Err(i) => i - 1,
        })
    }

    /// Applies `op` as a completed op (used to build states from a trace).
    pub fn apply_op(&mut self, op: &TraceOp) {
        match op {
            TraceOp::Erase { from, to } => self.do_erase(*from, *to),
            TraceOp::Write { addr, data } => self.do_write(*addr, data),
        }
    }

    /// Applies `op` as interrupted by a cut of `variant`.
    pub fn apply_faulty(&mut self, op: &TraceOp, variant: CutVariant, seed: u64) {
        let mut rng = Rng::new(seed);
        match (variant, op) {
            (CutVariant::NotDone, _) => {}
            (CutVariant::Done, op) => self.apply_op(op),
            (CutVariant::TornProgram, TraceOp::Write { addr, data }) => {
                let ws = self.geometry.write_size;
                let ecc = rng.below(2) == 0;
                for (i, chunk) in data.chunks(ws).enumerate() {
                    let a = *addr as usize + i * ws;
                    let unit = a / ws;
                    if ecc && rng.below(2) == 0 {
                        self.ecc_bad[unit] = true;
                    }
                    for (k, b) in chunk.iter().enumerate() {
                        // Half-programmed cells: some bits moved, some not.
                        let r = rng.next_u64() as u8;
                        if self.geometry.erased == 0xff {
                            self.data[a + k] &= b | r;
                        } else {
                            self.data[a + k] |= b & r;
                        }
                    }
                    self.written[unit] = true;
                }
            }
            (CutVariant::TornErase, TraceOp::Erase { from, to }) => {
                let half = rng.below(2) == 0;
                let (f, t) = (*from as usize, *to as usize);
                if half {
                    let mid = f + (t - f) / 2;
                    self.data[f..mid].fill(self.geometry.erased);
                } else {
                    for b in &mut self.data[f..t] {
                        *b = rng.next_u64() as u8;
                    }
                }
                let ws = self.geometry.write_size;
                for u in f / ws..t / ws {
                    // Erased cells can be programmed again; random ones too
                    // (the agent always erases before programming).
                    self.written[u] = false;
                    self.ecc_bad[u] = false;
                }
                self.count_erase(*from, *to);
            }
            // A torn program on an erase, or the reverse: as not done.
            _ => {}
        }
    }

    fn count_erase(&mut self, from: u64, to: u64) {
        let mut at = from;
        while at < to {
            let Some(i) = self.block_index(at) else { break };
            self.erase_counts[i] += 1;
            at = self.block_starts[i] + self.geometry.blocks[i];
        }
    }

    fn do_erase(&mut self, from: u64, to: u64) {
        let (f, t) = (from as usize, to as usize);
        self.data[f..t].fill(self.geometry.erased);
        let ws = self.geometry.write_size;
        for u in f / ws..t / ws {
            self.written[u] = false;
            self.ecc_bad[u] = false;
        }
        self.count_erase(from, to);
    }

    fn do_write(&mut self, addr: u64, data: &[u8]) {
        let ws = self.geometry.write_size;
        let a = addr as usize;
        for (i, b) in data.iter().enumerate() {
            // NOR: programming only clears bits (for 0xFF-erased flash);
            // on 0x00-erased flash it only sets them.
            let cell = &mut self.data[a + i];
            if self.geometry.erased == 0xff {
                *cell &= *b;
            } else {
                *cell |= *b;
            }
        }
        for u in a / ws..(a + data.len()) / ws {
            if self.written[u] {
                self.double_writes += 1;
            }
            self.written[u] = true;
        }
        self.bytes_programmed += data.len() as u64;
    }

    /// Counts an op and fires the cut when it is due; `make` builds the
    /// op's record only when a trace or the cut needs it (so a run without
    /// either allocates nothing).
    fn tick(&mut self, make: impl FnOnce() -> TraceOp) -> Result<(), FlashError> {
        if self.dead {
            return Err(FlashError::PowerLost);
        }
        if self.read_only {
            self.writes_refused += 1;
            return Err(FlashError::WriteFailed);
        }
        let n = self.ops;
        self.ops += 1;
        if let Some((at, variant, seed)) = self.cut {
            if n == at {
                let op = make();
                self.apply_faulty(&op, variant, seed);
                self.dead = true;
                return Err(FlashError::PowerLost);
            }
        }
        if let Some(t) = self.trace.as_mut() {
            t.push(make());
        }
        Ok(())
    }

    /// Refuses (and counts) a program or erase of `[from, to)` that is not
    /// wholly inside one range of `write_window`.
    fn check_window(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        let Some(windows) = &self.write_window else {
            return Ok(());
        };
        if windows.iter().any(|&(s, e)| s <= from && to <= e) {
            return Ok(());
        }
        self.writes_outside_window += 1;
        Err(FlashError::WriteFailed)
    }

    fn check_range(&self, addr: u64, len: usize, unit: usize) -> Result<(), FlashError> {
        let end = addr
            .checked_add(len as u64)
            .ok_or(FlashError::OutOfBounds)?;
        if end > self.geometry.capacity() {
            return Err(FlashError::OutOfBounds);
        }
        if addr % unit as u64 != 0 || len % unit != 0 {
            return Err(FlashError::NotAligned);
        }
        Ok(())
    }
}

impl Flash for SimFlash {
    fn read_size(&self) -> usize {
        self.geometry.read_size
    }
    fn write_size(&self) -> usize {
        self.geometry.write_size
    }
    fn erased_value(&self) -> u8 {
        self.geometry.erased
    }
    fn capacity(&self) -> u64 {
        self.geometry.capacity()
    }
    fn block_at(&self, addr: u64) -> Option<Block> {
        let i = self.block_index(addr)?;
        Some(Block {
            start: self.block_starts[i],
            len: self.geometry.blocks[i],
        })
    }
    async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        if self.dead {
            return Err(FlashError::PowerLost);
        }
        self.check_range(addr, buf.len(), self.geometry.read_size)?;
        let ws = self.geometry.write_size;
        let a = addr as usize;
        if (a / ws..(a + buf.len()).div_ceil(ws)).any(|u| self.ecc_bad[u]) {
            return Err(FlashError::ReadFailed);
        }
        buf.copy_from_slice(&self.data[a..a + buf.len()]);
        Ok(())
    }
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        self.check_range(addr, data.len(), self.geometry.write_size)?;
        self.check_window(addr, addr + data.len() as u64)?;
        self.tick(|| TraceOp::Write {
            addr,
            data: data.to_vec(),
        })?;
        self.do_write(addr, data);
        Ok(())
    }
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        if to < from || to > self.capacity() {
            return Err(FlashError::OutOfBounds);
        }
        let bound = |a: u64| a == self.capacity() || self.block_at(a).is_some_and(|b| b.start == a);
        if !bound(from) || !bound(to) {
            return Err(FlashError::NotAligned);
        }
        self.check_window(from, to)?;
        self.tick(|| TraceOp::Erase { from, to })?;
        self.do_erase(from, to);
        Ok(())
    }
}

/// A flash just large enough for an update with this manifest, and its
/// layout: the slots (A/B: source then target; in place: the image then
/// the package's scratch slots), then two journal blocks; uniform blocks
/// of `erase` bytes, programmed `write` and read `read` bytes at a time.
/// `Err` says which parameter does not fit the package.
pub fn fit(
    m: &fota_format::Manifest,
    erase: u64,
    write: usize,
    read: usize,
    erased: u8,
) -> Result<(Geometry, crate::Layout), String> {
    use crate::{Layout, Range, Slots};
    if erase == 0 || u64::from(m.segment_size) % erase != 0 {
        return Err(format!(
            "erase size {erase}: the package's segments ({} B) must be whole erase blocks",
            m.segment_size
        ));
    }
    if write == 0 || read == 0 || erase % write as u64 != 0 || erase % read as u64 != 0 {
        return Err(format!(
            "write size {write} and read size {read} must be non-zero and divide the erase size {erase}"
        ));
    }
    if erased != 0xff && erased != 0 {
        return Err(format!("erased value {erased}: flash erases to 255 or 0"));
    }
    let up = |n: u64| n.div_ceil(erase) * erase;
    let (slots, end) = match m.mode {
        fota_format::Mode::AB => {
            let (s, t) = (up(m.source_size).max(erase), up(m.target_size).max(erase));
            (
                Slots::AB {
                    source: Range::new(0, s),
                    target: Range::new(s, t),
                },
                s + t,
            )
        }
        fota_format::Mode::InPlace => {
            let image = up(m.source_size.max(m.target_size)).max(erase);
            let scratch = u64::from(m.scratch_slots) * u64::from(m.segment_size);
            (
                Slots::InPlace {
                    image: Range::new(0, image),
                    scratch: Range::new(image, scratch),
                },
                image + scratch,
            )
        }
    };
    let layout = Layout {
        slots,
        journal: Range::new(end, 2 * erase),
    };
    let blocks = ((end + 2 * erase) / erase) as usize;
    let mut g = Geometry::uniform(blocks, erase, write, read);
    g.erased = erased;
    Ok((g, layout))
}

/// One update to run under cuts: flash shape, what is on it, the layout,
/// the package and the image it must end with.
#[derive(Debug, Clone)]
pub struct Setup<'a> {
    /// Flash shape.
    pub geometry: Geometry,
    /// Bytes loaded before the update (address, bytes): the source image.
    pub initial: Vec<(u64, Vec<u8>)>,
    /// Where things live.
    pub layout: crate::Layout,
    /// The package.
    pub package: &'a [u8],
    /// Keys and device identity.
    pub config: crate::Config<'a>,
    /// The target image the update must produce.
    pub expected: &'a [u8],
}

/// What a campaign found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignReport {
    /// Programs and erases of a clean run.
    pub clean_ops: u64,
    /// Cuts tried per variant (in [`CutVariant::ALL`] order).
    pub cuts_tried: [u64; 4],
    /// Replay ids of the runs that did not end bit-exact.
    pub failures: Vec<String>,
    /// Highest erase count of any block in the clean run.
    pub max_erases_clean: u32,
    /// Highest erase count of a target (image) block in the clean run:
    /// at most 1, and 0 for blocks the update leaves unchanged.
    pub max_target_erases_clean: u32,
    /// Highest erase count of an in-place scratch block in the clean run
    /// (R6: at most 2; 0 for A/B, which has no scratch).
    pub max_scratch_erases_clean: u32,
    /// Highest erase count of any block over a cut run plus its resume.
    pub max_erases_with_cut: u32,
    /// R3: most ops a resume did (executed, or checked and found done)
    /// beyond the ops that were not yet committed when the cut came, over
    /// all single cuts: the work the cut cost.
    pub max_rework_ops: u32,
}

impl Setup<'_> {
    /// A flash holding the initial bytes.
    pub fn fresh_flash(&self) -> SimFlash {
        let mut f = SimFlash::new(self.geometry.clone());
        for (addr, bytes) in &self.initial {
            f.load(*addr, bytes);
        }
        f
    }

    /// The ranges the agent may program or erase with this layout (target,
    /// scratch, journal; never an A/B source slot), as
    /// [`SimFlash::write_window`] takes them.
    pub fn write_window(&self) -> Vec<(u64, u64)> {
        let l = &self.layout;
        [l.target(), l.scratch(), l.journal]
            .into_iter()
            .filter(|r| r.len > 0)
            .map(|r| (r.start, r.end()))
            .collect()
    }

    /// Runs the agent on `flash` until it returns.
    pub fn run(&self, flash: &mut SimFlash) -> crate::Result<crate::Report> {
        // Sized from the layout, as a device sizes them: enough for the
        // smallest segments (256 B) the format allows.
        let min_seg = u64::from(fota_format::manifest::MIN_SEGMENT_SIZE);
        let bitmap = self.layout.target().len.div_ceil(min_seg).div_ceil(8) as usize;
        let slots = (self.layout.scratch().len / min_seg) as usize;
        let xform_len = fota_format::Package::parse(self.package)
            .and_then(|p| p.manifest_unverified())
            .map_or(0, |m| m.xform_len);
        let work_len = crate::work_len_for(flash.write_size(), flash.read_size(), xform_len);
        let mut work = vec![0u8; work_len];
        let (mut w, mut o) = (vec![0u8; bitmap], vec![0u8; bitmap]);
        let mut s = vec![0u32; slots];
        let mut pkg = crate::SlicePackage(self.package);
        crate::block_on(crate::apply(
            flash,
            &mut pkg,
            &self.config,
            crate::Buffers {
                work: &mut work,
                written: &mut w,
                overwritten: &mut o,
                slots: &mut s,
            },
        ))
    }

    /// Whether the target region starts with the expected image.
    pub fn is_done(&self, flash: &SimFlash) -> bool {
        let t = self.layout.target();
        let start = t.start as usize;
        flash.bytes().get(start..start + self.expected.len()) == Some(self.expected)
    }

    /// One clean run with a trace: the golden trace.
    ///
    /// # Errors
    /// What the agent returns.
    pub fn golden(&self) -> crate::Result<(SimFlash, Vec<TraceOp>)> {
        let mut f = self.fresh_flash();
        f.trace = Some(Vec::new());
        self.run(&mut f)?;
        let trace = f.trace.take().unwrap_or_default();
        Ok((f, trace))
    }

    /// Resumes from `flash` (power back on, counters reset) and checks
    /// the result; `Err(reason)` when it did not end bit-exact.
    pub fn resume_and_check(&self, flash: &mut SimFlash) -> Result<crate::Report, String> {
        flash.power_on();
        match self.run(flash) {
            Ok(r) if self.is_done(flash) => Ok(r),
            Ok(_) => Err("finished but the target is not bit-exact".into()),
            Err(e) => Err(std::format!("{e}")),
        }
    }

    /// Exhaustive single cuts: for every op `k` of the golden trace (every
    /// `stride`-th when `stride` > 1) and every variant, the state after
    /// `k` ops plus the faulty op `k`, then one resume. `name` prefixes
    /// replay ids `name:variant@k/seed` (see [`Setup::replay`]).
    ///
    /// # Errors
    /// When the clean run itself fails.
    pub fn single_cuts(
        &self,
        name: &str,
        stride: usize,
        seed: u64,
    ) -> crate::Result<CampaignReport> {
        let (clean, trace) = self.golden()?;
        let mut report = CampaignReport {
            clean_ops: trace.len() as u64,
            max_erases_clean: clean.erase_counts().iter().copied().max().unwrap_or(0),
            max_target_erases_clean: self.max_erases_in(&clean, self.layout.target()),
            max_scratch_erases_clean: self.max_erases_in(&clean, self.layout.scratch()),
            ..CampaignReport::default()
        };
        let op_count = fota_format::Package::parse(self.package)
            .and_then(|p| p.manifest_unverified())
            .map_or(0, |m| m.op_count);
        let journal = self.layout.journal;
        // Journal records written before each op: Begin, then one per op.
        let mut records = 0u32;
        let mut state = self.fresh_flash();
        for (k, op) in trace.iter().enumerate() {
            let committed = records.saturating_sub(1).min(op_count);
            if let TraceOp::Write { addr, .. } = op {
                if (journal.start..journal.end()).contains(addr) {
                    records += 1;
                }
            }
            if k % stride.max(1) == 0 {
                for (vi, variant) in CutVariant::ALL.into_iter().enumerate() {
                    let applies = match variant {
                        CutVariant::TornProgram => !op.is_erase(),
                        CutVariant::TornErase => op.is_erase(),
                        _ => true,
                    };
                    if !applies {
                        continue;
                    }
                    report.cuts_tried[vi] += 1;
                    let s = seed ^ (k as u64).wrapping_mul(0x9e37_79b9) ^ vi as u64;
                    let mut f = state.clone();
                    f.apply_faulty(op, variant, s);
                    match self.resume_and_check(&mut f) {
                        Ok(r) => {
                            let remaining = op_count - committed;
                            let rework =
                                (r.ops_executed + r.ops_found_done).saturating_sub(remaining);
                            report.max_rework_ops = report.max_rework_ops.max(rework);
                            let worst = f.erase_counts().iter().copied().max().unwrap_or(0);
                            report.max_erases_with_cut = report.max_erases_with_cut.max(worst);
                        }
                        Err(why) => report.failures.push(std::format!(
                            "{}: {why}",
                            replay_id(
                                name,
                                &[Cut {
                                    variant,
                                    k: k as u64,
                                    seed: s
                                }]
                            )
                        )),
                    }
                }
            }
            state.apply_op(op);
        }
        Ok(report)
    }

    /// Highest erase count of the blocks inside `range`.
    pub fn max_erases_in(&self, flash: &SimFlash, range: crate::Range) -> u32 {
        let mut at = range.start;
        let mut worst = 0;
        while at < range.end() {
            let Some(b) = flash.block_at(at) else { break };
            if let Some(i) = flash.block_index(b.start) {
                worst = worst.max(flash.erase_counts()[i]);
            }
            at = b.end();
        }
        worst
    }

    /// Runs the update with the cuts of `schedule` in turn: each cut
    /// fires at op `k` counted from the start of its own run (the first
    /// run, then each resume), then one final resume must end bit-exact.
    /// The same schedule always gives the same result (the agent and the
    /// simulator are deterministic), which is what replay ids rely on.
    ///
    /// # Errors
    /// Why the final state is wrong, or the run that failed otherwise.
    pub fn run_schedule(&self, schedule: &[Cut]) -> Result<crate::Report, String> {
        let mut flash = self.fresh_flash();
        for (i, cut) in schedule.iter().enumerate() {
            flash.power_on();
            flash.cut_at(cut.k, cut.variant, cut.seed);
            match self.run(&mut flash) {
                Err(crate::Error::Flash {
                    error: FlashError::PowerLost,
                    ..
                }) => {}
                // The cut came after the update ended: nothing to cut.
                Ok(_) if !flash.is_dead() => {}
                Ok(_) => return Err(std::format!("cut {i} fired but the run succeeded")),
                Err(e) => return Err(std::format!("run {i} (before its cut): {e}")),
            }
        }
        self.resume_and_check(&mut flash)
    }

    /// Replays a failure id as printed by the campaigns
    /// (`name:variant@k/seed,variant@k/seed,...`; the name is ignored).
    ///
    /// # Errors
    /// A malformed id, or the replayed failure.
    pub fn replay(&self, id: &str) -> Result<crate::Report, String> {
        let schedule = parse_replay_id(id).ok_or_else(|| std::format!("bad replay id {id:?}"))?;
        self.run_schedule(&schedule)
    }

    /// R2: a first cut at `points` evenly spaced ops of the clean run
    /// (every op when the run has fewer), each variant in turn, then a
    /// second cut at every op of the resume, in every variant, then a
    /// final resume. Golden traces at both levels.
    ///
    /// # Errors
    /// When the clean run itself fails.
    pub fn double_cuts(
        &self,
        name: &str,
        points: usize,
        seed: u64,
    ) -> crate::Result<CampaignReport> {
        let (_, trace) = self.golden()?;
        let mut report = CampaignReport {
            clean_ops: trace.len() as u64,
            ..CampaignReport::default()
        };
        let n = trace.len();
        let step = (n / points.max(1)).max(1);
        let mut state = self.fresh_flash();
        let mut next = 0usize;
        for (k1, op) in trace.iter().enumerate() {
            if k1 == next {
                next += step;
                let v1 = CutVariant::ALL[(k1 / step) % 4];
                let s1 = seed ^ (k1 as u64).wrapping_mul(0x9e37_79b9);
                let mut first = state.clone();
                first.apply_faulty(op, v1, s1);
                // The resume's own golden trace.
                let mut probe = first.clone();
                probe.power_on();
                probe.reset_counters();
                probe.trace = Some(Vec::new());
                if let Err(e) = self.run(&mut probe) {
                    report.failures.push(std::format!(
                        "{name}:{}@{k1}/{s1}: resume without a second cut: {e}",
                        v1.name()
                    ));
                    state.apply_op(op);
                    continue;
                }
                let trace2 = probe.trace.take().unwrap_or_default();
                let mut second = first.clone();
                for (k2, op2) in trace2.iter().enumerate() {
                    for (vi, v2) in CutVariant::ALL.into_iter().enumerate() {
                        report.cuts_tried[vi] += 1;
                        let s2 = s1 ^ (k2 as u64 + 1).wrapping_mul(0x85eb_ca6b) ^ vi as u64;
                        let mut f = second.clone();
                        f.apply_faulty(op2, v2, s2);
                        if let Err(why) = self.resume_and_check(&mut f) {
                            report.failures.push(std::format!(
                                "{name}:{}@{k1}/{s1},{}@{k2}/{s2}: {why}",
                                v1.name(),
                                v2.name()
                            ));
                        }
                    }
                    second.apply_op(op2);
                }
            }
            state.apply_op(op);
        }
        Ok(report)
    }

    /// R2: `runs` seeded runs with 1–10 cuts each at random ops (all
    /// variants), each ending with a resume that must be bit-exact.
    ///
    /// # Errors
    /// When the clean run itself fails.
    pub fn random_cuts(&self, name: &str, runs: u64, seed: u64) -> crate::Result<CampaignReport> {
        let (_, trace) = self.golden()?;
        let n = trace.len() as u64;
        let mut report = CampaignReport {
            clean_ops: n,
            ..CampaignReport::default()
        };
        let mut rng = Rng::new(seed);
        for _ in 0..runs {
            let cuts = 1 + rng.below(10) as usize;
            let schedule: Vec<Cut> = (0..cuts)
                .map(|_| {
                    let variant = CutVariant::ALL[rng.below(4) as usize];
                    Cut {
                        variant,
                        k: rng.below(n + 1),
                        seed: rng.next_u64(),
                    }
                })
                .collect();
            for c in &schedule {
                if let Some(i) = CutVariant::ALL.iter().position(|v| *v == c.variant) {
                    report.cuts_tried[i] += 1;
                }
            }
            if let Err(why) = self.run_schedule(&schedule) {
                report
                    .failures
                    .push(std::format!("{}: {why}", replay_id(name, &schedule)));
            }
        }
        Ok(report)
    }
}

/// One cut of a schedule: at op `k` of its run, with `variant`; `seed`
/// drives the torn variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// What the cut leaves.
    pub variant: CutVariant,
    /// Op of its run (program or erase, from 0) the cut hits.
    pub k: u64,
    /// Seed of the torn outcome.
    pub seed: u64,
}

/// The replay id of a schedule: `name:variant@k/seed,...`.
pub fn replay_id(name: &str, schedule: &[Cut]) -> String {
    let mut id = std::format!("{name}:");
    for (i, c) in schedule.iter().enumerate() {
        if i > 0 {
            id.push(',');
        }
        id.push_str(&std::format!("{}@{}/{}", c.variant.name(), c.k, c.seed));
    }
    id
}

/// Parses a replay id back into its schedule.
pub fn parse_replay_id(id: &str) -> Option<Vec<Cut>> {
    // Failure lines carry ": reason" after the id; names may not hold ':'.
    let cuts = id.split(':').nth(1)?.trim();
    cuts.split(',')
        .map(|c| {
            let (variant, rest) = c.split_once('@')?;
            let (k, seed) = rest.split_once('/')?;
            Some(Cut {
                variant: *CutVariant::ALL.iter().find(|v| v.name() == variant)?,
                k: k.trim().parse().ok()?,
                seed: seed.trim().parse().ok()?,
            })
        })
        .collect()
}
