//! Packages in the forms other update clients install, stored beside the
//! package they carry: a `.swu` for swupdate (`fota export swu`), served
//! to hawkBit DDI devices, and a Mender artifact (`fota export mender`),
//! served to mender-client. The server does not make them (a `.swu` is
//! signed with the operator's swupdate key, which it does not hold); it
//! checks that an uploaded one is a well-formed archive of its kind that
//! carries the package byte for byte (a `.swu`: a cpio archive that opens
//! with its `sw-description`; a Mender artifact: a v3 tar whose manifest
//! lists the package), and keeps what clients must be told of it.

use std::fmt;

use bytes::Bytes;
use md5::Md5;
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::db::{col, now, Db};
use crate::error::{Error, Result};
use crate::repository;
use crate::store::PackageStore;

/// What client an artifact is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// A swupdate image (`.swu`).
    Swu,
    /// A Mender artifact (format v3, `.mender`).
    Mender,
}

impl ArtifactKind {
    /// The name used in URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Swu => "swu",
            ArtifactKind::Mender => "mender",
        }
    }

    /// Parses [`ArtifactKind::as_str`].
    pub fn parse(s: &str) -> Option<ArtifactKind> {
        match s {
            "swu" => Some(ArtifactKind::Swu),
            "mender" => Some(ArtifactKind::Mender),
            _ => None,
        }
    }

    /// The file name extension clients require.
    fn extension(self) -> &'static str {
        match self {
            ArtifactKind::Swu => ".swu",
            ArtifactKind::Mender => ".mender",
        }
    }
}

/// A stored artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// The package it carries.
    pub package_id: String,
    /// Its kind.
    pub kind: ArtifactKind,
    /// The file name clients see.
    pub filename: String,
    /// Its length in bytes.
    pub size: u64,
    /// sha256, sha1 and md5 of its bytes, lower-case hex (DDI clients
    /// check one or another).
    pub sha256: String,
    /// See `sha256`.
    pub sha1: String,
    /// See `sha256`.
    pub md5: String,
    /// Where the store keeps it.
    pub storage_key: String,
    /// What a Mender artifact says of itself (`None` for other kinds).
    pub mender: Option<MenderMeta>,
}

/// A Mender artifact's name and device types, which the deployment that
/// offers it must repeat (the client compares them with the artifact's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MenderMeta {
    /// `artifact_provides.artifact_name`.
    pub artifact_name: String,
    /// `artifact_depends.device_type`.
    pub device_types: Vec<String>,
}

fn artifact_from_row(row: &AnyRow) -> Result<Artifact> {
    let kind: String = col(row, "kind")?;
    Ok(Artifact {
        package_id: col(row, "package_id")?,
        kind: ArtifactKind::parse(&kind)
            .ok_or_else(|| Error::Protocol(format!("artifact kind {kind:?} in the database")))?,
        filename: col(row, "filename")?,
        size: col::<i64>(row, "size")? as u64,
        sha256: col(row, "sha256")?,
        sha1: col(row, "sha1")?,
        md5: col(row, "md5")?,
        storage_key: col(row, "storage_key")?,
        mender: match col::<String>(row, "meta")?.as_str() {
            "" => None,
            text => Some(
                serde_json::from_str(text)
                    .map_err(|e| Error::Protocol(format!("artifact metadata: {e}")))?,
            ),
        },
    })
}

/// The package's artifact of `kind`, if one was attached.
///
/// # Errors
/// [`Error::Db`].
pub async fn get(db: &Db, package_id: &str, kind: ArtifactKind) -> Result<Option<Artifact>> {
    let row = sqlx::query("SELECT * FROM package_artifacts WHERE package_id = $1 AND kind = $2")
        .bind(package_id)
        .bind(kind.as_str())
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(artifact_from_row).transpose()
}

/// Every artifact of the package.
///
/// # Errors
/// [`Error::Db`].
pub async fn for_package(db: &Db, package_id: &str) -> Result<Vec<Artifact>> {
    let rows = sqlx::query("SELECT * FROM package_artifacts WHERE package_id = $1 ORDER BY kind")
        .bind(package_id)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(artifact_from_row).collect()
}

