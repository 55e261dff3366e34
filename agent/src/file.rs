//! Files standing for flash and for the package, on hosts (`std` feature).
//!
//! [`FileFlash`] maps one or more byte ranges of files, one after the
//! other, into one flash address space with a uniform geometry. It models
//! NOR flash closely enough that a process killed at any instant leaves
//! the files as a power cut at that instant would leave a flash:
//!
//! * an erase writes the erased value over whole erase blocks;
//! * a program can only move bits away from the erased value (AND into
//!   the existing bytes when erased is 0xFF, OR when it is 0x00), like a
//!   NOR program; a word programmed twice keeps the bits of both;
//! * every program and erase is one positioned write followed by
//!   `sync_data`, so nothing is reordered or left in a cache past the
//!   call (a host crash then also behaves like a cut);
//! * bytes past a file's end read as erased, and a file is created (and
//!   extended with the erased value) only by the first program or erase
//!   that reaches it: mapping and reading never change a file.
//!
//! [`FilePackage`] reads a package from a file with positioned reads.
//!
//! I/O failures reach the agent as a bare [`FlashError`]; the full story
//! (file, offset, OS error) is kept and handed out by
//! [`FileFlash::take_error`] / [`FilePackage::take_error`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::vec;
use std::vec::Vec;

use crate::flash::{Block, Flash, FlashError};
use crate::layout::Range;
use crate::source::PackageSource;

/// Erase, program and read units of a [`FileFlash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Erase block size in bytes (every block is this size).
    pub erase_size: u64,
    /// Program unit in bytes; divides `erase_size`.
    pub write_size: usize,
    /// Read unit in bytes; divides `erase_size`.
    pub read_size: usize,
    /// The value every byte holds after an erase.
    pub erased_value: u8,
}

impl Default for Geometry {
    /// 4 KiB blocks, 4-byte programs, byte reads, erased to 0xFF.
    fn default() -> Self {
        Geometry {
            erase_size: 4096,
            write_size: 4,
            read_size: 1,
            erased_value: 0xff,
        }
    }
}

/// What went wrong with a file, naming it and the offset.
#[derive(Debug)]
pub enum FileError {
    /// An I/O call failed.
    Io {
        /// The file.
        path: PathBuf,
        /// Byte offset in the file the call was about.
        offset: u64,
        /// What was being done ("read", "program", "erase", "open", ...).
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A program or erase hit a region mapped read-only.
    ReadOnly {
        /// The file.
        path: PathBuf,
        /// Byte offset in the file.
        offset: u64,
    },
    /// A region maps bytes of a file that another region already maps
    /// (say the A/B source and target given as the same file): programming
    /// one would change the other behind the agent's back.
    Overlap {
        /// The file.
        path: PathBuf,
        /// File offset of the overlap's first byte.
        offset: u64,
    },
    /// The geometry or a region does not make a valid flash.
    Geometry {
        /// The rule.
        what: &'static str,
        /// The value that breaks it.
        found: u64,
    },
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileError::Io {
                path,
                offset,
                what,
                source,
            } => write!(f, "{}: {what} at offset {offset}: {source}", path.display()),
            FileError::ReadOnly { path, offset } => write!(
                f,
                "{}: program or erase at offset {offset} of a read-only region",
                path.display()
            ),
            FileError::Overlap { path, offset } => write!(
                f,
                "{}: bytes from offset {offset} are mapped twice (the same file given for two regions?)",
                path.display()
            ),
            FileError::Geometry { what, found } => {
                write!(f, "flash geometry: {what} (found {found})")
            }
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Whether a mapped region may be programmed and erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only: programs and erases fail with [`FileError::ReadOnly`].
    ReadOnly,
    /// Reads, programs and erases; the file is created on the first
    /// program or erase if it does not exist.
    ReadWrite,
}

#[derive(Debug)]
struct Region {
    path: PathBuf,
    /// The file's canonical path, to find two regions of one file.
    identity: PathBuf,
    /// Open handle; `None` until a writable file that did not exist is
    /// first programmed or erased.
    file: Option<File>,
    access: Access,
    /// Flash address of the region's first byte.
    start: u64,
    len: u64,
    /// File offset of the region's first byte.
    file_offset: u64,
}

/// Flash made of file regions (see the module docs for the model).
#[derive(Debug)]
pub struct FileFlash {
    geometry: Geometry,
    regions: Vec<Region>,
    capacity: u64,
    error: Option<FileError>,
}

/// The canonical path of `path`, or of its folder joined with its name
/// when the file does not exist yet (a writable region creates it).
fn identity(path: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let name = path.file_name().ok_or(e)?;
            Ok(std::fs::canonicalize(parent)?.join(name))
        }
        Err(e) => Err(e),
    }
}

