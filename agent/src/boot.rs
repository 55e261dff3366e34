//! The hand-off after a finished A/B update: telling the bootloader to try
//! the new slot, and confirming it once it runs.
//!
//! [`BootControl`] is what the agent's caller needs; adapters implement it
//! for a bootloader's own state:
//!
//! * [`McubootTrailer`]: MCUboot's image trailer at the end of the slots,
//!   over any [`Flash`];
//! * [`FileBoot`] (`std` feature): a small state file, for hosts and tests.
//!
//! A/B only: an in-place update has no other slot to fall back to.

use crate::flash::{Flash, FlashError};
use crate::layout::Range;

/// What the bootloader will do with the new slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootState {
    /// Nothing is pending: the running image stays.
    None,
    /// The new slot is marked to be booted next.
    Pending {
        /// Booted for good (`true`) or for a trial that must be confirmed
        /// (`false`).
        permanent: bool,
    },
    /// The new image runs on trial: unless confirmed, the bootloader
    /// reverts once the tries are used up.
    Trial,
    /// The running image is confirmed.
    Confirmed,
}

/// [`BootState`] plus the boots left before a trial reverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootStatus {
    /// The state.
    pub state: BootState,
    /// Trial boots left before a revert, when the bootloader counts them.
    pub tries_remaining: Option<u8>,
}

/// Hand-off to the bootloader after an A/B update.
#[allow(async_fn_in_trait)]
pub trait BootControl {
    /// What the adapter fails with.
    type Error;
    /// Marks the freshly written slot to be booted next: for one trial
    /// (`test`) that must then be confirmed, or for good. Idempotent: a
    /// repeat with the same `test` after a cut finishes the job.
    async fn set_pending(&mut self, test: bool) -> Result<(), Self::Error>;
    /// Confirms the running image (after a trial boot went well).
    async fn confirm(&mut self) -> Result<(), Self::Error>;
    /// Reads the current state.
    async fn state(&mut self) -> Result<BootStatus, Self::Error>;
}

/// Why an MCUboot trailer could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    /// The flash failed at `addr`.
    Flash {
        /// Flash address.
        addr: u64,
        /// What the driver said.
        error: FlashError,
    },
    /// The trailer's magic at `addr` is neither erased nor MCUboot's: the
    /// slot holds something else (MCUboot's `BOOT_MAGIC_BAD`).
    BadMagic {
        /// Flash address of the magic.
        addr: u64,
    },
    /// The slot or the flash does not fit the trailer.
    Geometry {
        /// The rule.
        what: &'static str,
        /// The value that breaks it.
        found: u64,
    },
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootError::Flash { addr, error } => {
                write!(f, "boot trailer: flash {error:?} at {addr:#x}")
            }
            BootError::BadMagic { addr } => write!(
                f,
                "boot trailer: the magic at {addr:#x} is neither erased nor MCUboot's"
            ),
            BootError::Geometry { what, found } => {
                write!(f, "boot trailer: {what} (found {found})")
            }
        }
    }
}

/// MCUboot's `BOOT_MAGIC_SZ`.
pub const MCUBOOT_MAGIC_LEN: usize = 16;
/// The magic when `BOOT_MAX_ALIGN` is 8 (the default).
const MAGIC_ALIGN_8: [u8; 16] = [
    0x77, 0xc2, 0x95, 0xf3, 0x60, 0xd2, 0xef, 0x7f, 0x35, 0x52, 0x50, 0x0f, 0x2c, 0xb6, 0x79, 0x80,
];
/// The last 14 bytes of the magic for any other `BOOT_MAX_ALIGN`; the
/// first two are the alignment, little endian.
const MAGIC_TAIL: [u8; 14] = [
    0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f, 0x1f, 0x8a,
];
/// `BOOT_FLAG_SET`.
const FLAG_SET: u8 = 1;
/// `BOOT_SWAP_TYPE_TEST`.
pub const SWAP_TYPE_TEST: u8 = 2;
/// `BOOT_SWAP_TYPE_PERM`.
pub const SWAP_TYPE_PERM: u8 = 3;
/// Largest trailer field access (the magic rounded up to 32).
const FIELD_BUF: usize = 64;

