//! `fota flash`: the on-device applier (`fota-agent`) run on files that
//! stand for a device's flash.
//!
//! ```text
//! address space   [ IMG: image / target slot (+ MCUboot trailer blocks) ]
//!                 [ OLD: A/B source slot, read only                     ]
//!                 [ STATE: journal (2 erase blocks) | scratch (in place) ]
//! ```
//!
//! Nothing is written before the agent has checked the signature, the
//! device, the layout and the source image; every program and erase is
//! synced before the next, so a kill at any instant leaves the files as a
//! power cut would leave a flash, and running the same command again
//! resumes from the journal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use fota_agent::boot::{mcuboot_trailer_len, McubootTrailer};
use fota_agent::file::{map_in_place, Access, FileFlash, FilePackage, Geometry, OwnedBuffers};
use fota_agent::{
    Block, BootControl, Config, Error as AgentError, Flash, FlashError, Layout, PackageSource,
    Range, Report, Slots,
};
use fota_format::{Error as FormatError, Label, Manifest, Mode};
use fota_generator::keys;

use crate::args::{BootArg, FlashArgs};
use crate::human;

/// Test hook: microseconds to sleep before every program and erase, so
/// that a test can kill the command at instants spread over many flash
/// operations. Not a user option; the agent library knows nothing of it.
const DELAY_ENV: &str = "FOTA_FLASH_DELAY_US";

/// `BOOT_MAX_ALIGN` used for the MCUboot trailer (MCUboot's default is 8).
const MCUBOOT_MIN_ALIGN: usize = 8;

/// Runs `fota flash`.
pub fn run(a: FlashArgs) -> Result<()> {
    let started = Instant::now();
    let trusted = [keys::read_public(&a.pubkey)?];
    let device_class = Label::new(a.device.device_class.as_deref().unwrap_or(""))
        .with_context(|| format!("--device-class {:?}", a.device.device_class))?;
    let mut package = FilePackage::open(&a.package)?;
    let m = read_manifest(&mut package, &trusted, &a.package)?;
    if a.boot != BootArg::None && m.mode != Mode::AB {
        return Err(anyhow!(
            "--boot: an in-place update has no other slot to hand over to; use it with --source"
        ));
    }
    match (&a.source, m.mode) {
        (None, Mode::AB) => {
            return Err(anyhow!(
                "{}: an A/B package: give the running image with --source OLD",
                a.package.display()
            ))
        }
        (Some(_), Mode::InPlace) => {
            return Err(anyhow!(
                "{}: an in-place package: drop --source, IMG holds the old image",
                a.package.display()
            ))
        }
        _ => {}
    }
    if a.source.is_none() {
        std::fs::metadata(&a.image)
            .with_context(|| format!("{}: the image to update in place", a.image.display()))?;
    }
    if a.erase_size == 0 || u64::from(m.segment_size) % a.erase_size != 0 {
        return Err(anyhow!(
            "{}: its {}-byte segments are not whole erase blocks of --erase-size {}",
            a.package.display(),
            m.segment_size,
            a.erase_size
        ));
    }
    let geometry = Geometry {
        erase_size: a.erase_size,
        write_size: a.write_size,
        read_size: 1,
        erased_value: 0xff,
    };
    let mut flash = FileFlash::new(geometry).context("--erase-size / --write-size")?;
    let plan = plan(&a, &m, &mut flash)?;
    println!(
        "package   {}: {}, {} ops, {}-byte segments, {} -> {} bytes",
        a.package.display(),
        if m.mode == Mode::AB {
            "A/B"
        } else {
            "in place"
        },
        m.op_count,
        human::bytes(m.segment_size.into()),
        human::bytes(m.source_size),
        human::bytes(m.target_size),
    );
    println!("layout    {}", plan.describe);

    let config = Config {
        layout: plan.layout,
        trusted: &trusted,
        device_class,
        security_counter: a.device.security_counter,
    };
    let mut buffers = OwnedBuffers::new(&m, a.write_size, geometry.read_size);
    let delay = std::env::var(DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros);
    let mut observed = Observed {
        inner: flash,
        delay,
        erases: 0,
        programs: 0,
        announced: false,
    };
    let result = fota_agent::block_on(fota_agent::apply(
        &mut observed,
        &mut package,
        &config,
        buffers.lend(),
    ));
    let report = match result {
        Ok(r) => r,
        Err(e) => return Err(explain(e, &a, &mut observed.inner, &mut package)),
    };
    if !observed.announced {
        observed.announce();
    }
    println!("applied   {}", summary(&report));

    match a.boot {
        BootArg::None => {}
        BootArg::Mcuboot => {
            let align = a.write_size.max(MCUBOOT_MIN_ALIGN) as u16;
            let mut trailer = McubootTrailer::new(&mut observed, plan.source, plan.slot, align)
                .map_err(|e| anyhow!("{}: {e}", a.image.display()))?;
            fota_agent::block_on(trailer.set_pending(true))
                .map_err(|e| anyhow!("{}: {e}", a.image.display()))?;
            println!(
                "boot      {} marked pending (test boot) in its MCUboot trailer ({}-byte slot, BOOT_MAX_ALIGN {align})",
                a.image.display(),
                plan.slot.len
            );
        }
        BootArg::File => {
            let path = boot_file(&a.state);
            let mut boot = fota_agent::boot::FileBoot::new(&path, 1);
            fota_agent::block_on(boot.set_pending(true))?;
            println!(
                "boot      {} marked pending (test boot) in {}",
                a.image.display(),
                path.display()
            );
        }
    }
    println!(
        "done      {}: the new image ({} bytes, verified) in {:.2} s; {} erases, {} programs",
        a.image.display(),
        human::bytes(m.target_size),
        started.elapsed().as_secs_f64(),
        observed.erases,
        observed.programs
    );
    Ok(())
}

