//! Pending protocol sessions: what the check-in (or a campaign) registers
//! with the DM or IOTA component before the device arrives there. The
//! session id and a one-time token go into the redirect or trigger URL;
//! only the token's hash is stored.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::db::{col, new_id, now, Db};
use crate::error::{Error, Result};

/// Which component runs the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OMA-DM.
    Dm,
    /// IOTA.
    Iota,
}

impl Protocol {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Dm => "dm",
            Protocol::Iota => "iota",
        }
    }
}

/// A registered session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    /// The session id.
    pub id: String,
    /// The device.
    pub device_id: String,
    /// `dm` or `iota`.
    pub protocol: String,
    /// `check` or `report`.
    pub purpose: String,
    /// `client` or `network`.
    pub origin: String,
    /// The update it is about, if any.
    pub update_id: Option<String>,
    /// `pending`, `open` or `closed`.
    pub state: String,
    /// Why it ended.
    pub end_reason: String,
    /// Unix seconds it was registered.
    pub created_at: i64,
    /// Unix seconds after which the device can no longer open it.
    pub expires_at: i64,
}

fn from_row(row: &AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        id: col(row, "id")?,
        device_id: col(row, "device_id")?,
        protocol: col(row, "protocol")?,
        purpose: col(row, "purpose")?,
        origin: col(row, "origin")?,
        update_id: col(row, "update_id")?,
        state: col(row, "state")?,
        end_reason: col(row, "end_reason")?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
    })
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Registers a session; returns it and its one-time token.
///
/// # Errors
/// [`Error::Db`].
pub async fn register(
    db: &Db,
    device_id: &str,
    protocol: Protocol,
    purpose: &str,
    origin: &str,
    update_id: Option<&str>,
    ttl_secs: u64,
) -> Result<(SessionRow, String)> {
    let id = new_id();
    let token = new_id();
    let t = now();
    sqlx::query(
        "INSERT INTO sessions (id, device_id, protocol, token_hash, purpose, origin, update_id, \
         state, end_reason, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', '', $8, $9)",
    )
    .bind(&id)
    .bind(device_id)
    .bind(protocol.as_str())
    .bind(token_hash(&token))
    .bind(purpose)
    .bind(origin)
    .bind(update_id)
    .bind(t)
    .bind(t.saturating_add(ttl_secs as i64))
    .execute(db.pool())
    .await?;
    Ok((get(db, &id).await?, token))
}

/// A session by id.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Db`].
pub async fn get(db: &Db, id: &str) -> Result<SessionRow> {
    let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| Error::NotFound {
            what: "session",
            id: id.to_string(),
        })
}

/// Opens a pending session for the device that presents its token: the
/// token must match, the session must be pending and not expired, and of
/// `protocol`.
///
/// # Errors
/// [`Error::NotFound`] for an unknown id, [`Error::Unauthorized`] for a
/// wrong token, [`Error::SessionOver`] for an expired or used session.
pub async fn open(db: &Db, id: &str, token: &str, protocol: Protocol) -> Result<SessionRow> {
    let s = get(db, id).await?;
    let given = token_hash(token);
    let stored = s_token(db, id).await?;
    // Constant time over the (fixed-length) hashes.
    let same = given.len() == stored.len()
        && given
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !same {
        return Err(Error::Unauthorized(format!("session {id}: wrong token")));
    }
    if s.protocol != protocol.as_str() {
        return Err(Error::BadRequest(format!(
            "session {id} is a {} session, not {}",
            s.protocol,
            protocol.as_str()
        )));
    }
    if s.state != "pending" {
        return Err(Error::SessionOver {
            sid: id.to_string(),
            why: format!("it is {} ({})", s.state, s.end_reason),
        });
    }
    if now() > s.expires_at {
        close(db, id, "expired").await?;
        return Err(Error::SessionOver {
            sid: id.to_string(),
            why: "it expired".into(),
        });
    }
    sqlx::query("UPDATE sessions SET state = 'open' WHERE id = $1 AND state = 'pending'")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(s)
}

async fn s_token(db: &Db, id: &str) -> Result<String> {
    let row = sqlx::query("SELECT token_hash FROM sessions WHERE id = $1")
        .bind(id)
        .fetch_one(db.pool())
        .await?;
    col(&row, "token_hash")
}

/// Closes a session with its end reason.
///
/// # Errors
/// [`Error::Db`].
pub async fn close(db: &Db, id: &str, reason: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET state = 'closed', end_reason = $1 WHERE id = $2")
        .bind(reason)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The device's newest pending network session of `protocol` (a campaign
/// registered it before the notification), if any.
///
/// # Errors
/// [`Error::Db`].
pub async fn pending_network(
    db: &Db,
    device_id: &str,
    protocol: Protocol,
) -> Result<Option<SessionRow>> {
    let row = sqlx::query(
        "SELECT * FROM sessions WHERE device_id = $1 AND protocol = $2 AND state = 'pending' \
         AND origin = 'network' ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(device_id)
    .bind(protocol.as_str())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}
