//! The update itself: trust before touch, then one op at a time with a
//! journal record as each op's commit point. Resuming is running this
//! again: there is no second recovery path.
//!
//! ```text
//! header+manifest ─ signature ─ device ─ layout fit ─ journal scan
//!   fresh:  source sha256 ─ (in place: every op hashed and its reads
//!           checked) ─ journal Begin        ← first write of any kind
//!   resume: (A/B: source sha256) ─ (in place: replay op headers)
//!           ─ journal restart in a fresh block
//! per op:   read op, hash = chain? ─ rules ─ [resumed: segment already
//!           right? skip] ─ source extents sha256 ─ erase ─ program
//!           ─ read back sha256 ─ payload re-hashed = chain? ─ record
//! end:      target sha256 ─ journal Finished
//! ```
//!
//! Every op is redoable until the record after it is durable: it erases
//! its destination before writing it, and the format's rules (SPEC §6.2)
//! keep its inputs intact until a later op.

use ed25519_dalek::VerifyingKey;
use fota_format::op::{parse_extent, Codec, OpHeader, OpKind};
use fota_format::package::raw_op_len;
use fota_format::{
    Error as FormatError, Extents, Header, InPlaceTracker, Label, Manifest, Mode, OpChain, Profile,
    SourcePiece, EXTENT_LEN, HEADER_LEN, MANIFEST_LEN, OP_HEADER_LEN, SIGNED_HEADER_LEN,
};
use sha2::{Digest, Sha256};

use crate::decode;
use crate::error::{Error, Region, Result};
use crate::flash::Flash;
use crate::journal::{self, Journal, Record, RecordKind};
use crate::layout::Layout;
use crate::source::PackageSource;

/// Bytes of one work chunk: the unit of package reads, source reads and
/// programs. The work buffer holds three.
pub const CHUNK: usize = 256;

/// Bytes the work buffer needs for a flash with this write and read size.
pub fn work_len(write_size: usize, read_size: usize) -> usize {
    3 * chunk_len(write_size, read_size)
}

fn chunk_len(write_size: usize, read_size: usize) -> usize {
    let unit = write_size.max(read_size).max(1);
    CHUNK.div_ceil(unit) * unit
}

/// What the device is and trusts.
#[derive(Debug, Clone, Copy)]
pub struct Config<'k> {
    /// Where everything lives.
    pub layout: Layout,
    /// Public keys packages may be signed with.
    pub trusted: &'k [VerifyingKey],
    /// The device's class; empty accepts any.
    pub device_class: Label,
    /// The device's anti-rollback counter.
    pub security_counter: u64,
}

/// Memory the caller lends the agent: nothing is allocated.
#[derive(Debug)]
pub struct Buffers<'b> {
    /// Work buffer of at least [`work_len`] bytes.
    pub work: &'b mut [u8],
    /// In place: one bit per segment ([`InPlaceTracker::bitmap_len`]).
    pub written: &'b mut [u8],
    /// In place: one bit per segment.
    pub overwritten: &'b mut [u8],
    /// In place: one entry per scratch slot.
    pub slots: &'b mut [u32],
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The op the run started at (0 for a fresh update).
    pub started_at_op: u32,
    /// Whether the run resumed an interrupted update.
    pub resumed: bool,
    /// Ops executed in this run.
    pub ops_executed: u32,
    /// Ops found already done on resume (their segment hashed right).
    pub ops_found_done: u32,
    /// The journal already said this package was finished.
    pub already_finished: bool,
}

