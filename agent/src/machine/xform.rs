//! The package's reference transform (`fota_format::xform`) on the
//! device.
//!
//! The payload of the XFORM op is loaded once per run, right after the
//! manifest, into the work buffer past its usual areas, and checked
//! against the manifest's chain head before anything is written. Ops that
//! produce bytes (COPY, PATCH, NEW, FILL) then read their source through T
//! and write through F⁻¹:
//!
//! ```text
//! work: out │ read │ package │ extents │ block │ xform payload
//!                                        256 B   manifest.xform_len
//! ```
//!
//! - A source fetch reads whole 256-byte blocks of the old image into
//!   *block*, applies T, and serves the bytes asked for from there; the
//!   last block stays cached, so a run of small reads costs one flash
//!   read per block.
//! - Output already programmed (a tiny back-reference) is read the same
//!   way and put back into the F domain with F.
//! - A full out chunk (a whole number of blocks) gets F⁻¹ just before it
//!   is hashed and programmed.

use fota_format::op::OpKind;
use fota_format::xform::XFORM_BLOCK;
use fota_format::{Error as FormatError, SourcePiece, Xform};
use sha2::Digest;

use super::{Agent, BufSpan, Request, Wait};
use crate::error::{Error, Region, Result};

/// Tag bit of a cached output block (else a source block).
const OUTPUT_TAG: u32 = 1 << 31;

impl Agent<'_> {
    /// Offset of the block area: after the extents.
    pub(super) fn block_at(&self) -> usize {
        self.extents_at() + super::EXTENTS_AREA
    }

    /// Offset of the transform payload.
    pub(super) fn xform_at(&self) -> usize {
        self.block_at() + XFORM_BLOCK
    }

    /// Whether the current op's bytes go through the transform.
    pub(super) fn transformed(&self) -> bool {
        self.goal.xform_len > 0
            && matches!(
                self.op.header.kind,
                OpKind::Copy | OpKind::Patch | OpKind::New | OpKind::Fill
            )
    }

    /// Runs `f` on the loaded transform and the work buffer before it.
    fn with_xform(&mut self, f: impl FnOnce(&Xform<'_>, &mut [u8])) -> Result<()> {
        let at = self.xform_at();
        let len = self.goal.xform_len as usize;
        let Some((head, tail)) = (at <= self.work.len()).then(|| self.work.split_at_mut(at)) else {
            return Err(work_too_short(at + len, self.work.len()));
        };
        let payload = tail
            .get(..len)
            .ok_or(work_too_short(at + len, at + tail.len()))?;
        let x = Xform::parse(payload, 0)?;
        f(&x, head);
        Ok(())
    }

    /// Checks the work buffer holds the block area and a `len`-byte
    /// payload, and that out chunks are whole blocks.
    pub(super) fn check_xform_room(&self, len: u32) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let need = self.xform_at() + len as usize;
        if self.work.len() < need {
            return Err(work_too_short(need, self.work.len()));
        }
        if self.chunk % XFORM_BLOCK != 0 {
            return Err(Error::Layout {
                what: "work chunk (a multiple of 256 bytes for a package with an xform)",
                expected: XFORM_BLOCK as u64,
                found: self.chunk as u64,
            });
        }
        Ok(())
    }

    /// Validates the loaded payload (its hash already matched).
    pub(super) fn check_loaded_xform(&mut self) -> Result<()> {
        self.with_xform(|_, _| {})
    }

    /// F⁻¹ on the first `len` bytes of the out chunk, which start at the
    /// segment's byte `self.out.flushed`; then they are hashed.
    pub(super) fn finish_out_chunk(&mut self, len: usize) -> Result<()> {
        if self.transformed() {
            let offset = self.op.header.dst_offset + u64::from(self.out.flushed);
            let out = self.out_at();
            self.with_xform(|x, head| {
                if let Some(b) = head.get_mut(out..out + len) {
                    x.inverse(b, offset);
                }
            })?;
            let out = self.out_at();
            self.hash
                .update(self.work.get(out..out + len).unwrap_or(&[]));
        }
        Ok(())
    }

    /// Serves the next piece of a transformed fetch from the cached block,
    /// or asks for the block it needs. `at`: source offset (or segment
    /// position with `output`) of the next byte; `dst`: where it goes in
    /// the work buffer; `left`: bytes still wanted.
    pub(super) fn fetch_block(
        &mut self,
        output: bool,
        at: u64,
        dst: usize,
        left: usize,
    ) -> Result<(usize, Option<Request>)> {
        let block = at / XFORM_BLOCK as u64;
        let index = u32::try_from(block + 1)
            .ok()
            .filter(|&i| i < OUTPUT_TAG)
            .ok_or(FormatError::PatchReadOutsideExtents {
                op_index: self.op.index,
                src_offset: at,
                len: left as u64,
            })?;
        let tag = index | if output { OUTPUT_TAG } else { 0 };
        let start = block * XFORM_BLOCK as u64;
        if self.out.xblock == tag {
            let from = (at - start) as usize;
            let n = left.min(XFORM_BLOCK - from);
            let b = self.block_at() + from;
            self.work.copy_within(b..b + n, dst);
            return Ok((n, None));
        }
        let (region, addr, len) = if output {
            (self.out.region, self.out.addr + start, XFORM_BLOCK as u64)
        } else {
            let len = (XFORM_BLOCK as u64).min(self.goal.source_size.saturating_sub(start));
            let outside = FormatError::PatchReadOutsideExtents {
                op_index: self.op.index,
                src_offset: start,
                len,
            };
            match self.tracker.as_ref() {
                None => (
                    Region::Source,
                    self.config.layout.source().start + start,
                    len,
                ),
                Some(t) => {
                    let piece = t.locate(start, len).ok_or(outside)?;
                    if piece.len() != len {
                        return Err(outside.into());
                    }
                    let layout = &self.config.layout;
                    match piece {
                        SourcePiece::Image { offset, .. } => {
                            (Region::Target, layout.target().start + offset, len)
                        }
                        SourcePiece::Scratch { slot, offset, .. } => (
                            Region::Scratch,
                            layout.scratch().start
                                + u64::from(slot) * self.goal.segment_size()
                                + offset,
                            len,
                        ),
                    }
                }
            }
        };
        self.out.xblock = 0;
        self.wait = Wait::Block(tag);
        Ok((
            0,
            Some(Request::ReadFlash {
                region,
                addr,
                buf: BufSpan {
                    start: self.block_at(),
                    len: len as usize,
                },
            }),
        ))
    }

    /// A block read for [`Self::fetch_block`] arrived: T (source) or F
    /// (output) it, and keep it.
    pub(super) fn block_read(&mut self, tag: u32) -> Result<()> {
        let output = tag & OUTPUT_TAG != 0;
        let start = u64::from((tag & !OUTPUT_TAG) - 1) * XFORM_BLOCK as u64;
        let b = self.block_at();
        let len = if output {
            XFORM_BLOCK
        } else {
            (XFORM_BLOCK as u64).min(self.goal.source_size.saturating_sub(start)) as usize
        };
        let dst_offset = self.op.header.dst_offset;
        self.with_xform(|x, head| {
            if let Some(block) = head.get_mut(b..b + len) {
                if output {
                    x.forward(block, dst_offset + start);
                } else {
                    x.source(block, start);
                }
            }
        })?;
        self.out.xblock = tag;
        Ok(())
    }
}

fn work_too_short(need: usize, found: usize) -> Error {
    Error::Layout {
        what: "work buffer length (work area, a 256-byte block and the package's xform)",
        expected: need as u64,
        found: found as u64,
    }
}
