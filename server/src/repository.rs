//! The firmware repository: firmware versions per make and model (each
//! line with the device class its packages must name), and packages from
//! one version to another, checked on upload before they are offered.

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use fota_format::Package;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::db::{col, new_id, now, Db};
use crate::error::{Error, Result};
use crate::store::PackageStore;

/// The manifest's release-notes hash when a package has no notes.
const NO_NOTES: [u8; 32] = [0; 32];

/// A firmware version of a make and model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Firmware {
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// Version text, as devices report it.
    pub version: String,
    /// The device class packages for this line carry in their manifest.
    pub device_class: String,
}

/// A stored package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageInfo {
    /// The package's id.
    pub id: String,
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// The version it updates from.
    pub from_version: String,
    /// The version it installs.
    pub to_version: String,
    /// Its length in bytes.
    pub size: u64,
    /// sha256 of the whole package, hex.
    pub sha256: String,
    /// Where the store keeps it.
    pub storage_key: String,
    /// Release notes shown before consent.
    pub notes: String,
    /// The manifest's anti-rollback counter.
    pub security_counter: u64,
}

fn package_from_row(row: &AnyRow) -> Result<PackageInfo> {
    Ok(PackageInfo {
        id: col(row, "id")?,
        make: col(row, "make")?,
        model: col(row, "model")?,
        from_version: col(row, "from_version")?,
        to_version: col(row, "to_version")?,
        size: col::<i64>(row, "size")? as u64,
        sha256: col(row, "sha256")?,
        storage_key: col(row, "storage_key")?,
        notes: col(row, "notes")?,
        security_counter: col::<i64>(row, "security_counter")? as u64,
    })
}

