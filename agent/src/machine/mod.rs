//! The sans-IO core: the whole update as a state machine that asks for one
//! I/O at a time and keeps everything it needs between them in
//! [`Agent`], a value of at most [`AGENT_STATE_MAX`] bytes.
//!
//! ```text
//!          ┌──────────── step(result of the last request) ───────────┐
//!  driver  │                                                         ▼
//!  (apply, │  Request::ReadPackage / ReadFlash / WriteFlash /      Agent
//!   C ABI) │  EraseFlash / Done  ◄─────────────────────────────  (phase,
//!          └── does it with the bytes of Agent::buffer(span) ──►  jobs)
//! ```
//!
//! The machine never touches a device: it only names what to read, write
//! or erase and which part of the caller's work buffer holds the bytes.
//! Any driver (the async [`crate::apply`], a blocking loop, the C ABI's
//! callbacks) performs the request and passes its outcome to the next
//! [`Agent::step`]. Flash geometry (block bounds, write size, erased
//! value) is asked of the [`Flash`] given to each step, which does no I/O.
//!
//! Inside, the work is layered so that no layer waits on another's I/O:
//! the *phase* (manifest checks, journal scan, the op loop, the final
//! check) starts *jobs* (hash a region, read an op, write a journal
//! record), which start a *fetch* (gather source or output bytes) or a
//! *push* (append output, programming each full chunk). Each step runs
//! the innermost active layer until it needs I/O.

mod jobs;
mod op;
mod xform;

use fota_format::{
    Error as FormatError, Extent, Header, InPlaceTracker, Mode, OpAuth, OpChain, OpContext, OpHead,
    OpHeader, Profile, EXTENT_LEN, HEADER_LEN, MAX_EXTENTS, MAX_MANIFEST_LEN, MAX_OP_HEAD_LEN,
};
use sha2::{Digest, Sha256};

use crate::apply::{check_framing, check_head, check_key, chunk_len, Buffers, Config, Report};
use crate::error::{Error, Region, Result};
use crate::flash::{Block, Flash};
use crate::journal::{self, Journal, Record, RecordKind, Scan};

use jobs::{Fetch, Job, Push};
use op::Exec;

/// Most bytes an [`Agent`] may take (R4), checked at compile time.
pub const AGENT_STATE_MAX: usize = 1024;

const _: () = assert!(core::mem::size_of::<Agent<'static>>() <= AGENT_STATE_MAX);

/// Bytes at the end of the work buffer that hold the current op's source
/// extents, as fixed 16-byte records ([`Extent::to_bytes`]).
pub(crate) const EXTENTS_AREA: usize = MAX_EXTENTS * EXTENT_LEN;

// An op head is read into the out and read chunks (at least 256 bytes
// each), and the header and manifest into the start of the work buffer.
const _: () = assert!(MAX_OP_HEAD_LEN <= 2 * crate::apply::CHUNK);
const _: () = assert!(HEADER_LEN + MAX_MANIFEST_LEN <= 3 * crate::apply::CHUNK);
// Op 0's offset and a head's length are kept as u16.
const _: () = assert!(HEADER_LEN + MAX_MANIFEST_LEN <= u16::MAX as usize);
const _: () = assert!(MAX_OP_HEAD_LEN <= u16::MAX as usize);

/// A part of the caller's work buffer: where a request's bytes go or come
/// from ([`Agent::buffer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufSpan {
    /// Offset in the work buffer.
    pub start: usize,
    /// Bytes.
    pub len: usize,
}

/// What the agent needs done next. The driver does it and passes the
/// outcome to the next [`Agent::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Fill the span with package bytes from `offset`; a failure is
    /// [`Error::PackageRead`].
    ReadPackage {
        /// Package offset.
        offset: u64,
        /// Where the bytes go.
        buf: BufSpan,
    },
    /// Fill the span with flash bytes from `addr` (any alignment: the
    /// driver bounces unaligned ends); a failure is [`Error::Flash`].
    ReadFlash {
        /// The region, for error reports.
        region: Region,
        /// Flash address.
        addr: u64,
        /// Where the bytes go.
        buf: BufSpan,
    },
    /// Program the span's bytes at `addr` (aligned to the write size).
    WriteFlash {
        /// The region, for error reports.
        region: Region,
        /// Flash address.
        addr: u64,
        /// The bytes.
        buf: BufSpan,
    },
    /// Erase the blocks covering `[from, to)` (block bounds).
    EraseFlash {
        /// The region, for error reports.
        region: Region,
        /// First address.
        from: u64,
        /// One past the last address.
        to: u64,
    },
    /// The update is finished (or was already): nothing more to do.
    Done(Report),
}