/// Offsets of the trailer fields from the start of a slot (MCUboot's
/// `boot_*_off()` for a slot without encryption keys and without
/// swap-using-offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerOffsets {
    /// `swap_size`, 4 bytes little endian (`boot_swap_size_off`).
    pub swap_size: u64,
    /// `swap_info`: swap type in bits 0–3, image number in 4–7.
    pub swap_info: u64,
    /// `copy_done` flag.
    pub copy_done: u64,
    /// `image_ok` flag.
    pub image_ok: u64,
    /// The 16-byte magic (`boot_magic_off` = slot size − 16).
    pub magic: u64,
}

/// The magic MCUboot writes for this `BOOT_MAX_ALIGN`.
pub fn mcuboot_magic(max_align: u16) -> [u8; MCUBOOT_MAGIC_LEN] {
    if max_align == 8 {
        return MAGIC_ALIGN_8;
    }
    let mut m = [0u8; MCUBOOT_MAGIC_LEN];
    let (head, tail) = m.split_at_mut(2);
    head.copy_from_slice(&max_align.to_le_bytes());
    tail.copy_from_slice(&MAGIC_TAIL);
    m
}

/// The trailer field offsets for a slot of `slot_len` bytes.
///
/// Source: mcu-tools/mcuboot `docs/design.md`, "Image trailer", and
/// `boot/bootutil/src/bootutil_misc.h` (`boot_magic_off`,
/// `boot_image_ok_off`, `boot_copy_done_off`, `boot_swap_size_off`) with
/// `boot_swap_info_off` in `bootutil_public.c`: the magic takes the last
/// 16 bytes; `image_ok` starts at `ALIGN_DOWN(magic − BOOT_MAX_ALIGN,
/// BOOT_MAX_ALIGN)`; `copy_done`, `swap_info` and `swap_size` each sit
/// `BOOT_MAX_ALIGN` bytes below the previous field.
pub fn mcuboot_offsets(slot_len: u64, max_align: u64) -> TrailerOffsets {
    let magic = slot_len - MCUBOOT_MAGIC_LEN as u64;
    let image_ok = (magic - max_align) / max_align * max_align;
    let copy_done = image_ok - max_align;
    let swap_info = copy_done - max_align;
    let swap_size = swap_info - max_align;
    TrailerOffsets {
        swap_size,
        swap_info,
        copy_done,
        image_ok,
        magic,
    }
}

/// Bytes at the end of a slot the trailer fields take
/// ([`mcuboot_offsets`]'s `swap_size` to the end); the image must end
/// before them (and before the bootloader's swap status area in swap
/// modes, which this adapter does not write).
pub fn mcuboot_trailer_len(max_align: u64) -> u64 {
    // Any slot length that is a multiple of max_align gives the same.
    let slot = 64 * max_align;
    slot - mcuboot_offsets(slot, max_align).swap_size
}

/// What one slot's trailer says (MCUboot's `boot_swap_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailerState {
    /// `Some(true)` good magic, `Some(false)` erased, `None` anything else.
    pub magic: Option<bool>,
    /// `image_ok` is `BOOT_FLAG_SET`.
    pub image_ok: bool,
    /// `copy_done` is `BOOT_FLAG_SET`.
    pub copy_done: bool,
    /// The swap type (`swap_info` bits 0–3), `None` when erased.
    pub swap_type: Option<u8>,
    /// `swap_size`, `None` when erased.
    pub swap_size: Option<u32>,
}

/// MCUboot's image trailer as a [`BootControl`], over the primary
/// (running) and secondary (new) slots of a flash, the way
/// `boot_set_pending` and `boot_set_confirmed` in
/// `boot/bootutil/src/bootutil_public.c` use them:
///
/// * `set_pending(test)` writes `image_ok` (when permanent), the
///   `swap_info` byte (`BOOT_SWAP_TYPE_TEST` or `_PERM`, image 0) and the
///   magic in the secondary slot's trailer. Unlike MCUboot it erases the
///   trailer's erase blocks first and writes the magic last, so a cut
///   halfway never leaves a half-marked slot that looks pending;
/// * `confirm()` sets `image_ok` in the primary slot when its magic is
///   good and the flag unset (nothing to do when the magic is erased);
/// * `state()` follows MCUboot's swap table: secondary magic good means
///   pending (test when `image_ok` is unset, one try); primary magic good
///   with `copy_done` set and `image_ok` unset means a trial run that
///   reverts on the next boot.
///
/// Each field is written as MCUboot's `boot_write_trailer` does: the value
/// padded with the erased value to the flash's write size, which must not
/// exceed `BOOT_MAX_ALIGN`. The secondary slot's image must end before the
/// erase block holding [`TrailerOffsets::swap_size`].
#[derive(Debug)]
pub struct McubootTrailer<'f, F> {
    flash: &'f mut F,
    primary: Range,
    secondary: Range,
    max_align: u16,
}

