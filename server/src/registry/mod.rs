//! The device registry: devices by ESN/MEID/IMEI with make, model,
//! firmware version, capability and subscriber; id changes with history;
//! CSV import; deactivation and the purge into an off-line archive.

pub mod archive;
pub mod csv_import;
pub mod record;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use sqlx::any::AnyRow;

use crate::db::{col, now, Db};
use crate::error::{Error, Result};
pub use record::{Capability, DeviceId, DeviceRecord};

/// A device with the secrets its DM sessions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The registry entry.
    pub record: DeviceRecord,
    /// The device's DM account password (its user name is its id).
    pub dm_password: String,
    /// The nonce the device uses for its next `Cred`.
    pub client_nonce: Option<Vec<u8>>,
    /// The nonce the server uses for its next `Cred`.
    pub server_nonce: Option<Vec<u8>>,
}

/// What registering a device takes.
pub type NewDevice = csv_import::NewDevice;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn device_from_row(row: &AnyRow) -> Result<Device> {
    let id: String = col(row, "id")?;
    let cap: String = col(row, "capability")?;
    let nonce = |name: &str| -> Result<Option<Vec<u8>>> {
        let v: Option<String> = col(row, name)?;
        Ok(v.and_then(|s| B64.decode(s).ok()))
    };
    Ok(Device {
        record: DeviceRecord {
            id: DeviceId::parse(&id).map_err(|e| Error::Protocol(e.to_string()))?,
            make: col(row, "make")?,
            model: col(row, "model")?,
            fw_version: col(row, "fw_version")?,
            capability: Capability::parse(&cap)
                .ok_or_else(|| Error::Protocol(format!("device {id}: capability {cap:?}")))?,
            subscriber: col(row, "subscriber")?,
            active: col::<i64>(row, "active")? != 0,
            deactivated_at: col(row, "deactivated_at")?,
            created_at: col(row, "created_at")?,
            previous_ids: Vec::new(),
        },
        dm_password: col(row, "dm_password")?,
        client_nonce: nonce("client_nonce")?,
        server_nonce: nonce("server_nonce")?,
    })
}

/// The `INSERT` of one device row, for a pool or a transaction.
async fn insert_row<'e, E>(e: E, r: &DeviceRecord, password: &str, updated_at: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO devices (id, make, model, fw_version, capability, subscriber, active, \
         deactivated_at, created_at, updated_at, dm_password) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(r.id.as_str())
    .bind(&r.make)
    .bind(&r.model)
    .bind(&r.fw_version)
    .bind(r.capability.as_str())
    .bind(&r.subscriber)
    .bind(i64::from(r.active))
    .bind(r.deactivated_at)
    .bind(r.created_at)
    .bind(updated_at)
    .bind(password)
    .execute(e)
    .await?;
    Ok(())
}

/// The registry entry a new device starts with.
fn fresh_record(d: &NewDevice, created_at: i64, deactivated_at: Option<i64>) -> DeviceRecord {
    DeviceRecord {
        id: d.id.clone(),
        make: d.make.clone(),
        model: d.model.clone(),
        fw_version: d.fw_version.clone(),
        capability: d.capability,
        subscriber: d.subscriber.clone(),
        active: d.active,
        deactivated_at,
        created_at,
        previous_ids: Vec::new(),
    }
}

/// A new random DM password (24 base64 characters).
pub fn new_password() -> String {
    let mut b = [0u8; 18];
    let _ = getrandom::getrandom(&mut b);
    B64.encode(b)
}

/// Registers a device. `dm_password`: its DM account password; `None`
/// makes one (returned in the [`Device`]).
///
/// # Errors
/// [`Error::Conflict`] when the id is registered already.
pub async fn register(db: &Db, d: &NewDevice, dm_password: Option<&str>) -> Result<Device> {
    insert(db, d, dm_password, now(), None).await
}

async fn insert(
    db: &Db,
    d: &NewDevice,
    dm_password: Option<&str>,
    created_at: i64,
    deactivated_at: Option<i64>,
) -> Result<Device> {
    if get(db, d.id.as_str()).await?.is_some() {
        return Err(Error::Conflict(format!(
            "device {} is registered already",
            d.id
        )));
    }
    let password = dm_password.map_or_else(new_password, str::to_string);
    let record = fresh_record(d, created_at, deactivated_at);
    insert_row(db.pool(), &record, &password, now()).await?;
    Ok(Device {
        record,
        dm_password: password,
        client_nonce: None,
        server_nonce: None,
    })
}

