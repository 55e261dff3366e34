//! The OMA-DM component over HTTP: each POST carries one SyncML DM message
//! (XML or WBXML); the pure session in `omadm::session` answers it, and
//! this layer looks devices up, records their reports and decides the
//! offer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::AppState;
use crate::config::DmAuth;
use crate::db::now;
use crate::error::{Error, Result};
use crate::omadm::auth::{Credentials, Scheme};
use crate::omadm::fumo::{Report, ResultCode};
use crate::omadm::session::{
    ClientAuthPolicy, DeviceSecrets, End, PkgOffer, Reply, ServerConfig, ServerSession, Step,
};
use crate::registry::{self, Device};
use crate::sessions::{self, Protocol};
use crate::updates::{self, State as UpdateState};

/// A DM session in progress.
#[derive(Debug)]
pub(super) struct Live {
    session: ServerSession,
    device: Device,
    /// The registered session row it runs, if any.
    row: Option<String>,
    last_seen: i64,
}

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/dm", post(message))
}

#[derive(Debug, Deserialize)]
struct SidQuery {
    sid: Option<String>,
    t: Option<String>,
}

/// The DM server settings for this deployment.
fn server_config(app: &AppState) -> ServerConfig {
    let mut c = ServerConfig::new(&format!("{}/dm", app.base_url));
    c.client_auth = match app.config.dm_auth {
        DmAuth::Md5 => Some(ClientAuthPolicy {
            scheme: Scheme::Md5,
            allow_basic: false,
        }),
        DmAuth::Hmac => Some(ClientAuthPolicy {
            scheme: Scheme::Hmac,
            allow_basic: false,
        }),
        DmAuth::None => None,
    };
    if !app.config.dm_server_password.is_empty() {
        c.server_credentials = Some(Credentials::new(
            &app.config.dm_server_id,
            &app.config.dm_server_password,
        ));
    }
    c
}

/// The URL a device downloads an update from. `forced`: a mandatory
/// update whose postponements are used up installs without asking (the
/// simulator reads the flag from the URL, which is ours to define).
pub(super) fn download_url(app: &AppState, update_id: &str, forced: bool) -> String {
    let base = if app.config.download_descriptor {
        format!("{}/dl/{update_id}/dd", app.base_url)
    } else {
        format!("{}/dl/{update_id}", app.base_url)
    };
    if forced {
        format!("{base}?forced=1")
    } else {
        base
    }
}

async fn message(
    State(app): State<Arc<AppState>>,
    Query(q): Query<SidQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let hmac = headers
        .get("x-syncml-hmac")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let msg = crate::omadm::decode(&body, &content_type)
        .map_err(|e| Error::Protocol(format!("DM message: {e}")))?;
    let source = msg.hdr.source.loc_uri.clone();
    let key = format!("{source}|{}", msg.hdr.session_id);
    let taken = app.dm.lock().await.remove(&key);
    let mut live = match taken {
        Some(l) if now() - l.last_seen <= app.config.session_timeout_secs as i64 => l,
        _ => new_session(&app, &source, &q).await?,
    };
    live.last_seen = now();
    let step = live
        .session
        .receive(&body, &content_type, hmac.as_deref())
        .map_err(|e| Error::Protocol(format!("DM session with {source}: {e}")))?;
    let reply = run(&app, &mut live, step).await;
    match reply {
        Ok((reply, ended)) => {
            store_nonces(&app, &live).await?;
            if ended {
                if let Some(row) = &live.row {
                    sessions::close(&app.db, row, "done").await?;
                }
            } else {
                app.dm.lock().await.insert(key, live);
            }
            Ok(respond(reply))
        }
        Err(e) => {
            if let Some(row) = &live.row {
                sessions::close(&app.db, row, &format!("error: {e}")).await?;
            }
            Err(e)
        }
    }
}

