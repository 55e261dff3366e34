//! Read-only memory maps of input images: the only user of memmap2.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use crate::error::{Error, Result};

/// An input file's bytes, memory-mapped (or empty for an empty file, which
/// cannot be mapped).
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    /// Maps `path` read-only.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(path))?;
        let len = file.metadata().map_err(Error::io(path))?.len();
        if len == 0 {
            return Ok(MappedFile { map: None });
        }
        // SAFETY: the map is read-only and private to this process. The
        // usual caveat of file maps applies: if another process truncates or
        // rewrites the file while it is mapped, reads may fault or see new
        // bytes. Inputs are release artefacts that nothing edits during a
        // diff, and every result is checked against the sha256 taken from
        // the same mapping, so changed bytes are caught, not trusted.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io(path))?;
        Ok(MappedFile { map: Some(map) })
    }
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_contents_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(&*MappedFile::open(&p).unwrap(), b"hello");
        std::fs::write(&p, b"").unwrap();
        assert!(MappedFile::open(&p).unwrap().is_empty());
        let err = MappedFile::open(&dir.path().join("missing")).err().unwrap();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