/// Applies (or resumes applying) the package from `package` to `flash`.
///
/// # Errors
/// [`Error::Package`] for anything the package or the images fail, before
/// any write when it can be known then; [`Error::Flash`] when the flash
/// fails (a simulated power cut included); [`Error::Layout`] when the
/// package does not fit the layout or the buffers.
pub async fn apply<F: Flash, P: PackageSource>(
    flash: &mut F,
    package: &mut P,
    config: &Config<'_>,
    bufs: Buffers<'_>,
) -> Result<Report> {
    let Buffers {
        work,
        written,
        overwritten,
        slots,
    } = bufs;
    let chunk = chunk_len(flash.write_size(), flash.read_size());
    if work.len() < 3 * chunk {
        return Err(Error::Layout {
            what: "work buffer length",
            expected: (3 * chunk) as u64,
            found: work.len() as u64,
        });
    }
    let (out, rest) = work.split_at_mut(chunk);
    let (read, rest) = rest.split_at_mut(chunk);
    let pkg = rest.get_mut(..chunk).unwrap_or(&mut []);
    let work = Work { out, read, pkg };

    // Trust before touch: nothing below writes until the journal's Begin.
    // The manifest is kept only for these checks: the update then keeps
    // what it needs of it (Goal, the chain's limits, the tracker).
    let layout = config.layout;
    let (goal, tracker, chain) = {
        let (m, id) = read_manifest(package, config.trusted).await?;
        check_device(&m, config)?;
        if m.profile == Profile::Zstd && !cfg!(feature = "zstd") {
            return Err(Error::Layout {
                what: "codec profile (this build decodes 2 = tiny)",
                expected: Profile::Tiny as u64,
                found: m.profile as u64,
            });
        }
        layout.check(flash, journal::slot_len(flash))?;
        layout.check_package(flash, &m)?;
        let tracker = if m.mode == Mode::InPlace {
            Some(InPlaceTracker::new(&m, written, overwritten, slots)?)
        } else {
            None
        };
        (Goal::of(&m, id), tracker, OpChain::new(&m))
    };
    let mut extents = Extents::default();
    let mut update = Update {
        layout: &layout,
        goal: &goal,
        tracker,
        extents: &mut extents,
        work,
    };
    update.run(flash, package, chain).await
}

/// What an update checks against, from the manifest.
struct Goal {
    id: [u8; 8],
    in_place: bool,
    segment_size: u64,
    source_size: u64,
    source_sha256: [u8; 32],
    target_size: u64,
    target_sha256: [u8; 32],
    first_op_sha256: [u8; 32],
    op_count: u32,
}

impl Goal {
    fn of(m: &Manifest, id: [u8; 8]) -> Goal {
        Goal {
            id,
            in_place: m.mode == Mode::InPlace,
            segment_size: m.segment_size.into(),
            source_size: m.source_size,
            source_sha256: m.source_sha256,
            target_size: m.target_size,
            target_sha256: m.target_sha256,
            first_op_sha256: m.first_op_sha256,
            op_count: m.op_count,
        }
    }
}

/// One update's state between flash operations (buffers are borrowed).
struct Update<'u, 'b> {
    layout: &'u Layout,
    goal: &'u Goal,
    tracker: Option<InPlaceTracker<'b>>,
    /// The current op's source extents.
    extents: &'u mut Extents,
    work: Work<'b>,
}

