//! The flash the agent writes, as one trait with async methods.
//!
//! The apply logic is written once, as `async` code over [`Flash`]; a
//! blocking driver runs it with [`crate::block_on`], whose futures are
//! always ready. Adapters cover the `embedded-storage` traits (blocking
//! [`NorFlashAdapter`] and async [`AsyncNorFlashAdapter`]); the simulator,
//! the file-backed flash and the C callbacks implement [`Flash`] directly,
//! since they can describe what the `embedded-storage` traits cannot
//! (mixed sector sizes, erased value 0x00).
//!
//! Contract (the `embedded-storage` one): reads and writes are aligned to
//! [`Flash::read_size`] / [`Flash::write_size`]; every word is written at
//! most once between erases; a power cut during a write leaves the words
//! being written undefined and the rest unchanged; a power cut during an
//! erase leaves the block undefined.

use embedded_storage::nor_flash::{NorFlash, NorFlashErrorKind};

/// What a flash operation reports when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// Power was lost (simulator); the device stops here.
    PowerLost,
    /// The range is outside the device.
    OutOfBounds,
    /// The address or length is not aligned to the device's unit.
    NotAligned,
    /// The device reported an uncorrectable read (e.g. an ECC error on a
    /// word torn by an earlier power cut).
    ReadFailed,
    /// The device refused or failed a program or erase.
    WriteFailed,
}

impl core::fmt::Display for FlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FlashError::PowerLost => "power lost",
            FlashError::OutOfBounds => "access out of bounds",
            FlashError::NotAligned => "access not aligned",
            FlashError::ReadFailed => "uncorrectable read",
            FlashError::WriteFailed => "program or erase failed",
        })
    }
}

/// One erase block: the unit [`Flash::erase`] works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Address of the block's first byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Block {
    /// One past the block's last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// A flash device, or the part of one the agent may use.
#[allow(async_fn_in_trait)]
pub trait Flash {
    /// Reads must start and end on multiples of this.
    fn read_size(&self) -> usize;
    /// Writes must start and end on multiples of this.
    fn write_size(&self) -> usize;
    /// The value every byte reads as after an erase.
    fn erased_value(&self) -> u8 {
        0xff
    }
    /// Bytes addressable.
    fn capacity(&self) -> u64;
    /// The erase block holding `addr`, `None` past the end. Blocks may
    /// differ in size (mixed-sector parts).
    fn block_at(&self, addr: u64) -> Option<Block>;
    /// Reads `buf.len()` bytes at `addr`.
    async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError>;
    /// Programs `data` at `addr` (erased words only).
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError>;
    /// Erases the blocks covering `[from, to)`; both ends are block bounds.
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError>;
}

fn kind_to_error(kind: NorFlashErrorKind) -> FlashError {
    match kind {
        NorFlashErrorKind::NotAligned => FlashError::NotAligned,
        NorFlashErrorKind::OutOfBounds => FlashError::OutOfBounds,
        _ => FlashError::WriteFailed,
    }
}

/// A read failure: `Other` is what drivers report for an unreadable
/// (ECC) word.
fn read_error(kind: NorFlashErrorKind) -> FlashError {
    match kind {
        NorFlashErrorKind::Other => FlashError::ReadFailed,
        k => kind_to_error(k),
    }
}

/// The block holding `addr` on a flash of uniform `erase_size` blocks.
fn uniform_block(addr: u64, erase_size: usize, capacity: u64) -> Option<Block> {
    let size = erase_size as u64;
    (addr < capacity && size > 0).then(|| Block {
        start: addr - addr % size,
        len: size,
    })
}

fn to_u32(v: u64) -> Result<u32, FlashError> {
    u32::try_from(v).map_err(|_| FlashError::OutOfBounds)
}

/// A blocking `embedded-storage` [`NorFlash`] (uniform erase blocks,
/// erased to 0xFF) as a [`Flash`].
#[derive(Debug)]
pub struct NorFlashAdapter<F>(pub F);

impl<F: NorFlash> Flash for NorFlashAdapter<F> {
    fn read_size(&self) -> usize {
        F::READ_SIZE
    }
    fn write_size(&self) -> usize {
        F::WRITE_SIZE
    }
    fn capacity(&self) -> u64 {
        self.0.capacity() as u64
    }
    fn block_at(&self, addr: u64) -> Option<Block> {
        uniform_block(addr, F::ERASE_SIZE, self.capacity())
    }
    async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        use embedded_storage::nor_flash::NorFlashError;
        self.0
            .read(to_u32(addr)?, buf)
            .map_err(|e| read_error(e.kind()))
    }
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        use embedded_storage::nor_flash::NorFlashError;
        self.0
            .write(to_u32(addr)?, data)
            .map_err(|e| kind_to_error(e.kind()))
    }
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        use embedded_storage::nor_flash::NorFlashError;
        self.0
            .erase(to_u32(from)?, to_u32(to)?)
            .map_err(|e| kind_to_error(e.kind()))
    }
}

/// An async `embedded-storage-async` NOR flash (uniform erase blocks,
/// erased to 0xFF) as a [`Flash`], for executors such as embassy.
#[derive(Debug)]
pub struct AsyncNorFlashAdapter<F>(pub F);

impl<F: embedded_storage_async::nor_flash::NorFlash> Flash for AsyncNorFlashAdapter<F> {
    fn read_size(&self) -> usize {
        F::READ_SIZE
    }
    fn write_size(&self) -> usize {
        F::WRITE_SIZE
    }
    fn capacity(&self) -> u64 {
        self.0.capacity() as u64
    }
    fn block_at(&self, addr: u64) -> Option<Block> {
        uniform_block(addr, F::ERASE_SIZE, self.capacity())
    }
    async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        use embedded_storage::nor_flash::NorFlashError;
        self.0
            .read(to_u32(addr)?, buf)
            .await
            .map_err(|e| read_error(e.kind()))
    }
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        use embedded_storage::nor_flash::NorFlashError;
        self.0
            .write(to_u32(addr)?, data)
            .await
            .map_err(|e| kind_to_error(e.kind()))
    }
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        use embedded_storage::nor_flash::NorFlashError;
        self.0
            .erase(to_u32(from)?, to_u32(to)?)
            .await
            .map_err(|e| kind_to_error(e.kind()))
    }
}