/// The `--boot file` state file: STATE with `.boot` appended.
pub fn boot_file(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".boot");
    PathBuf::from(p)
}

fn summary(r: &Report) -> String {
    if r.already_finished {
        return "already finished: nothing to do".to_string();
    }
    let start = if r.resumed {
        format!("resumed from op {}", r.started_at_op)
    } else {
        "fresh start".to_string()
    };
    format!(
        "{} ops executed, {} ops found done, {start}",
        r.ops_executed, r.ops_found_done
    )
}

/// Reads the header and manifest and checks the signature: the layout is
/// sized from a manifest only once it is trusted. The agent checks all of
/// it again before writing.
pub(crate) fn read_manifest(
    package: &mut FilePackage,
    trusted: &[fota_format::VerifyingKey],
    path: &Path,
) -> Result<Manifest> {
    read_manifest_of(package, trusted, path).map_err(|e| match package.take_error() {
        Some(io) => io.into(),
        None => e,
    })
}

/// [`read_manifest`] from any package source: the agent's own check.
pub(crate) fn read_manifest_of(
    package: &mut impl PackageSource,
    trusted: &[fota_format::VerifyingKey],
    path: &Path,
) -> Result<Manifest> {
    match fota_agent::block_on(fota_agent::read_manifest(package, trusted)) {
        Ok((m, _)) => Ok(m),
        Err(AgentError::Package(e)) => {
            Err(anyhow::Error::new(e).context(path.display().to_string()))
        }
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

/// The regions mapped and the layout over them.
struct Plan {
    layout: Layout,
    /// A/B: the source slot (also MCUboot's primary slot).
    source: Range,
    /// The slot in IMG: the target or image region plus, with
    /// `--boot mcuboot`, the trailer's erase blocks.
    slot: Range,
    describe: String,
}

fn round_up(n: u64, unit: u64) -> Result<u64> {
    n.div_ceil(unit)
        .checked_mul(unit)
        .ok_or_else(|| anyhow!("region length {n} overflows"))
}

fn plan(a: &FlashArgs, m: &Manifest, flash: &mut FileFlash) -> Result<Plan> {
    let erase = a.erase_size;
    let journal_len = 2 * erase;
    let region = |path: &Path, what: &str, r: Range, extra: &str| {
        format!(
            "{what} {} [{}, {}){extra}",
            path.display(),
            r.start,
            r.end()
        )
    };
    match &a.source {
        None => {
            let layout = map_in_place(flash, &a.image, &a.state, m)?;
            let (Slots::InPlace { image, .. }, journal) = (layout.slots, layout.journal) else {
                return Err(anyhow!("in-place layout expected"));
            };
            Ok(Plan {
                layout,
                source: image,
                slot: image,
                describe: format!(
                    "{}; {}; scratch {} slots in STATE",
                    region(&a.image, "image", image, ""),
                    region(&a.state, "journal", journal, ""),
                    m.scratch_slots
                ),
            })
        }
        Some(old) => {
            let old_len = std::fs::metadata(old)
                .with_context(|| old.display().to_string())?
                .len();
            let target_len = round_up(m.target_size, erase)?;
            let trailer_len = match a.boot {
                BootArg::Mcuboot => {
                    let align = a.write_size.max(MCUBOOT_MIN_ALIGN) as u64;
                    round_up(mcuboot_trailer_len(align), erase)?
                }
                _ => 0,
            };
            let slot = flash.map(&a.image, Access::ReadWrite, 0, target_len + trailer_len)?;
            let source_len = round_up(m.source_size.max(old_len), erase)?;
            let source = flash.map(old, Access::ReadOnly, 0, source_len)?;
            let journal = flash.map(&a.state, Access::ReadWrite, 0, journal_len)?;
            let target = Range::new(slot.start, target_len);
            let trailer = if trailer_len > 0 {
                format!(" + {trailer_len}-byte trailer")
            } else {
                String::new()
            };
            Ok(Plan {
                layout: Layout {
                    slots: Slots::AB { source, target },
                    journal,
                },
                source,
                slot,
                describe: format!(
                    "{}; {}; {}",
                    region(&a.image, "target", target, &trailer),
                    region(old, "source", source, " (read only)"),
                    region(&a.state, "journal", journal, "")
                ),
            })
        }
    }
}

/// Turns an agent error into one line naming the file (and the offset in
/// it) it is about. Refusals keep the format error in the chain (exit 1).
fn explain(
    e: AgentError,
    a: &FlashArgs,
    flash: &mut FileFlash,
    package: &mut FilePackage,
) -> anyhow::Error {
    let image_holds_source = a.source.as_deref().unwrap_or(&a.image);
    match e {
        AgentError::Package(f) => {
            let file = match f {
                FormatError::SourceHashMismatch
                | FormatError::SourceSizeMismatch { .. }
                | FormatError::SourceExtentHashMismatch { .. } => image_holds_source,
                FormatError::TargetHashMismatch | FormatError::SegmentHashMismatch { .. } => {
                    &a.image
                }
                _ => &a.package,
            };
            anyhow::Error::new(f).context(file.display().to_string())
        }
        AgentError::Flash {
            region,
            addr,
            error,
        } => {
            let what = format!("flash {error} in the {region} region");
            match flash.take_error() {
                Some(fe) => anyhow::Error::new(fe).context(what),
                None => match flash.locate(addr) {
                    Some((path, off)) => anyhow!("{}: {what} at offset {off}", path.display()),
                    None => anyhow!("{what} at address {addr:#x}"),
                },
            }
        }
        AgentError::PackageRead { .. } => match package.take_error() {
            Some(fe) => anyhow::Error::new(fe),
            None => anyhow!("{}: {e}", a.package.display()),
        },
        AgentError::Layout { .. } => anyhow!(
            "{}: does not fit this flash (--erase-size {}, --write-size {}): {e}",
            a.package.display(),
            a.erase_size,
            a.write_size
        ),
        AgentError::UnfinishedOtherUpdate { .. } => anyhow!("{}: {e}", a.state.display()),
        AgentError::Verify { addr, .. } => match flash.locate(addr) {
            Some((path, off)) => anyhow!("{}: at offset {off}: {e}", path.display()),
            None => anyhow!("{e}"),
        },
    }
}

/// The flash as the command sees it: counts programs and erases, says
/// when the first write happens (every check has passed by then), and
/// honours the test delay.
struct Observed {
    inner: FileFlash,
    delay: Option<Duration>,
    erases: u64,
    programs: u64,
    announced: bool,
}

impl Observed {
    fn announce(&mut self) {
        self.announced = true;
        println!("verified  signature, device, layout and source image");
    }

    fn before_write(&mut self) {
        if !self.announced {
            self.announce();
        }
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
    }
}

impl Flash for Observed {
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
        self.inner.read(addr, buf).await
    }
    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        self.before_write();
        self.programs += 1;
        self.inner.write(addr, data).await
    }
    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        self.before_write();
        self.erases += 1;
        self.inner.erase(from, to).await
    }
}