/// The device with this id (any of ESN/MEID/IMEI forms), with its id
/// history.
///
/// # Errors
/// [`Error::Db`].
pub async fn get(db: &Db, id: &str) -> Result<Option<Device>> {
    let Ok(id) = DeviceId::parse(id) else {
        return Ok(None);
    };
    let row = sqlx::query("SELECT * FROM devices WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut d = device_from_row(&row)?;
    d.record.previous_ids = history(db, &d.record.id).await?;
    Ok(Some(d))
}

/// The device or [`Error::NotFound`].
///
/// # Errors
/// [`Error::NotFound`], [`Error::Db`].
pub async fn require(db: &Db, id: &str) -> Result<Device> {
    get(db, id).await?.ok_or_else(|| Error::NotFound {
        what: "device",
        id: id.to_string(),
    })
}

/// The ids a device had before, oldest first (following the chain of
/// changes back).
async fn history(db: &Db, id: &DeviceId) -> Result<Vec<(DeviceId, i64)>> {
    let mut out = Vec::new();
    let mut current = id.as_str().to_string();
    // Each step goes one id back; a chain longer than the table is a loop.
    for _ in 0..64 {
        let row = sqlx::query(
            "SELECT old_id, changed_at FROM device_id_history WHERE new_id = $1 \
             ORDER BY changed_at DESC LIMIT 1",
        )
        .bind(&current)
        .fetch_optional(db.pool())
        .await?;
        let Some(row) = row else { break };
        let old: String = col(&row, "old_id")?;
        let at: i64 = col(&row, "changed_at")?;
        if let Ok(o) = DeviceId::parse(&old) {
            out.push((o, at));
        }
        current = old;
    }
    out.reverse();
    Ok(out)
}

/// Lists devices, optionally by make, model and version (exact), in id
/// order.
///
/// # Errors
/// [`Error::Db`].
pub async fn list(
    db: &Db,
    make: Option<&str>,
    model: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<Device>> {
    let rows = sqlx::query(
        "SELECT * FROM devices WHERE ($1 = '' OR make = $1) AND ($2 = '' OR model = $2) \
         AND ($3 = '' OR fw_version = $3) ORDER BY id",
    )
    .bind(make.unwrap_or(""))
    .bind(model.unwrap_or(""))
    .bind(version.unwrap_or(""))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(device_from_row).collect()
}

/// Records what the device reported about itself in a session.
///
/// # Errors
/// [`Error::Db`].
pub async fn set_reported_version(db: &Db, id: &DeviceId, fw_version: &str) -> Result<()> {
    sqlx::query("UPDATE devices SET fw_version = $1, updated_at = $2 WHERE id = $3")
        .bind(fw_version)
        .bind(now())
        .bind(id.as_str())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Stores the DM nonces for the device's next session.
///
/// # Errors
/// [`Error::Db`].
pub async fn set_nonces(
    db: &Db,
    id: &DeviceId,
    client_nonce: Option<&[u8]>,
    server_nonce: Option<&[u8]>,
) -> Result<()> {
    sqlx::query(
        "UPDATE devices SET client_nonce = COALESCE($1, client_nonce), \
         server_nonce = COALESCE($2, server_nonce) WHERE id = $3",
    )
    .bind(client_nonce.map(|n| B64.encode(n)))
    .bind(server_nonce.map(|n| B64.encode(n)))
    .bind(id.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deactivates (`active = false`) or reactivates a device.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Db`].
pub async fn set_active(db: &Db, id: &str, active: bool) -> Result<Device> {
    let d = require(db, id).await?;
    let t = now();
    sqlx::query(
        "UPDATE devices SET active = $1, deactivated_at = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(i64::from(active))
    .bind(if active { None } else { Some(t) })
    .bind(t)
    .bind(d.record.id.as_str())
    .execute(db.pool())
    .await?;
    require(db, id).await
}

/// Changes a device's id (a new ESN/MEID after a repair or a swap): the
/// old id goes into the history, and the device's unfinished updates and
/// open sessions follow it.
///
/// # Errors
/// [`Error::NotFound`] for an unknown old id; [`Error::Conflict`] when
/// the new id is registered already; [`Error::BadRequest`] for a
/// malformed new id.
pub async fn change_id(db: &Db, old: &str, new: &str) -> Result<Device> {
    let d = require(db, old).await?;
    let new_id = DeviceId::parse(new).map_err(|e| Error::BadRequest(e.to_string()))?;
    if get(db, new_id.as_str()).await?.is_some() {
        return Err(Error::Conflict(format!(
            "device {new_id} is registered already"
        )));
    }
    let old_id = d.record.id.as_str();
    let t = now();
    let mut tx = db.pool().begin().await?;
    // The first statement writes, so SQLite takes the write lock at once.
    sqlx::query("INSERT INTO device_id_history (old_id, new_id, changed_at) VALUES ($1, $2, $3)")
        .bind(old_id)
        .bind(new_id.as_str())
        .bind(t)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE devices SET id = $1, updated_at = $2 WHERE id = $3")
        .bind(new_id.as_str())
        .bind(t)
        .bind(old_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE updates SET device_id = $1, updated_at = $2 WHERE device_id = $3 \
         AND state NOT IN ('installed', 'failed', 'refused', 'canceled')",
    )
    .bind(new_id.as_str())
    .bind(t)
    .bind(old_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE sessions SET device_id = $1 WHERE device_id = $2 AND state = 'pending'")
        .bind(new_id.as_str())
        .bind(old_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE outbox SET device_id = $1 WHERE device_id = $2 AND sent_at IS NULL")
        .bind(new_id.as_str())
        .bind(old_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(old = old_id, new = new_id.as_str(), "device id changed");
    require(db, new_id.as_str()).await
}

/// Registers every device of a CSV file (see [`csv_import::parse_devices`])
/// in one transaction: all or none.
///
/// # Errors
/// [`Error::BadRequest`] with the CSV error (line, column); [`Error::Conflict`]
/// naming the first id registered already.
pub async fn import_csv(db: &Db, bytes: &[u8]) -> Result<usize> {
    let devices =
        csv_import::parse_devices(bytes).map_err(|e| Error::BadRequest(format!("CSV: {e}")))?;
    for d in &devices {
        if get(db, d.id.as_str()).await?.is_some() {
            return Err(Error::Conflict(format!(
                "CSV: device {} is registered already; nothing was imported",
                d.id
            )));
        }
    }
    let t = now();
    let mut tx = db.pool().begin().await?;
    for d in &devices {
        let record = fresh_record(d, t, if d.active { None } else { Some(t) });
        insert_row(&mut *tx, &record, &new_password(), t).await?;
    }
    tx.commit().await?;
    Ok(devices.len())
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Devices moved to the archive.
    pub purged: usize,
    /// The archive file written (none when nothing was due).
    pub archive: Option<PathBuf>,
}

/// Moves devices deactivated before `now - period_secs` into a new
/// archive file in `dir`, then deletes them. The archive is durable (a
/// complete file, synced) before anything is deleted, so a crash in
/// between loses nothing.
///
/// # Errors
/// [`Error::Io`] when the archive cannot be written (nothing is deleted
/// then); [`Error::Db`].
pub async fn purge(db: &Db, now_secs: i64, period_secs: i64, dir: &Path) -> Result<PurgeReport> {
    let cutoff = now_secs.saturating_sub(period_secs);
    let rows = sqlx::query(
        "SELECT * FROM devices WHERE active = 0 AND deactivated_at IS NOT NULL \
         AND deactivated_at <= $1 ORDER BY id",
    )
    .bind(cutoff)
    .fetch_all(db.pool())
    .await?;
    if rows.is_empty() {
        return Ok(PurgeReport {
            purged: 0,
            archive: None,
        });
    }
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut d = device_from_row(row)?;
        d.record.previous_ids = history(db, &d.record.id).await?;
        records.push(d.record);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Io {
        path: dir.display().to_string(),
        source: e,
    })?;
    let path = dir.join(format!(
        "registry-{now_secs}-{}.jsonl.gz",
        crate::db::new_id()
    ));
    archive::write_file(&path, now_secs, &records)
        .map_err(|e| Error::BadRequest(format!("archive {}: {e}", path.display())))?;
    let mut tx = db.pool().begin().await?;
    for r in &records {
        sqlx::query("DELETE FROM devices WHERE id = $1 AND active = 0")
            .bind(r.id.as_str())
            .execute(&mut *tx)
            .await?;
        // The history travels with the device into the archive.
        for (old, _) in &r.previous_ids {
            sqlx::query("DELETE FROM device_id_history WHERE old_id = $1")
                .bind(old.as_str())
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    tracing::info!(purged = records.len(), archive = %path.display(), "registry purge");
    Ok(PurgeReport {
        purged: records.len(),
        archive: Some(path),
    })
}

/// Restores the devices of an archive (as [`purge`] wrote it), with their
/// id history and deactivation times, in one transaction; they come back
/// deactivated as they left, with new DM passwords.
///
/// # Errors
/// [`Error::BadRequest`] for a damaged archive; [`Error::Conflict`] when a
/// device is registered again meanwhile (nothing is restored then).
pub async fn reimport(db: &Db, archive_bytes: &[u8]) -> Result<usize> {
    let a = archive::read(archive_bytes).map_err(|e| Error::BadRequest(format!("archive: {e}")))?;
    for r in &a.devices {
        if get(db, r.id.as_str()).await?.is_some() {
            return Err(Error::Conflict(format!(
                "archive: device {} is registered again; nothing was restored",
                r.id
            )));
        }
    }
    let mut tx = db.pool().begin().await?;
    for r in &a.devices {
        insert_row(&mut *tx, r, &new_password(), now()).await?;
        let mut next = r.id.as_str().to_string();
        for (old, at) in r.previous_ids.iter().rev() {
            sqlx::query(
                "INSERT INTO device_id_history (old_id, new_id, changed_at) VALUES ($1, $2, $3)",
            )
            .bind(old.as_str())
            .bind(&next)
            .bind(*at)
            .execute(&mut *tx)
            .await?;
            next = old.as_str().to_string();
        }
    }
    tx.commit().await?;
    Ok(a.devices.len())
}