/// Largest piece written at once when erasing or extending a file.
const FILL_CHUNK: usize = 64 * 1024;

impl FileFlash {
    /// An empty flash with this geometry; add regions with [`Self::map`].
    ///
    /// # Errors
    /// [`FileError::Geometry`] when a size is zero or the write or read
    /// size does not divide the erase size.
    pub fn new(geometry: Geometry) -> Result<FileFlash, FileError> {
        let g = geometry;
        let bad = |what, found: u64| Err(FileError::Geometry { what, found });
        if g.erase_size == 0 {
            return bad("erase size must not be 0", 0);
        }
        if g.write_size == 0 || g.erase_size % g.write_size as u64 != 0 {
            return bad(
                "write size must be non-zero and divide the erase size",
                g.write_size as u64,
            );
        }
        if g.read_size == 0 || g.erase_size % g.read_size as u64 != 0 {
            return bad(
                "read size must be non-zero and divide the erase size",
                g.read_size as u64,
            );
        }
        Ok(FileFlash {
            geometry,
            regions: Vec::new(),
            capacity: 0,
            error: None,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Appends `len` bytes of `path`, from `file_offset` on, to the
    /// address space and returns their flash range. The file need not be
    /// that long (bytes past its end read as erased); a writable file need
    /// not exist yet. Nothing is written.
    ///
    /// # Errors
    /// [`FileError::Geometry`] when `len` is not a whole number of erase
    /// blocks; [`FileError::Io`] when an existing file cannot be opened
    /// (or a read-only one does not exist).
    pub fn map(
        &mut self,
        path: &Path,
        access: Access,
        file_offset: u64,
        len: u64,
    ) -> Result<Range, FileError> {
        if len % self.geometry.erase_size != 0 {
            return Err(FileError::Geometry {
                what: "region length must be a whole number of erase blocks",
                found: len,
            });
        }
        let io_err = |source| FileError::Io {
            path: path.to_path_buf(),
            offset: 0,
            what: "open",
            source,
        };
        let identity = identity(path).map_err(io_err)?;
        let end = file_offset.saturating_add(len);
        if let Some(r) = self.regions.iter().find(|r| {
            r.identity == identity && file_offset < r.file_offset + r.len && r.file_offset < end
        }) {
            return Err(FileError::Overlap {
                path: path.to_path_buf(),
                offset: file_offset.max(r.file_offset),
            });
        }
        let file = match access {
            Access::ReadOnly => Some(File::open(path).map_err(io_err)?),
            Access::ReadWrite => match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(e)),
            },
        };
        let start = self.capacity;
        self.capacity = start.checked_add(len).ok_or(FileError::Geometry {
            what: "address space must fit in 64 bits",
            found: len,
        })?;
        self.regions.push(Region {
            path: path.to_path_buf(),
            identity,
            file,
            access,
            start,
            len,
            file_offset,
        });
        Ok(Range::new(start, len))
    }

    /// The file and file offset behind flash address `addr`.
    pub fn locate(&self, addr: u64) -> Option<(&Path, u64)> {
        let r = self.region_at(addr)?;
        Some((&r.path, r.file_offset + (addr - r.start)))
    }

    /// The detailed error behind the last [`FlashError`] returned, if any
    /// (taken: a second call returns `None`).
    pub fn take_error(&mut self) -> Option<FileError> {
        self.error.take()
    }

    fn region_at(&self, addr: u64) -> Option<&Region> {
        self.regions
            .iter()
            .find(|r| addr >= r.start && addr - r.start < r.len)
    }

    fn region_index(&self, addr: u64) -> Option<usize> {
        self.regions
            .iter()
            .position(|r| addr >= r.start && addr - r.start < r.len)
    }

    fn check(&self, addr: u64, len: usize, unit: usize) -> Result<(), FlashError> {
        let end = addr
            .checked_add(len as u64)
            .ok_or(FlashError::OutOfBounds)?;
        if end > self.capacity {
            return Err(FlashError::OutOfBounds);
        }
        let unit = unit as u64;
        if addr % unit != 0 || len as u64 % unit != 0 {
            return Err(FlashError::NotAligned);
        }
        Ok(())
    }

    /// Splits `[addr, addr + len)` into (region index, offset in region,
    /// offset in the request, length) pieces; the range is in bounds.
    fn pieces(&self, addr: u64, len: u64) -> Vec<(usize, u64, u64, u64)> {
        let mut out = Vec::new();
        let mut done = 0u64;
        while done < len {
            let a = addr + done;
            let Some(i) = self.region_index(a) else { break };
            let Some(r) = self.regions.get(i) else { break };
            let in_region = a - r.start;
            let n = (r.len - in_region).min(len - done);
            out.push((i, in_region, done, n));
            done += n;
        }
        out
    }

    fn fail(&mut self, error: FileError, kind: FlashError) -> FlashError {
        self.error = Some(error);
        kind
    }

    /// Reads region bytes, erased past the file's end.
    fn read_region(&mut self, i: usize, at: u64, buf: &mut [u8]) -> Result<(), FileError> {
        let erased = self.geometry.erased_value;
        let Some(r) = self.regions.get(i) else {
            return Ok(());
        };
        let Some(file) = r.file.as_ref() else {
            buf.fill(erased);
            return Ok(());
        };
        let offset = r.file_offset + at;
        let mut done = 0usize;
        while done < buf.len() {
            let dst = buf.get_mut(done..).unwrap_or(&mut []);
            match file.read_at(dst, offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(FileError::Io {
                        path: r.path.clone(),
                        offset: offset + done as u64,
                        what: "read",
                        source,
                    })
                }
            }
        }
        if let Some(rest) = buf.get_mut(done..) {
            rest.fill(erased);
        }
        Ok(())
    }