impl<'f, F: Flash> McubootTrailer<'f, F> {
    /// The trailers of `primary` and `secondary` on `flash`, for MCUboot
    /// built with `BOOT_MAX_ALIGN = max_align` (8 by default).
    ///
    /// # Errors
    /// [`BootError::Geometry`] when `max_align` is not a power of two in
    /// 8..=32, is below the flash's write size, or a slot is not a
    /// multiple of it or too short for the trailer.
    pub fn new(
        flash: &'f mut F,
        primary: Range,
        secondary: Range,
        max_align: u16,
    ) -> Result<Self, BootError> {
        let a = u64::from(max_align);
        let bad = |what, found| Err(BootError::Geometry { what, found });
        if !max_align.is_power_of_two() || !(8..=32).contains(&max_align) {
            return bad("BOOT_MAX_ALIGN must be 8, 16 or 32", a);
        }
        if flash.write_size() as u64 > a || a % flash.write_size().max(1) as u64 != 0 {
            return bad(
                "the flash write size must divide BOOT_MAX_ALIGN",
                flash.write_size() as u64,
            );
        }
        if flash.read_size() > FIELD_BUF || FIELD_BUF % flash.read_size().max(1) != 0 {
            return bad(
                "the flash read size must divide 64",
                flash.read_size() as u64,
            );
        }
        for slot in [primary, secondary] {
            if slot.len % a != 0 || slot.len < 2 * mcuboot_trailer_len(a) {
                return bad(
                    "slot length (a multiple of BOOT_MAX_ALIGN holding the trailer)",
                    slot.len,
                );
            }
            if slot.end() > flash.capacity() {
                return bad("slot end (inside the flash)", slot.end());
            }
        }
        Ok(McubootTrailer {
            flash,
            primary,
            secondary,
            max_align,
        })
    }

    /// Field offsets within a slot of this length.
    pub fn offsets(&self, slot: Range) -> TrailerOffsets {
        mcuboot_offsets(slot.len, self.max_align.into())
    }

    /// Reads `out.len()` bytes at `addr` through an aligned window.
    async fn read(&mut self, addr: u64, out: &mut [u8]) -> Result<(), BootError> {
        let rs = self.flash.read_size().max(1) as u64;
        let base = addr - addr % rs;
        let skip = (addr - base) as usize;
        let span = (skip + out.len()).div_ceil(rs as usize) * rs as usize;
        let mut buf = [0u8; 2 * FIELD_BUF];
        let window = buf.get_mut(..span).ok_or(BootError::Geometry {
            what: "trailer field read span",
            found: span as u64,
        })?;
        self.flash
            .read(base, window)
            .await
            .map_err(|error| BootError::Flash { addr: base, error })?;
        out.copy_from_slice(window.get(skip..skip + out.len()).unwrap_or(&[]));
        Ok(())
    }

    /// Writes `value` at `addr` padded with the erased value to `len`
    /// bytes (`boot_write_trailer`), `value` at the end when `at_end`.
    async fn write_field(
        &mut self,
        addr: u64,
        value: &[u8],
        len: usize,
        at_end: bool,
    ) -> Result<(), BootError> {
        let mut buf = [self.flash.erased_value(); FIELD_BUF];
        let start = if at_end { len - value.len() } else { 0 };
        if let Some(dst) = buf.get_mut(start..start + value.len()) {
            dst.copy_from_slice(value);
        }
        let data = buf.get(..len).unwrap_or(&[]);
        self.flash
            .write(addr, data)
            .await
            .map_err(|error| BootError::Flash { addr, error })
    }

