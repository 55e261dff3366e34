//! The op loop and one op's execution: read and authenticate it, skip it
//! when a resume finds it done, check its inputs, erase, produce the
//! segment (fill, copy, stored, tiny or in-memory payloads), read it back,
//! and commit it with a journal record.
//!
//! ```text
//! read op (pass 1) ─ tracker ─ [resumed: segment already right? skip]
//!   ─ source extents sha256 ─ erase ─ op prefix re-hashed (pass 2)
//!   ─ body ─ last program ─ payload hash = pass 1? ─ output sha256
//!   ─ read back sha256 ─ record
//! ```

use fota_format::op::{Codec, OpHeader, OpKind};
use fota_format::tiny::{TinyDecoder, TinyStep};
use fota_format::Error as FormatError;
use sha2::{Digest, Sha256};

use super::jobs::{Hashed, Job};
use super::{Agent, OpStep, Phase};
use crate::error::{Error, Region, Result};
use crate::flash::Flash;
use crate::journal::RecordKind;
use crate::Request;

/// Where the execution of the current op is.
pub(super) enum Exec {
    /// Nothing done yet.
    Start,
    /// A SKIP op's segment was hashed.
    SkipChecked,
    /// The source extents were hashed (`hashed`: there were any).
    SourcesChecked { hashed: bool },
    /// The destination is being erased.
    Erasing,
    /// Pass 2 re-hashes the op's header and extents; `pending` bytes just
    /// read.
    Prefix { pos: u64, pending: usize },
    /// Producing the segment.
    Body(Body),
    /// The last partial chunk is being programmed.
    Finishing,
    /// The segment was hashed back from flash.
    ReadBack,
}

/// How the segment is produced.
pub(super) enum Body {
    Fill,
    /// Copying the extents: extent `ext`, `pos` bytes into it.
    Copy {
        ext: usize,
        pos: u64,
        fetched: bool,
    },
    /// A stored NEW payload; `pending` bytes just read.
    Stored {
        pending: usize,
    },
    Tiny(Tiny),
    #[cfg(feature = "std")]
    Mem(std::boxed::Box<mem::Mem>),
}

/// A tiny payload being decoded: the decoder, the current package chunk
/// `pkg[start..have]`, and the command being carried out.
pub(super) struct Tiny {
    decoder: TinyDecoder,
    start: usize,
    have: usize,
    act: Act,
}

#[derive(Clone, Copy)]
enum Act {
    /// Ask the decoder for its next step.
    Decode,
    /// `pending` payload bytes were just read.
    Input { pending: usize },
    /// Source bytes (or, with `output`, bytes already produced)
    /// `[at, at + len)` copied forward at most `most` at a time, `pos`
    /// done.
    Copy {
        output: bool,
        at: u64,
        len: u64,
        most: u64,
        pos: u64,
        fetched: bool,
    },
    /// `len` source bytes fetched; the diffs are the input's last `len`.
    AddSource { len: usize },
    /// A short period of output fetched into the read chunk, repeated
    /// until `left` bytes were pushed.
    Repeat {
        left: u64,
        period: usize,
        fetched: bool,
    },
}

/// What execution needs of an op's header: the header without its link
/// to the next op (the chain keeps that).
#[derive(Clone, Copy)]
pub(super) struct OpFields {
    pub(super) kind: OpKind,
    pub(super) codec: Codec,
    pub(super) fill_value: u8,
    pub(super) extent_count: u16,
    pub(super) payload_len: u32,
    /// Checked only by the in-memory decoder (std); streaming decoders
    /// end where the destination does.
    #[cfg(feature = "std")]
    pub(super) decoded_len: u32,
    pub(super) dst_offset: u64,
    pub(super) dst_len: u32,
    pub(super) dst_sha256: [u8; 32],
    pub(super) src_sha256: [u8; 32],
}