    /// Writes `data` at region offset `at` and syncs: the file is opened
    /// (created) if needed and extended with the erased value up to `at`
    /// first, so no hole of zeros ever appears.
    fn write_region(
        &mut self,
        i: usize,
        at: u64,
        data: &[u8],
        what: &'static str,
    ) -> Result<(), FileError> {
        let erased = self.geometry.erased_value;
        let Some(r) = self.regions.get_mut(i) else {
            return Ok(());
        };
        let offset = r.file_offset + at;
        if r.access == Access::ReadOnly {
            return Err(FileError::ReadOnly {
                path: r.path.clone(),
                offset,
            });
        }
        let io_err = |path: &Path, offset, what, source| FileError::Io {
            path: path.to_path_buf(),
            offset,
            what,
            source,
        };
        if r.file.is_none() {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&r.path)
                .map_err(|e| io_err(&r.path, 0, "create", e))?;
            r.file = Some(f);
        }
        let Some(file) = r.file.as_ref() else {
            return Ok(());
        };
        let eof = file
            .metadata()
            .map_err(|e| io_err(&r.path, offset, "stat", e))?
            .len();
        let mut fill_at = eof;
        while fill_at < offset {
            let n = ((offset - fill_at) as usize).min(FILL_CHUNK);
            file.write_all_at(&vec![erased; n], fill_at)
                .map_err(|e| io_err(&r.path, fill_at, "extend", e))?;
            fill_at += n as u64;
        }
        file.write_all_at(data, offset)
            .map_err(|e| io_err(&r.path, offset, what, e))?;
        file.sync_data()
            .map_err(|e| io_err(&r.path, offset, "sync", e))
    }
}

/// The result of programming `data` over `old`: only bits that differ
/// from the erased value in `data` change, and they change away from it.
fn program(old: u8, data: u8, erased: u8) -> u8 {
    let mask = data ^ erased;
    (old & !mask) | (!erased & mask)
}

impl Flash for FileFlash {
    fn read_size(&self) -> usize {
        self.geometry.read_size
    }
    fn write_size(&self) -> usize {
        self.geometry.write_size
    }
    fn erased_value(&self) -> u8 {
        self.geometry.erased_value
    }
    fn capacity(&self) -> u64 {
        self.capacity
    }
    fn block_at(&self, addr: u64) -> Option<Block> {
        let size = self.geometry.erase_size;
        (addr < self.capacity).then(|| Block {
            start: addr - addr % size,
            len: size,
        })
    }