impl Update<'_, '_> {
    /// Everything after the manifest's checks: journal scan, the source
    /// (and in place, the whole package) checked, then the op loop.
    async fn run<F: Flash, P: PackageSource>(
        &mut self,
        flash: &mut F,
        package: &mut P,
        mut chain: OpChain,
    ) -> Result<Report> {
        let layout = self.layout;
        let goal = self.goal;
        let id = goal.id;
        let first_op = (HEADER_LEN + MANIFEST_LEN) as u64;
        let scan = Journal::scan(flash, layout.journal, self.work.read).await?;
        let mut report = Report {
            started_at_op: 0,
            resumed: false,
            ops_executed: 0,
            ops_found_done: 0,
            already_finished: false,
        };
        let mine = scan.newest.filter(|r| r.package_id == id);
        if let Some(r) = scan.newest {
            if r.package_id != id && r.kind != RecordKind::Finished && goal.in_place {
                return Err(Error::UnfinishedOtherUpdate {
                    journal_id: r.package_id,
                });
            }
        }
        if mine.is_some_and(|r| r.kind == RecordKind::Finished) {
            check_target(flash, layout, goal, self.work.read).await?;
            report.already_finished = true;
            return Ok(report);
        }

        let (state, mut journal) = match mine {
            None => {
                check_source(flash, layout, goal, self.work.read).await?;
                if self.tracker.is_some() {
                    self.check_whole_package(package, chain).await?;
                }
                let begin = Record {
                    kind: RecordKind::Begin,
                    seq: 0,
                    next_op: 0,
                    pkg_offset: first_op,
                    package_id: id,
                    chain: goal.first_op_sha256,
                };
                let j = Journal::start(flash, layout.journal, &scan, begin, self.work.out).await?;
                (begin, j)
            }
            Some(r) => {
                report.resumed = true;
                report.started_at_op = r.next_op;
                if !goal.in_place {
                    check_source(flash, layout, goal, self.work.read).await?;
                }
                self.replay_done_ops(package, r.next_op).await?;
                let resume = Record {
                    kind: RecordKind::Progress,
                    ..r
                };
                let j = Journal::start(flash, layout.journal, &scan, resume, self.work.out).await?;
                (r, j)
            }
        };
        chain = chain.resumed(state.next_op, state.chain);
        let mut at = state.pkg_offset;
        let mut first = report.resumed;
        while !chain.is_complete() {
            let op = read_op(package, at, &mut chain, self.work.pkg, self.extents).await?;
            if let Some(t) = self.tracker.as_mut() {
                t.record(op.index, at, &op.header, self.extents.as_slice())?;
            }
            // Skip work already done (only the op a cut may have
            // interrupted can be): its destination already hashes right.
            let (region, dst) = destination(layout, &op.header);
            // A segment that cannot be read (a torn word on ECC flash) is
            // not done.
            let already = first
                && hash_flash(flash, region, dst, op.header.dst_len.into(), self.work.read)
                    .await
                    .is_ok_and(|h| h == op.header.dst_sha256);
            first = false;
            if already {
                report.ops_found_done += 1;
            } else {
                self.run_op(flash, package, &op, at).await?;
                report.ops_executed += 1;
            }
            at += op.total_len;
            let done = Record {
                kind: RecordKind::Progress,
                seq: 0,
                next_op: op.index + 1,
                pkg_offset: at,
                package_id: id,
                chain: op.header.next_op_sha256,
            };
            journal.append(flash, done, self.work.out).await?;
        }
        check_target(flash, layout, goal, self.work.read).await?;
        let finished = Record {
            kind: RecordKind::Finished,
            seq: 0,
            next_op: goal.op_count,
            pkg_offset: at,
            package_id: id,
            chain: [0; 32],
        };
        journal.append(flash, finished, self.work.out).await?;
        Ok(report)
    }

    /// In place, before the first destructive write: every op
    /// authenticated and its reads checked against what earlier ops
    /// overwrite; then the tracker is reset for the real run.
    async fn check_whole_package<P: PackageSource>(
        &mut self,
        package: &mut P,
        mut chain: OpChain,
    ) -> Result<()> {
        let Some(t) = self.tracker.as_mut() else {
            return Ok(());
        };
        let mut at = (HEADER_LEN + MANIFEST_LEN) as u64;
        while !chain.is_complete() {
            let op = read_op(package, at, &mut chain, self.work.pkg, self.extents).await?;
            t.record(op.index, at, &op.header, self.extents.as_slice())?;
            at += op.total_len;
        }
        if !t.is_complete() {
            return Err(FormatError::OpLayout {
                op_index: self.goal.op_count,
                offset: at,
                what: "segments written (every target segment once)",
                expected: self
                    .goal
                    .target_size
                    .div_ceil(self.goal.segment_size.max(1)),
                found: 0,
            }
            .into());
        }
        t.reset();
        Ok(())
    }

    /// In place, on resume: rebuilds which segments are overwritten and
    /// what each slot holds from the headers of the ops already done.
    /// These reads only steer checks: the next op itself is authenticated
    /// and its inputs hash-checked before use.
    async fn replay_done_ops<P: PackageSource>(
        &mut self,
        package: &mut P,
        next_op: u32,
    ) -> Result<()> {
        let Some(t) = self.tracker.as_mut() else {
            return Ok(());
        };
        let mut at = (HEADER_LEN + MANIFEST_LEN) as u64;
        for index in 0..next_op {
            let (h, len) = read_op_header(package, at, self.work.pkg, self.extents).await?;
            t.record(index, at, &h, self.extents.as_slice())?;
            at += len;
        }
        Ok(())
    }
}

/// The three work chunks.
pub(crate) struct Work<'b> {
    /// Output waiting to be programmed.
    pub(crate) out: &'b mut [u8],
    /// Source and read-back bytes.
    pub(crate) read: &'b mut [u8],
    /// Package bytes.
    pub(crate) pkg: &'b mut [u8],
}

/// Region and flash address an op writes.
fn destination(layout: &Layout, h: &OpHeader) -> (Region, u64) {
    if h.kind == OpKind::Stash {
        (Region::Scratch, layout.scratch().start + h.dst_offset)
    } else {
        (Region::Target, layout.target().start + h.dst_offset)
    }
}