impl OpFields {
    /// A placeholder before the first op is read.
    pub(super) const EMPTY: OpFields = OpFields {
        kind: OpKind::Skip,
        codec: Codec::Stored,
        fill_value: 0,
        extent_count: 0,
        payload_len: 0,
        #[cfg(feature = "std")]
        decoded_len: 0,
        dst_offset: 0,
        dst_len: 0,
        dst_sha256: [0; 32],
        src_sha256: [0; 32],
    };

    pub(super) fn of(h: &OpHeader) -> OpFields {
        OpFields {
            kind: h.kind,
            codec: h.codec,
            fill_value: h.fill_value,
            extent_count: h.extent_count,
            payload_len: h.payload_len,
            #[cfg(feature = "std")]
            decoded_len: h.decoded_len,
            dst_offset: h.dst_offset,
            dst_len: h.dst_len,
            dst_sha256: h.dst_sha256,
            src_sha256: h.src_sha256,
        }
    }
}

enum Flow {
    /// The op is done: commit it.
    Done,
    /// Keep going in this state.
    Stay(Exec),
}

impl Agent<'_> {
    /// Region and flash address the current op writes.
    fn destination(&self) -> (Region, u64) {
        let h = &self.op.header;
        let layout = &self.config.layout;
        if h.kind == OpKind::Stash {
            (Region::Scratch, layout.scratch().start + h.dst_offset)
        } else {
            (Region::Target, layout.target().start + h.dst_offset)
        }
    }

    pub(super) fn run_ops<F: Flash>(
        &mut self,
        flash: &F,
        first: bool,
        step: OpStep,
    ) -> Result<Option<Request>> {
        let set = |agent: &mut Self, first, step| agent.phase = Phase::Ops { first, step };
        match step {
            OpStep::Next => {
                if self.chain()?.is_complete() {
                    self.phase = Phase::Final { hashed: false };
                    return Ok(None);
                }
                self.job = Job::read_op(self.op.at, true);
                set(self, first, OpStep::Read);
            }
            OpStep::Read => {
                let (index, at) = (self.op.index, self.op.at);
                let header = self.raw_header(at)?;
                let extents = self.extents();
                if let Some(t) = self.tracker.as_mut() {
                    t.record(index, at, &header, extents.as_slice())?;
                }
                // Skip work already done (only the op a cut may have
                // interrupted can be; resuming a format-v3 package, any
                // op): its destination already hashes right. A segment
                // that cannot be read (a torn word on ECC flash) is not
                // done.
                let resumed_v3 = self.report.resumed && !self.chain()?.is_chained();
                if first || resumed_v3 {
                    let (region, addr) = self.destination();
                    self.job = Job::Hash {
                        what: Hashed::Region {
                            region,
                            addr,
                            len: header.dst_len.into(),
                        },
                        pos: 0,
                        started: false,
                        tolerant: true,
                    };
                    set(self, false, OpStep::AlreadyChecked);
                } else {
                    set(self, false, OpStep::Exec(Exec::Start));
                }
            }
            OpStep::AlreadyChecked => {
                let failed = core::mem::replace(&mut self.hash_failed, false);
                let digest = self.digest();
                if !failed && digest == self.op.header.dst_sha256 {
                    if self.op.index < self.report.started_at_op {
                        // Format v3, resumed: an op the journal already
                        // records as done, checked again; no new record.
                        set(self, false, OpStep::Committing);
                    } else {
                        self.report.ops_found_done += 1;
                        self.commit();
                    }
                } else {
                    set(self, false, OpStep::Exec(Exec::Start));
                }
            }
            OpStep::Exec(exec) => match self.run_exec(flash, exec)? {
                (Flow::Done, _) => {
                    self.report.ops_executed += 1;
                    self.commit();
                }
                (Flow::Stay(exec), request) => {
                    set(self, false, OpStep::Exec(exec));
                    return Ok(request);
                }
            },
            OpStep::Committing => {
                self.op.at += self.op.total_len;
                set(self, false, OpStep::Next);
            }
        }
        Ok(None)
    }

    /// The op is done: its record is its commit point.
    fn commit(&mut self) {
        self.job = Job::journal(
            RecordKind::Progress,
            self.op.index + 1,
            self.op.at + self.op.total_len,
        );
        self.phase = Phase::Ops {
            first: false,
            step: OpStep::Committing,
        };
    }

    fn run_exec<F: Flash>(&mut self, flash: &F, exec: Exec) -> Result<(Flow, Option<Request>)> {
        let h = self.op.header;
        let (region, dst) = self.destination();
        let stay = |e| Ok((Flow::Stay(e), None));
        match exec {
            Exec::Start => {
                // The transform was loaded before the journal scan.
                if h.kind == OpKind::Xform {
                    return Ok((Flow::Done, None));
                }
                if h.kind == OpKind::Skip {
                    self.job = Job::hash_region(region, dst, h.dst_len.into());
                    return stay(Exec::SkipChecked);
                }
                // Inputs first: in place, the extents must hash right
                // before anything is erased. A/B ops carry no source hash:
                // the whole source slot was checked before the first op
                // and nothing writes to it.
                let hashed = h.extent_count > 0 && self.goal.in_place();
                if hashed {
                    self.job = Job::Hash {
                        what: Hashed::Extents { ext: 0 },
                        pos: 0,
                        started: false,
                        tolerant: false,
                    };
                }
                stay(Exec::SourcesChecked { hashed })
            }
            Exec::SkipChecked => {
                self.check_digest(
                    h.dst_sha256,
                    FormatError::SegmentHashMismatch {
                        op_index: self.op.index,
                        dst_offset: h.dst_offset,
                    },
                )?;
                Ok((Flow::Done, None))
            }
            Exec::SourcesChecked { hashed } => {
                if hashed {
                    self.check_digest(
                        h.src_sha256,
                        FormatError::SourceExtentHashMismatch {
                            op_index: self.op.index,
                        },
                    )?;
                }
                let len = u64::from(h.dst_len);
                let end = dst + len;
                let to = match flash.block_at(end.saturating_sub(1)) {
                    Some(b) if len > 0 => b.end(),
                    _ => end,
                };
                let request = self.plain(Request::EraseFlash {
                    region,
                    from: dst,
                    to,
                });
                Ok((Flow::Stay(Exec::Erasing), request))
            }
            Exec::Erasing => {
                // Also drops the cached block of the last op.
                self.out = super::Out {
                    region,
                    addr: dst,
                    len: h.dst_len,
                    produced: 0,
                    flushed: 0,
                    fill: 0,
                    xblock: 0,
                };
                self.hash = Sha256::new();
                self.payload_hash = Sha256::new();
                stay(Exec::Prefix {
                    pos: self.op.at,
                    pending: 0,
                })
            }
            Exec::Prefix { mut pos, pending } => {
                if pending > 0 {
                    let p = self.pkg_at();
                    self.payload_hash
                        .update(self.work.get(p..p + pending).unwrap_or(&[]));
                    pos += pending as u64;
                }
                let end = self.op.at + u64::from(self.op.head_len);
                if pos < end {
                    let n = (self.chunk as u64).min(end - pos) as usize;
                    let request = self.read_package(pos, self.pkg_at(), n);
                    return Ok((Flow::Stay(Exec::Prefix { pos, pending: n }), request));
                }
                self.payload_pos = end;
                let body = match (h.kind, h.codec) {
                    (OpKind::Fill, _) => {
                        let r = self.read_at();
                        if let Some(b) = self.work.get_mut(r..r + self.chunk) {
                            b.fill(h.fill_value);
                        }
                        Body::Fill
                    }
                    (OpKind::Copy | OpKind::Stash, _) => Body::Copy {
                        ext: 0,
                        pos: 0,
                        fetched: false,
                    },
                    (OpKind::New, Codec::Stored) => Body::Stored { pending: 0 },
                    (_, Codec::Tiny) => Body::Tiny(Tiny {
                        decoder: TinyDecoder::new(self.op.index, h.dst_offset, h.dst_len.into()),
                        start: 0,
                        have: 0,
                        act: Act::Decode,
                    }),
                    _ => self.in_memory()?,
                };
                stay(Exec::Body(body))
            }
            Exec::Body(body) => match self.run_body(body)? {
                (Some(body), request) => Ok((Flow::Stay(Exec::Body(body)), request)),
                (None, _) => {
                    if self.out.produced != self.out.len {
                        return Err(FormatError::PatchMalformed {
                            op_index: self.op.index,
                            offset: 0,
                            what: "output exactly as long as the segment",
                        }
                        .into());
                    }
                    let request = self.flush(flash)?;
                    Ok((Flow::Stay(Exec::Finishing), request))
                }
            },
            Exec::Finishing => {
                let payload = core::mem::replace(&mut self.payload_hash, Sha256::new());
                let whole = self.payload_pos == self.op.at + self.op.total_len;
                // Format v3 has no per-op hash from pass 1 to compare with
                // (the signature covered the whole op section).
                let chained = self.chain()?.is_chained();
                if !whole || (chained && payload.finalize().as_slice() != self.op.sha256) {
                    // The package changed since pass 1: what was written
                    // is not trusted, and the op is not committed.
                    return Err(FormatError::OpHashMismatch {
                        op_index: self.op.index,
                        offset: self.op.at,
                    }
                    .into());
                }
                if self.digest() != h.dst_sha256 {
                    return Err(FormatError::SegmentHashMismatch {
                        op_index: self.op.index,
                        dst_offset: h.dst_offset,
                    }
                    .into());
                }
                self.job = Job::hash_region(region, dst, h.dst_len.into());
                stay(Exec::ReadBack)
            }
            Exec::ReadBack => {
                let failed = core::mem::replace(&mut self.hash_failed, false);
                if failed || self.digest() != h.dst_sha256 {
                    return Err(Error::Verify {
                        region,
                        addr: dst,
                        op_index: self.op.index,
                    });
                }
                Ok((Flow::Done, None))
            }
        }
    }

    /// Reads the next payload chunk into the package chunk; `None` at the
    /// payload's end.
    fn next_payload(&mut self) -> Option<(usize, Option<Request>)> {
        let end = self.op.at + self.op.total_len;
        if self.payload_pos >= end {
            return None;
        }
        let n = (self.chunk as u64).min(end - self.payload_pos) as usize;
        Some((n, self.read_package(self.payload_pos, self.pkg_at(), n)))
    }

    /// Takes `n` payload bytes just read into the package chunk.
    fn payload_read(&mut self, n: usize) {
        let p = self.pkg_at();
        self.payload_hash
            .update(self.work.get(p..p + n).unwrap_or(&[]));
        self.payload_pos += n as u64;
    }

    /// Pushes a completed fetch's bytes to the output; how many.
    fn push_fetched(&mut self) -> Result<u64> {
        match self.take_fetch() {
            Some((_, n, _)) => {
                self.push(self.read_at(), n)?;
                Ok(n as u64)
            }
            None => Ok(0),
        }
    }

    /// One move of the body; `None` when the body is complete.
    fn run_body(&mut self, body: Body) -> Result<(Option<Body>, Option<Request>)> {
        let read = self.read_at();
        match body {
            Body::Fill => {
                if self.out.produced >= self.out.len {
                    return Ok((None, None));
                }
                let n = self.chunk.min((self.out.len - self.out.produced) as usize);
                self.push(read, n)?;
                Ok((Some(Body::Fill), None))
            }
            Body::Copy {
                ext,
                mut pos,
                fetched,
            } => {
                if fetched {
                    pos += self.push_fetched()?;
                    return Ok((
                        Some(Body::Copy {
                            ext,
                            pos,
                            fetched: false,
                        }),
                        None,
                    ));
                }
                let Some((ext, pos, offset, n)) = self.extent_piece(ext, pos) else {
                    return Ok((None, None));
                };
                self.fetch_source(offset, 0, n);
                Ok((
                    Some(Body::Copy {
                        ext,
                        pos,
                        fetched: true,
                    }),
                    None,
                ))
            }
            Body::Stored { pending } => {
                if pending > 0 {
                    self.payload_read(pending);
                    self.push(self.pkg_at(), pending)?;
                    return Ok((Some(Body::Stored { pending: 0 }), None));
                }
                match self.next_payload() {
                    None => Ok((None, None)),
                    Some((n, request)) => Ok((Some(Body::Stored { pending: n }), request)),
                }
            }
            Body::Tiny(t) => {
                let (t, request) = self.run_tiny(t)?;
                Ok((t.map(Body::Tiny), request))
            }
            #[cfg(feature = "std")]
            Body::Mem(m) => self.run_mem(m),
        }
    }

    fn run_tiny(&mut self, mut t: Tiny) -> Result<(Option<Tiny>, Option<Request>)> {
        let (read, pkg) = (self.read_at(), self.pkg_at());
        match t.act {
            Act::Decode => {
                let extents = self.extents();
                let input = self.work.get(pkg + t.start..pkg + t.have).unwrap_or(&[]);
                let (used, step) = t.decoder.step(input, extents.as_slice())?;
                t.start += used;
                match step {
                    TinyStep::NeedInput => match self.next_payload() {
                        Some((n, request)) => {
                            t.act = Act::Input { pending: n };
                            return Ok((Some(t), request));
                        }
                        None => {
                            t.decoder.finish(self.op.header.payload_len.into())?;
                            return Ok((None, None));
                        }
                    },
                    TinyStep::End => {
                        t.decoder.finish(self.op.header.payload_len.into())?;
                        return Ok((None, None));
                    }
                    TinyStep::Literal { len } => self.push(pkg + t.start - len, len)?,
                    TinyStep::CopySource { src, len } => {
                        t.act = Act::Copy {
                            output: false,
                            at: src,
                            len,
                            most: self.chunk as u64,
                            pos: 0,
                            fetched: false,
                        }
                    }
                    TinyStep::AddSource { src, len } => {
                        // len is at most the input chunk, so it fits the
                        // read chunk.
                        self.fetch_source(src, 0, len);
                        t.act = Act::AddSource { len };
                    }
                    TinyStep::CopyOutput { back, len } => {
                        let from = u64::from(self.out.produced).saturating_sub(back);
                        let chunk = self.chunk as u64;
                        if back < len && back <= chunk / 2 {
                            // A short period: read once, repeated.
                            self.fetch_output(from, 0, back as usize);
                            t.act = Act::Repeat {
                                left: len,
                                period: back as usize,
                                fetched: true,
                            };
                        } else {
                            // Never past what is already produced: at
                            // most `back` at a time.
                            t.act = Act::Copy {
                                output: true,
                                at: from,
                                len,
                                most: back.min(chunk),
                                pos: 0,
                                fetched: false,
                            };
                        }
                    }
                }
            }
            Act::Input { pending } => {
                self.payload_read(pending);
                t.start = 0;
                t.have = pending;
                t.act = Act::Decode;
            }
            Act::Copy {
                output,
                at,
                len,
                most,
                mut pos,
                fetched,
            } => {
                if fetched {
                    pos += self.push_fetched()?;
                } else if pos < len {
                    let n = most.min(len - pos) as usize;
                    if output {
                        self.fetch_output(at + pos, 0, n);
                    } else {
                        self.fetch_source(at + pos, 0, n);
                    }
                } else {
                    t.act = Act::Decode;
                    return Ok((Some(t), None));
                }
                // Fetch, then push what was fetched, alternately.
                t.act = Act::Copy {
                    output,
                    at,
                    len,
                    most,
                    pos,
                    fetched: !fetched,
                };
            }
            Act::AddSource { len } => {
                self.take_fetch();
                let diffs = pkg + t.start - len;
                for i in 0..len {
                    let d = self.work.get(diffs + i).copied().unwrap_or(0);
                    if let Some(b) = self.work.get_mut(read + i) {
                        *b = b.wrapping_add(d);
                    }
                }
                self.push(read, len)?;
                t.act = Act::Decode;
            }
            Act::Repeat {
                left,
                period,
                fetched,
            } => {
                let span = self.chunk / period.max(1) * period;
                if fetched {
                    self.take_fetch();
                    for i in period..span {
                        let b = self.work.get(read + i - period).copied().unwrap_or(0);
                        if let Some(d) = self.work.get_mut(read + i) {
                            *d = b;
                        }
                    }
                }
                if left == 0 {
                    t.act = Act::Decode;
                } else {
                    let n = (span as u64).min(left) as usize;
                    self.push(read, n)?;
                    t.act = Act::Repeat {
                        left: left - n as u64,
                        period,
                        fetched: false,
                    };
                }
            }
        }
        Ok((Some(t), None))
    }

    #[cfg(not(feature = "std"))]
    fn in_memory(&mut self) -> Result<Body> {
        Err(FormatError::PayloadCodec {
            op_index: self.op.index,
            what: "zstd and stored PATCH payloads need the agent's std feature",
        }
        .into())
    }
}

