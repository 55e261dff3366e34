//! The IOTA component over HTTP: the handset POSTs `mmc-result` documents
//! to the session URL from its redirect or trigger (`/iota?sid=S&t=T`);
//! the pure `iota::session::TpsSession` answers, and this layer decides
//! the offer and records the outcome.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::AppState;
use crate::db::now;
use crate::error::{Error, Result};
use crate::iota::mmc::{self, Mmc, MmcResult, ResultCode};
use crate::iota::session::{
    EndReason, InstallReport, Offer, Origin, Outcome, Purpose, SessionError, TpsSession,
};
use crate::registry::{self, Device};
use crate::sessions::{self, Protocol};
use crate::updates::{self, State as UpdateState};

/// An IOTA session in progress.
#[derive(Debug)]
pub(super) struct Live {
    session: TpsSession,
    device: Device,
    /// The update offered or reported on, once known.
    update_id: Option<String>,
}

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/iota", post(document))
}

#[derive(Debug, Deserialize)]
struct SidQuery {
    sid: Option<String>,
    t: Option<String>,
}

fn session_error(e: SessionError) -> Error {
    match e {
        SessionError::BadToken { sid } => {
            Error::Unauthorized(format!("IOTA session {sid}: bad token"))
        }
        SessionError::Expired { sid } => Error::SessionOver {
            sid,
            why: "it expired".into(),
        },
        SessionError::Closed { sid, reason } => Error::SessionOver {
            sid,
            why: format!("it ended ({reason:?})"),
        },
        SessionError::WrongSession { expected, found } => Error::NotFound {
            what: "IOTA session",
            id: format!("{found} (posted to {expected})"),
        },
        other => Error::Conflict(other.to_string()),
    }
}

