//! The simulated handset's flash: two image slots and a journal, each a
//! file, updated by the real agent. A power cut can be injected after a
//! number of program/erase operations; a "broken" flash fails every
//! program (an install failure the device reports).

use std::path::{Path, PathBuf};

use fota_agent::file::{map_in_place, Access, FileFlash, FilePackage, Geometry, OwnedBuffers};
use fota_agent::{Block, Config, Error as AgentError, Flash, FlashError, Layout, Range, Slots};
use fota_format::{Label, Manifest, Mode, VerifyingKey};

/// What to do to the flash while an update is applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Cut the power after this many program/erase operations (once).
    pub cut_after_ops: Option<u64>,
    /// Every program fails (a worn-out part).
    pub broken: bool,
}

/// A [`FileFlash`] that counts operations and fails as [`Faults`] says.
struct Faulty {
    inner: FileFlash,
    ops: u64,
    faults: Faults,
    cut: bool,
}

impl Faulty {
    fn op(&mut self) -> Result<(), FlashError> {
        self.ops += 1;
        if let Some(n) = self.faults.cut_after_ops {
            if self.ops > n {
                self.cut = true;
                return Err(FlashError::WriteFailed);
            }
        }
        Ok(())
    }
}

impl Flash for Faulty {
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
        if self.cut {
            return Err(FlashError::ReadFailed);
        }
        self.inner.read(addr, buf).await
    }
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        self.op()?;
        if self.faults.broken {
            return Err(FlashError::WriteFailed);
        }
        self.inner.write(addr, data).await
    }
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        self.op()?;
        self.inner.erase(from, to).await
    }
}

/// How an apply run ended.
#[derive(Debug)]
pub enum ApplyOutcome {
    /// The new image is in the target slot, verified.
    Done {
        /// The run resumed an interrupted one.
        resumed: bool,
        /// Ops executed in this run.
        ops: u32,
    },
    /// The injected power cut hit after this many flash operations.
    PowerCut {
        /// Operations done before the cut.
        after_ops: u64,
    },
    /// The agent refused or failed.
    Failed(AgentError),
}

/// The device's flash files.
#[derive(Debug, Clone)]
pub struct DeviceFlash {
    /// The two image slots.
    pub slots: [PathBuf; 2],
    /// The journal (and in-place scratch).
    pub journal: PathBuf,
    /// Erase block size.
    pub erase_size: u64,
    /// Program unit.
    pub write_size: usize,
}

impl DeviceFlash {
    /// The files of a device folder.
    pub fn in_dir(dir: &Path, erase_size: u64, write_size: usize) -> DeviceFlash {
        DeviceFlash {
            slots: [dir.join("slot-a.img"), dir.join("slot-b.img")],
            journal: dir.join("journal.bin"),
            erase_size,
            write_size,
        }
    }

    /// Applies `package` from slot `active` (A/B: into the other slot; in
    /// place: over it). Returns which slot holds the new image on success.
    pub fn apply(
        &self,
        package: &Path,
        active: usize,
        trusted: &[VerifyingKey],
        device_class: &str,
        security_counter: u64,
        faults: Faults,
    ) -> Result<(ApplyOutcome, usize), String> {
        let geometry = Geometry {
            erase_size: self.erase_size,
            write_size: self.write_size,
            read_size: 1,
            erased_value: 0xff,
        };
        let mut pkg = FilePackage::open(package).map_err(|e| e.to_string())?;
        let (m, _) = fota_agent::block_on(fota_agent::read_manifest(&mut pkg, trusted))
            .map_err(|e| format!("{}: {e}", package.display()))?;
        let mut flash = FileFlash::new(geometry).map_err(|e| e.to_string())?;
        let (layout, target) = self.layout(&mut flash, &m, active)?;
        let config = Config {
            layout,
            trusted,
            device_class: Label::new(device_class).map_err(|e| format!("device class: {e}"))?,
            security_counter,
        };
        let mut buffers = OwnedBuffers::new(&m, self.write_size, 1);
        let mut faulty = Faulty {
            inner: flash,
            ops: 0,
            faults,
            cut: false,
        };
        let r = fota_agent::block_on(fota_agent::apply(
            &mut faulty,
            &mut pkg,
            &config,
            buffers.lend(),
        ));
        Ok(match r {
            Ok(rep) => (
                ApplyOutcome::Done {
                    resumed: rep.resumed,
                    ops: rep.ops_executed,
                },
                target,
            ),
            Err(_) if faulty.cut => (
                ApplyOutcome::PowerCut {
                    after_ops: faulty.ops - 1,
                },
                target,
            ),
            Err(e) => (ApplyOutcome::Failed(e), target),
        })
    }

    fn layout(
        &self,
        flash: &mut FileFlash,
        m: &Manifest,
        active: usize,
    ) -> Result<(Layout, usize), String> {
        let e = self.erase_size;
        let up = |n: u64| n.div_ceil(e) * e;
        let err = |x: fota_agent::file::FileError| x.to_string();
        match m.mode {
            Mode::AB => {
                let other = 1 - active;
                let target = flash
                    .map(&self.slots[other], Access::ReadWrite, 0, up(m.target_size))
                    .map_err(err)?;
                let source = flash
                    .map(&self.slots[active], Access::ReadOnly, 0, up(m.source_size))
                    .map_err(err)?;
                let journal = flash
                    .map(&self.journal, Access::ReadWrite, 0, 2 * e)
                    .map_err(err)?;
                Ok((
                    Layout {
                        slots: Slots::AB { source, target },
                        journal: Range::new(journal.start, journal.len),
                    },
                    other,
                ))
            }
            Mode::InPlace => {
                let layout =
                    map_in_place(flash, &self.slots[active], &self.journal, m).map_err(err)?;
                Ok((layout, active))
            }
        }
    }

    /// Forgets a finished update's journal (the next update starts clean).
    pub fn clear_journal(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.journal) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