/// zstd and stored PATCH payloads, decoded whole in memory (application
/// processors, `std` feature): the payload is collected, decoded, the
/// extents' bytes gathered, the segment produced in memory and pushed a
/// chunk at a time.
#[cfg(feature = "std")]
mod mem {
    use std::boxed::Box;
    use std::vec::Vec;

    use fota_format::op::{Codec, Extent, OpKind};
    use fota_format::{Error as FormatError, PatchDecoder, PatchStep};

    use super::{Agent, Body, Request, Result};

    pub(in crate::machine) struct Mem {
        coded: Vec<u8>,
        source: Vec<u8>,
        output: Vec<u8>,
        stage: Stage,
    }

    #[derive(Clone, Copy)]
    enum Stage {
        Collect { pending: usize },
        Gather { ext: usize, pos: u64, fetched: bool },
        Emit { pos: usize },
    }

    impl Agent<'_> {
        pub(super) fn in_memory(&mut self) -> Result<Body> {
            Ok(Body::Mem(Box::new(Mem {
                coded: Vec::new(),
                source: Vec::new(),
                output: Vec::new(),
                stage: Stage::Collect { pending: 0 },
            })))
        }

        pub(super) fn run_mem(
            &mut self,
            mut m: Box<Mem>,
        ) -> Result<(Option<Body>, Option<Request>)> {
            let read = self.read_at();
            match m.stage {
                Stage::Collect { pending } => {
                    if pending > 0 {
                        self.payload_read(pending);
                        let p = self.pkg_at();
                        m.coded
                            .extend_from_slice(self.work.get(p..p + pending).unwrap_or(&[]));
                    }
                    if let Some((n, request)) = self.next_payload() {
                        m.stage = Stage::Collect { pending: n };
                        return Ok((Some(Body::Mem(m)), request));
                    }
                    // A PATCH payload is decoded once its source is
                    // gathered: an LZMA literal stream may follow part of it.
                    if self.op.header.kind == OpKind::New {
                        m.output = self.decode_payload(core::mem::take(&mut m.coded), &[])?;
                        m.stage = Stage::Emit { pos: 0 };
                    } else {
                        m.stage = Stage::Gather {
                            ext: 0,
                            pos: 0,
                            fetched: false,
                        };
                    }
                }
                Stage::Gather {
                    ext,
                    mut pos,
                    fetched,
                } => {
                    if fetched {
                        if let Some((_, n, _)) = self.take_fetch() {
                            m.source
                                .extend_from_slice(self.work.get(read..read + n).unwrap_or(&[]));
                            pos += n as u64;
                        }
                    }
                    if let Some((ext, pos, offset, n)) = self.extent_piece(ext, pos) {
                        self.fetch_source(offset, 0, n);
                        m.stage = Stage::Gather {
                            ext,
                            pos,
                            fetched: true,
                        };
                        return Ok((Some(Body::Mem(m)), None));
                    }
                    let decoded = self.decode_payload(core::mem::take(&mut m.coded), &m.source)?;
                    m.output = self.patch(&decoded, &m.source)?;
                    m.stage = Stage::Emit { pos: 0 };
                }
                Stage::Emit { pos } => {
                    if pos >= m.output.len() {
                        return Ok((None, None));
                    }
                    let n = self.chunk.min(m.output.len() - pos);
                    let src = m.output.get(pos..pos + n).unwrap_or(&[]);
                    if let Some(d) = self.work.get_mut(read..read + n) {
                        d.copy_from_slice(src);
                    }
                    self.push(read, n)?;
                    m.stage = Stage::Emit { pos: pos + n };
                }
            }
            Ok((Some(Body::Mem(m)), None))
        }