/// Checks `bytes` as the package's artifact of `kind` named `filename`
/// and stores it, replacing an earlier one of that kind.
///
/// # Errors
/// [`Error::NotFound`] for an unknown package; [`Error::BadRequest`] for a
/// file name clients would not take, or bytes that are not such an
/// artifact of this package (saying what and where); store and database
/// errors.
pub async fn attach(
    db: &Db,
    store: &dyn PackageStore,
    package_id: &str,
    kind: ArtifactKind,
    filename: &str,
    bytes: Bytes,
) -> Result<Artifact> {
    let p = repository::package(db, package_id).await?;
    check_filename(kind, filename).map_err(Error::BadRequest)?;
    let mender = match kind {
        ArtifactKind::Swu => {
            check_swu(&bytes, &p.sha256).map_err(|e| {
                Error::BadRequest(format!("{filename}: not a .swu of package {}: {e}", p.id))
            })?;
            None
        }
        ArtifactKind::Mender => Some(check_mender(&bytes, &p.sha256).map_err(|e| {
            Error::BadRequest(format!(
                "{filename}: not a Mender artifact of package {}: {e}",
                p.id
            ))
        })?),
    };
    let meta = match &mender {
        Some(m) => serde_json::to_string(m)
            .map_err(|e| Error::Protocol(format!("artifact metadata: {e}")))?,
        None => String::new(),
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let artifact = Artifact {
        package_id: p.id.clone(),
        kind,
        filename: filename.to_string(),
        size: bytes.len() as u64,
        sha1: hex::encode(Sha1::digest(&bytes)),
        md5: hex::encode(Md5::digest(&bytes)),
        storage_key: format!("artifacts/{sha256}{}", kind.extension()),
        sha256,
        mender,
    };
    store.put(&artifact.storage_key, bytes).await?;
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM package_artifacts WHERE package_id = $1 AND kind = $2")
        .bind(&artifact.package_id)
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO package_artifacts (package_id, kind, filename, size, sha256, sha1, md5, \
         storage_key, created_at, meta) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&artifact.package_id)
    .bind(kind.as_str())
    .bind(&artifact.filename)
    .bind(artifact.size as i64)
    .bind(&artifact.sha256)
    .bind(&artifact.sha1)
    .bind(&artifact.md5)
    .bind(&artifact.storage_key)
    .bind(now())
    .bind(&meta)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(package = %artifact.package_id, kind = kind.as_str(), size = artifact.size, "artifact stored");
    Ok(artifact)
}

/// A plain file name (no path) with the kind's extension.
fn check_filename(kind: ArtifactKind, name: &str) -> std::result::Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
        && !name.starts_with('.');
    if !plain {
        return Err(format!(
            "artifact file name {name:?}: expected 1 to 200 letters, digits, '.', '_', '-' or '+', not starting with '.'"
        ));
    }
    if !name.ends_with(kind.extension()) {
        return Err(format!(
            "artifact file name {name:?}: a {} artifact's name ends with {:?} (clients skip others)",
            kind.as_str(),
            kind.extension()
        ));
    }
    Ok(())
}

/// Why bytes are not a `.swu` of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwuError {
    /// Offset in the archive.
    pub offset: u64,
    /// What was expected there.
    pub what: String,
}

impl fmt::Display for SwuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.what)
    }
}

/// One member of a cpio "newc" archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioMember<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its bytes.
    pub data: &'a [u8],
    /// Offset of its header in the archive.
    pub offset: u64,
}

/// Length of a newc header: the magic and 13 fields of 8 hex digits.
const NEWC_HEADER_LEN: usize = 110;

