//! The `embedded-storage` front ends: the same update through the blocking
//! `NorFlash` adapter and the async one, on a plain in-memory NOR flash.

mod common;

use common::{key, opts, pair};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fota_agent::{
    apply, block_on, work_len, AsyncNorFlashAdapter, Buffers, Config, Flash, Layout,
    NorFlashAdapter, Range, SlicePackage, Slots,
};
use fota_format::{Label, Mode};

const ERASE: usize = 1024;

/// NOR flash in memory: 0xFF after erase, programming ANDs.
struct MemNor(Vec<u8>);

#[derive(Debug)]
struct MemError(NorFlashErrorKind);

impl NorFlashError for MemError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl ErrorType for MemNor {
    type Error = MemError;
}

impl MemNor {
    fn range(&self, offset: u32, len: usize, unit: usize) -> Result<usize, MemError> {
        let (o, end) = (offset as usize, offset as usize + len);
        if end > self.0.len() {
            return Err(MemError(NorFlashErrorKind::OutOfBounds));
        }
        if o % unit != 0 || len % unit != 0 {
            return Err(MemError(NorFlashErrorKind::NotAligned));
        }
        Ok(o)
    }
}

impl ReadNorFlash for MemNor {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MemError> {
        let o = self.range(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.0[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

impl NorFlash for MemNor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = ERASE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), MemError> {
        let o = self.range(from, (to - from) as usize, ERASE)?;
        self.0[o..to as usize].fill(0xff);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MemError> {
        let o = self.range(offset, bytes.len(), 4)?;
        for (cell, b) in self.0[o..].iter_mut().zip(bytes) {
            *cell &= b;
        }
        Ok(())
    }
}

impl embedded_storage_async::nor_flash::ReadNorFlash for MemNor {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), MemError> {
        ReadNorFlash::read(self, offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

impl embedded_storage_async::nor_flash::NorFlash for MemNor {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = ERASE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), MemError> {
        NorFlash::erase(self, from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), MemError> {
        NorFlash::write(self, offset, bytes)
    }
}

/// Runs an A/B update on `flash`, whose first `slot` bytes hold `old`.
fn update(flash: &mut impl Flash, slot: u64, pkg: &[u8]) -> fota_agent::Result<fota_agent::Report> {
    let keys = [key().verifying_key()];
    let layout = Layout {
        slots: Slots::AB {
            source: Range::new(0, slot),
            target: Range::new(slot, slot),
        },
        journal: Range::new(2 * slot, 2 * ERASE as u64),
    };
    let config = Config {
        layout,
        trusted: &keys,
        device_class: Label::new("test-board").unwrap(),
        security_counter: 0,
    };
    let mut work = vec![0u8; work_len(flash.write_size(), flash.read_size())];
    block_on(apply(
        flash,
        &mut SlicePackage(pkg),
        &config,
        Buffers {
            work: &mut work,
            written: &mut [],
            overwritten: &mut [],
            slots: &mut [],
        },
    ))
}

#[test]
fn both_embedded_storage_adapters_apply_an_update() {
    let (old, new) = pair(8 * 1024, 4);
    let pkg = fota_generator::diff(&old, &new, &key(), &opts(Mode::AB, ERASE as u32))
        .unwrap()
        .package;
    let slot = (old.len().max(new.len()) as u64).div_ceil(ERASE as u64) * ERASE as u64;
    let mut image = vec![0xffu8; (2 * slot) as usize + 2 * ERASE];
    image[..old.len()].copy_from_slice(&old);

    let mut blocking = NorFlashAdapter(MemNor(image.clone()));
    update(&mut blocking, slot, &pkg).unwrap();
    assert_eq!(
        &blocking.0 .0[slot as usize..slot as usize + new.len()],
        &new[..]
    );
    assert!(update(&mut blocking, slot, &pkg).unwrap().already_finished);

    let mut nonblocking = AsyncNorFlashAdapter(MemNor(image));
    update(&mut nonblocking, slot, &pkg).unwrap();
    assert_eq!(&nonblocking.0 .0[..], &blocking.0 .0[..]);

    // The adapters' geometry and bounds.
    assert_eq!(
        blocking.block_at(ERASE as u64 + 5).map(|b| b.start),
        Some(ERASE as u64)
    );
    assert!(blocking.block_at(blocking.capacity()).is_none());
}