        /// Runs a decoded PATCH payload over the gathered source bytes.
        fn patch(&self, decoded: &[u8], source: &[u8]) -> Result<Vec<u8>> {
            let h = self.op.header;
            let index = self.op.index;
            let extents = self.extents();
            let extents = extents.as_slice();
            let mut decoder =
                PatchDecoder::new(index, decoded, h.dst_offset, h.dst_len.into(), extents)?;
            let mut out = Vec::with_capacity(h.dst_len as usize);
            while let Some(step) = decoder.next() {
                match step? {
                    PatchStep::Add { src, len } => {
                        let mut part = Vec::with_capacity(len as usize);
                        gather(extents, source, src, len, index, &mut part)?;
                        decoder.add_diff(&mut part)?;
                        out.extend_from_slice(&part);
                    }
                    PatchStep::Literal(bytes) => out.extend_from_slice(bytes),
                }
            }
            Ok(out)
        }

        /// The decoded payload of the op, exactly its declared length:
        /// zstd and LZMA payloads decoded in RAM (`source`, the op's
        /// gathered source, is what an LZMA literal stream may follow),
        /// stored ones as they are.
        fn decode_payload(&self, coded: Vec<u8>, source: &[u8]) -> Result<Vec<u8>> {
            let decoded = self.decode_codec(coded, source)?;
            if decoded.len() != self.op.header.decoded_len as usize {
                return Err(FormatError::PayloadCodec {
                    op_index: self.op.index,
                    what: "payload decodes to another length than declared",
                }
                .into());
            }
            Ok(decoded)
        }