/// Adds a firmware version.
///
/// # Errors
/// [`Error::BadRequest`] for empty fields or a device class that differs
/// from the line's earlier versions; [`Error::Conflict`] when it exists.
pub async fn add_firmware(db: &Db, f: &Firmware) -> Result<()> {
    if f.make.is_empty() || f.model.is_empty() || f.version.is_empty() {
        return Err(Error::BadRequest(
            "firmware: make, model and version must not be empty".into(),
        ));
    }
    fota_format::Label::new(&f.device_class).map_err(|e| {
        Error::BadRequest(format!("firmware device_class {:?}: {e}", f.device_class))
    })?;
    let others = sqlx::query("SELECT device_class FROM firmware WHERE make = $1 AND model = $2")
        .bind(&f.make)
        .bind(&f.model)
        .fetch_all(db.pool())
        .await?;
    for r in &others {
        let class: String = col(r, "device_class")?;
        if class != f.device_class {
            return Err(Error::BadRequest(format!(
                "firmware {} {}: device class {:?}, but the line's other versions are {class:?}",
                f.make, f.model, f.device_class
            )));
        }
    }
    if firmware(db, &f.make, &f.model, &f.version).await?.is_some() {
        return Err(Error::Conflict(format!(
            "firmware {} {} {} exists already",
            f.make, f.model, f.version
        )));
    }
    sqlx::query(
        "INSERT INTO firmware (make, model, version, device_class, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&f.make)
    .bind(&f.model)
    .bind(&f.version)
    .bind(&f.device_class)
    .bind(now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// One firmware version.
///
/// # Errors
/// [`Error::Db`].
pub async fn firmware(db: &Db, make: &str, model: &str, version: &str) -> Result<Option<Firmware>> {
    let row = sqlx::query("SELECT * FROM firmware WHERE make = $1 AND model = $2 AND version = $3")
        .bind(make)
        .bind(model)
        .bind(version)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| {
        Ok(Firmware {
            make: col(&r, "make")?,
            model: col(&r, "model")?,
            version: col(&r, "version")?,
            device_class: col(&r, "device_class")?,
        })
    })
    .transpose()
}

/// Checks an uploaded package and stores it: the signature must verify
/// against one of `trusted`, every op must authenticate, the manifest's
/// device class and versions must match known firmware of `make`/`model`,
/// and `notes` must hash to the manifest's release-notes hash.
///
/// # Errors
/// [`Error::PackageRefused`] saying which check failed (with the format
/// error's offset); [`Error::Conflict`] when a package between the same
/// versions exists; store and database errors.
pub async fn upload(
    db: &Db,
    store: &dyn PackageStore,
    trusted: &[VerifyingKey],
    make: &str,
    model: &str,
    bytes: Bytes,
    notes: &str,
) -> Result<PackageInfo> {
    let refused = |what: String| Error::PackageRefused(what);
    if trusted.is_empty() {
        return Err(refused(
            "the server has no trusted keys configured (trusted_keys)".into(),
        ));
    }
    let package = Package::parse(&bytes).map_err(|e| refused(format!("malformed: {e}")))?;
    let verified = package
        .verify(trusted)
        .map_err(|e| refused(format!("signature: {e}")))?;
    for op in verified.ops() {
        op.map_err(|e| refused(format!("op section: {e}")))?;
    }
    let m = *verified.manifest();
    let from = m.from_version.as_str().to_string();
    let to = m.to_version.as_str().to_string();
    let class = m.device_class.as_str().to_string();
    for v in [&from, &to] {
        let Some(f) = firmware(db, make, model, v).await? else {
            return Err(refused(format!(
                "its manifest names version {v:?}, which is not firmware of {make} {model}"
            )));
        };
        if f.device_class != class {
            return Err(refused(format!(
                "its manifest's device class {class:?} is not {make} {model}'s {:?}",
                f.device_class
            )));
        }
    }
    if from == to {
        return Err(refused(format!("it updates {from:?} to itself")));
    }
    let notes_hash: [u8; 32] = Sha256::digest(notes.as_bytes()).into();
    let expected = m.release_notes_sha256;
    let notes_ok = if expected == NO_NOTES {
        notes.is_empty()
    } else {
        notes_hash == expected
    };
    if !notes_ok {
        return Err(refused(format!(
            "the release notes given ({} bytes) do not hash to the manifest's release notes sha256 {}",
            notes.len(),
            if expected == NO_NOTES { "(none: give no notes)".to_string() } else { hex::encode(expected) }
        )));
    }
    let sha = hex::encode(Sha256::digest(&bytes));
    if let Some(p) = package_between(db, make, model, &from, &to).await? {
        return Err(Error::Conflict(format!(
            "package {} already updates {make} {model} {from} -> {to}",
            p.id
        )));
    }
    let key = format!("packages/{sha}.fota");
    let size = bytes.len() as u64;
    store.put(&key, bytes).await?;
    let info = PackageInfo {
        id: new_id(),
        make: make.to_string(),
        model: model.to_string(),
        from_version: from,
        to_version: to,
        size,
        sha256: sha,
        storage_key: key,
        notes: notes.to_string(),
        security_counter: m.security_counter,
    };
    sqlx::query(
        "INSERT INTO packages (id, make, model, from_version, to_version, size, sha256, \
         storage_key, notes, security_counter, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&info.id)
    .bind(&info.make)
    .bind(&info.model)
    .bind(&info.from_version)
    .bind(&info.to_version)
    .bind(info.size as i64)
    .bind(&info.sha256)
    .bind(&info.storage_key)
    .bind(&info.notes)
    .bind(info.security_counter as i64)
    .bind(now())
    .execute(db.pool())
    .await?;
    tracing::info!(id = %info.id, make, model, from = %info.from_version, to = %info.to_version, size, "package stored");
    Ok(info)
}

async fn package_between(
    db: &Db,
    make: &str,
    model: &str,
    from: &str,
    to: &str,
) -> Result<Option<PackageInfo>> {
    let row = sqlx::query(
        "SELECT * FROM packages WHERE make = $1 AND model = $2 AND from_version = $3 \
         AND to_version = $4",
    )
    .bind(make)
    .bind(model)
    .bind(from)
    .bind(to)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(package_from_row).transpose()
}

/// The package to offer a device of `make`/`model` running `version`: the
/// newest one that starts from it, if any.
///
/// # Errors
/// [`Error::Db`].
pub async fn offer_for(
    db: &Db,
    make: &str,
    model: &str,
    version: &str,
) -> Result<Option<PackageInfo>> {
    let row = sqlx::query(
        "SELECT * FROM packages WHERE make = $1 AND model = $2 AND from_version = $3 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(make)
    .bind(model)
    .bind(version)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(package_from_row).transpose()
}

/// A package by id.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Db`].
pub async fn package(db: &Db, id: &str) -> Result<PackageInfo> {
    let row = sqlx::query("SELECT * FROM packages WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref()
        .map(package_from_row)
        .transpose()?
        .ok_or_else(|| Error::NotFound {
            what: "package",
            id: id.to_string(),
        })
}

/// Every package, newest first.
///
/// # Errors
/// [`Error::Db`].
pub async fn packages(db: &Db) -> Result<Vec<PackageInfo>> {
    let rows = sqlx::query("SELECT * FROM packages ORDER BY created_at DESC, id")
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(package_from_row).collect()
}
