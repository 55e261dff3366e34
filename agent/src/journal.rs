//! The journal: append-only, CRC-protected progress records in two or more
//! erase blocks of their own, written once each and never rewritten.
//!
//! ```text
//! record, 64 bytes, padded with the erased value to the slot length
//!  0 magic "fJ"   2 kind   3 zero   4 seq u32   8 next_op u32
//! 12 pkg_offset u64   20 package id [8]   28 chain sha256 [32]
//! 60 CRC-32 of bytes 0..60
//! ```
//!
//! A record whose CRC does not match, or that cannot be read, is torn: it
//! counts as not written, and its slot is never used again, because every
//! run starts in a freshly erased block (round robin). The newest valid
//! record (highest `seq`) is the state. Writing the record after op k is
//! the commit point of op k.

use crate::error::{Error, Result};
use crate::flash::{Block, Flash};
use crate::layout::Range;

/// Bytes of a record's content.
pub const RECORD_LEN: usize = 64;
/// Longest record slot supported (write or read sizes up to 512 bytes).
pub const MAX_SLOT_LEN: usize = 512;
const MAGIC: [u8; 2] = *b"fJ";

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// The update of this package started (nothing before it wrote flash
    /// outside the journal); `next_op` is 0.
    Begin = 1,
    /// Ops before `next_op` are done.
    Progress = 2,
    /// Every op is done and the target verified.
    Finished = 3,
}

/// One journal record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Kind.
    pub kind: RecordKind,
    /// Sequence number: the newest valid record wins ([`is_newer`]).
    pub seq: u32,
    /// The first op not yet done.
    pub next_op: u32,
    /// Package offset of that op.
    pub pkg_offset: u64,
    /// The package this record belongs to (see [`package_id`]).
    pub package_id: [u8; 8],
    /// sha256 the op at `next_op` must have (the hash chain's state; all
    /// zero for a format-v3 package, which has no chain).
    pub chain: [u8; 32],
}

/// CRC-32 (IEEE, reflected), bitwise: no table, a few hundred bytes of code.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

impl Record {
    /// Encodes the record's 64 bytes.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        let fields: [&[u8]; 8] = [
            &MAGIC,
            &[self.kind as u8, 0],
            &self.seq.to_le_bytes(),
            &self.next_op.to_le_bytes(),
            &self.pkg_offset.to_le_bytes(),
            &self.package_id,
            &self.chain,
            &[],
        ];
        let mut at = 0;
        for f in fields {
            if let Some(dst) = out.get_mut(at..at + f.len()) {
                dst.copy_from_slice(f);
            }
            at += f.len();
        }
        let crc = crc32(out.get(..60).unwrap_or(&[]));
        if let Some(dst) = out.get_mut(60..64) {
            dst.copy_from_slice(&crc.to_le_bytes());
        }
        out
    }

    /// Decodes a record, `None` when it is torn, erased or not a record.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let b: &[u8; RECORD_LEN] = bytes.get(..RECORD_LEN)?.try_into().ok()?;
        let crc = u32::from_le_bytes(b[60..64].try_into().ok()?);
        if b[..2] != MAGIC || b[3] != 0 || crc32(&b[..60]) != crc {
            return None;
        }
        let kind = match b[2] {
            1 => RecordKind::Begin,
            2 => RecordKind::Progress,
            3 => RecordKind::Finished,
            _ => return None,
        };
        Some(Record {
            kind,
            seq: u32::from_le_bytes(b[4..8].try_into().ok()?),
            next_op: u32::from_le_bytes(b[8..12].try_into().ok()?),
            pkg_offset: u64::from_le_bytes(b[12..20].try_into().ok()?),
            package_id: b[20..28].try_into().ok()?,
            chain: b[28..60].try_into().ok()?,
        })
    }
}

/// The id binding journal records to one package: the first 8 bytes of
/// sha256 over its signed header and manifest, and in format version 3
/// its op section's sha256 (there the manifest holds no op hash).
pub fn package_id(signed_header: &[u8], manifest: &[u8], ops_sha256: Option<&[u8; 32]>) -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(signed_header);
    h.update(manifest);
    if let Some(ops) = ops_sha256 {
        h.update(ops);
    }
    let d = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// Length of a record slot on this flash: the record rounded up to the
/// write and read sizes.
pub fn slot_len<F: Flash>(flash: &F) -> u64 {
    let unit = lcm(
        flash.write_size().max(1) as u64,
        flash.read_size().max(1) as u64,
    );
    (RECORD_LEN as u64).div_ceil(unit) * unit
}

fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x.max(1) * b
}

/// The journal's write position during a run.
#[derive(Debug, Clone, Copy)]
pub struct Journal {
    /// The block records are appended to.
    block: Block,
    /// Next free slot's address.
    next: u64,
    /// Sequence number of the next record.
    seq: u32,
}

/// What a scan of the journal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The newest valid record, if any.
    pub newest: Option<Record>,
    /// Start of the block holding it.
    pub newest_block: u64,
}

