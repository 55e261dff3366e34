//! Network-initiated campaigns: a package pushed to the devices a filter
//! (make/model/version) or a list of ids selects. Each selected device
//! gets an update ("notified"), a pending network session, and a
//! notification through the [`Notifier`] (WAP push for IOTA, package #0
//! for OMA-DM), recorded in the outbox when no gateway is configured; a
//! device on hawkBit DDI or the Mender API polls and is offered the update
//! at its next poll.
//! Mandatory campaigns install after N postponements.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::db::{col, new_id, now, Db};
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::iota::session::QUEUED_EXPIRY_SECS;
use crate::omadm::auth::Credentials;
use crate::omadm::notification::{Initiator, Notification, UiMode, VERSION_1_2};
use crate::registry::{self, Capability, Device};
use crate::repository;
use crate::sessions::{self, Protocol};
use crate::updates::{self, State};

/// The WAP push application id of the IOTA user agent (iota.md).
pub const IOTA_PUSH_APP_ID: u16 = 0x8010;
/// Its text form.
pub const IOTA_PUSH_APP_ID_TEXT: &str = "x-wap-openwave:iota.ua";
/// The WAP push application id of SyncML DM notifications.
pub const DM_PUSH_APP_ID: u16 = 0x44;

/// The line a forced (mandatory, out of postponements) update's prompt
/// starts with: the handset shows it and installs without asking.
pub const FORCED_NOTICE: &str = "This update is required and installs now.";

/// What an operator asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// A name for reports.
    pub name: String,
    /// The package to push.
    pub package_id: String,
    /// Mandatory: installed without asking after `max_postponements`
    /// refusals.
    #[serde(default)]
    pub mandatory: bool,
    /// Refusals allowed before a mandatory update installs anyway.
    #[serde(default)]
    pub max_postponements: u32,
    /// Target: the package's make/model devices running this version
    /// (default: the package's from-version).
    #[serde(default)]
    pub version: Option<String>,
    /// Target instead: these device ids (one per line or a CSV with an
    /// `id` column, as text).
    #[serde(default)]
    pub device_ids_csv: Option<String>,
}

/// A created campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Devices notified.
    pub notified: usize,
    /// Devices selected but skipped, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// A notification to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// Its id.
    pub id: String,
    /// The device.
    pub device_id: String,
    /// The campaign.
    pub campaign_id: Option<String>,
    /// `wap-push` (IOTA trigger) or `dm-notification` (package #0).
    pub transport: String,
    /// The WAP push application id.
    pub app_id: u16,
    /// The payload: the trigger URI (IOTA), or base64 package #0 (DM).
    pub payload: String,
}

/// Delivers notifications to devices: a WAP push / SMS gateway, or the
/// outbox table an operator's gateway drains.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// Sends one; `Ok(true)` when delivered, `Ok(false)` when queued.
    async fn send(&self, db: &Db, item: &OutboxItem) -> Result<bool>;
}

/// The default [`Notifier`]: the outbox table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outbox;

