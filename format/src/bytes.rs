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

    /// Reads a minimal LEB128 varint (SPEC §1.3) no larger than `max`.
    ///
    /// # Errors
    /// `Truncated` when it runs past the data; `InvalidField` (at the
    /// varint's first byte) when it is malformed or above `max`.
    pub(crate) fn varint(&mut self, what: &'static str, max: u64) -> Result<u64> {
        use crate::patch::VarintFault;
        let offset = self.offset();
        let invalid = |found| Error::InvalidField {
            offset,
            what,
            found,
        };
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        match crate::patch::decode_varint(rest) {
            Ok((v, _)) if v > max => Err(invalid(v)),
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(VarintFault::Truncated { read }) => Err(Error::Truncated {
                offset,
                needed: read as u64 + 1,
                available: read as u64,
                what,
            }),
            Err(VarintFault::Overlong) => Err(invalid(u64::MAX)),
            Err(VarintFault::NonMinimal(v)) => Err(invalid(v)),
        }
    }

    /// A varint that must fit 32 bits.
    pub(crate) fn varint_u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(self.varint(what, u32::MAX.into())? as u32)
    }

    /// Bytes read so far.
    pub(crate) fn consumed(&self) -> usize {
        self.pos
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

/// A record encoded into a fixed buffer of its largest size: the manifest and
/// op heads, whose varint fields make their length vary.
#[derive(Clone, Copy)]
pub struct Encoded<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Encoded<N> {
    /// The encoded bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }

    /// Runs `write` over a fresh buffer and keeps what it wrote.
    pub(crate) fn build(write: impl FnOnce(&mut Writer<'_>)) -> Self {
        let mut bytes = [0u8; N];
        let mut w = Writer::new(&mut bytes);
        write(&mut w);
        let len = w.written();
        debug_assert!(len <= N, "record longer than its bound");
        Encoded {
            bytes,
            len: len.min(N),
        }
    }
}

impl<const N: usize> core::ops::Deref for Encoded<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> core::fmt::Debug for Encoded<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
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
    /// Writes a minimal LEB128 varint.
    pub(crate) fn varint(&mut self, v: u64) {
        let mut buf = [0u8; crate::patch::MAX_VARINT_LEN];
        let n = crate::patch::write_varint(v, &mut buf);
        self.bytes(buf.get(..n).unwrap_or(&[]));
    }

    pub(crate) fn zeros(&mut self, n: usize) {
        self.pos += n;
    }

    /// Bytes written so far; records assert this equals their fixed length.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }
}
