//! The update's driver: runs the sans-IO [`Agent`] against a [`Flash`]
//! and a [`PackageSource`]. Trust before touch, then one op at a time
//! with a journal record as each op's commit point. Resuming is running
//! this again: there is no second recovery path.
//!
//! ```text
//! header+manifest ─ (format v3: every op read and hashed) ─ signature
//!   ─ device ─ layout fit ─ journal scan
//!   fresh:  source sha256 ─ (in place: every op hashed and its reads
//!           checked) ─ journal Begin        ← first write of any kind
//!   resume: (A/B: source sha256) ─ (in place: replay op headers)
//!           ─ journal restart in a fresh block
//! per op:   read op, hash = chain? (v2) ─ rules ─ [resumed: segment
//!           already right? skip] ─ source extents sha256 ─ erase ─ program
//!           ─ read back sha256 ─ payload re-hashed = pass 1? ─ record
//! end:      target sha256 ─ journal Finished
//! ```
//!
//! Every op is redoable until the record after it is durable: it erases
//! its destination before writing it, and the format's rules (SPEC §6.2)
//! keep its inputs intact until a later op.

use ed25519_dalek::VerifyingKey;
use fota_format::{
    Error as FormatError, Header, Label, Manifest, OpAuth, HEADER_LEN, MAX_MANIFEST_LEN,
    SIGNED_HEADER_LEN,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Region, Result};
use crate::flash::Flash;
use crate::journal;
use crate::layout::Layout;
use crate::machine::{Agent, Request, EXTENTS_AREA};
use crate::source::PackageSource;

/// Bytes of one work chunk: the unit of package reads, source reads and
/// programs. The work buffer holds three.
pub const CHUNK: usize = 256;

/// Bytes the work buffer needs for a flash with this write and read size:
/// three chunks (output, reads, package) and the current op's extents.
pub fn work_len(write_size: usize, read_size: usize) -> usize {
    3 * chunk_len(write_size, read_size) + EXTENTS_AREA
}

/// Bytes the work buffer needs for a package whose manifest has this
/// `xform_len`: [`work_len`], plus a 256-byte block and the transform
/// payload when there is one (see `fota_format::xform`). A device lends
/// what its RAM budget allows; the agent refuses a package whose transform
/// does not fit before it writes anything.
pub fn work_len_for(write_size: usize, read_size: usize, xform_len: u32) -> usize {
    let extra = match xform_len {
        0 => 0,
        n => fota_format::xform::XFORM_BLOCK + n as usize,
    };
    work_len(write_size, read_size) + extra
}

pub(crate) fn chunk_len(write_size: usize, read_size: usize) -> usize {
    let unit = write_size.max(read_size).max(1);
    CHUNK.div_ceil(unit) * unit
}

/// What the device is and trusts.
#[derive(Debug, Clone, Copy)]
pub struct Config<'k> {
    /// Where everything lives.
    pub layout: Layout,
    /// Public keys packages may be signed with.
    pub trusted: &'k [VerifyingKey],
    /// The device's class; empty accepts any.
    pub device_class: Label,
    /// The device's anti-rollback counter.
    pub security_counter: u64,
}

/// Memory the caller lends the agent: nothing is allocated.
#[derive(Debug)]
pub struct Buffers<'b> {
    /// Work buffer of at least [`work_len`] bytes; [`work_len_for`] for a
    /// package with a reference transform.
    pub work: &'b mut [u8],
    /// In place: one bit per segment ([`fota_format::InPlaceTracker::bitmap_len`]).
    pub written: &'b mut [u8],
    /// In place: one bit per segment.
    pub overwritten: &'b mut [u8],
    /// In place: one entry per scratch slot.
    pub slots: &'b mut [u32],
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// The op the run started at (0 for a fresh update).
    pub started_at_op: u32,
    /// Whether the run resumed an interrupted update.
    pub resumed: bool,
    /// Ops executed in this run.
    pub ops_executed: u32,
    /// Ops found already done on resume (their segment hashed right) that
    /// the journal did not record as done. (Resuming a format-v3 package,
    /// the recorded ones are checked again too, and not counted here.)
    pub ops_found_done: u32,
    /// The journal already said this package was finished.
    pub already_finished: bool,
}

