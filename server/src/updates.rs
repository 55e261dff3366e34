//! An update's life on the server, one row per device and package offered:
//! offered (or notified by a campaign) → downloading → downloaded →
//! installed, or failed / refused / postponed with the device's reason, or
//! canceled by the operator (canceling first, for a device that must be
//! told).
//! Both protocols and the download handler move updates through these
//! functions; every change and every status a device sent is written
//! (with an event row) before the device gets its answer.

use serde::Serialize;
use sqlx::any::AnyRow;

use crate::db::{col, new_id, now, Db};
use crate::error::{Error, Result};
use crate::registry::Device;
use crate::repository::{self, PackageInfo};

/// Where an update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A campaign selected the device; a notification is queued.
    Notified,
    /// The package URL was delivered to the device.
    Offered,
    /// The device has fetched bytes of the package.
    Downloading,
    /// The device reported the download complete (install notify 900).
    Downloaded,
    /// The device runs the new version (final).
    Installed,
    /// The download or install failed (final): see the reason and code.
    Failed,
    /// The user declined an optional update (final).
    Refused,
    /// The user declined a mandatory update; it is offered again.
    Postponed,
    /// The operator asked to cancel it; the device has not yet said it
    /// stopped (a polling DDI device is told at its next poll).
    Canceling,
    /// Canceled by the operator (final).
    Canceled,
}

impl State {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Notified => "notified",
            State::Offered => "offered",
            State::Downloading => "downloading",
            State::Downloaded => "downloaded",
            State::Installed => "installed",
            State::Failed => "failed",
            State::Refused => "refused",
            State::Postponed => "postponed",
            State::Canceling => "canceling",
            State::Canceled => "canceled",
        }
    }

    /// Parses [`State::as_str`].
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "notified" => State::Notified,
            "offered" => State::Offered,
            "downloading" => State::Downloading,
            "downloaded" => State::Downloaded,
            "installed" => State::Installed,
            "failed" => State::Failed,
            "refused" => State::Refused,
            "postponed" => State::Postponed,
            "canceling" => State::Canceling,
            "canceled" => State::Canceled,
            _ => return None,
        })
    }

    /// Whether nothing more happens to the update.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Installed | State::Failed | State::Refused | State::Canceled
        )
    }
}

/// One update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    /// Its id (also the capability in its download URL).
    pub id: String,
    /// The device (current id).
    pub device_id: String,
    /// The package.
    pub package_id: String,
    /// The campaign that made it, if any.
    pub campaign_id: Option<String>,
    /// Where it stands.
    pub state: State,
    /// Why it failed or was refused, in words.
    pub reason: String,
    /// The device's result code (FUMO, install-notify or MMC), if any.
    pub result_code: Option<i64>,
    /// Refusals of a mandatory update so far.
    pub postponements: i64,
    /// Bytes of the package served to the device.
    pub bytes_served: i64,
}

fn update_from_row(row: &AnyRow) -> Result<Update> {
    let state: String = col(row, "state")?;
    Ok(Update {
        id: col(row, "id")?,
        device_id: col(row, "device_id")?,
        package_id: col(row, "package_id")?,
        campaign_id: col(row, "campaign_id")?,
        state: State::parse(&state)
            .ok_or_else(|| Error::Protocol(format!("update state {state:?} in the database")))?,
        reason: col(row, "reason")?,
        result_code: col(row, "result_code")?,
        postponements: col(row, "postponements")?,
        bytes_served: col(row, "bytes_served")?,
    })
}

