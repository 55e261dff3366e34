//! Packages in the forms other update clients install, stored beside the
//! package they carry: a `.swu` for swupdate (`fota export swu`), served
//! to hawkBit DDI devices. The server does not make them (a `.swu` is
//! signed with the operator's swupdate key, which it does not hold); it
//! checks that an uploaded one is a cpio archive that opens with its
//! `sw-description` and carries the package byte for byte.

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
}

impl ArtifactKind {
    /// The name used in URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Swu => "swu",
        }
    }

    /// Parses [`ArtifactKind::as_str`].
    pub fn parse(s: &str) -> Option<ArtifactKind> {
        match s {
            "swu" => Some(ArtifactKind::Swu),
            _ => None,
        }
    }

    /// The file name extension clients require.
    fn extension(self) -> &'static str {
        match self {
            ArtifactKind::Swu => ".swu",
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
    match kind {
        ArtifactKind::Swu => check_swu(&bytes, &p.sha256).map_err(|e| {
            Error::BadRequest(format!("{filename}: not a .swu of package {}: {e}", p.id))
        })?,
    }
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
         storage_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