impl Scan {
    /// Nothing found yet: a scan starts here and [`Scan::consider`]s each
    /// readable slot of each journal block.
    pub fn empty(range: Range) -> Scan {
        Scan {
            newest: None,
            newest_block: range.start,
        }
    }

    /// Takes the slot bytes read from the block starting at `block`: a
    /// valid record newer than the newest so far becomes the newest. Torn
    /// or erased slots change nothing.
    pub fn consider(&mut self, slot: &[u8], block: u64) {
        if let Some(r) = Record::decode(slot) {
            if self.newest.is_none_or(|b| is_newer(r.seq, b.seq)) {
                self.newest = Some(r);
                self.newest_block = block;
            }
        }
    }
}

impl Journal {
    /// Where a run writes: the block after the newest record's (round
    /// robin), which the caller erases ([`Journal::block`]) before the
    /// first [`Journal::encode_next`]. That erase is the only one of a
    /// block that may hold live records, and it never touches the block
    /// with the newest one.
    pub fn begin<F: Flash>(flash: &F, range: Range, scan: &Scan) -> Journal {
        let block = next_block(flash, range, scan.newest_block);
        Journal {
            block,
            next: block.start,
            seq: scan.newest.map_or(1, |r| r.seq.wrapping_add(1)),
        }
    }

    /// The block records go to now.
    pub fn block(&self) -> Block {
        self.block
    }

    /// Before a record: when the current block is full, moves to the next
    /// one and returns it, to be erased before the record is written.
    pub fn next_block_if_full<F: Flash>(&mut self, flash: &F, range: Range) -> Option<Block> {
        if self.next + slot_len(flash) <= self.block.end() {
            return None;
        }
        let block = next_block(flash, range, self.block.start);
        self.block = block;
        self.next = block.start;
        Some(block)
    }

    /// Encodes `record` (its `seq` set here) into `buf`'s first slot,
    /// padded with the erased value so programming the padding changes
    /// nothing, and returns the address and length to program it at. The
    /// slot counts as used from here on: a failed program is a torn
    /// record, and the next record goes to the next slot.
    ///
    /// # Errors
    /// [`Error::Layout`] when `buf` is shorter than a slot.
    pub fn encode_next<F: Flash>(
        &mut self,
        flash: &F,
        mut record: Record,
        buf: &mut [u8],
    ) -> Result<(u64, usize)> {
        record.seq = self.seq;
        let slot_len = slot_len(flash);
        let found = buf.len() as u64;
        let slot = buf.get_mut(..slot_len as usize).ok_or(Error::Layout {
            what: "journal buffer length (one record slot)",
            expected: slot_len,
            found,
        })?;
        slot.fill(flash.erased_value());
        if let Some(dst) = slot.get_mut(..RECORD_LEN) {
            dst.copy_from_slice(&record.encode());
        }
        let at = self.next;
        self.next += slot_len;
        self.seq = self.seq.wrapping_add(1);
        Ok((at, slot_len as usize))
    }
}

/// Whether sequence number `a` comes after `b`, in serial-number
/// arithmetic (RFC 1982): numbers wrap past `u32::MAX`, and the records a
/// journal holds at once span far less than 2^31, so the newest one is
/// still found after a wrap.
pub fn is_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Refuses a buffer shorter than a record slot or a record's read.
pub(crate) fn check_buf<F: Flash>(flash: &F, len: usize) -> Result<()> {
    let need = slot_len(flash).max(read_len(flash) as u64);
    if (len as u64) < need {
        return Err(Error::Layout {
            what: "journal buffer length (one record slot)",
            expected: need,
            found: len as u64,
        });
    }
    Ok(())
}

/// Bytes to read for a record's content: 64 rounded up to the read size.
pub(crate) fn read_len<F: Flash>(flash: &F) -> usize {
    let rs = flash.read_size().max(1);
    RECORD_LEN.div_ceil(rs) * rs
}

/// The journal block after the one starting at `after`, wrapping.
fn next_block<F: Flash>(flash: &F, range: Range, after: u64) -> Block {
    let first = flash.block_at(range.start).unwrap_or(Block {
        start: range.start,
        len: range.len,
    });
    match flash.block_at(after) {
        Some(b) if b.end() < range.end() => flash.block_at(b.end()).unwrap_or(first),
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_across_the_wrap() {
        assert!(is_newer(1, 0));
        assert!(!is_newer(0, 1));
        assert!(!is_newer(5, 5));
        assert!(is_newer(0, u32::MAX));
        assert!(is_newer(3, u32::MAX - 3));
        assert!(!is_newer(u32::MAX - 3, 3));
    }

    #[test]
    fn records_round_trip_and_any_flip_is_torn() {
        let r = Record {
            kind: RecordKind::Progress,
            seq: 7,
            next_op: 3,
            pkg_offset: 1234,
            package_id: [1, 2, 3, 4, 5, 6, 7, 8],
            chain: [9; 32],
        };
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes), Some(r));
        for bit in 0..RECORD_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Record::decode(&b), None, "bit {bit}");
        }
        assert_eq!(Record::decode(&[0xff; RECORD_LEN]), None);
        assert_eq!(Record::decode(&[0; RECORD_LEN]), None);
    }
}
