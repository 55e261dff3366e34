//! hawkBit DDI for devices that poll (swupdate's suricatta, other hawkBit
//! clients): a DDI device is a registry device of capability `ddi`, its
//! actions are the same updates the OMA-DM and IOTA flows and campaigns
//! make, and its artifact is the package's `.swu` (see `artifacts`).
//!
//! Every answer a client takes as success is 200 (swupdate treats 201 and
//! 204 as errors). A feedback or configData is written before the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::artifacts::{self, Artifact, ArtifactKind};
use crate::config::DdiAuth;
use crate::db::{col, now, AttributesOf};
use crate::ddi::{sleep_text, ConfigData, Execution, Feedback, Finished};
use crate::error::{Error, Result};
use crate::registry::{self, Capability, Device, DeviceId};
use crate::repository::{self, PackageInfo};
use crate::updates::{self, State as UpdateState, Update};

pub(super) fn routes() -> Router<Arc<AppState>> {
    let base = "/{tenant}/controller/v1/{controller}";
    Router::new()
        .route(base, get(poll))
        .route(
            &format!("{base}/deploymentBase/{{action}}"),
            get(deployment),
        )
        .route(
            &format!("{base}/deploymentBase/{{action}}/feedback"),
            post(feedback),
        )
        .route(&format!("{base}/configData"), put(config_data))
        .route(
            &format!("{base}/cancelAction/{{action}}"),
            get(cancel_action),
        )
        .route(
            &format!("{base}/cancelAction/{{action}}/feedback"),
            post(cancel_feedback),
        )
        .route(
            &format!("{base}/softwaremodules/{{module}}/artifacts/{{file}}"),
            get(artifact),
        )
}

/// The device a DDI request is for: the tenant served, a registered,
/// active device of capability `ddi`, and its target token.
async fn device(
    app: &AppState,
    tenant: &str,
    controller: &str,
    headers: &HeaderMap,
) -> Result<Device> {
    if tenant != app.config.ddi_tenant {
        return Err(Error::NotFound {
            what: "DDI tenant",
            id: tenant.to_string(),
        });
    }
    let id = DeviceId::from_controller_id(controller)
        .map_err(|e| Error::BadRequest(format!("DDI controller id: {e}")))?;
    let d = registry::require(&app.db, id.as_str()).await?;
    if !d.record.active {
        return Err(Error::Deactivated {
            id: d.record.id.to_string(),
        });
    }
    if d.record.capability != Capability::Ddi {
        return Err(Error::Conflict(format!(
            "device {} is registered as {}, not ddi",
            d.record.id,
            d.record.capability.as_str()
        )));
    }
    if app.config.ddi_auth == DdiAuth::TargetToken {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("TargetToken "))
            .map(str::trim);
        let ok = given.is_some_and(|t| constant_time_eq(t.as_bytes(), d.dm_password.as_bytes()));
        if !ok {
            return Err(Error::Unauthorized(format!(
                "DDI: device {} must send Authorization: TargetToken <its secret>",
                d.record.id
            )));
        }
    }
    Ok(d)
}

/// Feedbacks whose error lines a failure's reason quotes, the last ones.
const MAX_REASON_NOTES: usize = 3;