async fn document(
    State(app): State<Arc<AppState>>,
    Query(q): Query<SidQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let (Some(sid), Some(token)) = (q.sid, q.t) else {
        return Err(Error::BadRequest(
            "IOTA: the session URL carries sid and t (/iota?sid=S&t=TOKEN)".into(),
        ));
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !mmc::accepts_content_type(ct) {
        return Err(Error::BadRequest(format!(
            "IOTA session {sid}: Content-Type {ct:?}, expected {}",
            mmc::CONTENT_TYPE
        )));
    }
    let doc =
        MmcResult::parse(&body).map_err(|e| Error::Protocol(format!("IOTA session {sid}: {e}")))?;
    let taken = app.iota.lock().await.remove(&sid);
    let mut live = match taken {
        Some(l) => l,
        None => new_session(&app, &sid, &token).await?,
    };
    let t = now() as u64;
    let outcome = match live.session.handle(&doc, &token, t) {
        Ok(o) => o,
        Err(e) => {
            let over = matches!(
                e,
                SessionError::Expired { .. } | SessionError::Closed { .. }
            );
            if over {
                sessions::close(&app.db, &sid, "session timeout").await?;
            } else {
                app.iota.lock().await.insert(sid.clone(), live);
            }
            return Err(session_error(e));
        }
    };
    let reply = match act(&app, &mut live, outcome).await {
        Ok(r) => r,
        Err(e) => {
            sessions::close(&app.db, &sid, &format!("internal: {e}")).await?;
            return Err(e);
        }
    };
    match &reply {
        Some(doc) => {
            let body = doc.to_xml();
            app.iota.lock().await.insert(sid, live);
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, mmc::CONTENT_TYPE)],
                body,
            )
                .into_response())
        }
        None => {
            let reason = live
                .session
                .end()
                .map_or_else(|| "closed".to_string(), |r| format!("{r:?}"));
            sessions::close(&app.db, &sid, &reason).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

async fn new_session(app: &AppState, sid: &str, token: &str) -> Result<Live> {
    let row = sessions::open(&app.db, sid, token, Protocol::Iota).await?;
    let device = registry::require(&app.db, &row.device_id).await?;
    if !device.record.active {
        sessions::close(&app.db, sid, "not allowed: deactivated").await?;
        return Err(Error::Deactivated {
            id: device.record.id.to_string(),
        });
    }
    let purpose = if row.purpose == "report" {
        let u = match &row.update_id {
            Some(u) => updates::get(&app.db, u).await?,
            None => {
                return Err(Error::Conflict(format!(
                    "IOTA session {sid}: a report session without an update"
                )))
            }
        };
        let p = crate::repository::package(&app.db, &u.package_id).await?;
        Purpose::Report {
            target_version: p.to_version,
        }
    } else {
        Purpose::Check
    };
    let origin = if row.origin == "network" {
        Origin::Network
    } else {
        Origin::Client
    };
    Ok(Live {
        session: TpsSession::new(sid, token, purpose, origin, row.created_at.max(0) as u64),
        device,
        update_id: row.update_id,
    })
}

/// Acts on an outcome: the document to answer, or `None` when the
/// session is over (answered 204).
async fn act(app: &AppState, live: &mut Live, outcome: Outcome) -> Result<Option<Mmc>> {
    let dev = live.device.record.id.as_str().to_string();
    match outcome {
        Outcome::Reply(doc) => Ok(Some(doc)),
        Outcome::NeedDecision {
            man,
            model,
            fw_version,
        } => {
            let r = &live.device.record;
            let offer = if man != r.make || model != r.model {
                tracing::warn!(device = %r.id, %man, %model, "IOTA: the handset reports another make/model than registered; no offer");
                updates::event(
                    &app.db,
                    &dev,
                    "mismatch",
                    None,
                    &format!(
                        "reports {man} {model}, registered as {} {}",
                        r.make, r.model
                    ),
                )
                .await?;
                None
            } else {
                registry::set_reported_version(&app.db, &r.id, &fw_version).await?;
                match updates::decide(&app.db, &live.device, &fw_version).await? {
                    Some(d) => {
                        let forced = updates::forced(&app.db, &d.update).await?;
                        live.update_id = Some(d.update.id.clone());
                        Some(Offer {
                            url: super::dm::download_url(app, &d.update.id, forced),
                            size: d.package.size,
                            sha256_hex: d.package.sha256.clone(),
                            notes: if forced {
                                format!("{}\n{}", crate::campaigns::FORCED_NOTICE, d.package.notes)
                            } else {
                                d.package.notes.clone()
                            },
                            mandatory: d.mandatory,
                        })
                    }
                    None => None,
                }
            };
            let doc = live
                .session
                .decide(offer)
                .map_err(|e| Error::Protocol(e.to_string()))?;
            Ok(Some(doc))
        }
        Outcome::Busy => {
            updates::event(
                &app.db,
                &dev,
                "iota-busy",
                Some(ResultCode::DeviceBusy as i64),
                "the handset is busy; push again later",
            )
            .await?;
            Ok(None)
        }
        Outcome::Report(report, doc) => {
            record_report(app, live, &report).await?;
            Ok(Some(doc))
        }
        Outcome::Closed(reason) => {
            record_end(app, live, &reason).await?;
            Ok(None)
        }
    }
}

async fn record_report(app: &AppState, live: &Live, report: &InstallReport) -> Result<()> {
    let Some(u) = &live.update_id else {
        return Ok(());
    };
    let u = updates::get(&app.db, u).await?;
    if u.state.is_final() {
        return Ok(());
    }
    let code: Option<i64> = report.result.trim().parse().ok();
    if report.installed {
        updates::set_state(
            &app.db,
            &u,
            UpdateState::Installed,
            &format!("the handset runs {}", report.fw_version),
            code,
            "iota-report",
        )
        .await?;
        registry::set_reported_version(&app.db, &live.device.record.id, &report.fw_version).await?;
    } else {
        let name = code
            .and_then(|c| u32::try_from(c).ok())
            .and_then(ResultCode::from_code)
            .map_or("unknown code", ResultCode::name);
        updates::set_state(
            &app.db,
            &u,
            UpdateState::Failed,
            &format!(
                "install failed: result {} ({name}), state {:?}, runs {}",
                report.result, report.state, report.fw_version
            ),
            code,
            "iota-report",
        )
        .await?;
    }
    Ok(())
}

async fn record_end(app: &AppState, live: &Live, reason: &EndReason) -> Result<()> {
    let Some(id) = &live.update_id else {
        return Ok(());
    };
    let u = updates::get(&app.db, id).await?;
    match reason {
        EndReason::UserDenied | EndReason::Postponed => {
            updates::refused(&app.db, &u, ResultCode::UserDenied as i64, "iota-consent").await?;
        }
        EndReason::Mmc(code) => {
            updates::set_state(
                &app.db,
                &u,
                UpdateState::Failed,
                &format!("the handset answered {} ({})", *code as u8, code.name()),
                Some(*code as i64),
                "iota",
            )
            .await?;
        }
        EndReason::UrlDelivered => {
            if matches!(u.state, UpdateState::Notified | UpdateState::Postponed) {
                updates::set_state(
                    &app.db,
                    &u,
                    UpdateState::Offered,
                    "URL delivered",
                    Some(0),
                    "iota",
                )
                .await?;
            }
        }
        _ => {}
    }
    Ok(())
}