    fn flag_len(&self) -> usize {
        // ALIGN_UP(1, flash align): at most BOOT_MAX_ALIGN (checked in new).
        self.flash.write_size().max(1)
    }

    /// Reads one slot's trailer.
    ///
    /// # Errors
    /// [`BootError::Flash`].
    pub async fn read_trailer(&mut self, slot: Range) -> Result<TrailerState, BootError> {
        let o = self.offsets(slot);
        let erased = self.flash.erased_value();
        let mut magic = [0u8; MCUBOOT_MAGIC_LEN];
        self.read(slot.start + o.magic, &mut magic).await?;
        let magic = if magic == mcuboot_magic(self.max_align) {
            Some(true)
        } else if magic.iter().all(|b| *b == erased) {
            Some(false)
        } else {
            None
        };
        let mut b = [0u8; 1];
        self.read(slot.start + o.image_ok, &mut b).await?;
        let image_ok = b[0] == FLAG_SET;
        self.read(slot.start + o.copy_done, &mut b).await?;
        let copy_done = b[0] == FLAG_SET;
        self.read(slot.start + o.swap_info, &mut b).await?;
        let swap_type = (b[0] != erased).then_some(b[0] & 0x0f);
        let mut s = [0u8; 4];
        self.read(slot.start + o.swap_size, &mut s).await?;
        let swap_size = (s != [erased; 4]).then_some(u32::from_le_bytes(s));
        Ok(TrailerState {
            magic,
            image_ok,
            copy_done,
            swap_type,
            swap_size,
        })
    }
}

impl<F: Flash> BootControl for McubootTrailer<'_, F> {
    type Error = BootError;

    async fn set_pending(&mut self, test: bool) -> Result<(), BootError> {
        let slot = self.secondary;
        let swap_type = if test { SWAP_TYPE_TEST } else { SWAP_TYPE_PERM };
        let now = self.read_trailer(slot).await?;
        if now.magic == Some(true)
            && now.image_ok != test
            && now.swap_type == Some(swap_type)
            && !now.copy_done
        {
            return Ok(());
        }
        let o = self.offsets(slot);
        let first = slot.start + o.swap_size;
        let from = self
            .flash
            .block_at(first)
            .map_or(first, |b| b.start)
            .max(slot.start);
        self.flash
            .erase(from, slot.end())
            .await
            .map_err(|error| BootError::Flash { addr: from, error })?;
        let flag = self.flag_len();
        if !test {
            self.write_field(slot.start + o.image_ok, &[FLAG_SET], flag, false)
                .await?;
        }
        // Image number 0 in bits 4-7 (BOOT_SET_SWAP_INFO).
        self.write_field(slot.start + o.swap_info, &[swap_type], flag, false)
            .await?;
        // boot_write_magic: BOOT_MAGIC_ALIGN_SIZE bytes from
        // ALIGN_DOWN(magic, BOOT_MAX_ALIGN), the magic at their end.
        let a = u64::from(self.max_align);
        let pad_off = o.magic / a * a;
        let len = (MCUBOOT_MAGIC_LEN as u64).div_ceil(a) * a;
        let magic = mcuboot_magic(self.max_align);
        self.write_field(slot.start + pad_off, &magic, len as usize, true)
            .await
    }

    async fn confirm(&mut self) -> Result<(), BootError> {
        let slot = self.primary;
        let now = self.read_trailer(slot).await?;
        match now.magic {
            Some(true) if !now.image_ok => {
                let at = slot.start + self.offsets(slot).image_ok;
                let flag = self.flag_len();
                self.write_field(at, &[FLAG_SET], flag, false).await
            }
            Some(_) => Ok(()),
            None => Err(BootError::BadMagic {
                addr: slot.start + self.offsets(slot).magic,
            }),
        }
    }

    async fn state(&mut self) -> Result<BootStatus, BootError> {
        let secondary = self.read_trailer(self.secondary).await?;
        let primary = self.read_trailer(self.primary).await?;
        let status = |state, tries_remaining| BootStatus {
            state,
            tries_remaining,
        };
        Ok(if secondary.magic == Some(true) {
            if secondary.image_ok {
                status(BootState::Pending { permanent: true }, None)
            } else {
                status(BootState::Pending { permanent: false }, Some(1))
            }
        } else if primary.magic == Some(true) && primary.copy_done && !primary.image_ok {
            status(BootState::Trial, Some(0))
        } else if primary.magic == Some(true) && primary.image_ok {
            status(BootState::Confirmed, None)
        } else {
            status(BootState::None, None)
        })
    }
}

