//! A flash that does not keep what was programmed: the read-back after
//! each op catches it, the op is not committed, and a later run on a
//! healthy flash resumes and finishes.

mod common;

use common::{ab_setup, key, opts, pair};
use fota_agent::file::OwnedBuffers;
use fota_agent::sim::SimFlash;
use fota_agent::{apply, block_on, Block, Error, Flash, FlashError, Region, SlicePackage};
use fota_format::{Mode, Package};

/// Flips one bit of the byte at `bad` on every read once a program has
/// covered it: a cell that does not retain its charge.
struct Leaky {
    inner: SimFlash,
    bad: u64,
    programmed: bool,
}

impl Flash for Leaky {
    fn read_size(&self) -> usize {
        self.inner.read_size()
    }
    fn write_size(&self) -> usize {
        self.inner.write_size()
    }
    fn erased_value(&self) -> u8 {
        self.inner.erased_value()
    }
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn block_at(&self, addr: u64) -> Option<Block> {
        self.inner.block_at(addr)
    }
    async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.inner.read(addr, buf).await?;
        if self.programmed && (addr..addr + buf.len() as u64).contains(&self.bad) {
            buf[(self.bad - addr) as usize] ^= 0x10;
        }
        Ok(())
    }
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        self.inner.write(addr, data).await?;
        if (addr..addr + data.len() as u64).contains(&self.bad) {
            self.programmed = true;
        }
        Ok(())
    }
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        self.inner.erase(from, to).await
    }
}

#[test]
fn a_segment_that_reads_back_wrong_is_a_verify_error_and_not_committed() {
    let (old, new) = pair(8 * 1024, 21);
    let pkg = fota_generator::diff(&old, &new, &key(), &opts(Mode::AB, 1024))
        .unwrap()
        .package;
    let keys = [key().verifying_key()];
    let setup = ab_setup(&old, &new, &pkg, &keys, 1024, 4);
    let target = setup.layout.target().start;
    let m = Package::parse(&pkg).unwrap().manifest_unverified().unwrap();
    // The third byte of the first target segment does not hold.
    let mut flash = Leaky {
        inner: setup.fresh_flash(),
        bad: target + 2,
        programmed: false,
    };
    let mut bufs = OwnedBuffers::new(&m, 4, 1);
    let err = block_on(apply(
        &mut flash,
        &mut SlicePackage(&pkg),
        &setup.config,
        bufs.lend(),
    ))
    .unwrap_err();
    assert_eq!(
        err,
        Error::Verify {
            region: Region::Target,
            addr: target,
            op_index: 0,
        },
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("op 0: the target segment at {target:#x} does not read back as written")
    );

    // The same flash, healthy again: the op was not committed, so the
    // resumed run redoes it and the update finishes.
    let mut healthy = flash.inner;
    let report = setup.run(&mut healthy).unwrap();
    assert!(report.resumed);
    assert_eq!(report.started_at_op, 0);
    assert!(setup.is_done(&healthy));
}