/// A session for the first message from `source`: the device must be
/// registered and active; a `sid`/`t` pair from the check-in opens that
/// session, otherwise a campaign's pending network session is used.
async fn new_session(app: &AppState, source: &str, q: &SidQuery) -> Result<Live> {
    let device = registry::require(&app.db, source).await?;
    if !device.record.active {
        return Err(Error::Deactivated {
            id: device.record.id.to_string(),
        });
    }
    let id = device.record.id.as_str().to_string();
    let row = match (&q.sid, &q.t) {
        (Some(sid), Some(t)) => {
            let s = sessions::open(&app.db, sid, t, Protocol::Dm).await?;
            if s.device_id != id {
                return Err(Error::Unauthorized(format!(
                    "session {sid} belongs to another device than {source}"
                )));
            }
            Some(s.id)
        }
        (None, None) => match sessions::pending_network(&app.db, &id, Protocol::Dm).await? {
            Some(s) => {
                sqlx::query("UPDATE sessions SET state = 'open' WHERE id = $1")
                    .bind(&s.id)
                    .execute(app.db.pool())
                    .await?;
                Some(s.id)
            }
            None => None,
        },
        _ => {
            return Err(Error::BadRequest(
                "DM: give both sid and t, or neither".into(),
            ))
        }
    };
    let secrets = DeviceSecrets {
        credentials: Some(Credentials::new(
            &device.record.id.dev_id(),
            &device.dm_password,
        )),
        client_nonce: device.client_nonce.clone(),
        server_nonce: device.server_nonce.clone(),
    };
    let session = ServerSession::new(server_config(app), secrets)
        .map_err(|e| Error::Protocol(format!("DM session with {source}: {e}")))?;
    Ok(Live {
        session,
        device,
        row,
        last_seen: now(),
    })
}

/// Acts on steps until one answers the device: the reply and whether the
/// session is over.
async fn run(app: &AppState, live: &mut Live, mut step: Step) -> Result<(Reply, bool)> {
    loop {
        step = match step {
            Step::Reply(r) => return Ok((r, false)),
            Step::NeedDecision { device, reports } => {
                record_reports(app, live, &reports).await?;
                let r = &live.device.record;
                // A device that reports a declined or failed update in this
                // session is not offered it again in the same breath.
                let declined = reports
                    .iter()
                    .any(|rep| rep.result.is_some_and(|r| !r.is_success()));
                let offer = if declined {
                    None
                } else if device.man != r.make || device.model != r.model {
                    tracing::warn!(device = %r.id, man = %device.man, model = %device.model,
                        "DM: the device reports another make/model than registered; no offer");
                    updates::event(
                        &app.db,
                        r.id.as_str(),
                        "mismatch",
                        None,
                        &format!(
                            "reports {} {}, registered as {} {}",
                            device.man, device.model, r.make, r.model
                        ),
                    )
                    .await?;
                    None
                } else if let Some(fw) = device.fw_version.as_deref() {
                    registry::set_reported_version(&app.db, &r.id, fw).await?;
                    match updates::decide(&app.db, &live.device, fw).await? {
                        Some(d) => {
                            let forced = updates::forced(&app.db, &d.update).await?;
                            Some(PkgOffer {
                                url: download_url(app, &d.update.id, forced),
                                correlator: Some(d.update.id.clone()),
                            })
                        }
                        None => None,
                    }
                } else {
                    None
                };
                live.session
                    .decide(offer)
                    .map_err(|e| Error::Protocol(format!("DM decide: {e}")))?
            }
            Step::Done {
                reply,
                end,
                reports,
            } => {
                record_reports(app, live, &reports).await?;
                record_end(app, live, &end).await?;
                return Ok((reply, true));
            }
        };
    }
}