/// A detail that reports an error (`ERROR : …`, as swupdate logs them),
/// without its prefix.
fn error_line(detail: &str) -> Option<&str> {
    let rest = detail.strip_prefix("ERROR")?;
    let rest = rest.trim_start().strip_prefix(':').unwrap_or(rest).trim();
    (!rest.is_empty()).then_some(rest)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The device's URL prefix (`…/{tenant}/controller/v1/{controller}`).
fn device_url(app: &AppState, d: &Device) -> String {
    format!(
        "{}/{}/controller/v1/{}",
        app.base_url,
        app.config.ddi_tenant,
        d.record.id.controller_id()
    )
}

/// The action id of an update, made on first use (DDI action ids are
/// numbers; update ids are not).
async fn action_for(app: &AppState, update_id: &str) -> Result<i64> {
    // Two polls racing for a new id: the loser retries with the next one.
    for _ in 0..8 {
        let row = sqlx::query("SELECT action_id FROM ddi_actions WHERE update_id = $1")
            .bind(update_id)
            .fetch_optional(app.db.pool())
            .await?;
        if let Some(row) = row {
            return col(&row, "action_id");
        }
        let max = sqlx::query("SELECT COALESCE(MAX(action_id), 0) AS m FROM ddi_actions")
            .fetch_one(app.db.pool())
            .await?;
        let next = col::<i64>(&max, "m")? + 1;
        let inserted = sqlx::query(
            "INSERT INTO ddi_actions (action_id, update_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(next)
        .bind(update_id)
        .bind(now())
        .execute(app.db.pool())
        .await;
        if inserted.is_ok() {
            return Ok(next);
        }
    }
    Err(Error::Conflict(format!(
        "DDI: no action id could be given to update {update_id}"
    )))
}

/// The update behind `action`, which must be the device's.
async fn action_update(app: &AppState, d: &Device, action: &str) -> Result<Update> {
    let not_found = || Error::NotFound {
        what: "DDI action",
        id: action.to_string(),
    };
    let n: i64 = action.parse().map_err(|_| not_found())?;
    let row = sqlx::query("SELECT update_id FROM ddi_actions WHERE action_id = $1")
        .bind(n)
        .fetch_optional(app.db.pool())
        .await?
        .ok_or_else(not_found)?;
    let u = updates::get(&app.db, &col::<String>(&row, "update_id")?).await?;
    if u.device_id != d.record.id.as_str() {
        return Err(not_found());
    }
    Ok(u)
}

/// The update's package and its `.swu`.
async fn swu_of(app: &AppState, u: &Update) -> Result<(PackageInfo, Option<Artifact>)> {
    let p = repository::package(&app.db, &u.package_id).await?;
    let a = artifacts::get(&app.db, &p.id, ArtifactKind::Swu).await?;
    Ok((p, a))
}

/// The attributes the device sent, if it sent any.
async fn attributes(app: &AppState, d: &Device) -> Result<Option<BTreeMap<String, String>>> {
    let row = sqlx::query("SELECT attributes FROM ddi_attributes WHERE device_id = $1")
        .bind(d.record.id.as_str())
        .fetch_optional(app.db.pool())
        .await?;
    row.map(|r| {
        let text: String = col(&r, "attributes")?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Protocol(format!("stored DDI attributes: {e}")))
    })
    .transpose()
}

async fn poll(
    State(app): State<Arc<AppState>>,
    Path((tenant, controller)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let d = device(&app, &tenant, &controller, &headers).await?;
    let url = device_url(&app, &d);
    let mut links = serde_json::Map::new();
    if let Some(decision) = updates::decide(&app.db, &d, &d.record.fw_version).await? {
        let u = &decision.update;
        match artifacts::get(&app.db, &decision.package.id, ArtifactKind::Swu).await? {
            // The operator canceled it: the device is told to stop.
            Some(_) if u.state == UpdateState::Canceling => {
                let action = action_for(&app, &u.id).await?;
                links.insert(
                    "cancelAction".into(),
                    json!({ "href": format!("{url}/cancelAction/{action}") }),
                );
            }
            Some(_) => {
                let action = action_for(&app, &u.id).await?;
                // The query changes with the update's state, as hawkBit's
                // does, so a client's cache never holds a stale answer.
                links.insert(
                    "deploymentBase".into(),
                    json!({ "href": format!("{url}/deploymentBase/{action}?c={}", u.state.as_str()) }),
                );
            }
            None => tracing::warn!(
                device = %d.record.id,
                package = %decision.package.id,
                "DDI: the package has no .swu artifact (fota export swu, then PUT /admin/v1/packages/{{id}}/artifacts/swu): not offered"
            ),
        }
    }
    // Asked for until the device has sent its attributes once: a client
    // that sees the link sends them before anything else.
    if attributes(&app, &d).await?.is_none() {
        links.insert(
            "configData".into(),
            json!({ "href": format!("{url}/configData") }),
        );
    }
    Ok(Json(json!({
        "config": { "polling": { "sleep": sleep_text(app.config.ddi_polling_secs) } },
        "_links": links,
    })))
}

async fn deployment(
    State(app): State<Arc<AppState>>,
    Path((tenant, controller, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let d = device(&app, &tenant, &controller, &headers).await?;
    let u = action_update(&app, &d, &action).await?;
    let (p, a) = swu_of(&app, &u).await?;
    let a = a.ok_or_else(|| Error::NotFound {
        what: "swu artifact of package",
        id: p.id.clone(),
    })?;
    if u.state == UpdateState::Notified {
        updates::set_state(
            &app.db,
            &u,
            UpdateState::Offered,
            "deployment fetched",
            None,
            "ddi",
        )
        .await?;
    }
    let mandatory = updates::mandatory(&app.db, &u).await?;
    let handling = if mandatory { "forced" } else { "attempt" };
    let href = format!(
        "{}/softwaremodules/{action}/artifacts/{}",
        device_url(&app, &d),
        a.filename
    );
    Ok(Json(json!({
        "id": action,
        "deployment": {
            "download": handling,
            "update": handling,
            "chunks": [{
                "part": "os",
                "version": p.to_version,
                "name": format!("{} {}", p.make, p.model),
                "artifacts": [{
                    "filename": a.filename,
                    "hashes": { "sha1": a.sha1, "md5": a.md5, "sha256": a.sha256 },
                    "size": a.size,
                    "_links": {
                        "download-http": { "href": href },
                        "md5sum-http": { "href": format!("{href}.MD5SUM") },
                    },
                }],
            }],
        },
    })))
}

async fn artifact(
    State(app): State<Arc<AppState>>,
    Path((tenant, controller, module, file)): Path<(String, String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let d = device(&app, &tenant, &controller, &headers).await?;
    let u = action_update(&app, &d, &module).await?;
    let (p, a) = swu_of(&app, &u).await?;
    let not_found = || Error::NotFound {
        what: "artifact",
        id: file.clone(),
    };
    let a = a.ok_or_else(not_found)?;
    if let Some(name) = file.strip_suffix(".MD5SUM") {
        if name != a.filename {
            return Err(not_found());
        }
        return Ok((StatusCode::OK, format!("{}  {}\n", a.md5, a.filename)).into_response());
    }
    if file != a.filename {
        return Err(not_found());
    }
    tracing::debug!(device = %d.record.id, package = %p.id, "DDI artifact");
    super::download::ranged(
        &app,
        &u,
        &a.storage_key,
        a.size,
        &a.sha256,
        "application/octet-stream",
        &method,
        &headers,
    )
    .await
}

async fn feedback(
    State(app): State<Arc<AppState>>,
    Path((tenant, controller, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = device(&app, &tenant, &controller, &headers).await?;
    let u = action_update(&app, &d, &action).await?;
    let f = Feedback::parse(&body).map_err(|e| {
        Error::BadRequest(format!("action {action} of device {}: {e}", d.record.id))
    })?;
    let summary = f.summary();
    if u.state.is_final() {
        updates::note(
            &app.db,
            &u,
            "ddi-feedback",
            &format!("after the update ended: {summary}"),
        )
        .await?;
        return Ok(StatusCode::OK.into_response());
    }
    // The device's error lines (swupdate forwards its log while it
    // installs), kept so that a failure says what went wrong rather than
    // only the client's closing words.
    let errors: Vec<&str> = f.details.iter().filter_map(|d| error_line(d)).collect();
    if !errors.is_empty() {
        updates::note(&app.db, &u, "ddi-error", &errors.join(" / ")).await?;
    }
    let moved = match (f.execution, f.finished) {
        (Execution::Closed, Finished::Success) => Some((UpdateState::Installed, summary)),
        (Execution::Closed, _) => {
            let mut errors = updates::notes(&app.db, &u, "ddi-error").await?;
            errors.dedup();
            let last = &errors[errors.len().saturating_sub(MAX_REASON_NOTES)..];
            let reason = match last.is_empty() {
                true => summary,
                false => format!("{summary}; device errors: {}", last.join(" / ")),
            };
            Some((UpdateState::Failed, reason))
        }
        (Execution::Canceled, _) => Some((
            UpdateState::Failed,
            format!("canceled by the device: {summary}"),
        )),
        (Execution::Rejected, _) => {
            updates::refused(&app.db, &u, 0, "ddi-feedback").await?;
            return Ok(StatusCode::OK.into_response());
        }
        // Written, not yet confirmed: the device reports closed once it
        // runs the new image (after its reboot).
        (Execution::Downloaded, _) => Some((UpdateState::Downloaded, summary)),
        _ if f.all_chunks_done() => Some((UpdateState::Downloaded, summary)),
        _ if matches!(
            u.state,
            UpdateState::Notified | UpdateState::Offered | UpdateState::Postponed
        ) =>
        {
            Some((UpdateState::Downloading, summary))
        }
        _ => {
            updates::note(&app.db, &u, "ddi-feedback", &summary).await?;
            None
        }
    };
    if let Some((state, reason)) = moved {
        updates::set_state(&app.db, &u, state, &reason, None, "ddi-feedback").await?;
        if state == UpdateState::Installed {
            let p = repository::package(&app.db, &u.package_id).await?;
            registry::set_reported_version(&app.db, &d.record.id, &p.to_version).await?;
        }
    }
    Ok(StatusCode::OK.into_response())
}

/// `cancelAction/{action}`: the action to stop (DDI gives the cancel its
/// own id; here it is the action's).
async fn cancel_action(
    State(app): State<Arc<AppState>>,
    Path((tenant, controller, action)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let d = device(&app, &tenant, &controller, &headers).await?;
    let u = action_update(&app, &d, &action).await?;
    if !matches!(u.state, UpdateState::Canceling | UpdateState::Canceled) {
        return Err(Error::NotFound {
            what: "DDI cancel action",
            id: action,
        });
    }
    Ok(Json(
        json!({ "id": action, "cancelAction": { "stopId": action } }),
    ))
}

/// The device's answer to a cancel: closed/success stopped it; a failure
/// or a rejection means it goes on (and reports on the action as usual).
async fn cancel_feedback(
    State(app): State<Arc<AppState>>,
    Path((tenant, controller, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = device(&app, &tenant, &controller, &headers).await?;
    let u = action_update(&app, &d, &action).await?;
    let f = Feedback::parse(&body).map_err(|e| {
        Error::BadRequest(format!(
            "cancel of action {action} of device {}: {e}",
            d.record.id
        ))
    })?;
    let summary = f.summary();
    if u.state != UpdateState::Canceling {
        updates::note(
            &app.db,
            &u,
            "ddi-cancel",
            &format!("while {}: {summary}", u.state.as_str()),
        )
        .await?;
        return Ok(StatusCode::OK.into_response());
    }
    match (f.execution, f.finished) {
        (Execution::Closed, Finished::Success) | (Execution::Canceled, _) => {
            updates::set_state(
                &app.db,
                &u,
                UpdateState::Canceled,
                &format!("the device stopped: {summary}"),
                None,
                "ddi-cancel",
            )
            .await?;
        }
        (Execution::Closed | Execution::Rejected, _) => {
            updates::set_state(
                &app.db,
                &u,
                UpdateState::Downloading,
                &format!("the device could not cancel: {summary}"),
                None,
                "ddi-cancel",
            )
            .await?;
        }
        _ => updates::note(&app.db, &u, "ddi-cancel", &summary).await?,
    }
    Ok(StatusCode::OK.into_response())
}

async fn config_data(
    State(app): State<Arc<AppState>>,
    Path((tenant, controller)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = device(&app, &tenant, &controller, &headers).await?;
    let c = ConfigData::parse(&body)
        .map_err(|e| Error::BadRequest(format!("device {}: {e}", d.record.id)))?;
    let held = attributes(&app, &d).await?.unwrap_or_default();
    let text = serde_json::to_string(&c.apply(held))
        .map_err(|e| Error::Protocol(format!("DDI attributes: {e}")))?;
    crate::db::put_attributes(&app.db, AttributesOf::Ddi, d.record.id.as_str(), &text).await?;
    Ok(StatusCode::OK.into_response())
}