impl Update<'_, '_> {
    /// Executes one authenticated op: checks its inputs, erases and
    /// programs its destination, reads it back, and re-checks the
    /// payload's hash.
    async fn run_op<F: Flash, P: PackageSource>(
        &mut self,
        flash: &mut F,
        package: &mut P,
        op: &ReadOp,
        at: u64,
    ) -> Result<()> {
        let h = &op.header;
        let (region, dst) = destination(self.layout, h);
        let work = &mut self.work;
        let extents = self.extents.as_slice();
        let seg_err = FormatError::SegmentHashMismatch {
            op_index: op.index,
            dst_offset: h.dst_offset,
        };
        if h.kind == OpKind::Skip {
            let got = hash_flash(flash, region, dst, h.dst_len.into(), work.read).await?;
            return if got == h.dst_sha256 {
                Ok(())
            } else {
                Err(seg_err.into())
            };
        }
        let src = Sources {
            layout: self.layout,
            segment_size: self.goal.segment_size,
            tracker: self.tracker.as_ref(),
        };
        // Inputs first: the extents must hash right before anything is
        // erased.
        if !extents.is_empty() {
            let mut hasher = Sha256::new();
            for e in extents {
                let mut pos = 0;
                while pos < e.len {
                    let n = (work.read.len() as u64).min(e.len - pos) as usize;
                    let part = work.read.get_mut(..n).unwrap_or(&mut []);
                    src.read(flash, e.offset + pos, part, op.index).await?;
                    hasher.update(&*part);
                    pos += n as u64;
                }
            }
            if hasher.finalize().as_slice() != h.src_sha256 {
                return Err(FormatError::SourceExtentHashMismatch { op_index: op.index }.into());
            }
        }
        erase_segment(flash, region, dst, h.dst_len.into()).await?;
        let mut out = Out {
            region,
            addr: dst,
            len: h.dst_len.into(),
            produced: 0,
            flushed: 0,
            fill: 0,
            hasher: Sha256::new(),
            op_index: op.index,
        };
        // Pass 2 over the op's bytes: re-hashed as they are used.
        let mut payload = Payload::start(package, at, op, work.pkg).await?;
        match h.kind {
            OpKind::Fill => {
                work.read.fill(h.fill_value);
                while out.produced < out.len {
                    let n = (work.read.len() as u64).min(out.len - out.produced) as usize;
                    out.push(flash, work.out, work.read.get(..n).unwrap_or(&[]))
                        .await?;
                }
            }
            OpKind::Copy | OpKind::Stash => {
                for e in extents {
                    let mut pos = 0;
                    while pos < e.len {
                        let n = (work.read.len() as u64).min(e.len - pos) as usize;
                        let part = work.read.get_mut(..n).unwrap_or(&mut []);
                        src.read(flash, e.offset + pos, part, op.index).await?;
                        out.push(flash, work.out, part).await?;
                        pos += n as u64;
                    }
                }
            }
            OpKind::New if h.codec == Codec::Stored => {
                while let Some(n) = payload.next(package, work.pkg).await? {
                    out.push(flash, work.out, work.pkg.get(..n).unwrap_or(&[]))
                        .await?;
                }
            }
            OpKind::New | OpKind::Patch => {
                decode::run(
                    flash,
                    package,
                    &src,
                    OpView { op, extents },
                    &mut payload,
                    &mut out,
                    work,
                )
                .await?;
            }
            OpKind::Skip => {}
        }
        out.finish(flash, work.out).await?;
        if !payload.matches(op) {
            // The package changed since pass 1: what was written is not
            // trusted, and the op is not committed.
            return Err(FormatError::OpHashMismatch {
                op_index: op.index,
                offset: at,
            }
            .into());
        }
        if out.hasher.finalize().as_slice() != h.dst_sha256 {
            return Err(seg_err.into());
        }
        let back = hash_flash(flash, region, dst, h.dst_len.into(), work.read).await?;
        if back != h.dst_sha256 {
            return Err(Error::Verify {
                region,
                addr: dst,
                op_index: op.index,
            });
        }
        Ok(())
    }
}