/// An update by id.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Db`].
pub async fn get(db: &Db, id: &str) -> Result<Update> {
    let row = sqlx::query("SELECT * FROM updates WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref()
        .map(update_from_row)
        .transpose()?
        .ok_or_else(|| Error::NotFound {
            what: "update",
            id: id.to_string(),
        })
}

/// The device's unfinished update, newest first, if any.
///
/// # Errors
/// [`Error::Db`].
pub async fn pending(db: &Db, device_id: &str) -> Result<Option<Update>> {
    let row = sqlx::query(
        "SELECT * FROM updates WHERE device_id = $1 \
         AND state NOT IN ('installed', 'failed', 'refused', 'canceled') \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(device_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(update_from_row).transpose()
}

/// The device's updates, newest first.
///
/// # Errors
/// [`Error::Db`].
pub async fn for_device(db: &Db, device_id: &str) -> Result<Vec<Update>> {
    let rows =
        sqlx::query("SELECT * FROM updates WHERE device_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(device_id)
            .fetch_all(db.pool())
            .await?;
    rows.iter().map(update_from_row).collect()
}

/// Creates an update in `state`.
///
/// # Errors
/// [`Error::Db`].
pub async fn create(
    db: &Db,
    device_id: &str,
    package_id: &str,
    campaign_id: Option<&str>,
    state: State,
) -> Result<Update> {
    let id = new_id();
    let t = now();
    sqlx::query(
        "INSERT INTO updates (id, device_id, package_id, campaign_id, state, reason, \
         result_code, postponements, bytes_served, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, '', NULL, 0, 0, $6, $7)",
    )
    .bind(&id)
    .bind(device_id)
    .bind(package_id)
    .bind(campaign_id)
    .bind(state.as_str())
    .bind(t)
    .bind(t)
    .execute(db.pool())
    .await?;
    get(db, &id).await
}

/// Moves an update to `state` and records the event that did it, in one
/// transaction.
///
/// # Errors
/// [`Error::Db`].
pub async fn set_state(
    db: &Db,
    u: &Update,
    state: State,
    reason: &str,
    code: Option<i64>,
    kind: &str,
) -> Result<()> {
    let t = now();
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "UPDATE updates SET state = $1, reason = $2, result_code = COALESCE($3, result_code), \
         updated_at = $4 WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(reason)
    .bind(code)
    .bind(t)
    .bind(&u.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO status_events (id, device_id, update_id, kind, code, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(&u.device_id)
    .bind(&u.id)
    .bind(kind)
    .bind(code)
    .bind(format!(
        "{} -> {}: {reason}",
        u.state.as_str(),
        state.as_str()
    ))
    .bind(t)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(update = %u.id, device = %u.device_id, from = u.state.as_str(), to = state.as_str(), code, reason, "update");
    Ok(())
}

/// A refusal by the user: a postponement for a mandatory campaign with
/// postponements left, else final.
///
/// # Errors
/// [`Error::Db`].
pub async fn refused(db: &Db, u: &Update, code: i64, kind: &str) -> Result<State> {
    let max = match &u.campaign_id {
        Some(c) => {
            let row =
                sqlx::query("SELECT mandatory, max_postponements FROM campaigns WHERE id = $1")
                    .bind(c)
                    .fetch_optional(db.pool())
                    .await?;
            match row {
                Some(r) if col::<i64>(&r, "mandatory")? != 0 => {
                    Some(col::<i64>(&r, "max_postponements")?)
                }
                _ => None,
            }
        }
        None => None,
    };
    let state = match max {
        Some(_) => State::Postponed,
        None => State::Refused,
    };
    sqlx::query("UPDATE updates SET postponements = postponements + 1 WHERE id = $1")
        .bind(&u.id)
        .execute(db.pool())
        .await?;
    let reason = if state == State::Postponed {
        format!("postponed by the user ({} so far)", u.postponements + 1)
    } else {
        "declined by the user".to_string()
    };
    set_state(db, u, state, &reason, Some(code), kind).await?;
    Ok(state)
}

/// Whether the update must now install without asking: a mandatory
/// campaign whose postponements are used up.
///
/// # Errors
/// [`Error::Db`].
pub async fn forced(db: &Db, u: &Update) -> Result<bool> {
    let Some(c) = &u.campaign_id else {
        return Ok(false);
    };
    let row = sqlx::query("SELECT mandatory, max_postponements FROM campaigns WHERE id = $1")
        .bind(c)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(r) => {
            col::<i64>(&r, "mandatory")? != 0
                && u.postponements >= col::<i64>(&r, "max_postponements")?
        }
        None => false,
    })
}

/// Whether the update belongs to a mandatory campaign.
///
/// # Errors
/// [`Error::Db`].
pub async fn mandatory(db: &Db, u: &Update) -> Result<bool> {
    let Some(c) = &u.campaign_id else {
        return Ok(false);
    };
    let row = sqlx::query("SELECT mandatory FROM campaigns WHERE id = $1")
        .bind(c)
        .fetch_optional(db.pool())
        .await?;
    Ok(match row {
        Some(r) => col::<i64>(&r, "mandatory")? != 0,
        None => false,
    })
}

/// Adds to the bytes served and moves an offered update to downloading.
///
/// # Errors
/// [`Error::Db`].
pub async fn served(db: &Db, u: &Update, bytes: u64) -> Result<()> {
    sqlx::query(
        "UPDATE updates SET bytes_served = bytes_served + $1, updated_at = $2 WHERE id = $3",
    )
    .bind(bytes as i64)
    .bind(now())
    .bind(&u.id)
    .execute(db.pool())
    .await?;
    if matches!(u.state, State::Offered | State::Notified | State::Postponed) {
        set_state(
            db,
            u,
            State::Downloading,
            "download started",
            None,
            "download",
        )
        .await?;
    }
    Ok(())
}

/// What the decision step of a session found for a device.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The update to offer.
    pub update: Update,
    /// Its package.
    pub package: PackageInfo,
    /// A mandatory campaign's update.
    pub mandatory: bool,
}

/// Chooses what to offer a device that reported `make`/`model`/`fw_version`:
/// its unfinished update when that starts from the reported version, else
/// the newest package from that version (a new update) unless the operator
/// canceled it for this device, else nothing. An
/// unfinished update for another version is closed as failed ("device
/// runs another version"), or as installed when the device runs its
/// target.
///
/// # Errors
/// [`Error::Db`].
pub async fn decide(db: &Db, device: &Device, fw_version: &str) -> Result<Option<Decision>> {
    let id = device.record.id.as_str();
    if let Some(u) = pending(db, id).await? {
        let p = repository::package(db, &u.package_id).await?;
        if p.from_version == fw_version {
            let mandatory = mandatory(db, &u).await?;
            return Ok(Some(Decision {
                update: u,
                package: p,
                mandatory,
            }));
        }
        if p.to_version == fw_version {
            set_state(
                db,
                &u,
                State::Installed,
                "the device runs the target version",
                None,
                "check",
            )
            .await?;
        } else {
            set_state(
                db,
                &u,
                State::Failed,
                &format!("the device runs {fw_version}, not {}", p.from_version),
                None,
                "check",
            )
            .await?;
        }
    }
    let Some(p) =
        repository::offer_for(db, &device.record.make, &device.record.model, fw_version).await?
    else {
        return Ok(None);
    };
    // A package the operator canceled for this device is not offered again.
    let canceled = sqlx::query(
        "SELECT id FROM updates WHERE device_id = $1 AND package_id = $2 AND state = 'canceled'",
    )
    .bind(id)
    .bind(&p.id)
    .fetch_optional(db.pool())
    .await?;
    if canceled.is_some() {
        return Ok(None);
    }
    let u = create(db, id, &p.id, None, State::Offered).await?;
    Ok(Some(Decision {
        update: u,
        package: p,
        mandatory: false,
    }))
}

/// Cancels update `u` for the operator: at once, or through "canceling"
/// when `tell_device` (a polling device that may have started it must
/// say it stopped). Returns the new state.
///
/// # Errors
/// [`Error::Conflict`] for an update that already ended; [`Error::Db`].
pub async fn cancel(db: &Db, u: &Update, tell_device: bool) -> Result<State> {
    if u.state.is_final() {
        return Err(Error::Conflict(format!(
            "update {} is {}: nothing to cancel",
            u.id,
            u.state.as_str()
        )));
    }
    // A notified update the device never saw needs no word from it.
    let state = match tell_device && u.state != State::Notified {
        true => State::Canceling,
        false => State::Canceled,
    };
    set_state(db, u, state, "canceled by the operator", None, "cancel").await?;
    Ok(state)
}

/// Records a status a device sent about update `u` that does not move it
/// (progress, log lines), in the update's history.
///
/// # Errors
/// [`Error::Db`].
pub async fn note(db: &Db, u: &Update, kind: &str, detail: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO status_events (id, device_id, update_id, kind, code, detail, at) \
         VALUES ($1, $2, $3, $4, NULL, $5, $6)",
    )
    .bind(new_id())
    .bind(&u.device_id)
    .bind(&u.id)
    .bind(kind)
    .bind(detail)
    .bind(now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The details of update `u`'s history of `kind`, oldest first.
///
/// # Errors
/// [`Error::Db`].
pub async fn notes(db: &Db, u: &Update, kind: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT detail FROM status_events WHERE update_id = $1 AND kind = $2 ORDER BY at, id",
    )
    .bind(&u.id)
    .bind(kind)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| col(r, "detail")).collect()
}

/// Records a status a device sent that moves no update (for the log).
///
/// # Errors
/// [`Error::Db`].
pub async fn event(
    db: &Db,
    device_id: &str,
    kind: &str,
    code: Option<i64>,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO status_events (id, device_id, update_id, kind, code, detail, at) \
         VALUES ($1, $2, NULL, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(device_id)
    .bind(kind)
    .bind(code)
    .bind(detail)
    .bind(now())
    .execute(db.pool())
    .await?;
    Ok(())
}