/// The members of a cpio "newc" archive (magic `070701`, or `070702`
/// whose checksum is the byte sum of the data), up to `TRAILER!!!`.
///
/// # Errors
/// [`SwuError`] with the offset of a bad magic, field, name, checksum or
/// a member cut short, or of a missing trailer.
pub fn cpio_members(bytes: &[u8]) -> std::result::Result<Vec<CpioMember<'_>>, SwuError> {
    let mut at = 0usize;
    let mut out = Vec::new();
    loop {
        let err = |what: &str| SwuError {
            offset: at as u64,
            what: what.to_string(),
        };
        let header = bytes
            .get(at..at + NEWC_HEADER_LEN)
            .ok_or_else(|| err("a cpio newc header (110 bytes; no TRAILER!!! before the end)"))?;
        let crc = match header.get(..6) {
            Some(b"070701") => false,
            Some(b"070702") => true,
            _ => return Err(err("the cpio newc magic 070701 or 070702")),
        };
        let field = |i: usize| -> std::result::Result<u32, SwuError> {
            let text = header
                .get(6 + 8 * i..14 + 8 * i)
                .and_then(|t| std::str::from_utf8(t).ok())
                .ok_or_else(|| err("a header field of 8 hex digits"))?;
            u32::from_str_radix(text, 16).map_err(|_| err("a header field of 8 hex digits"))
        };
        let size = field(6)? as usize;
        let name_len = field(11)? as usize;
        let checksum = field(12)?;
        let name_at = at + NEWC_HEADER_LEN;
        let name_bytes = bytes
            .get(name_at..name_at + name_len)
            .filter(|n| n.last() == Some(&0))
            .ok_or_else(|| err("a member name ending with NUL within the archive"))?;
        let name = std::str::from_utf8(&name_bytes[..name_len - 1])
            .map_err(|_| err("a UTF-8 member name"))?;
        let data_at = (name_at + name_len).next_multiple_of(4);
        let data = bytes
            .get(data_at..data_at + size)
            .ok_or_else(|| err("the member's data within the archive"))?;
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        if crc {
            let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
            if sum != checksum {
                return Err(err(
                    "a 070702 member whose checksum is the sum of its bytes",
                ));
            }
        }
        out.push(CpioMember {
            name,
            data,
            offset: at as u64,
        });
        at = (data_at + size).next_multiple_of(4);
    }
}