#[cfg(feature = "std")]
pub use file_boot::FileBoot;

#[cfg(feature = "std")]
mod file_boot {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::string::String;

    use super::{BootControl, BootState, BootStatus};
    use crate::file::FileError;

    /// Boot state kept in a small text file, for hosts and tests: one line
    /// `fota-boot 1 <state> <tries>` where state is `none`, `pending-test`,
    /// `pending-permanent`, `trial` or `confirmed` and tries is a number or
    /// `-`. Replaced atomically (temporary file, sync, rename, sync of the
    /// folder), so a kill leaves the old or the new state.
    #[derive(Debug, Clone)]
    pub struct FileBoot {
        path: PathBuf,
        tries: u8,
    }

    impl FileBoot {
        /// The state file at `path` (missing means [`BootState::None`]);
        /// a test boot gets `tries` tries.
        pub fn new(path: &Path, tries: u8) -> FileBoot {
            FileBoot {
                path: path.to_path_buf(),
                tries,
            }
        }

        /// The file's path.
        pub fn path(&self) -> &Path {
            &self.path
        }

        fn io(&self, what: &'static str, source: std::io::Error) -> FileError {
            FileError::Io {
                path: self.path.clone(),
                offset: 0,
                what,
                source,
            }
        }

        fn parse(&self, text: &str) -> Result<BootStatus, FileError> {
            let bad = || {
                self.io(
                    "parse",
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "not a `fota-boot 1 <state> <tries>` line",
                    ),
                )
            };
            let mut w = text.split_whitespace();
            if (w.next(), w.next()) != (Some("fota-boot"), Some("1")) {
                return Err(bad());
            }
            let state = match w.next() {
                Some("none") => BootState::None,
                Some("pending-test") => BootState::Pending { permanent: false },
                Some("pending-permanent") => BootState::Pending { permanent: true },
                Some("trial") => BootState::Trial,
                Some("confirmed") => BootState::Confirmed,
                _ => return Err(bad()),
            };
            let tries_remaining = match w.next() {
                Some("-") => None,
                Some(n) => Some(n.parse().map_err(|_| bad())?),
                None => return Err(bad()),
            };
            if w.next().is_some() {
                return Err(bad());
            }
            Ok(BootStatus {
                state,
                tries_remaining,
            })
        }

