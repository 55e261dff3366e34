//! Where the package bytes come from.

/// Random-access reads of the package (a staged copy in flash or a file,
/// or a download buffer). The agent reads front to back within a run, and
/// from the journal's position when it resumes.
#[allow(async_fn_in_trait)]
pub trait PackageSource {
    /// Total length of the package in bytes.
    fn len(&self) -> u64;
    /// True when the package is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from package offset `offset`; `false` when it cannot.
    async fn read(&mut self, offset: u64, buf: &mut [u8]) -> bool;
}

/// A package held in memory.
#[derive(Debug, Clone, Copy)]
pub struct SlicePackage<'a>(pub &'a [u8]);

impl PackageSource for SlicePackage<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    async fn read(&mut self, offset: u64, buf: &mut [u8]) -> bool {
        let Ok(start) = usize::try_from(offset) else {
            return false;
        };
        match self.0.get(start..start.saturating_add(buf.len())) {
            Some(src) if src.len() == buf.len() => {
                buf.copy_from_slice(src);
                true
            }
            _ => false,
        }
    }
}
