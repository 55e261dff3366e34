//! The off-line archive the purge writes: gzip-compressed JSON lines, a
//! header line and then one device per line, readable back for
//! re-import. Written to a temporary file, synced and renamed, so an
//! archive on disk is always whole.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use super::record::DeviceRecord;

/// The header's `format` value.
pub const FORMAT: &str = "fota-registry-archive";
/// The only version.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    created_at: i64,
    count: usize,
}

/// An archive read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// Unix seconds it was written.
    pub created_at: i64,
    /// The devices.
    pub devices: Vec<DeviceRecord>,
}

/// Why an archive cannot be written or read. Lines count from 1 (the
/// header).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file, or "stream".
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The target exists; archives are never overwritten.
    #[error("{0}: exists already; archives are never overwritten")]
    Exists(PathBuf),
    /// Not gzip data, or a damaged or truncated stream.
    #[error("not a gzip stream, or a damaged one: {0}")]
    NotGzip(String),
    /// The first line is not this format's header.
    #[error("line 1: not a registry archive header: {found}")]
    BadHeader {
        /// What was there (cut short).
        found: String,
    },
    /// A later version.
    #[error("line 1: archive version {found}, this server reads version {VERSION}")]
    UnsupportedVersion {
        /// The version.
        found: u32,
    },
    /// A device line is not a device.
    #[error("line {line}: {detail}")]
    BadLine {
        /// Line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The header's count and the lines differ (a cut file).
    #[error("the header says {header} devices, the file holds {found}")]
    CountMismatch {
        /// The header's count.
        header: usize,
        /// Lines found.
        found: usize,
    },
}

/// Writes an archive of `devices` to `out`.
///
/// # Errors
/// [`ArchiveError::Io`].
pub fn write<W: Write>(
    out: W,
    created_at: i64,
    devices: &[DeviceRecord],
) -> Result<(), ArchiveError> {
    let io = |e| ArchiveError::Io {
        path: "stream".into(),
        source: e,
    };
    let mut gz = GzEncoder::new(out, Compression::default());
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        created_at,
        count: devices.len(),
    };
    gz.write_all(json(&header).as_bytes()).map_err(io)?;
    gz.write_all(b"\n").map_err(io)?;
    for d in devices {
        gz.write_all(json(d).as_bytes()).map_err(io)?;
        gz.write_all(b"\n").map_err(io)?;
    }
    let mut out = gz.finish().map_err(io)?;
    out.flush().map_err(io)
}

/// One JSON line (plain data structs always serialize).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Writes an archive file atomically: `path.tmp`, synced, renamed to
/// `path`. An existing `path` is refused.
///
/// # Errors
/// [`ArchiveError::Exists`], [`ArchiveError::Io`].
pub fn write_file(
    path: &Path,
    created_at: i64,
    devices: &[DeviceRecord],
) -> Result<(), ArchiveError> {
    if path.exists() {
        return Err(ArchiveError::Exists(path.to_path_buf()));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |p: &Path, e| ArchiveError::Io {
        path: p.display().to_string(),
        source: e,
    };
    let f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    let result =
        write(&f, created_at, devices).and_then(|()| f.sync_all().map_err(|e| io(&tmp, e)));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads an archive.
///
/// # Errors
/// [`ArchiveError`]: not gzip, a bad header or line, a count that does
/// not match. Never panics on any bytes.
pub fn read<R: Read>(input: R) -> Result<Archive, ArchiveError> {
    let reader = BufReader::new(GzDecoder::new(input));
    let mut lines = reader.lines();
    let first = match lines.next() {
        Some(Ok(l)) => l,
        Some(Err(e)) => return Err(ArchiveError::NotGzip(e.to_string())),
        None => return Err(ArchiveError::NotGzip("empty stream".into())),
    };
    let header: Header = serde_json::from_str(&first).map_err(|_| ArchiveError::BadHeader {
        found: first.chars().take(80).collect(),
    })?;
    if header.format != FORMAT {
        return Err(ArchiveError::BadHeader {
            found: first.chars().take(80).collect(),
        });
    }
    if header.version != VERSION {
        return Err(ArchiveError::UnsupportedVersion {
            found: header.version,
        });
    }
    let mut devices = Vec::new();
    for (i, l) in lines.enumerate() {
        let l = l.map_err(|e| ArchiveError::NotGzip(e.to_string()))?;
        if l.trim().is_empty() {
            continue;
        }
        let d: DeviceRecord = serde_json::from_str(&l).map_err(|e| ArchiveError::BadLine {
            line: i + 2,
            detail: e.to_string(),
        })?;
        devices.push(d);
    }
    if devices.len() != header.count {
        return Err(ArchiveError::CountMismatch {
            header: header.count,
            found: devices.len(),
        });
    }
    Ok(Archive {
        created_at: header.created_at,
        devices,
    })
}