#[async_trait::async_trait]
impl Notifier for Outbox {
    async fn send(&self, db: &Db, item: &OutboxItem) -> Result<bool> {
        let payload =
            serde_json::json!({ "app_id": item.app_id, "payload": item.payload }).to_string();
        sqlx::query(
            "INSERT INTO outbox (id, device_id, campaign_id, transport, payload, created_at, sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&item.id)
        .bind(&item.device_id)
        .bind(&item.campaign_id)
        .bind(&item.transport)
        .bind(payload)
        .bind(now())
        .execute(db.pool())
        .await?;
        Ok(false)
    }
}

/// Creates a campaign and notifies its devices.
///
/// # Errors
/// [`Error::NotFound`] for an unknown package, [`Error::BadRequest`] for a
/// bad id list or one naming unknown devices, database errors.
pub async fn create(app: &AppState, spec: &CampaignSpec) -> Result<Campaign> {
    let p = repository::package(&app.db, &spec.package_id).await?;
    let devices: Vec<Device> = match &spec.device_ids_csv {
        Some(csv) => {
            let ids = registry::csv_import::parse_id_list(csv.as_bytes())
                .map_err(|e| Error::BadRequest(format!("campaign device ids: {e}")))?;
            let mut out = Vec::with_capacity(ids.len());
            let mut unknown = Vec::new();
            for id in ids {
                match registry::get(&app.db, id.as_str()).await? {
                    Some(d) => out.push(d),
                    None => unknown.push(id.to_string()),
                }
            }
            if !unknown.is_empty() {
                return Err(Error::BadRequest(format!(
                    "campaign device ids: {} unknown: {}",
                    unknown.len(),
                    unknown.join(", ")
                )));
            }
            out
        }
        None => {
            let v = spec.version.as_deref().unwrap_or(&p.from_version);
            registry::list(&app.db, Some(&p.make), Some(&p.model), Some(v)).await?
        }
    };
    let id = new_id();
    sqlx::query(
        "INSERT INTO campaigns (id, name, package_id, mandatory, max_postponements, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&spec.name)
    .bind(&p.id)
    .bind(i64::from(spec.mandatory))
    .bind(i64::from(spec.max_postponements))
    .bind(now())
    .execute(app.db.pool())
    .await?;
    let mut notified = 0;
    let mut skipped = Vec::new();
    for d in &devices {
        let r = &d.record;
        let why = if !r.active {
            Some("deactivated".to_string())
        } else if r.make != p.make || r.model != p.model {
            Some(format!(
                "a {} {}, the package is for {} {}",
                r.make, r.model, p.make, p.model
            ))
        } else if r.fw_version != p.from_version {
            Some(format!(
                "runs {}, the package starts from {}",
                r.fw_version, p.from_version
            ))
        } else if updates::pending(&app.db, r.id.as_str()).await?.is_some() {
            Some("has an unfinished update".to_string())
        } else {
            None
        };
        if let Some(w) = why {
            skipped.push((r.id.to_string(), w));
            continue;
        }
        let u = updates::create(&app.db, r.id.as_str(), &p.id, Some(&id), State::Notified).await?;
        notify(app, d, &u.id, Some(&id), false).await?;
        notified += 1;
    }
    tracing::info!(campaign = %id, notified, skipped = skipped.len(), "campaign created");
    Ok(Campaign {
        id,
        name: spec.name.clone(),
        notified,
        skipped,
    })
}

/// Registers a network session for the device's update and sends its
/// notification. `forced`: a DM notification in background mode.
async fn notify(
    app: &AppState,
    d: &Device,
    update_id: &str,
    campaign: Option<&str>,
    forced: bool,
) -> Result<()> {
    let r = &d.record;
    let protocol = match r.capability {
        Capability::OmaDm => Protocol::Dm,
        Capability::Iota => Protocol::Iota,
        // DDI and Mender devices poll: the next poll finds the update.
        Capability::Ddi | Capability::Mender => return Ok(()),
    };
    let (s, token) = sessions::register(
        &app.db,
        r.id.as_str(),
        protocol,
        "check",
        "network",
        Some(update_id),
        QUEUED_EXPIRY_SECS,
    )
    .await?;
    let (transport, app_id, payload) = match protocol {
        Protocol::Iota => (
            "wap-push",
            IOTA_PUSH_APP_ID,
            format!("{}/iota?sid={}&t={token}", app.base_url, s.id),
        ),
        Protocol::Dm => {
            let mut sid = [0u8; 2];
            let _ = getrandom::getrandom(&mut sid);
            let n = Notification {
                version: VERSION_1_2,
                ui_mode: if forced {
                    UiMode::Background
                } else {
                    UiMode::UserInteraction
                },
                initiator: Initiator::Server,
                session_id: u16::from_be_bytes(sid),
                server_id: app.config.dm_server_id.clone(),
                body: Vec::new(),
            };
            let server = Credentials::new(&app.config.dm_server_id, &app.config.dm_server_password);
            let nonce = d.server_nonce.clone().unwrap_or_default();
            let bytes = n
                .encode(&server, &nonce)
                .map_err(|e| Error::Config(format!("DM notification: {e}")))?;
            (
                "dm-notification",
                DM_PUSH_APP_ID,
                base64::engine::general_purpose::STANDARD.encode(bytes),
            )
        }
    };
    let item = OutboxItem {
        id: new_id(),
        device_id: r.id.to_string(),
        campaign_id: campaign.map(str::to_string),
        transport: transport.to_string(),
        app_id,
        payload,
    };
    app.notifier.send(&app.db, &item).await?;
    Ok(())
}

/// Notifies again every device of the campaign whose update is postponed
/// (or still only notified): new sessions, new notifications. Returns how
/// many were sent.
///
/// # Errors
/// [`Error::NotFound`], database errors.
pub async fn renotify(app: &AppState, campaign_id: &str) -> Result<usize> {
    let rows = sqlx::query(
        "SELECT id, device_id FROM updates WHERE campaign_id = $1 AND state IN ('postponed', 'notified')",
    )
    .bind(campaign_id)
    .fetch_all(app.db.pool())
    .await?;
    let mut n = 0;
    for row in &rows {
        let uid: String = col(row, "id")?;
        let dev: String = col(row, "device_id")?;
        let Some(d) = registry::get(&app.db, &dev).await? else {
            continue;
        };
        // Earlier pending sessions of this device are superseded.
        sqlx::query("UPDATE sessions SET state = 'closed', end_reason = 'superseded' WHERE device_id = $1 AND state = 'pending'")
            .bind(&dev)
            .execute(app.db.pool())
            .await?;
        let u = updates::get(&app.db, &uid).await?;
        let forced = updates::forced(&app.db, &u).await?;
        notify(app, &d, &uid, Some(campaign_id), forced).await?;
        n += 1;
    }
    Ok(n)
}

/// A campaign's progress.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The campaign.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Devices in the campaign.
    pub total: i64,
    /// Devices by update state.
    pub by_state: BTreeMap<String, i64>,
    /// Failed devices by reason.
    pub failed_by_reason: BTreeMap<String, i64>,
}

/// The progress of a campaign.
///
/// # Errors
/// [`Error::NotFound`], database errors.
pub async fn progress(db: &Db, id: &str) -> Result<Progress> {
    let c = sqlx::query("SELECT name FROM campaigns WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "campaign",
            id: id.to_string(),
        })?;
    let rows = sqlx::query(
        "SELECT state, COUNT(*) AS n FROM updates WHERE campaign_id = $1 GROUP BY state",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    let mut by_state = BTreeMap::new();
    let mut total = 0;
    for r in &rows {
        let n: i64 = col(r, "n")?;
        total += n;
        by_state.insert(col::<String>(r, "state")?, n);
    }
    let rows = sqlx::query(
        "SELECT reason, COUNT(*) AS n FROM updates WHERE campaign_id = $1 AND state = 'failed' GROUP BY reason",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    let mut failed_by_reason = BTreeMap::new();
    for r in &rows {
        failed_by_reason.insert(col::<String>(r, "reason")?, col::<i64>(r, "n")?);
    }
    Ok(Progress {
        id: id.to_string(),
        name: col(&c, "name")?,
        total,
        by_state,
        failed_by_reason,
    })
}

/// Unsent notifications, oldest first.
///
/// # Errors
/// Database errors.
pub async fn outbox(db: &Db, limit: i64) -> Result<Vec<OutboxItem>> {
    let rows =
        sqlx::query("SELECT * FROM outbox WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1")
            .bind(limit)
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|r| {
            let payload: String = col(r, "payload")?;
            let v: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| Error::Protocol(format!("outbox payload: {e}")))?;
            Ok(OutboxItem {
                id: col(r, "id")?,
                device_id: col(r, "device_id")?,
                campaign_id: col(r, "campaign_id")?,
                transport: col(r, "transport")?,
                app_id: v["app_id"].as_u64().unwrap_or(0) as u16,
                payload: v["payload"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Marks a notification sent (a gateway took it).
///
/// # Errors
/// [`Error::NotFound`], database errors.
pub async fn mark_sent(db: &Db, id: &str) -> Result<()> {
    let r = sqlx::query("UPDATE outbox SET sent_at = $1 WHERE id = $2 AND sent_at IS NULL")
        .bind(now())
        .bind(id)
        .execute(db.pool())
        .await?;
    if r.rows_affected() == 0 {
        return Err(Error::NotFound {
            what: "unsent notification",
            id: id.to_string(),
        });
    }
    Ok(())
}
