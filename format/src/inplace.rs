//! The rules an in-place package must meet beyond the hash chain, kept as
//! a small tracker that the host applier and the on-device agent share.
//!
//! In place, the target overwrites the source segment by segment, so an op
//! may read a source segment only while no earlier op has overwritten it,
//! or from the scratch slot an earlier STASH op copied it to. An op may not
//! read the segment it writes except from a stash either: a power cut in
//! the middle of the op would destroy its own input, and redoing the op
//! must always be possible. Every target segment is written exactly once.
//!
//! The tracker holds two bits per segment and one `u32` per scratch slot in
//! buffers the caller provides ([`InPlaceTracker::bitmap_len`]), so a device
//! can size them statically.

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::op::{Extent, OpHeader, OpKind};

/// Where a piece of a source read comes from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePiece {
    /// Still in the image, at this offset.
    Image {
        /// Offset in the image (the same as in the source).
        offset: u64,
        /// Bytes.
        len: u64,
    },
    /// In a scratch slot.
    Scratch {
        /// Slot index.
        slot: u32,
        /// Offset inside the slot.
        offset: u64,
        /// Bytes.
        len: u64,
    },
}

impl SourcePiece {
    /// Bytes this piece covers.
    pub fn len(&self) -> u64 {
        match *self {
            SourcePiece::Image { len, .. } | SourcePiece::Scratch { len, .. } => len,
        }
    }

    /// True when the piece covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tracks which segments are written and overwritten and what each
/// scratch slot holds, and checks each in-place op against them.
#[derive(Debug)]
pub struct InPlaceTracker<'a> {
    segment_size: u64,
    source_size: u64,
    target_segments: u64,
    grid_segments: u64,
    written: &'a mut [u8],
    overwritten: &'a mut [u8],
    /// Source segment + 1 held by each slot; 0 when empty.
    slots: &'a mut [u32],
    written_count: u64,
}

impl<'a> InPlaceTracker<'a> {
    /// Bytes each of the two bitmaps needs for `manifest`.
    pub fn bitmap_len(manifest: &Manifest) -> usize {
        let grid = grid_segments(manifest);
        usize::try_from(grid.div_ceil(8)).unwrap_or(usize::MAX)
    }

    /// Starts tracking an in-place update with every segment unwritten and
    /// every slot empty. `written` and `overwritten` need
    /// [`Self::bitmap_len`] bytes, `slots` one entry per scratch slot.
    ///
    /// # Errors
    /// `InvalidField` (at the manifest's op count) when a buffer is too
    /// small for this package: the device cannot apply it.
    pub fn new(
        manifest: &Manifest,
        written: &'a mut [u8],
        overwritten: &'a mut [u8],
        slots: &'a mut [u32],
    ) -> Result<Self> {
        let need = Self::bitmap_len(manifest);
        let slots_need = manifest.scratch_slots as usize;
        let (Some(written), Some(overwritten), Some(slots)) = (
            written.get_mut(..need),
            overwritten.get_mut(..need),
            slots.get_mut(..slots_need),
        ) else {
            return Err(Error::InvalidField {
                offset: crate::header::HEADER_LEN as u64 + 192,
                what: "segment and scratch-slot counts (within the device's tracking buffers)",
                found: grid_segments(manifest),
            });
        };
        written.fill(0);
        overwritten.fill(0);
        slots.fill(0);
        Ok(InPlaceTracker {
            segment_size: manifest.segment_size.into(),
            source_size: manifest.source_size,
            target_segments: manifest.segment_count(),
            grid_segments: grid_segments(manifest),
            written,
            overwritten,
            slots,
            written_count: 0,
        })
    }

    /// Forgets every op recorded so far: every segment unwritten, every
    /// slot empty (after a check pass, before the apply pass).
    pub fn reset(&mut self) {
        self.written.fill(0);
        self.overwritten.fill(0);
        self.slots.fill(0);
        self.written_count = 0;
    }

    /// True once every target segment has been written (or skipped).
    pub fn is_complete(&self) -> bool {
        self.written_count == self.target_segments
    }

