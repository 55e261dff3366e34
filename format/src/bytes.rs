//! A panic-free little-endian reader and writer over byte slices.
//!
//! Every read is bounds-checked and reports the absolute package offset and
//! what was being read, so higher layers never index a slice directly.

use crate::error::{Error, Result};

/// Reads little-endian fields from a slice, tracking the absolute offset.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Reader<'a> {
    /// A reader over `data`, whose first byte sits at package offset `base`.
    pub(crate) fn new(data: &'a [u8], base: u64) -> Self {
        Reader { data, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// Takes `n` bytes, or reports a truncation naming `what`.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(Error::Truncated {
                offset: self.offset(),
                needed: n as u64,
                available: self.data.len().saturating_sub(self.pos) as u64,
                what,
            }),
        }
    }

    /// Takes a fixed-size array.
    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Reads `N` bytes that must all be zero.
    pub(crate) fn reserved<const N: usize>(&mut self) -> Result<()> {
        let offset = self.offset();
        let bytes: [u8; N] = self.array("reserved field")?;
        if bytes.iter().any(|&b| b != 0) {
            return Err(Error::NonZeroReserved { offset });
        }
        Ok(())
    }
}

/// Writes little-endian fields into a fixed buffer. Panics are impossible as
/// long as the caller writes exactly the fields of a record whose length is
/// the buffer's length, which each record's `to_bytes` does by construction.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.out.get_mut(self.pos..self.pos + b.len()) {
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.pos += n;
    }

    /// Bytes written so far; records assert this equals their fixed length.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }
}