        fn store(&self, s: BootStatus) -> Result<(), FileError> {
            let state = match s.state {
                BootState::None => "none",
                BootState::Pending { permanent: false } => "pending-test",
                BootState::Pending { permanent: true } => "pending-permanent",
                BootState::Trial => "trial",
                BootState::Confirmed => "confirmed",
            };
            let tries = s
                .tries_remaining
                .map_or(String::from("-"), |t| std::format!("{t}"));
            let line = std::format!("fota-boot 1 {state} {tries}\n");
            let mut tmp = self.path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(line.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &self.path)?;
                let dir = match self.path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                std::fs::File::open(dir)?.sync_all()
            };
            write().map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                self.io("write", e)
            })
        }
    }

    impl BootControl for FileBoot {
        type Error = FileError;

        async fn set_pending(&mut self, test: bool) -> Result<(), FileError> {
            let wanted = BootStatus {
                state: BootState::Pending { permanent: !test },
                tries_remaining: test.then_some(self.tries),
            };
            if self.state().await? != wanted {
                self.store(wanted)?;
            }
            Ok(())
        }

        async fn confirm(&mut self) -> Result<(), FileError> {
            self.store(BootStatus {
                state: BootState::Confirmed,
                tries_remaining: None,
            })
        }

        async fn state(&mut self) -> Result<BootStatus, FileError> {
            match std::fs::read_to_string(&self.path) {
                Ok(text) => self.parse(&text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BootStatus {
                    state: BootState::None,
                    tries_remaining: None,
                }),
                Err(e) => Err(self.io("read", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on;
    use crate::flash::Block;
    #[cfg(feature = "std")]
    use std::string::ToString;

    /// A RAM flash that enforces write alignment and logs writes.
    struct Ram {
        bytes: [u8; 4096],
        write_size: usize,
        erase: u64,
        writes: usize,
    }

    impl Ram {
        fn new(write_size: usize) -> Ram {
            Ram {
                bytes: [0xff; 4096],
                write_size,
                erase: 512,
                writes: 0,
            }
        }
    }

    impl Flash for Ram {
        fn read_size(&self) -> usize {
            1
        }
        fn write_size(&self) -> usize {
            self.write_size
        }
        fn capacity(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn block_at(&self, addr: u64) -> Option<Block> {
            (addr < self.capacity()).then(|| Block {
                start: addr - addr % self.erase,
                len: self.erase,
            })
        }
        async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError> {
            let a = addr as usize;
            buf.copy_from_slice(
                self.bytes
                    .get(a..a + buf.len())
                    .ok_or(FlashError::OutOfBounds)?,
            );
            Ok(())
        }
        async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
            if addr as usize % self.write_size != 0 || data.len() % self.write_size != 0 {
                return Err(FlashError::NotAligned);
            }
            let a = addr as usize;
            let dst = self
                .bytes
                .get_mut(a..a + data.len())
                .ok_or(FlashError::OutOfBounds)?;
            for (d, s) in dst.iter_mut().zip(data) {
                *d &= *s;
            }
            self.writes += 1;
            Ok(())
        }
        async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
            if from % self.erase != 0 || to % self.erase != 0 {
                return Err(FlashError::NotAligned);
            }
            self.bytes
                .get_mut(from as usize..to as usize)
                .ok_or(FlashError::OutOfBounds)?
                .fill(0xff);
            Ok(())
        }
    }

    const PRIMARY: Range = Range::new(0, 2048);
    const SECONDARY: Range = Range::new(2048, 2048);

    #[test]
    fn offsets_follow_the_design_md_trailer() {
        // BOOT_MAX_ALIGN 8: magic in the last 16 bytes, then one
        // 8-byte-aligned cell per field below it.
        let o = mcuboot_offsets(2048, 8);
        assert_eq!(
            o,
            TrailerOffsets {
                swap_size: 2048 - 48,
                swap_info: 2048 - 40,
                copy_done: 2048 - 32,
                image_ok: 2048 - 24,
                magic: 2048 - 16,
            }
        );
        // BOOT_MAX_ALIGN 32: magic padded to 32 bytes, 32-byte cells.
        let o = mcuboot_offsets(2048, 32);
        assert_eq!(
            (o.magic, o.image_ok, o.copy_done, o.swap_info, o.swap_size),
            (2032, 1984, 1952, 1920, 1888)
        );
        assert_eq!(mcuboot_trailer_len(8), 48);
        assert_eq!(mcuboot_trailer_len(32), 160);
        assert_eq!(mcuboot_magic(8), MAGIC_ALIGN_8);
        assert_eq!(
            mcuboot_magic(32),
            [
                0x20, 0x00, 0x2d, 0xe1, 0x5d, 0x29, 0x41, 0x0b, 0x8d, 0x77, 0x67, 0x9c, 0x11, 0x0f,
                0x1f, 0x8a
            ]
        );
    }

    #[test]
    fn set_pending_writes_the_trailer_bytes_mcuboot_reads() {
        for (test, write_size) in [(true, 4usize), (false, 8), (true, 1)] {
            let mut ram = Ram::new(write_size);
            ram.bytes[..].fill(0x00); // garbage everywhere first
            let mut b = McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 8).unwrap();
            block_on(b.set_pending(test)).unwrap();
            let st = block_on(b.state()).unwrap();
            assert_eq!(st.state, BootState::Pending { permanent: !test });
            assert_eq!(st.tries_remaining, test.then_some(1));
            let end = 4096;
            let t = &ram.bytes[end - 48..end];
            let mut expected = [0xffu8; 48];
            // swap_size (0..4) left erased; swap_info at 8; copy_done at 16
            // erased; image_ok at 24; magic at 32..48.
            expected[8] = if test { 2 } else { 3 };
            if !test {
                expected[24] = 1;
            }
            expected[32..].copy_from_slice(&MAGIC_ALIGN_8);
            assert_eq!(t, &expected, "test={test} write_size={write_size}");
            // The rest of the trailer's erase block is erased, the slot
            // before it untouched.
            assert!(ram.bytes[3584..end - 48].iter().all(|b| *b == 0xff));
            assert!(ram.bytes[2048..3584].iter().all(|b| *b == 0x00));
            // Idempotent: a second call writes nothing.
            let before = ram.writes;
            let mut b = McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 8).unwrap();
            block_on(b.set_pending(test)).unwrap();
            assert_eq!(ram.writes, before);
        }
    }

    #[test]
    fn max_align_32_pads_the_magic_and_cells() {
        let mut ram = Ram::new(32);
        let mut b = McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 32).unwrap();
        block_on(b.set_pending(false)).unwrap();
        let s = &ram.bytes[2048..];
        let mut cell = [0xffu8; 32];
        cell[0] = 1;
        assert_eq!(&s[1984..2016], &cell, "image_ok cell");
        cell[0] = 3;
        assert_eq!(&s[1920..1952], &cell, "swap_info cell");
        assert!(s[1952..1984].iter().all(|b| *b == 0xff), "copy_done unset");
        assert!(s[2016..2032].iter().all(|b| *b == 0xff), "magic padding");
        assert_eq!(&s[2032..], &mcuboot_magic(32));
    }

    #[test]
    fn confirm_and_trial_follow_the_swap_table() {
        let mut ram = Ram::new(4);
        // After a test swap: primary magic good, copy_done set, image_ok unset.
        let o = mcuboot_offsets(2048, 8);
        ram.bytes[o.magic as usize..2048].copy_from_slice(&MAGIC_ALIGN_8);
        ram.bytes[o.copy_done as usize] = 1;
        let mut b = McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 8).unwrap();
        let st = block_on(b.state()).unwrap();
        assert_eq!((st.state, st.tries_remaining), (BootState::Trial, Some(0)));
        block_on(b.confirm()).unwrap();
        assert_eq!(block_on(b.state()).unwrap().state, BootState::Confirmed);
        assert_eq!(
            ram.bytes[o.image_ok as usize..o.image_ok as usize + 4],
            [1, 0xff, 0xff, 0xff]
        );
        // Erased primary trailer: nothing to confirm, nothing written.
        let mut ram = Ram::new(4);
        let mut b = McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 8).unwrap();
        block_on(b.confirm()).unwrap();
        assert_eq!(block_on(b.state()).unwrap().state, BootState::None);
        assert_eq!(ram.writes, 0);
        // Garbage magic: refused.
        let mut ram = Ram::new(4);
        ram.bytes[2040] = 0;
        let mut b = McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 8).unwrap();
        assert_eq!(
            block_on(b.confirm()),
            Err(BootError::BadMagic { addr: 2032 })
        );
    }

    #[test]
    fn bad_geometry_is_refused() {
        let mut ram = Ram::new(16);
        assert!(McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 8).is_err());
        let mut ram = Ram::new(4);
        assert!(McubootTrailer::new(&mut ram, PRIMARY, SECONDARY, 12).is_err());
        assert!(McubootTrailer::new(&mut ram, PRIMARY, Range::new(2048, 4096), 8).is_err());
        assert!(McubootTrailer::new(&mut ram, PRIMARY, Range::new(2048, 60), 8).is_err());
    }

    #[cfg(feature = "std")]
    #[test]
    fn file_boot_round_trip() {
        let p = std::env::temp_dir().join(std::format!("fota-boot-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let mut b = FileBoot::new(&p, 3);
        assert_eq!(block_on(b.state()).unwrap().state, BootState::None);
        block_on(b.set_pending(true)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "fota-boot 1 pending-test 3\n"
        );
        let st = block_on(b.state()).unwrap();
        assert_eq!(
            (st.state, st.tries_remaining),
            (BootState::Pending { permanent: false }, Some(3))
        );
        block_on(b.confirm()).unwrap();
        assert_eq!(block_on(b.state()).unwrap().state, BootState::Confirmed);
        std::fs::write(&p, "garbage").unwrap();
        let e = block_on(b.state()).unwrap_err();
        assert!(e.to_string().contains("parse"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}
