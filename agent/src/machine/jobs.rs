//! The agent's inner layers: a *push* appends output and programs each
//! full chunk; a *fetch* gathers source, output or region bytes into the
//! read chunk; a *job* (hash a region or the op's extents, read an op,
//! write a journal record) strings fetches or requests together for a
//! phase.

use fota_format::{Error as FormatError, OpHead, SourcePiece, EXTENT_LEN};
use sha2::{Digest, Sha256};

use super::op::OpFields;
use super::{Agent, BufSpan, Request, Wait};
use crate::error::{Error, Region, Result};
use crate::flash::Flash;
use crate::journal::RecordKind;

/// Output bytes being appended: `work[start..end]`.
pub(super) struct Push {
    start: u32,
    end: u32,
}

/// Bytes being gathered into `read chunk[dst .. dst + len]`.
pub(super) struct Fetch {
    from: From,
    dst: u32,
    len: u32,
    done: u32,
    tolerant: bool,
    failed: bool,
}

/// Where a fetch reads.
#[derive(Clone, Copy)]
enum From {
    /// Flash bytes at an address.
    Region { region: Region, addr: u64 },
    /// Source image bytes at a source offset (A/B slot, or in place the
    /// image and scratch slots as the tracker says); through the
    /// package's transform unless `raw` (the extents' hash).
    Source { offset: u64, raw: bool },
    /// Bytes of the segment being produced, from its start.
    Output { pos: u64 },
}

impl Fetch {
    /// Still reading.
    pub(super) fn is_active(&self) -> bool {
        self.done < self.len && !self.failed
    }
}

/// A unit of work a phase waits for.
pub(super) enum Job {
    Idle,
    /// sha256 (into [`Agent::hash`]) of flash bytes or of the op's
    /// extents in order; `tolerant`: an unreadable word sets
    /// [`Agent::hash_failed`] instead of failing.
    Hash {
        what: Hashed,
        pos: u64,
        started: bool,
        tolerant: bool,
    },
    /// Reads the op at `at` into [`Agent::op`] and its extents into the
    /// work buffer; `hashed`: pass 1 (hashed, checked against the chain),
    /// else the header only (resume replay).
    ReadOp {
        at: u64,
        hashed: bool,
        stage: ReadStage,
    },
    /// Writes a journal record, erasing a block first when needed.
    Journal {
        kind: RecordKind,
        next_op: u32,
        pkg_offset: u64,
        stage: JournalStage,
    },
}

#[derive(Clone, Copy)]
pub(super) enum Hashed {
    Region {
        region: Region,
        addr: u64,
        len: u64,
    },
    /// The op's extents; `ext` is the extent being read.
    Extents {
        ext: usize,
    },
}

#[derive(Clone, Copy)]
pub(super) enum ReadStage {
    Start,
    Head,
    Body { pos: u64, end: u64, pending: usize },
}

#[derive(Clone, Copy)]
pub(super) enum JournalStage {
    /// This run's first record: its block is erased first.
    EraseFirst,
    /// A later record: a new block only when the current one is full.
    Check,
    Write,
    Written,
}

impl Job {
    pub(super) fn hash_region(region: Region, addr: u64, len: u64) -> Job {
        Job::Hash {
            what: Hashed::Region { region, addr, len },
            pos: 0,
            started: false,
            tolerant: false,
        }
    }

    pub(super) fn read_op(at: u64, hashed: bool) -> Job {
        Job::ReadOp {
            at,
            hashed,
            stage: ReadStage::Start,
        }
    }

    pub(super) fn start_journal(kind: RecordKind, next_op: u32, pkg_offset: u64) -> Job {
        Job::Journal {
            kind,
            next_op,
            pkg_offset,
            stage: JournalStage::EraseFirst,
        }
    }

    pub(super) fn journal(kind: RecordKind, next_op: u32, pkg_offset: u64) -> Job {
        Job::Journal {
            kind,
            next_op,
            pkg_offset,
            stage: JournalStage::Check,
        }
    }
}