/// One update in progress: everything kept between two I/O requests.
/// Memory for data is the caller's ([`Buffers`]); the agent allocates
/// nothing.
pub struct Agent<'b> {
    config: &'b Config<'b>,
    work: &'b mut [u8],
    /// Bytes of one work chunk (out, read, package).
    chunk: usize,
    package_len: u64,
    phase: Phase<'b>,
    /// What the last request was for.
    wait: Wait,
    /// Whether the last tolerant read succeeded.
    io_ok: bool,
    goal: Goal,
    chain: Option<OpChain>,
    tracker: Option<InPlaceTracker<'b>>,
    journal: Option<Journal>,
    /// The op being read or executed.
    op: CurrentOp,
    /// General hash: pass 1 of an op, the output, regions and extents.
    hash: Sha256,
    /// Pass 2 over the op's bytes while it executes.
    payload_hash: Sha256,
    /// A tolerant hash job hit an unreadable word.
    hash_failed: bool,
    out: Out,
    /// Package offset of the next payload byte of the executing op.
    payload_pos: u64,
    push: Option<Push>,
    fetch: Option<Fetch>,
    job: Job,
    report: Report,
}

/// What the update checks against, from the manifest.
struct Goal {
    id: [u8; 8],
    /// Mode, segment grid and target: what every op head's encoding
    /// depends on besides its place ([`OpContext::at`]).
    ops: OpContext,
    source_size: u64,
    source_sha256: [u8; 32],
    op_count: u32,
    /// Bytes of the package's transform payload, 0 for none.
    xform_len: u32,
    /// Package offset of op 0 (after the header and manifest: at most
    /// 96 + 285 bytes).
    first_op: u16,
}

impl Goal {
    /// Before the manifest is read.
    const EMPTY: Goal = Goal {
        id: [0; 8],
        ops: OpContext {
            mode: Mode::AB,
            segment_size: 0,
            target_size: 0,
            target_sha256: [0; 32],
            last: false,
            chained: true,
        },
        source_size: 0,
        source_sha256: [0; 32],
        op_count: 0,
        xform_len: 0,
        first_op: 0,
    };

    fn in_place(&self) -> bool {
        self.ops.mode == Mode::InPlace
    }

    fn segment_size(&self) -> u64 {
        self.ops.segment_size.into()
    }

    fn target_size(&self) -> u64 {
        self.ops.target_size
    }

    fn target_sha256(&self) -> [u8; 32] {
        self.ops.target_sha256
    }
}

/// The op being read (pass 1) or executed.
struct CurrentOp {
    index: u32,
    /// Package offset of its head.
    at: u64,
    /// Bytes of its head (kind to extents, at most
    /// [`MAX_OP_HEAD_LEN`]): its payload starts after.
    head_len: u16,
    total_len: u64,
    header: op::OpFields,
    /// Its hash as read in pass 1: the chain's expectation.
    sha256: [u8; 32],
}

/// The segment being produced: buffered in the out chunk, programmed a
/// chunk at a time, hashed (in [`Agent::hash`]) as it goes.
struct Out {
    region: Region,
    addr: u64,
    len: u32,
    produced: u32,
    flushed: u32,
    fill: u32,
    /// The transformed block in the block area for this op's reads: its
    /// index + 1, with a high bit for an output block; 0 for none (see
    /// `xform`).
    xblock: u32,
}

/// What the request in flight was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Nothing,
    /// A program of the out chunk's `fill` bytes.
    Flush,
    /// A read for the current fetch, of this many bytes.
    Fetch(u32),
    /// A read of a whole block for a transformed fetch (its tag).
    Block(u32),
    /// A read whose failure is an answer, not an error.
    Tolerant,
    /// Anything else: a failure stops the update.
    Plain,
}

/// The caller's buffers for the in-place tracker, until the manifest
/// says whether one is needed.
struct TrackerBufs<'b> {
    written: &'b mut [u8],
    overwritten: &'b mut [u8],
    slots: &'b mut [u32],
}