/// Applies (or resumes applying) the package from `package` to `flash`.
///
/// A thin driver over [`Agent`]: it performs each request the agent
/// makes and passes the outcome back, so everything the update keeps
/// between flash operations is the agent plus one flash or package
/// operation in flight.
///
/// # Errors
/// [`Error::Package`] for anything the package or the images fail, before
/// any write when it can be known then; [`Error::Flash`] when the flash
/// fails (a simulated power cut included); [`Error::Layout`] when the
/// package does not fit the layout or the buffers.
pub async fn apply<F: Flash, P: PackageSource>(
    flash: &mut F,
    package: &mut P,
    config: &Config<'_>,
    bufs: Buffers<'_>,
) -> Result<Report> {
    let mut agent = Agent::new(flash, package.len(), config, bufs)?;
    let mut last = Ok(());
    loop {
        last = match agent.step(flash, last)? {
            Request::Done(report) => return Ok(report),
            Request::ReadPackage { offset, buf } => {
                read_pkg(package, offset, agent.buffer(buf)).await
            }
            Request::ReadFlash { region, addr, buf } => {
                read_flash(flash, region, addr, agent.buffer(buf)).await
            }
            Request::WriteFlash { region, addr, buf } => flash
                .write(addr, agent.buffer(buf))
                .await
                .map_err(|error| Error::Flash {
                    region,
                    addr,
                    error,
                }),
            Request::EraseFlash { region, from, to } => {
                flash.erase(from, to).await.map_err(|error| Error::Flash {
                    region,
                    addr: from,
                    error,
                })
            }
        };
    }
}

/// Reads the header and manifest, checks the framing (the package's
/// length included) and the signature, and returns the manifest and the
/// package id that binds journal records to it. [`Agent`] does the same
/// first; a caller that sizes its layout from the manifest uses this.
///
/// # Errors
/// [`Error::Package`] (framing, `UnknownKey`, `BadSignature`, manifest
/// rules) or [`Error::PackageRead`].
pub async fn read_manifest<P: PackageSource>(
    package: &mut P,
    trusted: &[VerifyingKey],
) -> Result<(Manifest, [u8; 8])> {
    let mut hm = [0u8; HEADER_LEN + MAX_MANIFEST_LEN];
    let n = package.len().min(hm.len() as u64) as usize;
    let part = hm.get_mut(..n).unwrap_or(&mut []);
    read_pkg(package, 0, part).await?;
    let header = check_framing(part, package.len())?;
    let ops_sha256 = match header.op_auth {
        OpAuth::Chain => None,
        OpAuth::Signature => {
            check_key(&header, trusted)?;
            Some(ops_sha256(package, header.ops_offset()).await?)
        }
    };
    check_head(part, &header, trusted, ops_sha256.as_ref())
}

/// sha256 of the op section, from `ops_offset` to the package's end (what
/// a version-3 signature covers).
async fn ops_sha256<P: PackageSource>(package: &mut P, ops_offset: u64) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = [0u8; 256];
    let mut at = ops_offset;
    while at < package.len() {
        let n = (package.len() - at).min(buf.len() as u64) as usize;
        let part = buf.get_mut(..n).unwrap_or(&mut []);
        read_pkg(package, at, part).await?;
        h.update(&*part);
        at += n as u64;
    }
    Ok(h.finalize().into())
}

/// A trusted key has the header's key id: checked before a version-3
/// package's op section is read for its signature, so that a package
/// signed by nobody trusted costs no more than its header.
///
/// # Errors
/// `UnknownKey`.
pub(crate) fn check_key(header: &Header, trusted: &[VerifyingKey]) -> Result<()> {
    fota_format::sign::trusted_key(trusted, header.key_id)?;
    Ok(())
}