    async fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.check(addr, buf.len(), self.geometry.read_size)?;
        for (i, at, from, n) in self.pieces(addr, buf.len() as u64) {
            let dst = buf
                .get_mut(from as usize..(from + n) as usize)
                .unwrap_or(&mut []);
            if let Err(e) = self.read_region(i, at, dst) {
                return Err(self.fail(e, FlashError::ReadFailed));
            }
        }
        Ok(())
    }

    async fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), FlashError> {
        self.check(addr, data.len(), self.geometry.write_size)?;
        let erased = self.geometry.erased_value;
        for (i, at, from, n) in self.pieces(addr, data.len() as u64) {
            let src = data.get(from as usize..(from + n) as usize).unwrap_or(&[]);
            let mut cell = vec![0u8; src.len()];
            if let Err(e) = self.read_region(i, at, &mut cell) {
                return Err(self.fail(e, FlashError::WriteFailed));
            }
            for (c, d) in cell.iter_mut().zip(src) {
                *c = program(*c, *d, erased);
            }
            if let Err(e) = self.write_region(i, at, &cell, "program") {
                return Err(self.fail(e, FlashError::WriteFailed));
            }
        }
        Ok(())
    }

    async fn erase(&mut self, from: u64, to: u64) -> Result<(), FlashError> {
        let size = self.geometry.erase_size;
        if to < from || to > self.capacity {
            return Err(FlashError::OutOfBounds);
        }
        if from % size != 0 || to % size != 0 {
            return Err(FlashError::NotAligned);
        }
        let erased = vec![self.geometry.erased_value; FILL_CHUNK.min((to - from) as usize)];
        for (i, at, _, n) in self.pieces(from, to - from) {
            let mut done = 0u64;
            while done < n {
                let k = (n - done).min(erased.len() as u64) as usize;
                let chunk = erased.get(..k).unwrap_or(&[]);
                if let Err(e) = self.write_region(i, at + done, chunk, "erase") {
                    return Err(self.fail(e, FlashError::WriteFailed));
                }
                done += k as u64;
            }
        }
        Ok(())
    }
}

/// The in-place layout over two files, as `fota flash` and the device
/// simulator use it: IMG holds the image (the old one, then the new one),
/// rounded up to whole erase blocks; STATE holds the journal (two erase
/// blocks) and then the package's scratch slots.
///
/// # Errors
/// [`FileError::Geometry`] when a length overflows; [`FileError::Io`]
/// when a file cannot be opened.
pub fn map_in_place(
    flash: &mut FileFlash,
    image: &Path,
    state: &Path,
    manifest: &fota_format::Manifest,
) -> Result<crate::Layout, FileError> {
    let erase = flash.geometry().erase_size;
    let round_up = |n: u64| {
        n.div_ceil(erase)
            .checked_mul(erase)
            .ok_or(FileError::Geometry {
                what: "region length must fit in 64 bits",
                found: n,
            })
    };
    let image_len = round_up(manifest.source_size.max(manifest.target_size))?;
    let seg = u64::from(manifest.segment_size);
    let scratch_len = round_up(u64::from(manifest.scratch_slots).saturating_mul(seg))?;
    let journal_len = 2 * erase;
    let image = flash.map(image, Access::ReadWrite, 0, image_len)?;
    let state = flash.map(state, Access::ReadWrite, 0, journal_len + scratch_len)?;
    Ok(crate::Layout {
        slots: crate::Slots::InPlace {
            image,
            scratch: Range::new(state.start + journal_len, scratch_len),
        },
        journal: Range::new(state.start, journal_len),
    })
}

/// The memory an update borrows ([`crate::Buffers`]), owned: sized for a
/// manifest and a flash geometry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedBuffers {
    work: Vec<u8>,
    written: Vec<u8>,
    overwritten: Vec<u8>,
    slots: Vec<u32>,
}