/// Where the update is.
enum Phase<'b> {
    /// Reading the header and manifest (the in-place buffers wait here
    /// for the tracker); `ops_sha256` once [`Phase::SignedOps`] took it.
    Manifest {
        bufs: TrackerBufs<'b>,
        requested: bool,
        ops_sha256: Option<[u8; 32]>,
    },
    /// Format version 3: the op section hashed, `pending` bytes read at
    /// `at`, before the signature that covers its sha256 is checked.
    SignedOps {
        bufs: TrackerBufs<'b>,
        at: u64,
        pending: usize,
    },
    /// Reading the XFORM op (op 0), expanding its payload into the work
    /// buffer: its header (`len` 0), then `pending` payload bytes at
    /// `done` of `len`; its sha256 must be `want`, the manifest's chain
    /// head. A payload the expander refused is still read and hashed to
    /// its end (`fault`: the payload offset of the chunk it refused): a
    /// package that is not the signed one says so before anything is
    /// said about what its bytes hold.
    LoadXform {
        want: [u8; 32],
        expander: fota_format::xform::Expander,
        fault: Option<u32>,
        done: u32,
        len: u32,
        pending: u32,
        requested: bool,
    },
    /// Reading every journal slot.
    Scan {
        scan: Scan,
        block: Block,
        slot: u64,
        reading: bool,
    },
    /// The journal says this package finished: the target is hashed.
    AlreadyFinished,
    /// A fresh update: the source is hashed.
    FreshSource { scan: Scan },
    /// In place, before any write: every op read, authenticated and
    /// tracked.
    WholePackage {
        scan: Scan,
        at: u64,
        first_op_sha256: [u8; 32],
    },
    /// Resuming A/B: the source is hashed.
    ResumeSource { scan: Scan },
    /// Resuming in place: the done ops' headers replayed into the tracker.
    Replay { scan: Scan, index: u32, at: u64 },
    /// The journal's first record of this run is being written.
    Started,
    /// The op loop.
    Ops { first: bool, step: OpStep },
    /// The target is hashed, then the Finished record written.
    Final { hashed: bool },
    /// Done; the report is returned again.
    Done,
    /// Stopped with this error; every later step returns it.
    Failed(Error),
}

/// Where the op loop is for the current op.
enum OpStep {
    /// Read the next op, or finish.
    Next,
    /// The op was read and authenticated.
    Read,
    /// Resuming: the destination's hash was taken.
    AlreadyChecked,
    /// Executing it.
    Exec(Exec),
    /// Its record is being written.
    Committing,
}