/// The header, parsed from the package's first bytes, with the package's
/// length checked against it (SPEC §2.5): what decides whether the op
/// section must be hashed before the signature is checked.
pub(crate) fn check_framing(hm: &[u8], package_len: u64) -> Result<Header> {
    let header = Header::parse(hm)?;
    let manifest_len = header.manifest_len as usize;
    if hm.len() < HEADER_LEN + manifest_len {
        return Err(FormatError::Truncated {
            offset: HEADER_LEN as u64,
            needed: manifest_len as u64,
            available: package_len.saturating_sub(HEADER_LEN as u64),
            what: "manifest",
        }
        .into());
    }
    // As `Package::parse` reports it (SPEC §2.5).
    let total = header.package_len().unwrap_or(u64::MAX);
    if package_len < total {
        let ops_offset = header.ops_offset();
        return Err(FormatError::Truncated {
            offset: ops_offset,
            needed: header.ops_len,
            available: package_len.saturating_sub(ops_offset),
            what: "op section",
        }
        .into());
    }
    if package_len > total {
        return Err(FormatError::TrailingBytes {
            offset: total,
            count: package_len - total,
        }
        .into());
    }
    Ok(header)
}

/// The checks of [`read_manifest`] after [`check_framing`] gave `header`:
/// the signature over the package's first bytes `hm` (the header and the
/// longest manifest, or the whole package when it is shorter) and, for a
/// version-3 package, the op section's sha256 (no such package verifies
/// without it); then the manifest, and the package's id.
pub(crate) fn check_head(
    hm: &[u8],
    header: &Header,
    trusted: &[VerifyingKey],
    ops_sha256: Option<&[u8; 32]>,
) -> Result<(Manifest, [u8; 8])> {
    let manifest_len = header.manifest_len as usize;
    let ops_sha256 = ops_sha256.filter(|_| header.op_auth == OpAuth::Signature);
    let manifest_bytes = hm.get(HEADER_LEN..HEADER_LEN + manifest_len).unwrap_or(&[]);
    let signed: &[u8; SIGNED_HEADER_LEN] = hm
        .get(..SIGNED_HEADER_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Layout {
            what: "header",
            expected: 0,
            found: 0,
        })?;
    fota_format::sign::verify(
        trusted,
        header.key_id,
        &header.signature,
        signed,
        manifest_bytes,
        ops_sha256,
    )?;
    Ok((
        Manifest::parse_with(manifest_bytes, header.op_auth)?,
        journal::package_id(signed, manifest_bytes, ops_sha256),
    ))
}

pub(crate) async fn read_pkg<P: PackageSource>(
    package: &mut P,
    offset: u64,
    buf: &mut [u8],
) -> Result<()> {
    if package.read(offset, buf).await {
        Ok(())
    } else {
        Err(Error::PackageRead {
            offset,
            len: buf.len() as u64,
        })
    }
}

/// Reads any byte range, whatever the flash's read size: aligned middle
/// parts directly, unaligned ends through a small bounce buffer.
pub(crate) async fn read_flash<F: Flash>(
    flash: &mut F,
    region: Region,
    addr: u64,
    out: &mut [u8],
) -> Result<()> {
    let rs = flash.read_size().max(1) as u64;
    let err = |a: u64| {
        move |error| Error::Flash {
            region,
            addr: a,
            error,
        }
    };
    if addr % rs == 0 && out.len() as u64 % rs == 0 {
        return flash.read(addr, out).await.map_err(err(addr));
    }
    let mut bounce = [0u8; 64];
    if rs > bounce.len() as u64 {
        return Err(Error::Layout {
            what: "flash read size (at most 64 bytes)",
            expected: 64,
            found: rs,
        });
    }
    let mut done = 0usize;
    while done < out.len() {
        let a = addr + done as u64;
        let base = a - a % rs;
        let skip = (a - base) as usize;
        // Only the read units that hold wanted bytes: a unit past them may
        // be unreadable (a word torn by a cut) without failing this read.
        let wanted = (skip + out.len() - done).div_ceil(rs as usize) * rs as usize;
        let span = ((bounce.len() as u64 / rs * rs) as usize).min(wanted);
        let piece = bounce.get_mut(..span).unwrap_or(&mut []);
        let readable = span.min((flash.capacity().saturating_sub(base) / rs * rs) as usize);
        let piece = piece.get_mut(..readable).unwrap_or(&mut []);
        if piece.len() <= skip {
            return Err(err(a)(crate::flash::FlashError::OutOfBounds));
        }
        flash.read(base, piece).await.map_err(err(base))?;
        let n = (piece.len() - skip).min(out.len() - done);
        if let (Some(dst), Some(src)) = (out.get_mut(done..done + n), piece.get(skip..skip + n)) {
            dst.copy_from_slice(src);
        }
        done += n;
    }
    Ok(())
}