/// A `.swu` carrying the package whose sha256 is `package_sha256` (hex):
/// `sw-description` first, and a member whose bytes are the package.
fn check_swu(bytes: &[u8], package_sha256: &str) -> std::result::Result<(), SwuError> {
    let members = cpio_members(bytes)?;
    match members.first() {
        Some(m) if m.name == "sw-description" => {}
        first => {
            return Err(SwuError {
                offset: 0,
                what: format!(
                "sw-description as the first member (swupdate refuses anything else), found {:?}",
                first.map(|m| m.name)
            ),
            })
        }
    }
    let carries = members
        .iter()
        .any(|m| hex::encode(Sha256::digest(m.data)) == package_sha256);
    if !carries {
        return Err(SwuError {
            offset: 0,
            what: format!(
                "a member that is the package (sha256 {package_sha256}); members: {}",
                members
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(())
}

/// One member of a tar archive (regular files only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarMember<'a> {
    /// Its name (with the ustar prefix, if any).
    pub name: String,
    /// Its bytes.
    pub data: &'a [u8],
}

/// The regular files of a ustar (or old-style) tar archive, up to its end
/// blocks (or the end of the bytes after whole members).
///
/// # Errors
/// [`SwuError`] with the offset of a header whose checksum, size or name
/// is bad, or of a member cut short.
pub fn tar_members(bytes: &[u8]) -> std::result::Result<Vec<TarMember<'_>>, SwuError> {
    let mut at = 0usize;
    let mut out = Vec::new();
    while let Some(header) = bytes.get(at..at + 512) {
        if header.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        let err = |what: &str| SwuError {
            offset: at as u64,
            what: what.to_string(),
        };
        let octal = |range: std::ops::Range<usize>| -> std::result::Result<u64, SwuError> {
            let field = header.get(range).unwrap_or(&[]);
            let text: String = field
                .iter()
                .take_while(|&&b| b != 0)
                .map(|&b| b as char)
                .collect();
            u64::from_str_radix(text.trim(), 8).map_err(|_| err("a tar header field in octal"))
        };
        let stored = octal(148..156)?;
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if sum != stored {
            return Err(err("a tar header whose checksum is the sum of its bytes"));
        }
        let size = usize::try_from(octal(124..136)?).map_err(|_| err("a member size"))?;
        let text = |range: std::ops::Range<usize>| -> std::result::Result<&str, SwuError> {
            let f = header.get(range).unwrap_or(&[]);
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            std::str::from_utf8(&f[..end]).map_err(|_| err("a UTF-8 member name"))
        };
        let (name, prefix) = (text(0..100)?, text(345..500)?);
        let name = match prefix.is_empty() {
            true => name.to_string(),
            false => format!("{prefix}/{name}"),
        };
        let data_at = at + 512;
        let data = bytes
            .get(data_at..data_at.saturating_add(size))
            .ok_or_else(|| err("the member's data within the archive"))?;
        if matches!(header.get(156), Some(b'0' | 0)) {
            out.push(TarMember { name, data });
        }
        at = data_at + size.next_multiple_of(512);
    }
    Ok(out)
}

/// Most bytes a Mender artifact's header may decompress to.
const MAX_MENDER_HEADER: u64 = 1 << 20;

/// A Mender artifact (format v3) whose manifest lists the package whose
/// sha256 is `package_sha256` (hex) as a payload file: its name and
/// device types.
fn check_mender(bytes: &[u8], package_sha256: &str) -> std::result::Result<MenderMeta, SwuError> {
    use std::io::Read;
    let members = tar_members(bytes)?;
    let at = |what: String| SwuError { offset: 0, what };
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    if names.first() != Some(&"version") || names.get(1) != Some(&"manifest") {
        return Err(at(format!(
            "the members version and manifest first (mender-client refuses anything else), found {names:?}"
        )));
    }
    let version: serde_json::Value = serde_json::from_slice(members[0].data)
        .map_err(|e| at(format!("a JSON version member ({e})")))?;
    if version["format"] != "mender" || version["version"] != 3 {
        return Err(at(format!("format mender version 3, found {version}")));
    }
    let manifest =
        std::str::from_utf8(members[1].data).map_err(|_| at("a UTF-8 manifest".into()))?;
    let carries = manifest.lines().any(|line| {
        line.split_once("  ")
            .is_some_and(|(h, name)| h == package_sha256 && name.starts_with("data/0000/"))
    });
    if !carries {
        return Err(at(format!(
            "a manifest line for the package (sha256 {package_sha256}) under data/0000/"
        )));
    }
    let header = members
        .iter()
        .find(|m| m.name == "header.tar.gz" || m.name == "header.tar")
        .ok_or_else(|| at("a member header.tar.gz or header.tar".into()))?;
    let header_tar = match header.name.ends_with(".gz") {
        true => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(header.data)
                .take(MAX_MENDER_HEADER)
                .read_to_end(&mut out)
                .map_err(|e| at(format!("a gzip header.tar.gz ({e})")))?;
            out
        }
        false => header.data.to_vec(),
    };
    let inner = tar_members(&header_tar).map_err(|e| at(format!("header.tar: {e}")))?;
    let info = inner
        .iter()
        .find(|m| m.name == "header-info")
        .ok_or_else(|| at("header-info in the header".into()))?;
    let info: serde_json::Value =
        serde_json::from_slice(info.data).map_err(|e| at(format!("a JSON header-info ({e})")))?;
    let artifact_name = info["artifact_provides"]["artifact_name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| at("header-info artifact_provides.artifact_name".into()))?
        .to_string();
    let device_types: Vec<String> = info["artifact_depends"]["device_type"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if device_types.is_empty() {
        return Err(at(
            "header-info artifact_depends.device_type (mender-client installs nothing without it)"
                .into(),
        ));
    }
    Ok(MenderMeta {
        artifact_name,
        device_types,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A newc archive of `files`: the generator's writer (070702), or
    /// the same with the plain magic and no checksums (070701).
    fn cpio(files: &[(&str, &[u8])], crc: bool) -> Vec<u8> {
        let mut a = fota_generator::export::cpio::archive(files.iter().copied()).unwrap();
        if !crc {
            let mut heads: Vec<usize> = cpio_members(&a)
                .unwrap()
                .iter()
                .map(|m| m.offset as usize)
                .collect();
            // The trailer's header, after the last member.
            heads.push(a.windows(10).rposition(|w| w == b"TRAILER!!!").unwrap() - NEWC_HEADER_LEN);
            for at in heads {
                a[at + 5] = b'1';
                a[at + 102..at + 110].copy_from_slice(b"00000000");
            }
        }
        a
    }

    #[test]
    fn members_are_read_in_both_newc_forms() {
        for crc in [false, true] {
            let a = cpio(
                &[("sw-description", b"software = {};"), ("x.fota", b"abcde")],
                crc,
            );
            let m = cpio_members(&a).unwrap();
            assert_eq!(m.len(), 2);
            assert_eq!(
                (m[0].name, m[0].data),
                ("sw-description", &b"software = {};"[..])
            );
            assert_eq!((m[1].name, m[1].data), ("x.fota", &b"abcde"[..]));
        }
    }

    #[test]
    fn bad_archives_are_refused_with_the_offset() {
        let good = cpio(&[("sw-description", b"s"), ("x.fota", b"abcde")], true);
        let second = cpio_members(&good).unwrap()[1].offset as usize;
        let mut bad_sum = good.clone();
        let data_at = second + NEWC_HEADER_LEN + "x.fota".len() + 1;
        bad_sum[data_at.next_multiple_of(4)] ^= 1;
        let e = cpio_members(&bad_sum).unwrap_err();
        assert_eq!(e.offset, second as u64);
        assert!(e.what.contains("checksum"), "{e}");
        let e = cpio_members(&b"not a cpio archive ".repeat(8)).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.what.contains("magic"), "{e}");
        let trailer = good.windows(10).rposition(|w| w == b"TRAILER!!!").unwrap();
        let cut = &good[..trailer - 20];
        assert!(cpio_members(cut).unwrap_err().what.contains("TRAILER"));
        let mut bad_field = good.clone();
        bad_field[6 + 8 * 6] = b'G';
        assert!(cpio_members(&bad_field).unwrap_err().what.contains("hex"));
    }

    #[test]
    fn a_swu_must_open_with_its_description_and_carry_the_package() {
        let pkg = b"the package bytes";
        let sha = hex::encode(Sha256::digest(pkg));
        let ok = cpio(
            &[
                ("sw-description", b"s"),
                ("sw-description.sig", b"sig"),
                ("u.fota", pkg),
            ],
            true,
        );
        check_swu(&ok, &sha).unwrap();
        let other = cpio(
            &[("sw-description", b"s"), ("u.fota", b"another package")],
            true,
        );
        assert!(check_swu(&other, &sha).unwrap_err().what.contains("u.fota"));
        let late = cpio(&[("u.fota", pkg), ("sw-description", b"s")], true);
        assert!(check_swu(&late, &sha)
            .unwrap_err()
            .what
            .contains("first member"));
    }

    #[test]
    fn file_names_clients_take() {
        check_filename(ArtifactKind::Swu, "board-1.2.swu").unwrap();
        for bad in [
            "", "a/b.swu", "../x.swu", ".swu", "x.tar", "x y.swu", "x\n.swu",
        ] {
            assert!(check_filename(ArtifactKind::Swu, bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = cpio_members(&bytes);
            let _ = check_swu(&bytes, "00");
        }

        #[test]
        fn archives_round_trip(files in proptest::collection::vec(("[a-z]{1,12}", proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)), 0..6), crc in proptest::prelude::any::<bool>()) {
            let list: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
            let a = cpio(&list, crc);
            let m = cpio_members(&a).unwrap();
            proptest::prop_assert_eq!(m.len(), list.len());
            for (got, (name, data)) in m.iter().zip(&list) {
                proptest::prop_assert_eq!(got.name, *name);
                proptest::prop_assert_eq!(got.data, *data);
            }
        }
    }
}