    /// Checks op `op_index` (already authenticated by the chain) against the
    /// in-place rules and records its effect. Call it before executing the
    /// op: afterwards [`Self::locate`] already serves the op's own
    /// destination segment from its stash.
    ///
    /// # Errors
    /// `OpLayout` naming the rule: a segment written twice, a stash of an
    /// overwritten segment, a read of an overwritten (or the op's own)
    /// segment with no stash of it.
    pub fn record(
        &mut self,
        op_index: u32,
        offset: u64,
        header: &OpHeader,
        extents: &[Extent],
    ) -> Result<()> {
        let layout = |what, expected: u64, found: u64| {
            Err(Error::OpLayout {
                op_index,
                offset,
                what,
                expected,
                found,
            })
        };
        let seg = self.segment_size;
        if matches!(header.kind, OpKind::Xform | OpKind::Streams) {
            return Ok(());
        }
        if header.kind == OpKind::Stash {
            let (Some(e), Ok(slot)) = (extents.first(), usize::try_from(header.dst_offset / seg))
            else {
                return layout("stash extent count", 1, 0);
            };
            let source_segment = e.offset / seg;
            if bit(self.overwritten, source_segment) {
                return layout(
                    "stash source (a segment no earlier op overwrote)",
                    0,
                    e.offset,
                );
            }
            let Some(entry) = self.slots.get_mut(slot) else {
                return layout(
                    "stash slot (declared in the manifest)",
                    0,
                    header.dst_offset,
                );
            };
            // The chain check bounds segments by the source size, far below 2^32 segments
            // for any real device; refuse rather than wrap.
            let Ok(tag) = u32::try_from(source_segment + 1) else {
                return layout("stash source segment index (below 2^32)", 0, source_segment);
            };
            *entry = tag;
            return Ok(());
        }
        let dst_segment = header.dst_offset / seg;
        if dst_segment >= self.target_segments || bit(self.written, dst_segment) {
            return layout(
                "destination segment (each written once)",
                0,
                header.dst_offset,
            );
        }
        // Reads: every segment an extent touches must still be in the image
        // and not the op's own destination, or be stashed.
        for e in extents {
            let end = e.offset.saturating_add(e.len);
            let mut s = e.offset / seg;
            while s.saturating_mul(seg) < end {
                let unavailable = bit(self.overwritten, s) || s == dst_segment;
                if unavailable && header.kind != OpKind::Skip && self.slot_of(s).is_none() {
                    return layout(
                        "source segment (not overwritten before this op, or stashed)",
                        0,
                        s.saturating_mul(seg),
                    );
                }
                s += 1;
            }
        }
        set_bit(self.written, dst_segment);
        self.written_count += 1;
        if header.kind != OpKind::Skip {
            set_bit(self.overwritten, dst_segment);
        }
        Ok(())
    }

    /// Slot holding source segment `segment`, if one does.
    fn slot_of(&self, segment: u64) -> Option<u32> {
        let tag = segment.checked_add(1)?;
        self.slots
            .iter()
            .position(|&t| u64::from(t) == tag)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Where the first piece of the source range `[offset, offset + len)`
    /// lives now: in the image, or in a scratch slot when its segment was
    /// overwritten (or is being overwritten by the current op). The piece
    /// never crosses a segment boundary; call again for the rest.
    ///
    /// `None` when the range is empty, leaves the source, or its segment is
    /// gone with no stash ([`Self::record`] refuses ops that would do that).
    pub fn locate(&self, offset: u64, len: u64) -> Option<SourcePiece> {
        let seg = self.segment_size;
        let end = offset.checked_add(len)?;
        if len == 0 || end > self.source_size {
            return None;
        }
        let segment = offset / seg;
        let seg_end = segment.checked_add(1)?.checked_mul(seg)?;
        let piece_len = end.min(seg_end) - offset;
        if !bit(self.overwritten, segment) {
            return Some(SourcePiece::Image {
                offset,
                len: piece_len,
            });
        }
        let slot = self.slot_of(segment)?;
        Some(SourcePiece::Scratch {
            slot,
            offset: offset - segment * seg,
            len: piece_len,
        })
    }

    /// Number of grid segments tracked (source or target, whichever is longer).
    pub fn grid_segments(&self) -> u64 {
        self.grid_segments
    }
}

/// Segments of the slot grid: enough for the longer of source and target.
fn grid_segments(m: &Manifest) -> u64 {
    m.source_size
        .max(m.target_size)
        .div_ceil(u64::from(m.segment_size.max(1)))
}

fn bit(map: &[u8], i: u64) -> bool {
    usize::try_from(i / 8)
        .ok()
        .and_then(|b| map.get(b))
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn set_bit(map: &mut [u8], i: u64) {
    if let Some(b) = usize::try_from(i / 8).ok().and_then(|b| map.get_mut(b)) {
        *b |= 1 << (i % 8);
    }
}