impl<'b> Agent<'b> {
    /// Starts an update (or the resume of one: they are the same) with the
    /// caller's memory. Nothing is read yet.
    ///
    /// # Errors
    /// [`Error::Layout`] when the work buffer is shorter than
    /// [`crate::work_len`] for this flash.
    pub fn new<F: Flash>(
        flash: &F,
        package_len: u64,
        config: &'b Config<'b>,
        bufs: Buffers<'b>,
    ) -> Result<Agent<'b>> {
        let Buffers {
            work,
            written,
            overwritten,
            slots,
        } = bufs;
        let chunk = chunk_len(flash.write_size(), flash.read_size());
        let need = crate::work_len(flash.write_size(), flash.read_size());
        if work.len() < need {
            return Err(Error::Layout {
                what: "work buffer length",
                expected: need as u64,
                found: work.len() as u64,
            });
        }
        Ok(Agent {
            config,
            work,
            chunk,
            package_len,
            phase: Phase::Manifest {
                bufs: TrackerBufs {
                    written,
                    overwritten,
                    slots,
                },
                requested: false,
                ops_sha256: None,
            },
            wait: Wait::Nothing,
            io_ok: false,
            goal: Goal::EMPTY,
            chain: None,
            tracker: None,
            journal: None,
            op: CurrentOp {
                index: 0,
                at: 0,
                head_len: 0,
                total_len: 0,
                header: op::OpFields::EMPTY,
                sha256: [0; 32],
            },
            hash: Sha256::new(),
            payload_hash: Sha256::new(),
            hash_failed: false,
            out: Out {
                region: Region::Target,
                addr: 0,
                len: 0,
                produced: 0,
                flushed: 0,
                fill: 0,
                xblock: 0,
            },
            payload_pos: 0,
            push: None,
            fetch: None,
            job: Job::Idle,
            report: Report::default(),
        })
    }

    /// The bytes of a request's span, to fill (reads) or to send
    /// (writes).
    pub fn buffer(&mut self, span: BufSpan) -> &mut [u8] {
        self.work
            .get_mut(span.start..span.start.saturating_add(span.len))
            .unwrap_or(&mut [])
    }

    /// Advances the update: `last` is the outcome of the previous request
    /// (anything for the first call) and the answer is the next request.
    /// `flash` is asked for geometry only.
    ///
    /// # Errors
    /// Whatever stops the update, as [`crate::apply`] documents; after an
    /// error, every later step returns it again.
    pub fn step<F: Flash>(&mut self, flash: &F, last: Result<()>) -> Result<Request> {
        if let Phase::Failed(e) = self.phase {
            return Err(e);
        }
        let r = self.advance(flash, last);
        if let Err(e) = r {
            self.phase = Phase::Failed(e);
        }
        r
    }

    fn advance<F: Flash>(&mut self, flash: &F, last: Result<()>) -> Result<Request> {
        match core::mem::replace(&mut self.wait, Wait::Nothing) {
            Wait::Nothing => {}
            Wait::Plain => last?,
            Wait::Tolerant => self.io_ok = last.is_ok(),
            Wait::Flush => {
                last?;
                self.out.flushed += self.out.fill;
                self.out.fill = 0;
            }
            Wait::Fetch(n) => self.fetched(n, last)?,
            Wait::Block(tag) => {
                last?;
                self.block_read(tag)?;
            }
        }
        loop {
            let next = if self.push.is_some() {
                self.run_push(flash)?
            } else if self.fetch.as_ref().is_some_and(Fetch::is_active) {
                self.run_fetch(flash)?
            } else if !matches!(self.job, Job::Idle) {
                self.run_job(flash)?
            } else {
                self.run_phase(flash)?
            };
            if let Some(request) = next {
                return Ok(request);
            }
        }
    }

    /// Offsets of the chunks in the work buffer.
    fn out_at(&self) -> usize {
        0
    }
    fn read_at(&self) -> usize {
        self.chunk
    }
    fn pkg_at(&self) -> usize {
        2 * self.chunk
    }
    fn extents_at(&self) -> usize {
        3 * self.chunk
    }

    /// A request whose failure stops the update.
    fn plain(&mut self, request: Request) -> Option<Request> {
        self.wait = Wait::Plain;
        Some(request)
    }

    fn read_package(&mut self, offset: u64, start: usize, len: usize) -> Option<Request> {
        self.plain(Request::ReadPackage {
            offset,
            buf: BufSpan { start, len },
        })
    }

    /// The current op's extents, parsed from the work buffer (they were
    /// checked when read).
    fn extents(&self) -> fota_format::Extents {
        let mut list = fota_format::Extents::default();
        let count = usize::from(self.op.header.extent_count).min(MAX_EXTENTS);
        let raw = self
            .work
            .get(self.extents_at()..self.extents_at() + count * EXTENT_LEN)
            .unwrap_or(&[]);
        for rec in raw.chunks_exact(EXTENT_LEN) {
            if let Ok(e) = fota_format::op::parse_extent(rec, 0) {
                list.push(e);
            }
        }
        list
    }

    /// Bytes read for the op head at package offset `at`: the longest
    /// head, or what is left of the package.
    fn head_window(&self, at: u64) -> usize {
        self.package_len
            .saturating_sub(at)
            .min(MAX_OP_HEAD_LEN as u64) as usize
    }

    /// The op at `at` with this head must end inside the package.
    fn check_op_fits(&self, head: &OpHead, at: u64) -> Result<()> {
        let available = self.package_len.saturating_sub(at);
        if head.total_len() > available {
            return Err(FormatError::Truncated {
                offset: at,
                needed: head.total_len(),
                available,
                what: "op",
            }
            .into());
        }
        Ok(())
    }

    /// What op `index`'s head encoding depends on.
    fn op_context(&self, index: u32) -> OpContext {
        self.goal.ops.at(index, self.goal.op_count)
    }

    /// The current op's head, parsed again from the out and read chunks,
    /// where the op read left it (until the op starts producing output).
    fn raw_head(&self, at: u64) -> Result<OpHead> {
        let len = (self.op.head_len as usize).min(MAX_OP_HEAD_LEN);
        let raw = self.work.get(..len).unwrap_or(&[]);
        Ok(OpHead::parse(raw, at, &self.op_context(self.op.index))?)
    }

    /// The current op's full header (see [`Self::raw_head`]).
    fn raw_header(&self, at: u64) -> Result<OpHeader> {
        Ok(self.raw_head(at)?.header)
    }

    /// Extent `i` of the current op, `None` past its count.
    fn extent(&self, i: usize) -> Option<Extent> {
        if i >= usize::from(self.op.header.extent_count) {
            return None;
        }
        let at = self.extents_at() + i * EXTENT_LEN;
        let rec = self.work.get(at..at + EXTENT_LEN)?;
        fota_format::op::parse_extent(rec, 0).ok()
    }

    /// The next piece of the current op's extents to read, from extent
    /// `ext` at `pos` on: (extent, position in it, source offset, bytes,
    /// at most a chunk); `None` once every extent is read.
    fn extent_piece(&self, mut ext: usize, mut pos: u64) -> Option<(usize, u64, u64, usize)> {
        loop {
            let e = self.extent(ext)?;
            if pos < e.len {
                let n = (self.chunk as u64).min(e.len - pos) as usize;
                return Some((ext, pos, e.offset + pos, n));
            }
            ext += 1;
            pos = 0;
        }
    }

    fn chain(&mut self) -> Result<&mut OpChain> {
        self.chain.as_mut().ok_or(Error::Layout {
            what: "agent state (no manifest read)",
            expected: 1,
            found: 0,
        })
    }

    /// Takes the general hash's digest and starts it afresh.
    fn digest(&mut self) -> [u8; 32] {
        self.hash.finalize_reset().into()
    }

    fn run_phase<F: Flash>(&mut self, flash: &F) -> Result<Option<Request>> {
        let layout = self.config.layout;
        match core::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Manifest {
                bufs,
                requested,
                ops_sha256,
            } => {
                let n = (self.package_len.min((HEADER_LEN + MAX_MANIFEST_LEN) as u64)) as usize;
                if !requested {
                    self.phase = Phase::Manifest {
                        bufs,
                        requested: true,
                        ops_sha256,
                    };
                    return Ok(self.read_package(0, 0, n));
                }
                let header = check_framing(self.work.get(..n).unwrap_or(&[]), self.package_len)?;
                if header.op_auth == OpAuth::Signature && ops_sha256.is_none() {
                    // The signature covers the op section's sha256: every op
                    // is read once before anything is trusted (by a key
                    // that is trusted, or why read them).
                    check_key(&header, self.config.trusted)?;
                    self.hash = Sha256::new();
                    self.phase = Phase::SignedOps {
                        bufs,
                        at: header.ops_offset(),
                        pending: 0,
                    };
                    return Ok(None);
                }
                self.manifest_read(flash, bufs, &header, ops_sha256.as_ref())?;
                if self.goal.xform_len > 0 {
                    self.phase = Phase::LoadXform {
                        want: *self.chain()?.expected_hash(),
                        expander: Default::default(),
                        fault: None,
                        done: 0,
                        len: 0,
                        pending: 0,
                        requested: false,
                    };
                    return Ok(None);
                }
                self.begin_scan(flash)?;
                Ok(None)
            }
            Phase::SignedOps { bufs, at, pending } => {
                let p = self.pkg_at();
                self.hash
                    .update(self.work.get(p..p + pending).unwrap_or(&[]));
                let at = at + pending as u64;
                if at < self.package_len {
                    let n = (self.chunk as u64).min(self.package_len - at) as usize;
                    self.phase = Phase::SignedOps {
                        bufs,
                        at,
                        pending: n,
                    };
                    return Ok(self.read_package(at, p, n));
                }
                // The header and manifest are read again, so that the bytes
                // verified are the ones parsed next (a few hundred bytes).
                self.phase = Phase::Manifest {
                    bufs,
                    requested: false,
                    ops_sha256: Some(self.digest()),
                };
                Ok(None)
            }
            Phase::LoadXform {
                want,
                expander,
                fault,
                done,
                len,
                pending,
                requested,
            } => self.load_xform(
                flash,
                want,
                (expander, fault),
                [done, len, pending],
                requested,
            ),
            Phase::Scan {
                mut scan,
                mut block,
                mut slot,
                reading,
            } => {
                let slot_len = journal::slot_len(flash);
                let read_len = journal::read_len(flash);
                if reading {
                    if self.io_ok {
                        let at = self.read_at();
                        let bytes = self.work.get(at..at + read_len).unwrap_or(&[]);
                        scan.consider(bytes, block.start);
                    }
                    slot += slot_len;
                }
                loop {
                    if slot + slot_len <= block.end() {
                        self.phase = Phase::Scan {
                            scan,
                            block,
                            slot,
                            reading: true,
                        };
                        self.wait = Wait::Tolerant;
                        return Ok(Some(Request::ReadFlash {
                            region: Region::Journal,
                            addr: slot,
                            buf: BufSpan {
                                start: self.read_at(),
                                len: read_len,
                            },
                        }));
                    }
                    let next = block.end();
                    match flash.block_at(next) {
                        Some(b) if next < layout.journal.end() => {
                            block = b;
                            slot = b.start;
                        }
                        _ => break,
                    }
                }
                self.decide(flash, scan)?;
                Ok(None)
            }
            Phase::AlreadyFinished => {
                self.check_digest(self.goal.target_sha256(), FormatError::TargetHashMismatch)?;
                self.report.already_finished = true;
                self.phase = Phase::Done;
                Ok(Some(Request::Done(self.report)))
            }
            Phase::FreshSource { scan } => {
                self.check_digest(self.goal.source_sha256, FormatError::SourceHashMismatch)?;
                if self.tracker.is_some() {
                    self.phase = Phase::WholePackage {
                        scan,
                        at: u64::from(self.goal.first_op),
                        first_op_sha256: *self.chain()?.expected_hash(),
                    };
                    self.job = Job::read_op(u64::from(self.goal.first_op), true);
                } else {
                    self.start_journal(
                        flash,
                        &scan,
                        RecordKind::Begin,
                        0,
                        u64::from(self.goal.first_op),
                    );
                }
                Ok(None)
            }
            Phase::WholePackage {
                scan,
                at,
                first_op_sha256,
            } => {
                let (index, header) = (self.op.index, self.raw_header(at)?);
                let extents = self.extents();
                if let Some(t) = self.tracker.as_mut() {
                    t.record(index, at, &header, extents.as_slice())?;
                }
                let at = at + self.op.total_len;
                if !self.chain()?.is_complete() {
                    self.phase = Phase::WholePackage {
                        scan,
                        at,
                        first_op_sha256,
                    };
                    self.job = Job::read_op(at, true);
                    return Ok(None);
                }
                if let Some(t) = self.tracker.as_mut() {
                    if !t.is_complete() {
                        return Err(FormatError::OpLayout {
                            op_index: self.goal.op_count,
                            offset: at,
                            what: "segments written (every target segment once)",
                            expected: self
                                .goal
                                .target_size()
                                .div_ceil(self.goal.segment_size().max(1)),
                            found: 0,
                        }
                        .into());
                    }
                    t.reset();
                }
                let chain = self.chain()?;
                *chain = chain.resumed(0, first_op_sha256);
                self.start_journal(
                    flash,
                    &scan,
                    RecordKind::Begin,
                    0,
                    u64::from(self.goal.first_op),
                );
                Ok(None)
            }
            Phase::ResumeSource { scan } => {
                self.check_digest(self.goal.source_sha256, FormatError::SourceHashMismatch)?;
                self.resume(flash, scan)?;
                Ok(None)
            }
            Phase::Replay { scan, index, at } => {
                let header = self.raw_header(at)?;
                let extents = self.extents();
                if let Some(t) = self.tracker.as_mut() {
                    t.record(index, at, &header, extents.as_slice())?;
                }
                let at = at + self.op.total_len;
                self.replay_from(flash, scan, index + 1, at)?;
                Ok(None)
            }
            Phase::Started => {
                self.phase = Phase::Ops {
                    first: self.report.resumed,
                    step: OpStep::Next,
                };
                Ok(None)
            }
            Phase::Ops { first, step } => self.run_ops(flash, first, step),
            Phase::Final { hashed } => {
                if !hashed {
                    // SPEC §7 step 7: the last op ends the op section.
                    if self.op.at != self.package_len {
                        return Err(FormatError::TrailingBytes {
                            offset: self.op.at,
                            count: self.package_len.saturating_sub(self.op.at),
                        }
                        .into());
                    }
                    self.phase = Phase::Final { hashed: true };
                    let t = layout.target();
                    self.job = Job::hash_region(Region::Target, t.start, self.goal.target_size());
                    return Ok(None);
                }
                self.check_digest(self.goal.target_sha256(), FormatError::TargetHashMismatch)?;
                self.phase = Phase::Done;
                self.job = Job::journal(RecordKind::Finished, self.goal.op_count, self.op.at);
                Ok(None)
            }
            Phase::Done => {
                self.phase = Phase::Done;
                Ok(Some(Request::Done(self.report)))
            }
            Phase::Failed(e) => {
                self.phase = Phase::Failed(e);
                Err(e)
            }
        }
    }

    /// After the manifest (and the transform): the journal is scanned.
    fn begin_scan<F: Flash>(&mut self, flash: &F) -> Result<()> {
        let layout = self.config.layout;
        let scan = Scan::empty(layout.journal);
        match flash.block_at(layout.journal.start) {
            Some(block) => {
                self.phase = Phase::Scan {
                    scan,
                    block,
                    slot: block.start,
                    reading: false,
                }
            }
            None => self.decide(flash, scan)?,
        }
        Ok(())
    }

    /// One move of loading the XFORM op: header, then payload chunks
    /// into the package chunk, hashed and expanded into the transform
    /// area; then the hash, the expanded length and the transform checked.
    fn load_xform<F: Flash>(
        &mut self,
        flash: &F,
        want: [u8; 32],
        (mut expander, mut fault): (fota_format::xform::Expander, Option<u32>),
        [mut done, mut len, pending]: [u32; 3],
        requested: bool,
    ) -> Result<Option<Request>> {
        let at = u64::from(self.goal.first_op);
        let p = self.pkg_at();
        let ctx = self.op_context(0);
        if !requested {
            self.hash = Sha256::new();
            self.phase = Phase::LoadXform {
                want,
                expander,
                fault,
                done,
                len,
                pending,
                requested: true,
            };
            return Ok(self.read_package(at, p, self.head_window(at)));
        }
        if len == 0 {
            let raw = self.work.get(p..p + self.head_window(at)).unwrap_or(&[]);
            let head = OpHead::parse(raw, at, &ctx)?;
            let h = head.header;
            if h.kind != fota_format::OpKind::Xform {
                return Err(FormatError::OpLayout {
                    op_index: 0,
                    offset: at,
                    what: "op kind (the xform op the manifest announces)",
                    expected: fota_format::OpKind::Xform as u64,
                    found: h.kind as u64,
                }
                .into());
            }
            self.check_op_fits(&head, at)?;
            self.hash.update(raw.get(..head.len).unwrap_or(&[]));
            self.op.head_len = head.len as u16;
            len = h.payload_len;
        }
        let payload_at = at + u64::from(self.op.head_len);
        // The payload chunk read last (none right after the head).
        if pending > 0 {
            let (area, room) = (self.xform_at(), self.goal.xform_len as usize);
            let (head, tail) = self.work.split_at_mut(area.min(self.work.len()));
            let input = head.get(p..p + pending as usize).unwrap_or(&[]);
            self.hash.update(input);
            let out = tail.get_mut(..room).unwrap_or(&mut []);
            let fed = fault.is_none()
                && expander
                    .feed(input, payload_at + u64::from(done), out)
                    .is_err();
            if fed {
                fault = Some(done);
            }
            done += pending;
        }
        if done < len {
            let n = (self.chunk as u32).min(len - done);
            self.phase = Phase::LoadXform {
                want,
                expander,
                fault,
                done,
                len,
                pending: n,
                requested: true,
            };
            return Ok(self.read_package(payload_at + u64::from(done), p, n as usize));
        }
        if self.digest() != want && self.chain()?.is_chained() {
            return Err(FormatError::OpHashMismatch {
                op_index: 0,
                offset: at,
            }
            .into());
        }
        if let Some(chunk) = fault {
            // Signed, yet not a transform this agent reads.
            return Err(FormatError::InvalidField {
                offset: payload_at + u64::from(chunk),
                what: "xform payload chunk (the wire form of SPEC.md §5c)",
                found: 0,
            }
            .into());
        }
        let expanded = expander.finish(payload_at + u64::from(len))?;
        if expanded != self.goal.xform_len as usize {
            return Err(FormatError::BadLength {
                offset: payload_at,
                what: "expanded xform (the manifest's xform length)",
                expected: self.goal.xform_len.into(),
                found: expanded as u64,
            }
            .into());
        }
        self.check_loaded_xform()?;
        self.begin_scan(flash)?;
        Ok(None)
    }

    /// Every check of the header and manifest, before anything else is
    /// read: the update's goal, chain and tracker come from here.
    fn manifest_read<F: Flash>(
        &mut self,
        flash: &F,
        bufs: TrackerBufs<'b>,
        header: &Header,
        ops_sha256: Option<&[u8; 32]>,
    ) -> Result<()> {
        let TrackerBufs {
            written,
            overwritten,
            slots,
        } = bufs;
        let n = (self.package_len.min((HEADER_LEN + MAX_MANIFEST_LEN) as u64)) as usize;
        let hm = self.work.get(..n).unwrap_or(&[]);
        let (m, id) = check_head(hm, header, self.config.trusted, ops_sha256)?;
        m.check_device(&self.config.device_class, self.config.security_counter)?;
        // Coding a compressed stream back needs all of its data at hand:
        // that is the host applier's work, never a streaming device's.
        if m.streams_len != 0 {
            return Err(Error::Package(FormatError::InvalidField {
                offset: HEADER_LEN as u64,
                what: "manifest stream table length (0 for a device: a package that diffs compressed streams decompressed needs the host applier; make device packages with --no-decompress)",
                found: m.streams_len.into(),
            }));
        }
        if m.profile == Profile::Zstd && !cfg!(feature = "zstd") {
            return Err(Error::Layout {
                what: "codec profile (this build decodes 2 = tiny)",
                expected: Profile::Tiny as u64,
                found: m.profile as u64,
            });
        }
        let layout = &self.config.layout;
        layout.check(flash, journal::slot_len(flash))?;
        layout.check_package(flash, &m)?;
        if m.mode == Mode::InPlace {
            self.tracker = Some(InPlaceTracker::new(&m, written, overwritten, slots)?);
        }
        journal::check_buf(flash, self.chunk)?;
        self.goal = Goal {
            id,
            ops: OpContext::of(&m),
            source_size: m.source_size,
            source_sha256: m.source_sha256,
            op_count: m.op_count,
            xform_len: m.xform_len,
            // The header bounds the manifest, so op 0 starts below 2^16.
            first_op: header.ops_offset() as u16,
        };
        self.check_xform_room(m.xform_len)?;
        self.chain = Some(OpChain::new(&m));
        Ok(())
    }

    /// After the journal scan: finished, fresh or resumed.
    fn decide<F: Flash>(&mut self, flash: &F, scan: Scan) -> Result<()> {
        let id = self.goal.id;
        if let Some(r) = scan.newest {
            if r.package_id != id && r.kind != RecordKind::Finished && self.goal.in_place() {
                return Err(Error::UnfinishedOtherUpdate {
                    journal_id: r.package_id,
                });
            }
        }
        let layout = self.config.layout;
        let mine = scan.newest.filter(|r| r.package_id == id);
        match mine {
            Some(r) if r.kind == RecordKind::Finished => {
                self.phase = Phase::AlreadyFinished;
                let t = layout.target();
                self.job = Job::hash_region(Region::Target, t.start, self.goal.target_size());
            }
            None => {
                self.phase = Phase::FreshSource { scan };
                let s = layout.source();
                self.job = Job::hash_region(Region::Source, s.start, self.goal.source_size);
            }
            Some(r) => {
                self.report.resumed = true;
                self.report.started_at_op = r.next_op;
                if self.goal.in_place() {
                    self.resume(flash, scan)?;
                } else {
                    self.phase = Phase::ResumeSource { scan };
                    let s = layout.source();
                    self.job = Job::hash_region(Region::Source, s.start, self.goal.source_size);
                }
            }
        }
        Ok(())
    }

    /// Resuming: in place, the tracker is rebuilt from the done ops'
    /// headers; then the journal restarts in a fresh block.
    fn resume<F: Flash>(&mut self, flash: &F, scan: Scan) -> Result<()> {
        self.replay_from(flash, scan, 0, u64::from(self.goal.first_op))
    }

    fn replay_from<F: Flash>(&mut self, flash: &F, scan: Scan, index: u32, at: u64) -> Result<()> {
        let Some(r) = scan.newest else {
            return Err(Error::Layout {
                what: "agent state (resume without a record)",
                expected: 1,
                found: 0,
            });
        };
        if self.tracker.is_some() && index < r.next_op {
            self.op.index = index;
            self.phase = Phase::Replay { scan, index, at };
            self.job = Job::read_op(at, false);
            return Ok(());
        }
        let first_op = u64::from(self.goal.first_op);
        let chain = self.chain()?;
        // Format v3 (A/B): no op hash binds the journal's progress to the
        // ops it was made from, so the run starts again at op 0 and skips
        // each op whose segment already hashes right. Resuming at the
        // record would trust segments a package changed since its check
        // may have written, and fail at the target's hash on every run.
        let (next_op, pkg_offset, expected) = match chain.is_chained() {
            true => (r.next_op, r.pkg_offset, r.chain),
            false => (0, first_op, [0; 32]),
        };
        *chain = chain.resumed(next_op, expected);
        self.start_journal(flash, &scan, RecordKind::Progress, next_op, pkg_offset);
        Ok(())
    }

    /// Erases the next journal block and writes this run's first record.
    fn start_journal<F: Flash>(
        &mut self,
        flash: &F,
        scan: &Scan,
        kind: RecordKind,
        next_op: u32,
        pkg_offset: u64,
    ) {
        self.journal = Some(Journal::begin(flash, self.config.layout.journal, scan));
        self.op.at = pkg_offset;
        self.phase = Phase::Started;
        self.job = Job::start_journal(kind, next_op, pkg_offset);
    }

    /// Compares the general hash's digest (or a failed read) with `want`.
    fn check_digest(&mut self, want: [u8; 32], err: FormatError) -> Result<()> {
        let failed = core::mem::replace(&mut self.hash_failed, false);
        if failed || self.digest() != want {
            return Err(err.into());
        }
        Ok(())
    }

    /// The record a journal job writes.
    fn record(&self, kind: RecordKind, next_op: u32, pkg_offset: u64) -> Record {
        let chain = match (kind, self.chain.as_ref()) {
            (RecordKind::Finished, _) | (_, None) => [0; 32],
            (_, Some(c)) => *c.expected_hash(),
        };
        Record {
            kind,
            seq: 0,
            next_op,
            pkg_offset,
            package_id: self.goal.id,
            chain,
        }
    }
}