impl OwnedBuffers {
    /// Buffers for applying `manifest`'s package on a flash with these
    /// write and read sizes.
    pub fn new(manifest: &fota_format::Manifest, write_size: usize, read_size: usize) -> Self {
        let bitmap = if manifest.mode == fota_format::Mode::InPlace {
            fota_format::InPlaceTracker::bitmap_len(manifest)
        } else {
            0
        };
        OwnedBuffers {
            work: vec![0; crate::work_len_for(write_size, read_size, manifest.xform_len)],
            written: vec![0; bitmap],
            overwritten: vec![0; bitmap],
            slots: vec![0; manifest.scratch_slots as usize],
        }
    }

    /// Lends them to one [`crate::apply`] run.
    pub fn lend(&mut self) -> crate::Buffers<'_> {
        crate::Buffers {
            work: &mut self.work,
            written: &mut self.written,
            overwritten: &mut self.overwritten,
            slots: &mut self.slots,
        }
    }
}

/// A package read from a file with positioned reads; its length is taken
/// when it is opened.
#[derive(Debug)]
pub struct FilePackage {
    path: PathBuf,
    file: File,
    len: u64,
    error: Option<FileError>,
}

impl FilePackage {
    /// Opens the package at `path`.
    ///
    /// # Errors
    /// [`FileError::Io`] when it cannot be opened or measured.
    pub fn open(path: &Path) -> Result<FilePackage, FileError> {
        let io_err = |what, source| FileError::Io {
            path: path.to_path_buf(),
            offset: 0,
            what,
            source,
        };
        let file = File::open(path).map_err(|e| io_err("open", e))?;
        let len = file.metadata().map_err(|e| io_err("stat", e))?.len();
        Ok(FilePackage {
            path: path.to_path_buf(),
            file,
            len,
            error: None,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detailed error behind the last failed read, if any (taken).
    pub fn take_error(&mut self) -> Option<FileError> {
        self.error.take()
    }
}

impl PackageSource for FilePackage {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read(&mut self, offset: u64, buf: &mut [u8]) -> bool {
        let in_bounds = offset
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= self.len);
        if !in_bounds {
            return false;
        }
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => true,
            Err(source) => {
                self.error = Some(FileError::Io {
                    path: self.path.clone(),
                    offset,
                    what: "read",
                    source,
                });
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on;
    use std::string::ToString;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(std::format!(
            "fota-agent-file-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    fn geometry(erased_value: u8) -> Geometry {
        Geometry {
            erase_size: 16,
            write_size: 4,
            read_size: 1,
            erased_value,
        }
    }

    #[test]
    fn program_moves_bits_away_from_erased_only() {
        assert_eq!(program(0xff, 0x5a, 0xff), 0x5a);
        assert_eq!(program(0x0f, 0xf5, 0xff), 0x05);
        assert_eq!(program(0x00, 0x5a, 0x00), 0x5a);
        assert_eq!(program(0xf0, 0x0f, 0x00), 0xff);
        for old in [0u8, 0x33, 0xff] {
            assert_eq!(program(old, 0xff, 0xff), old, "erased data changes nothing");
            assert_eq!(program(old, 0x00, 0x00), old);
        }
    }

    #[test]
    fn one_file_mapped_twice_is_refused_where_the_ranges_overlap() {
        let a = tmp("overlap");
        std::fs::write(&a, [0u8; 64]).unwrap();
        let mut f = FileFlash::new(geometry(0xff)).unwrap();
        f.map(&a, Access::ReadOnly, 0, 32).unwrap();
        // The same file by another spelling, overlapping: refused.
        let other = a.parent().unwrap().join(".").join(a.file_name().unwrap());
        match f.map(&other, Access::ReadWrite, 16, 32) {
            Err(FileError::Overlap { offset: 16, .. }) => {}
            r => panic!("{r:?}"),
        }
        // Disjoint parts of one file are separate regions (one flash
        // image holding both slots).
        f.map(&a, Access::ReadWrite, 32, 32).unwrap();
        // A file that does not exist yet, mapped twice.
        let b = tmp("overlap-new");
        f.map(&b, Access::ReadWrite, 0, 16).unwrap();
        assert!(matches!(
            f.map(&b, Access::ReadWrite, 0, 16),
            Err(FileError::Overlap { offset: 0, .. })
        ));
        let _ = std::fs::remove_file(&a);
    }

    #[test]
    fn maps_files_lazily_and_behaves_like_nor() {
        let a = tmp("a");
        let b = tmp("b");
        std::fs::write(&a, [1u8, 2, 3, 4, 5]).unwrap();
        let mut f = FileFlash::new(geometry(0xff)).unwrap();
        let ra = f.map(&a, Access::ReadOnly, 0, 16).unwrap();
        let rb = f.map(&b, Access::ReadWrite, 0, 32).unwrap();
        assert_eq!((ra, rb), (Range::new(0, 16), Range::new(16, 32)));
        assert!(!b.exists(), "mapping creates nothing");
        let mut buf = [0u8; 8];
        block_on(f.read(0, &mut buf)).unwrap();
        assert_eq!(
            buf,
            [1, 2, 3, 4, 5, 0xff, 0xff, 0xff],
            "erased past the end"
        );
        block_on(f.read(16, &mut buf)).unwrap();
        assert_eq!(buf, [0xff; 8]);
        assert!(!b.exists(), "reading creates nothing");

        // A program past the end extends with the erased value, not zeros.
        block_on(f.write(16 + 8, &[0x0f, 0xf0, 0x12, 0x34])).unwrap();
        assert_eq!(
            std::fs::read(&b).unwrap(),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xf0, 0x12, 0x34]
        );
        // Programming again ANDs.
        block_on(f.write(16 + 8, &[0xff, 0x0f, 0xff, 0xff])).unwrap();
        assert_eq!(std::fs::read(&b).unwrap()[8..12], [0x0f, 0x00, 0x12, 0x34]);
        block_on(f.erase(16, 32)).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), [0xff; 16]);

        assert_eq!(block_on(f.write(2, &[0; 4])), Err(FlashError::NotAligned));
        assert_eq!(block_on(f.write(48, &[0; 4])), Err(FlashError::OutOfBounds));
        assert_eq!(block_on(f.erase(16, 24)), Err(FlashError::NotAligned));
        assert_eq!(block_on(f.write(0, &[0; 4])), Err(FlashError::WriteFailed));
        let e = f.take_error().unwrap();
        assert!(matches!(e, FileError::ReadOnly { offset: 0, .. }), "{e}");
        assert_eq!(
            std::fs::read(&a).unwrap(),
            [1, 2, 3, 4, 5],
            "read-only untouched"
        );
        assert_eq!(f.locate(20), Some((b.as_path(), 4)));
        assert_eq!(f.block_at(20), Some(Block { start: 16, len: 16 }));
        std::fs::remove_file(&a).unwrap();
        std::fs::remove_file(&b).unwrap();
    }

    #[test]
    fn erased_zero_flash_ors() {
        let p = tmp("z");
        let mut f = FileFlash::new(geometry(0x00)).unwrap();
        f.map(&p, Access::ReadWrite, 4, 16).unwrap();
        block_on(f.write(4, &[0x0f, 0, 0, 0])).unwrap();
        block_on(f.write(4, &[0xf0, 0, 0, 1])).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 1]
        );
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn bad_geometry_and_regions_are_refused() {
        let g = |erase_size, write_size, read_size| Geometry {
            erase_size,
            write_size,
            read_size,
            erased_value: 0xff,
        };
        assert!(FileFlash::new(g(0, 4, 1)).is_err());
        assert!(FileFlash::new(g(4096, 3, 1)).is_err());
        assert!(FileFlash::new(g(4096, 4, 0)).is_err());
        let mut f = FileFlash::new(g(16, 4, 1)).unwrap();
        let e = f.map(Path::new("x"), Access::ReadWrite, 0, 10).unwrap_err();
        assert!(matches!(e, FileError::Geometry { found: 10, .. }), "{e}");
        let e = f
            .map(Path::new("/nonexistent/fota"), Access::ReadOnly, 0, 16)
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/fota: open"), "{e}");
    }

    #[test]
    fn file_package_reads_in_bounds_only() {
        let p = tmp("pkg");
        std::fs::write(&p, b"0123456789").unwrap();
        let mut pkg = FilePackage::open(&p).unwrap();
        assert_eq!(pkg.len(), 10);
        let mut buf = [0u8; 4];
        assert!(block_on(pkg.read(6, &mut buf)));
        assert_eq!(&buf, b"6789");
        assert!(!block_on(pkg.read(7, &mut buf)));
        assert!(!block_on(pkg.read(u64::MAX, &mut buf)));
        std::fs::remove_file(&p).unwrap();
    }
}