/// Records FUMO Generic Alerts: results move the update they name (by
/// correlator, else the device's pending one).
async fn record_reports(app: &AppState, live: &Live, reports: &[Report]) -> Result<()> {
    let dev = live.device.record.id.as_str();
    for rep in reports {
        let Some(code) = rep.result else {
            updates::event(&app.db, dev, "fumo-request", None, rep.alert_type.as_str()).await?;
            continue;
        };
        let update = match &rep.correlator {
            Some(c) => updates::get(&app.db, c).await.ok(),
            None => updates::pending(&app.db, dev).await?,
        };
        let Some(u) = update.filter(|u| u.device_id == dev) else {
            updates::event(
                &app.db,
                dev,
                "fumo-result",
                Some(i64::from(code.code())),
                "no update to attach it to",
            )
            .await?;
            continue;
        };
        if u.state.is_final() {
            continue; // a repeated report
        }
        let c = i64::from(code.code());
        if code.is_success() {
            updates::set_state(
                &app.db,
                &u,
                UpdateState::Installed,
                code.meaning(),
                Some(c),
                "fumo-result",
            )
            .await?;
            let p = crate::repository::package(&app.db, &u.package_id).await?;
            registry::set_reported_version(&app.db, &live.device.record.id, &p.to_version).await?;
        } else if code == ResultCode::UserCancelled {
            updates::refused(&app.db, &u, c, "fumo-result").await?;
        } else {
            updates::set_state(
                &app.db,
                &u,
                UpdateState::Failed,
                code.meaning(),
                Some(c),
                "fumo-result",
            )
            .await?;
        }
    }
    Ok(())
}

async fn record_end(app: &AppState, live: &Live, end: &End) -> Result<()> {
    let dev = live.device.record.id.as_str();
    match end {
        End::Accepted {
            correlator, status, ..
        } => {
            if let Some(u) = correlator.as_deref() {
                if let Ok(u) = updates::get(&app.db, u).await {
                    if matches!(u.state, UpdateState::Notified | UpdateState::Postponed) {
                        updates::set_state(
                            &app.db,
                            &u,
                            UpdateState::Offered,
                            "Exec accepted",
                            Some(i64::from(*status)),
                            "dm-exec",
                        )
                        .await?;
                    } else {
                        updates::event(
                            &app.db,
                            dev,
                            "dm-exec",
                            Some(i64::from(*status)),
                            "Exec accepted",
                        )
                        .await?;
                    }
                }
            }
        }
        End::Rejected { cmd, status } => {
            if let Some(u) = updates::pending(&app.db, dev).await? {
                updates::set_state(
                    &app.db,
                    &u,
                    UpdateState::Failed,
                    &format!("the device refused {cmd} with status {status}"),
                    Some(i64::from(*status)),
                    "dm-exec",
                )
                .await?;
            }
        }
        End::NoOffer => {}
        End::AuthFailed(e) => {
            tracing::warn!(device = dev, "DM: authentication failed: {e}");
            updates::event(&app.db, dev, "auth-failed", None, &e.to_string()).await?;
        }
        End::ServerAuthRejected { status } => {
            tracing::warn!(
                device = dev,
                status,
                "DM: the device refused the server's credentials"
            );
            updates::event(
                &app.db,
                dev,
                "server-auth-rejected",
                Some(i64::from(*status)),
                "",
            )
            .await?;
        }
    }
    Ok(())
}

async fn store_nonces(app: &AppState, live: &Live) -> Result<()> {
    let c = live.session.next_client_nonce();
    let s = live.session.server_nonce();
    if c.is_some() || s.is_some() {
        registry::set_nonces(&app.db, &live.device.record.id, c, s).await?;
    }
    Ok(())
}

fn respond(r: Reply) -> Response {
    let mut resp = (StatusCode::OK, r.body).into_response();
    if let Ok(v) = HeaderValue::from_str(&r.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    if let Some(h) = r.hmac.and_then(|h| HeaderValue::from_str(&h).ok()) {
        resp.headers_mut().insert("x-syncml-hmac", h);
    }
    resp
}