/// Erases the blocks holding `[addr, addr + len)`.
async fn erase_segment<F: Flash>(flash: &mut F, region: Region, addr: u64, len: u64) -> Result<()> {
    let end = addr + len;
    let to = match flash.block_at(end.saturating_sub(1)) {
        Some(b) if len > 0 => b.end(),
        _ => end,
    };
    flash.erase(addr, to).await.map_err(|error| Error::Flash {
        region,
        addr,
        error,
    })
}

/// Where source bytes come from: the A/B source slot, or the in-place
/// image and scratch slots as the tracker says.
pub(crate) struct Sources<'a> {
    layout: &'a Layout,
    segment_size: u64,
    tracker: Option<&'a InPlaceTracker<'a>>,
}

impl Sources<'_> {
    /// Reads source bytes `[offset, offset + out.len())`.
    pub(crate) async fn read<F: Flash>(
        &self,
        flash: &mut F,
        offset: u64,
        out: &mut [u8],
        op_index: u32,
    ) -> Result<()> {
        let Some(tracker) = self.tracker else {
            let addr = self.layout.source().start + offset;
            return read_flash(flash, Region::Source, addr, out).await;
        };
        let mut done = 0usize;
        while done < out.len() {
            let at = offset + done as u64;
            let piece = tracker.locate(at, (out.len() - done) as u64).ok_or(
                FormatError::PatchReadOutsideExtents {
                    op_index,
                    src_offset: at,
                    len: (out.len() - done) as u64,
                },
            )?;
            let (region, addr) = match piece {
                SourcePiece::Image { offset, .. } => {
                    (Region::Target, self.layout.target().start + offset)
                }
                SourcePiece::Scratch { slot, offset, .. } => (
                    Region::Scratch,
                    self.layout.scratch().start + u64::from(slot) * self.segment_size + offset,
                ),
            };
            let n = piece.len() as usize;
            let dst = out.get_mut(done..done + n).unwrap_or(&mut []);
            read_flash(flash, region, addr, dst).await?;
            done += n;
        }
        Ok(())
    }
}

/// The segment being produced: buffered, programmed a chunk at a time,
/// hashed as it goes.
pub(crate) struct Out {
    region: Region,
    addr: u64,
    len: u64,
    produced: u64,
    flushed: u64,
    fill: usize,
    hasher: Sha256,
    op_index: u32,
}

impl Out {
    /// Appends output bytes, programming each full chunk of `buf`.
    pub(crate) async fn push<F: Flash>(
        &mut self,
        flash: &mut F,
        buf: &mut [u8],
        mut data: &[u8],
    ) -> Result<()> {
        if data.len() as u64 > self.len - self.produced {
            return Err(FormatError::PatchMalformed {
                op_index: self.op_index,
                offset: 0,
                what: "output no longer than the segment",
            }
            .into());
        }
        self.hasher.update(data);
        self.produced += data.len() as u64;
        while !data.is_empty() {
            let room = buf.len() - self.fill;
            let n = room.min(data.len());
            if let Some(dst) = buf.get_mut(self.fill..self.fill + n) {
                dst.copy_from_slice(data.get(..n).unwrap_or(&[]));
            }
            self.fill += n;
            data = data.get(n..).unwrap_or(&[]);
            if self.fill == buf.len() {
                self.flush(flash, buf).await?;
            }
        }
        Ok(())
    }

    async fn flush<F: Flash>(&mut self, flash: &mut F, buf: &mut [u8]) -> Result<()> {
        if self.fill == 0 {
            return Ok(());
        }
        let ws = flash.write_size().max(1);
        let padded = self.fill.div_ceil(ws) * ws;
        if let Some(pad) = buf.get_mut(self.fill..padded) {
            pad.fill(flash.erased_value());
        }
        let at = self.addr + self.flushed;
        let data = buf.get(..padded).unwrap_or(&[]);
        flash.write(at, data).await.map_err(|error| Error::Flash {
            region: self.region,
            addr: at,
            error,
        })?;
        self.flushed += self.fill as u64;
        self.fill = 0;
        Ok(())
    }

    /// Programs what is left; the segment must be complete.
    async fn finish<F: Flash>(&mut self, flash: &mut F, buf: &mut [u8]) -> Result<()> {
        if self.produced != self.len {
            return Err(FormatError::PatchMalformed {
                op_index: self.op_index,
                offset: 0,
                what: "output exactly as long as the segment",
            }
            .into());
        }
        self.flush(flash, buf).await
    }