impl Agent<'_> {
    /// Appends `work[start..start + len]` to the segment: checked against
    /// its length and hashed now, copied and programmed by the push layer.
    pub(super) fn push(&mut self, start: usize, len: usize) -> Result<()> {
        let len = self.work.get(start..start + len).map_or(0, <[u8]>::len);
        self.push_checked(len)?;
        // Transformed output is hashed once F⁻¹ made it final.
        if !self.transformed() {
            self.hash
                .update(self.work.get(start..start + len).unwrap_or(&[]));
        }
        self.push = Some(Push {
            start: start as u32,
            end: (start + len) as u32,
        });
        Ok(())
    }

    fn push_checked(&mut self, len: usize) -> Result<()> {
        if len as u64 > u64::from(self.out.len - self.out.produced) {
            return Err(FormatError::PatchMalformed {
                op_index: self.op.index,
                offset: 0,
                what: "output no longer than the segment",
            }
            .into());
        }
        self.out.produced += len as u32;
        Ok(())
    }

    pub(super) fn run_push<F: Flash>(&mut self, _flash: &F) -> Result<Option<Request>> {
        let Some(p) = self.push.as_mut() else {
            return Ok(None);
        };
        while p.start < p.end {
            let room = self.chunk - self.out.fill as usize;
            let n = room.min((p.end - p.start) as usize);
            let (dst, src) = (self.out.fill as usize, p.start as usize);
            self.work.copy_within(src..src + n, dst);
            p.start += n as u32;
            self.out.fill += n as u32;
            if self.out.fill as usize == self.chunk {
                self.finish_out_chunk(self.chunk)?;
                let request = Request::WriteFlash {
                    region: self.out.region,
                    addr: self.out.addr + u64::from(self.out.flushed),
                    buf: BufSpan {
                        start: self.out_at(),
                        len: self.out.fill as usize,
                    },
                };
                self.wait = Wait::Flush;
                return Ok(Some(request));
            }
        }
        self.push = None;
        Ok(None)
    }

    /// Programs what is left of the segment, padded to the write size
    /// with the erased value; `None` when nothing is left.
    pub(super) fn flush<F: Flash>(&mut self, flash: &F) -> Result<Option<Request>> {
        if self.out.fill == 0 {
            return Ok(None);
        }
        let ws = flash.write_size().max(1);
        let fill = self.out.fill as usize;
        self.finish_out_chunk(fill)?;
        let padded = fill.div_ceil(ws) * ws;
        if let Some(pad) = self.work.get_mut(fill..padded) {
            pad.fill(flash.erased_value());
        }
        self.wait = Wait::Flush;
        Ok(Some(Request::WriteFlash {
            region: self.out.region,
            addr: self.out.addr + u64::from(self.out.flushed),
            buf: BufSpan {
                start: self.out_at(),
                len: padded,
            },
        }))
    }

    /// Starts gathering source bytes `[offset, offset + len)` into the
    /// read chunk at `dst`.
    pub(super) fn fetch_source(&mut self, offset: u64, dst: usize, len: usize) {
        self.start_fetch(From::Source { offset, raw: false }, dst, len, false);
    }

    /// Starts gathering already-produced output `[pos, pos + len)` into
    /// the read chunk at `dst`.
    pub(super) fn fetch_output(&mut self, pos: u64, dst: usize, len: usize) {
        self.start_fetch(From::Output { pos }, dst, len, false);
    }

    /// Starts gathering `len` bytes from `from` into the read chunk at
    /// `dst`; a `tolerant` fetch notes a failed read instead of failing.
    fn start_fetch(&mut self, from: From, dst: usize, len: usize, tolerant: bool) {
        self.fetch = Some(Fetch {
            from,
            dst: dst as u32,
            len: len as u32,
            done: 0,
            tolerant,
            failed: false,
        });
    }

    /// Takes a completed fetch: its bytes are in the read chunk.
    pub(super) fn take_fetch(&mut self) -> Option<(usize, usize, bool)> {
        match &self.fetch {
            Some(f) if !f.is_active() => {
                let r = (f.dst as usize, f.len as usize, f.failed);
                self.fetch = None;
                Some(r)
            }
            _ => None,
        }
    }

    /// The outcome of a fetch's read of `n` bytes.
    pub(super) fn fetched(&mut self, n: u32, last: Result<()>) -> Result<()> {
        let Some(f) = self.fetch.as_mut() else {
            return last;
        };
        match last {
            Ok(()) => f.done += n,
            Err(_) if f.tolerant => f.failed = true,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    pub(super) fn run_fetch<F: Flash>(&mut self, _flash: &F) -> Result<Option<Request>> {
        let Some(f) = self.fetch.as_ref() else {
            return Ok(None);
        };
        let left = (f.len - f.done) as usize;
        let start = self.read_at() + (f.dst + f.done) as usize;
        let transformed = match f.from {
            From::Source { offset, raw: false } if self.transformed() => {
                Some((false, offset + u64::from(f.done), left))
            }
            From::Output { pos } if self.transformed() => {
                let p = pos + u64::from(f.done);
                let flushed = u64::from(self.out.flushed);
                (p < flushed).then(|| (true, p, ((flushed - p) as usize).min(left)))
            }
            _ => None,
        };
        if let Some((output, at, want)) = transformed {
            let (n, request) = self.fetch_block(output, at, start, want)?;
            if let Some(f) = self.fetch.as_mut() {
                f.done += n as u32;
            }
            return Ok(request);
        }
        let (region, addr, n) = match f.from {
            From::Region { region, addr } => (region, addr + u64::from(f.done), left),
            From::Source { offset, .. } => {
                let at = offset + u64::from(f.done);
                match self.tracker.as_ref() {
                    None => (Region::Source, self.config.layout.source().start + at, left),
                    Some(t) => {
                        let piece = t.locate(at, left as u64).ok_or(
                            FormatError::PatchReadOutsideExtents {
                                op_index: self.op.index,
                                src_offset: at,
                                len: left as u64,
                            },
                        )?;
                        let layout = &self.config.layout;
                        let (region, addr) = match piece {
                            SourcePiece::Image { offset, .. } => {
                                (Region::Target, layout.target().start + offset)
                            }
                            SourcePiece::Scratch { slot, offset, .. } => (
                                Region::Scratch,
                                layout.scratch().start
                                    + u64::from(slot) * self.goal.segment_size()
                                    + offset,
                            ),
                        };
                        (region, addr, (piece.len() as usize).min(left))
                    }
                }
            }
            From::Output { pos } => {
                let p = pos + u64::from(f.done);
                let flushed = u64::from(self.out.flushed);
                if p < flushed {
                    let n = ((flushed - p) as usize).min(left);
                    (self.out.region, self.out.addr + p, n)
                } else {
                    let i = (p - flushed) as usize;
                    let n = left.min((self.out.fill as usize).saturating_sub(i));
                    if n == 0 {
                        return Err(FormatError::PatchMalformed {
                            op_index: self.op.index,
                            offset: 0,
                            what: "output copies from bytes already produced",
                        }
                        .into());
                    }
                    let from = self.out_at() + i;
                    self.work.copy_within(from..from + n, start);
                    if let Some(f) = self.fetch.as_mut() {
                        f.done += n as u32;
                    }
                    return Ok(None);
                }
            }
        };
        if n == 0 {
            return Err(Error::Flash {
                region,
                addr,
                error: crate::flash::FlashError::OutOfBounds,
            });
        }
        self.wait = Wait::Fetch(n as u32);
        Ok(Some(Request::ReadFlash {
            region,
            addr,
            buf: BufSpan { start, len: n },
        }))
    }

    pub(super) fn run_job<F: Flash>(&mut self, flash: &F) -> Result<Option<Request>> {
        match self.job {
            Job::Idle => Ok(None),
            Job::Hash {
                what,
                pos,
                started,
                tolerant,
            } => self.run_hash(what, pos, started, tolerant),
            Job::ReadOp { at, hashed, stage } => self.run_read_op(at, hashed, stage),
            Job::Journal {
                kind,
                next_op,
                pkg_offset,
                stage,
            } => self.run_journal(flash, kind, next_op, pkg_offset, stage),
        }
    }

    fn run_hash(
        &mut self,
        mut what: Hashed,
        mut pos: u64,
        started: bool,
        tolerant: bool,
    ) -> Result<Option<Request>> {
        if !started {
            self.hash = Sha256::new();
            self.hash_failed = false;
        }
        if let Some((dst, len, failed)) = self.take_fetch() {
            if failed {
                self.hash_failed = true;
                self.job = Job::Idle;
                return Ok(None);
            }
            let at = self.read_at() + dst;
            self.hash.update(self.work.get(at..at + len).unwrap_or(&[]));
            pos += len as u64;
        }
        let next = match what {
            Hashed::Region { region, addr, len } => (pos < len).then(|| {
                let n = (self.chunk as u64).min(len - pos) as usize;
                (
                    From::Region {
                        region,
                        addr: addr + pos,
                    },
                    n,
                )
            }),
            Hashed::Extents { ext } => self.extent_piece(ext, pos).map(|(ext, at, offset, n)| {
                what = Hashed::Extents { ext };
                pos = at;
                (From::Source { offset, raw: true }, n)
            }),
        };
        match next {
            None => self.job = Job::Idle,
            Some((from, n)) => {
                self.start_fetch(from, 0, n, tolerant);
                self.job = Job::Hash {
                    what,
                    pos,
                    started: true,
                    tolerant,
                };
            }
        }
        Ok(None)
    }

    fn run_read_op(&mut self, at: u64, hashed: bool, stage: ReadStage) -> Result<Option<Request>> {
        let set = |agent: &mut Self, stage| agent.job = Job::ReadOp { at, hashed, stage };
        match stage {
            ReadStage::Start => {
                set(self, ReadStage::Head);
                Ok(self.read_package(at, self.out_at(), self.head_window(at)))
            }
            ReadStage::Head => {
                // The head's structure gives the op's length; in pass 1
                // the whole op is hashed and checked against the chain
                // before the op is used.
                let index = match hashed {
                    true => self.chain()?.next_index(),
                    false => self.op.index,
                };
                let ctx = self.op_context(index);
                let raw = self.work.get(..self.head_window(at)).unwrap_or(&[]);
                let head = OpHead::parse(raw, at, &ctx)?;
                if !hashed {
                    self.adopt(&head, at);
                    self.job = Job::Idle;
                    return Ok(None);
                }
                self.check_op_fits(&head, at)?;
                if self.chain.as_ref().is_some_and(|c| !c.is_chained()) {
                    // Format v3: the signature covered every op before
                    // the first write, so pass 1 reads only the head; the
                    // segment's hash and the target's catch a package that
                    // changed since (A/B only, SPEC §6.3).
                    self.op.index = index;
                    return self.accept_op(&head, at, [0; 32]);
                }
                let mut h = Sha256::new();
                h.update(raw.get(..head.len).unwrap_or(&[]));
                self.hash = h;
                self.op.head_len = head.len as u16;
                set(
                    self,
                    ReadStage::Body {
                        pos: at + head.len as u64,
                        end: at + head.total_len(),
                        pending: 0,
                    },
                );
                Ok(None)
            }
            ReadStage::Body {
                mut pos,
                end,
                pending,
            } => {
                if pending > 0 {
                    let p = self.pkg_at();
                    self.hash
                        .update(self.work.get(p..p + pending).unwrap_or(&[]));
                    pos += pending as u64;
                }
                if pos < end {
                    let n = (self.chunk as u64).min(end - pos) as usize;
                    set(
                        self,
                        ReadStage::Body {
                            pos,
                            end,
                            pending: n,
                        },
                    );
                    return Ok(self.read_package(pos, self.pkg_at(), n));
                }
                let sha256 = self.digest();
                let chain = self.chain()?;
                let index = chain.next_index();
                if sha256 != *chain.expected_hash() {
                    return Err(FormatError::OpHashMismatch {
                        op_index: index,
                        offset: at,
                    }
                    .into());
                }
                // The head is still in the out and read chunks: parse it
                // again now that its bytes are authenticated.
                self.op.index = index;
                let head = self.raw_head(at)?;
                self.accept_op(&head, at, sha256)
            }
        }
    }

    /// Pass 1 is over for the current op (at `at`, with `head` and the
    /// hash `sha256` it was read with): it becomes the current op and is
    /// checked against the manifest.
    fn accept_op(&mut self, head: &OpHead, at: u64, sha256: [u8; 32]) -> Result<Option<Request>> {
        self.adopt(head, at);
        self.op.sha256 = sha256;
        self.chain()?
            .check(&head.header, head.extents.as_slice(), &sha256, at)?;
        self.job = Job::Idle;
        Ok(None)
    }

    /// Makes `head` the current op: its fields, lengths and extents (as
    /// fixed records in the extents area).
    fn adopt(&mut self, head: &OpHead, at: u64) {
        self.op.header = OpFields::of(&head.header);
        self.op.at = at;
        self.op.head_len = head.len as u16;
        self.op.total_len = head.total_len();
        let base = self.extents_at();
        for (i, e) in head.extents.as_slice().iter().enumerate() {
            let at = base + i * EXTENT_LEN;
            if let Some(rec) = self.work.get_mut(at..at + EXTENT_LEN) {
                rec.copy_from_slice(&e.to_bytes());
            }
        }
    }

    fn run_journal<F: Flash>(
        &mut self,
        flash: &F,
        kind: RecordKind,
        next_op: u32,
        pkg_offset: u64,
        stage: JournalStage,
    ) -> Result<Option<Request>> {
        let set = |agent: &mut Self, stage| {
            agent.job = Job::Journal {
                kind,
                next_op,
                pkg_offset,
                stage,
            }
        };
        let Some(journal) = self.journal.as_mut() else {
            return Err(Error::Layout {
                what: "agent state (no journal position)",
                expected: 1,
                found: 0,
            });
        };
        let erase = match stage {
            JournalStage::EraseFirst => Some(journal.block()),
            JournalStage::Check => journal.next_block_if_full(flash, self.config.layout.journal),
            JournalStage::Write => {
                let record = self.record(kind, next_op, pkg_offset);
                let out = self.out_at();
                let buf = self.work.get_mut(out..out + self.chunk).unwrap_or(&mut []);
                let Some(journal) = self.journal.as_mut() else {
                    return Ok(None);
                };
                let (addr, len) = journal.encode_next(flash, record, buf)?;
                set(self, JournalStage::Written);
                return Ok(self.plain(Request::WriteFlash {
                    region: Region::Journal,
                    addr,
                    buf: BufSpan { start: out, len },
                }));
            }
            JournalStage::Written => {
                self.job = Job::Idle;
                return Ok(None);
            }
        };
        set(self, JournalStage::Write);
        Ok(erase.and_then(|b| {
            self.plain(Request::EraseFlash {
                region: Region::Journal,
                from: b.start,
                to: b.end(),
            })
        }))
    }
}