        #[cfg(feature = "zstd")]
        fn decode_codec(&self, coded: Vec<u8>, source: &[u8]) -> Result<Vec<u8>> {
            let (h, index) = (self.op.header, self.op.index);
            let decoded_len = h.decoded_len as usize;
            Ok(match h.codec {
                Codec::Zstd => fota_format::zstd_payload::decode(index, &coded, decoded_len)?,
                Codec::Lzma => {
                    let dst_len = h.dst_len as usize;
                    fota_format::lzma_payload::decode(index, &coded, decoded_len, dst_len, source)?
                }
                Codec::Stored | Codec::Tiny => coded,
            })
        }

        #[cfg(not(feature = "zstd"))]
        fn decode_codec(&self, coded: Vec<u8>, _source: &[u8]) -> Result<Vec<u8>> {
            match self.op.header.codec {
                Codec::Zstd | Codec::Lzma => Err(FormatError::PayloadCodec {
                    op_index: self.op.index,
                    what: "zstd and lzma payloads need the agent's zstd feature",
                }
                .into()),
                Codec::Stored | Codec::Tiny => Ok(coded),
            }
        }
    }

    /// Appends source bytes `[src, src + len)` from the extents' bytes
    /// gathered in order (the patch decoder allows only a read inside one
    /// extent).
    fn gather(
        extents: &[Extent],
        source: &[u8],
        src: u64,
        len: u64,
        op_index: u32,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let outside = FormatError::PatchReadOutsideExtents {
            op_index,
            src_offset: src,
            len,
        };
        let mut base = 0u64;
        let from = extents
            .iter()
            .find_map(|e| {
                let found = e.contains(src, len).then(|| base + (src - e.offset));
                base += e.len;
                found
            })
            .ok_or(outside)?;
        let bytes = source
            .get(from as usize..(from + len) as usize)
            .ok_or(outside)?;
        out.extend_from_slice(bytes);
        Ok(())
    }
}