    /// Bytes produced so far.
    pub(crate) fn produced(&self) -> u64 {
        self.produced
    }

    /// Copies already-produced output `[pos, pos + dst.len())` into `dst`,
    /// from flash or from the unprogrammed tail in `buf`.
    pub(crate) async fn read_back<F: Flash>(
        &self,
        flash: &mut F,
        buf: &[u8],
        pos: u64,
        dst: &mut [u8],
    ) -> Result<()> {
        let mut done = 0usize;
        while done < dst.len() {
            let p = pos + done as u64;
            let left = dst.len() - done;
            let part = dst.get_mut(done..).unwrap_or(&mut []);
            if p < self.flushed {
                let n = ((self.flushed - p) as usize).min(left);
                let part = part.get_mut(..n).unwrap_or(&mut []);
                read_flash(flash, self.region, self.addr + p, part).await?;
                done += n;
            } else {
                let i = (p - self.flushed) as usize;
                let n = left.min(self.fill.saturating_sub(i));
                if n == 0 {
                    return Err(FormatError::PatchMalformed {
                        op_index: self.op_index,
                        offset: 0,
                        what: "output copies from bytes already produced",
                    }
                    .into());
                }
                if let (Some(d), Some(s)) = (part.get_mut(..n), buf.get(i..i + n)) {
                    d.copy_from_slice(s);
                }
                done += n;
            }
        }
        Ok(())
    }
}

/// Pass 2 over one op's bytes: header and extents re-hashed, then the
/// payload handed out chunk by chunk and hashed.
pub(crate) struct Payload {
    pos: u64,
    end: u64,
    hasher: Sha256,
}

impl Payload {
    async fn start<P: PackageSource>(
        package: &mut P,
        at: u64,
        op: &ReadOp,
        buf: &mut [u8],
    ) -> Result<Payload> {
        let mut hasher = Sha256::new();
        let prefix = (OP_HEADER_LEN + op.header.extents_len()) as u64;
        let mut pos = at;
        while pos < at + prefix {
            let n = (buf.len() as u64).min(at + prefix - pos) as usize;
            let part = buf.get_mut(..n).unwrap_or(&mut []);
            read_pkg(package, pos, part).await?;
            hasher.update(&*part);
            pos += n as u64;
        }
        Ok(Payload {
            pos,
            end: at + op.total_len,
            hasher,
        })
    }

    /// Payload bytes left.
    #[cfg(feature = "std")]
    pub(crate) fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Reads the next payload chunk into `buf`; its length, or `None` at
    /// the end.
    pub(crate) async fn next<P: PackageSource>(
        &mut self,
        package: &mut P,
        buf: &mut [u8],
    ) -> Result<Option<usize>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let n = (buf.len() as u64).min(self.end - self.pos) as usize;
        let part = buf.get_mut(..n).unwrap_or(&mut []);
        read_pkg(package, self.pos, part).await?;
        self.hasher.update(&*part);
        self.pos += n as u64;
        Ok(Some(n))
    }

    /// Whether everything was read and hashes as pass 1 found.
    fn matches(self, op: &ReadOp) -> bool {
        self.pos == self.end && self.hasher.finalize().as_slice() == op.sha256
    }
}

