//! Where the agent may read and write: the slots, the scratch area and the
//! journal, checked once against the flash and then against each package.

use fota_format::{Manifest, Mode};

use crate::error::{Error, Result};
use crate::flash::Flash;

/// A byte range of the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Range {
    /// A range of `len` bytes at `start`.
    pub const fn new(start: u64, len: u64) -> Self {
        Range { start, len }
    }

    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.len > 0 && other.len > 0 && self.start < other.end() && other.start < self.end()
    }
}

/// How the slots are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slots {
    /// The target is written to its own slot; the source slot is only read.
    AB {
        /// The running image (read only).
        source: Range,
        /// The slot the update is written to.
        target: Range,
    },
    /// The image is updated where it is, with a scratch area for stashes.
    InPlace {
        /// The image.
        image: Range,
        /// Scratch slots for STASH ops.
        scratch: Range,
    },
}

/// The whole layout: slots plus the journal (at least two erase blocks of
/// its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The slots.
    pub slots: Slots,
    /// The journal's blocks.
    pub journal: Range,
}

fn layout_err(what: &'static str, expected: u64, found: u64) -> Error {
    Error::Layout {
        what,
        expected,
        found,
    }
}

impl Layout {
    /// The region the update writes segments to.
    pub fn target(&self) -> Range {
        match self.slots {
            Slots::AB { target, .. } => target,
            Slots::InPlace { image, .. } => image,
        }
    }

    /// The region the source image is read from.
    pub fn source(&self) -> Range {
        match self.slots {
            Slots::AB { source, .. } => source,
            Slots::InPlace { image, .. } => image,
        }
    }

    /// The scratch area (empty for A/B).
    pub fn scratch(&self) -> Range {
        match self.slots {
            Slots::AB { .. } => Range::new(0, 0),
            Slots::InPlace { scratch, .. } => scratch,
        }
    }

    /// Checks the layout against the flash: every region inside it, on
    /// erase-block bounds, none overlapping; a journal of at least two
    /// blocks, each holding at least two records.
    ///
    /// # Errors
    /// [`Error::Layout`] naming the rule.
    pub fn check<F: Flash>(&self, flash: &F, record_len: u64) -> Result<()> {
        let ws = flash.write_size() as u64;
        let rs = flash.read_size() as u64;
        if ws == 0
            || rs == 0
            || record_len % ws != 0
            || record_len % rs != 0
            || record_len > crate::journal::MAX_SLOT_LEN as u64
        {
            return Err(layout_err(
                "write and read sizes dividing the journal record length",
                record_len,
                ws.max(rs),
            ));
        }
        let regions = [self.source(), self.target(), self.scratch(), self.journal];
        for r in regions {
            if r.len == 0 {
                continue;
            }
            if r.end() > flash.capacity() || r.end() < r.start {
                return Err(layout_err(
                    "region end (inside the flash)",
                    flash.capacity(),
                    r.end(),
                ));
            }
            if !is_block_bound(flash, r.start) || !is_block_bound(flash, r.end()) {
                return Err(layout_err(
                    "region bounds (on erase-block bounds)",
                    0,
                    r.start,
                ));
            }
        }
        let [source, target, scratch, journal] = regions;
        let pairs = match self.slots {
            Slots::AB { .. } => [(source, target), (source, journal), (target, journal)],
            Slots::InPlace { .. } => [(target, scratch), (target, journal), (scratch, journal)],
        };
        for (a, b) in pairs {
            if a.overlaps(&b) {
                return Err(layout_err("regions (not overlapping)", a.end(), b.start));
            }
        }
        let mut blocks = 0u64;
        let mut at = journal.start;
        while at < journal.end() {
            let Some(b) = flash.block_at(at) else { break };
            if b.len < 2 * record_len {
                return Err(layout_err(
                    "journal block length (at least two records)",
                    2 * record_len,
                    b.len,
                ));
            }
            blocks += 1;
            at = b.end();
        }
        if blocks < 2 {
            return Err(layout_err("journal erase blocks (at least 2)", 2, blocks));
        }
        Ok(())
    }

    /// Checks that this package fits: its mode, its sizes, and segment
    /// (and scratch slot) bounds that fall on erase-block bounds.
    ///
    /// # Errors
    /// [`Error::Layout`] naming the rule.
    pub fn check_package<F: Flash>(&self, flash: &F, m: &Manifest) -> Result<()> {
        let seg = u64::from(m.segment_size);
        match (self.slots, m.mode) {
            (Slots::AB { source, target }, Mode::AB) => {
                if m.source_size > source.len {
                    return Err(layout_err("source slot length", m.source_size, source.len));
                }
                if m.target_size > target.len {
                    return Err(layout_err("target slot length", m.target_size, target.len));
                }
            }
            (Slots::InPlace { image, scratch }, Mode::InPlace) => {
                let need = m.source_size.max(m.target_size);
                if need > image.len {
                    return Err(layout_err("image slot length", need, image.len));
                }
                let scratch_need = u64::from(m.scratch_slots).saturating_mul(seg);
                if scratch_need > scratch.len {
                    return Err(layout_err("scratch length", scratch_need, scratch.len));
                }
                for i in 0..=u64::from(m.scratch_slots) {
                    if !is_block_bound(flash, scratch.start + i * seg) {
                        return Err(layout_err(
                            "scratch slot bounds (on erase-block bounds)",
                            0,
                            scratch.start + i * seg,
                        ));
                    }
                }
            }
            (_, mode) => {
                return Err(layout_err(
                    "package mode (the layout's: 0 = A/B, 1 = in-place)",
                    match self.slots {
                        Slots::AB { .. } => 0,
                        Slots::InPlace { .. } => 1,
                    },
                    mode as u64,
                ))
            }
        }
        let target = self.target();
        let segments = m.segment_count();
        for i in 0..segments {
            let start = target.start + i * seg;
            let end = start + m.segment_len(i);
            // The last segment may end inside a block: its erase covers the block.
            let end_ok = i + 1 == segments || is_block_bound(flash, end);
            if !is_block_bound(flash, start) || !end_ok {
                return Err(layout_err(
                    "segment bounds (on erase-block bounds; the segment size must be a multiple of the erase size)",
                    0,
                    start,
                ));
            }
        }
        Ok(())
    }
}

/// True when `addr` starts an erase block (or is the end of the flash).
pub(crate) fn is_block_bound<F: Flash>(flash: &F, addr: u64) -> bool {
    if addr == flash.capacity() {
        return true;
    }
    flash.block_at(addr).is_some_and(|b| b.start == addr)
}