/// Reads the header and manifest, checks the framing (the package's
/// length included) and the signature, and returns the manifest and the
/// package id that binds journal records to it. [`apply`] starts with it;
/// a caller that sizes its layout from the manifest uses it too. Its
/// 368-byte buffer lives only here, not across the whole update.
///
/// # Errors
/// [`Error::Package`] (framing, `UnknownKey`, `BadSignature`, manifest
/// rules) or [`Error::PackageRead`].
pub async fn read_manifest<P: PackageSource>(
    package: &mut P,
    trusted: &[VerifyingKey],
) -> Result<(Manifest, [u8; 8])> {
    let mut hm = [0u8; HEADER_LEN + MANIFEST_LEN];
    if package.len() < hm.len() as u64 {
        // Parse what there is, for the precise error (magic, version...).
        let n = package.len() as usize;
        let part = hm.get_mut(..n).unwrap_or(&mut []);
        read_pkg(package, 0, part).await?;
        Header::parse(part)?;
        return Err(FormatError::Truncated {
            offset: HEADER_LEN as u64,
            needed: MANIFEST_LEN as u64,
            available: package.len().saturating_sub(HEADER_LEN as u64),
            what: "manifest",
        }
        .into());
    }
    read_pkg(package, 0, &mut hm).await?;
    let header = Header::parse(&hm)?;
    let total = header.package_len().unwrap_or(u64::MAX);
    if package.len() < total {
        return Err(FormatError::Truncated {
            offset: package.len(),
            needed: total,
            available: package.len(),
            what: "package",
        }
        .into());
    }
    if package.len() > total {
        return Err(FormatError::TrailingBytes {
            offset: total,
            count: package.len() - total,
        }
        .into());
    }
    let (signed, manifest_bytes) = hm.split_at(HEADER_LEN);
    let signed: &[u8; SIGNED_HEADER_LEN] = signed
        .get(..SIGNED_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Layout {
            what: "header",
            expected: 0,
            found: 0,
        })?;
    fota_format::sign::verify(
        trusted,
        header.key_id,
        &header.signature,
        signed,
        manifest_bytes,
    )?;
    Ok((
        Manifest::parse(manifest_bytes)?,
        journal::package_id(signed, manifest_bytes),
    ))
}

/// An op with its source extents, as the decoders take it.
#[derive(Clone, Copy)]
pub(crate) struct OpView<'a> {
    pub(crate) op: &'a ReadOp,
    pub(crate) extents: &'a [fota_format::op::Extent],
}

/// One op read and authenticated (pass 1).
pub(crate) struct ReadOp {
    pub(crate) index: u32,
    pub(crate) header: OpHeader,
    total_len: u64,
    /// The hash it had: the chain's expectation.
    sha256: [u8; 32],
}

/// Reads the op at `at` whole, hashing it, and checks it against the
/// chain (hash first, then the rules); the chain advances on success.
async fn read_op<P: PackageSource>(
    package: &mut P,
    at: u64,
    chain: &mut OpChain,
    buf: &mut [u8],
    extents: &mut Extents,
) -> Result<ReadOp> {
    let mut raw = [0u8; OP_HEADER_LEN];
    read_pkg(package, at, &mut raw).await?;
    let total_len = raw_op_len(&raw, at)?;
    let available = package.len().saturating_sub(at);
    if total_len > available {
        return Err(FormatError::Truncated {
            offset: at,
            needed: total_len,
            available,
            what: "op",
        }
        .into());
    }
    let mut h = Sha256::new();
    h.update(raw);
    let mut pos = at + OP_HEADER_LEN as u64;
    let end = at + total_len;
    while pos < end {
        let n = buf.len().min((end - pos) as usize);
        let part = buf.get_mut(..n).unwrap_or(&mut []);
        read_pkg(package, pos, part).await?;
        h.update(&*part);
        pos += n as u64;
    }
    let sha256: [u8; 32] = h.finalize().into();
    let index = chain.next_index();
    if sha256 != *chain.expected_hash() {
        return Err(FormatError::OpHashMismatch {
            op_index: index,
            offset: at,
        }
        .into());
    }
    let header = OpHeader::parse(&raw, at)?;
    read_extents(package, at, &header, buf, extents).await?;
    chain.check(&header, extents.as_slice(), &sha256, at)?;
    Ok(ReadOp {
        index,
        header,
        total_len,
        sha256,
    })
}

/// Reads and parses an op's header and extents (not authenticated by
/// itself); returns the header and the op's total length.
async fn read_op_header<P: PackageSource>(
    package: &mut P,
    at: u64,
    buf: &mut [u8],
    extents: &mut Extents,
) -> Result<(OpHeader, u64)> {
    let raw = buf.get_mut(..OP_HEADER_LEN).unwrap_or(&mut []);
    read_pkg(package, at, raw).await?;
    let header = OpHeader::parse(raw, at)?;
    read_extents(package, at, &header, buf, extents).await?;
    Ok((header, header.total_len()))
}

/// Reads and parses the extents that follow the op header at `at`.
async fn read_extents<P: PackageSource>(
    package: &mut P,
    at: u64,
    header: &OpHeader,
    buf: &mut [u8],
    extents: &mut Extents,
) -> Result<()> {
    *extents = Extents::default();
    for i in 0..u64::from(header.extent_count) {
        let off = at + OP_HEADER_LEN as u64 + i * EXTENT_LEN as u64;
        let rec = buf.get_mut(..EXTENT_LEN).unwrap_or(&mut []);
        read_pkg(package, off, rec).await?;
        extents.push(parse_extent(rec, off)?);
    }
    Ok(())
}

async fn read_pkg<P: PackageSource>(package: &mut P, offset: u64, buf: &mut [u8]) -> Result<()> {
    if package.read(offset, buf).await {
        Ok(())
    } else {
        Err(Error::PackageRead {
            offset,
            len: buf.len() as u64,
        })
    }
}

fn check_device(m: &Manifest, config: &Config<'_>) -> Result<()> {
    if !config.device_class.is_empty() && config.device_class != m.device_class {
        return Err(FormatError::DeviceClassMismatch {
            package: m.device_class,
            device: config.device_class,
        }
        .into());
    }
    if m.security_counter < config.security_counter {
        return Err(FormatError::SecurityCounterTooLow {
            package: m.security_counter,
            device: config.security_counter,
        }
        .into());
    }
    Ok(())
}

/// sha256 of `len` flash bytes at `addr`, read in `buf`-sized pieces.
async fn hash_flash<F: Flash>(
    flash: &mut F,
    region: Region,
    addr: u64,
    len: u64,
    buf: &mut [u8],
) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut pos = 0u64;
    while pos < len {
        let n = (buf.len() as u64).min(len - pos) as usize;
        let part = buf.get_mut(..n).unwrap_or(&mut []);
        read_flash(flash, region, addr + pos, part).await?;
        h.update(&*part);
        pos += n as u64;
    }
    Ok(h.finalize().into())
}

/// Reads any byte range, whatever the flash's read size: aligned middle
/// parts directly, unaligned ends through a small bounce buffer.
async fn read_flash<F: Flash>(
    flash: &mut F,
    region: Region,
    addr: u64,
    out: &mut [u8],
) -> Result<()> {
    let rs = flash.read_size().max(1) as u64;
    let err = |a: u64| {
        move |error| Error::Flash {
            region,
            addr: a,
            error,
        }
    };
    if addr % rs == 0 && out.len() as u64 % rs == 0 {
        return flash.read(addr, out).await.map_err(err(addr));
    }
    let mut bounce = [0u8; 64];
    if rs > bounce.len() as u64 {
        return Err(Error::Layout {
            what: "flash read size (at most 64 bytes)",
            expected: 64,
            found: rs,
        });
    }
    let mut done = 0usize;
    while done < out.len() {
        let a = addr + done as u64;
        let base = a - a % rs;
        let skip = (a - base) as usize;
        // Only the read units that hold wanted bytes: a unit past them may
        // be unreadable (a word torn by a cut) without failing this read.
        let wanted = (skip + out.len() - done).div_ceil(rs as usize) * rs as usize;
        let span = ((bounce.len() as u64 / rs * rs) as usize).min(wanted);
        let piece = bounce.get_mut(..span).unwrap_or(&mut []);
        let readable = span.min((flash.capacity().saturating_sub(base) / rs * rs) as usize);
        let piece = piece.get_mut(..readable).unwrap_or(&mut []);
        if piece.len() <= skip {
            return Err(err(a)(crate::flash::FlashError::OutOfBounds));
        }
        flash.read(base, piece).await.map_err(err(base))?;
        let n = (piece.len() - skip).min(out.len() - done);
        if let (Some(dst), Some(src)) = (out.get_mut(done..done + n), piece.get(skip..skip + n)) {
            dst.copy_from_slice(src);
        }
        done += n;
    }
    Ok(())
}

async fn check_source<F: Flash>(
    flash: &mut F,
    layout: &Layout,
    m: &Goal,
    buf: &mut [u8],
) -> Result<()> {
    let src = layout.source();
    let h = hash_flash(flash, Region::Source, src.start, m.source_size, buf).await?;
    if h != m.source_sha256 {
        return Err(FormatError::SourceHashMismatch.into());
    }
    Ok(())
}

async fn check_target<F: Flash>(
    flash: &mut F,
    layout: &Layout,
    m: &Goal,
    buf: &mut [u8],
) -> Result<()> {
    let t = layout.target();
    let h = hash_flash(flash, Region::Target, t.start, m.target_size, buf).await?;
    if h != m.target_sha256 {
        return Err(FormatError::TargetHashMismatch.into());
    }
    Ok(())
}
