//! The admin API (`/admin/v1`, bearer token; tokens are stored as sha256
//! hashes): devices, firmware, packages, campaigns, reports, the purge.
//! Every change is committed to the database before the reply.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::campaigns::{self, CampaignSpec};
use crate::db::{col, now, Db};
use crate::error::{Error, Result};
use crate::registry::{self, Capability, DeviceId, NewDevice};
use crate::repository::{self, Firmware};
use crate::updates;

/// Largest package or artifact upload (axum's default is 2 MiB; a delta
/// of a large image, or its `.swu`, can be more).
const MAX_UPLOAD_LEN: usize = 256 << 20;

/// Stores an admin token's hash (idempotent).
pub(super) async fn store_token(db: &Db, token: &str, name: &str) -> Result<()> {
    if token.len() < 16 {
        return Err(Error::Config(
            "admin tokens must be at least 16 characters".into(),
        ));
    }
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let exists = sqlx::query("SELECT name FROM admin_tokens WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(db.pool())
        .await?;
    if exists.is_none() {
        sqlx::query("INSERT INTO admin_tokens (token_hash, name, created_at) VALUES ($1, $2, $3)")
            .bind(&hash)
            .bind(name)
            .bind(now())
            .execute(db.pool())
            .await?;
    }
    Ok(())
}

async fn auth(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = given else {
        return Error::Unauthorized("admin API: send Authorization: Bearer <token>".into())
            .into_response();
    };
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    match sqlx::query("SELECT name FROM admin_tokens WHERE token_hash = $1")
        .bind(&hash)
        .fetch_optional(app.db.pool())
        .await
    {
        Ok(Some(_)) => next.run(req).await,
        Ok(None) => Error::Unauthorized("admin API: unknown token".into()).into_response(),
        Err(e) => Error::Db(e).into_response(),
    }
}

pub(super) fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/devices", post(add_device).get(list_devices))
        .route("/devices/import", post(import_devices))
        .route("/devices/{id}", get(device))
        .route("/devices/{id}/deactivate", post(deactivate))
        .route("/devices/{id}/activate", post(activate))
        .route("/devices/{id}/change-id", post(change_id))
        .route("/firmware", post(add_firmware))
        .route(
            "/packages",
            post(upload)
                .get(list_packages)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_LEN)),
        )
        .route("/packages/{id}/artifacts", get(list_artifacts))
        .route(
            "/packages/{id}/artifacts/{kind}",
            axum::routing::put(put_artifact).layer(DefaultBodyLimit::max(MAX_UPLOAD_LEN)),
        )
        .route("/updates/{id}/cancel", post(cancel_update))
        .route("/campaigns", post(create_campaign))
        .route("/campaigns/{id}", get(campaign))
        .route("/campaigns/{id}/renotify", post(renotify))
        .route("/outbox", get(outbox))
        .route("/outbox/{id}/sent", post(outbox_sent))
        .route("/purge", post(purge))
        .route("/archive/import", post(reimport))
        .route("/reports/updates", get(update_report))
        .layer(middleware::from_fn_with_state(state, auth))
}

/// `POST /devices`.
#[derive(Debug, Deserialize)]
struct AddDevice {
    id: String,
    make: String,
    model: String,
    fw_version: String,
    capability: String,
    #[serde(default)]
    subscriber: String,
    #[serde(default = "yes")]
    active: bool,
    dm_password: Option<String>,
    /// A Mender device's identity data (what its identity script prints).
    #[serde(default)]
    mender_identity: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

fn yes() -> bool {
    true
}

async fn add_device(
    State(app): State<Arc<AppState>>,
    Json(a): Json<AddDevice>,
) -> Result<Response> {
    let capability = Capability::parse(&a.capability).ok_or_else(|| {
        Error::BadRequest(format!(
            "capability {:?}: expected oma-dm, iota, ddi or mender",
            a.capability
        ))
    })?;
    // A DDI device names itself (its hawkBit controller id); a Mender
    // device gets a name from the operator.
    let id = match capability {
        Capability::Ddi | Capability::Mender => DeviceId::from_controller_id(&a.id),
        _ => DeviceId::parse(&a.id),
    }
    .map_err(|e| Error::BadRequest(e.to_string()))?;
    for (what, v) in [
        ("make", &a.make),
        ("model", &a.model),
        ("fw_version", &a.fw_version),
    ] {
        if v.trim().is_empty() {
            return Err(Error::BadRequest(format!("device {id}: {what} is empty")));
        }
    }
    let identity = match (capability, &a.mender_identity) {
        (Capability::Mender, Some(i)) => Some(i.clone()),
        (Capability::Mender, None) => {
            return Err(Error::BadRequest(format!(
                "device {id}: a mender device needs mender_identity, the identity data its identity script prints (e.g. {{\"mac\": \"02:00:00:00:00:01\"}})"
            )))
        }
        (_, Some(_)) => {
            return Err(Error::BadRequest(format!(
                "device {id}: mender_identity is for capability mender"
            )))
        }
        (_, None) => None,
    };
    if let Some(i) = &identity {
        super::mender::check_identity_free(&app, i).await?;
    }
    let d = registry::register(
        &app.db,
        &NewDevice {
            id,
            make: a.make,
            model: a.model,
            fw_version: a.fw_version,
            capability,
            subscriber: a.subscriber,
            active: a.active,
        },
        a.dm_password.as_deref(),
    )
    .await?;
    let mender_identity = match &identity {
        Some(i) => Some(super::mender::register_identity(&app, d.record.id.as_str(), i).await?),
        None => None,
    };
    let body = match capability {
        Capability::Mender => json!({ "device": d.record, "mender_identity": mender_identity }),
        Capability::Ddi => {
            json!({ "device": d.record, "ddi_controller_id": d.record.id.controller_id(), "ddi_target_token": d.dm_password, "dm_password": d.dm_password })
        }
        _ => {
            json!({ "device": d.record, "dm_username": d.record.id.dev_id(), "dm_password": d.dm_password })
        }
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
struct DeviceFilter {
    make: Option<String>,
    model: Option<String>,
    version: Option<String>,
}

async fn list_devices(
    State(app): State<Arc<AppState>>,
    Query(f): Query<DeviceFilter>,
) -> Result<Json<serde_json::Value>> {
    let list = registry::list(
        &app.db,
        f.make.as_deref(),
        f.model.as_deref(),
        f.version.as_deref(),
    )
    .await?;
    let records: Vec<_> = list.into_iter().map(|d| d.record).collect();
    Ok(Json(json!({ "devices": records })))
}

async fn import_devices(
    State(app): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>> {
    let n = registry::import_csv(&app.db, &body).await?;
    Ok(Json(json!({ "imported": n })))
}

async fn device(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let d = registry::require(&app.db, &id).await?;
    let ups = updates::for_device(&app.db, d.record.id.as_str()).await?;
    let rows = sqlx::query(
        "SELECT kind, code, detail, at FROM status_events WHERE device_id = $1 ORDER BY at, id",
    )
    .bind(d.record.id.as_str())
    .fetch_all(app.db.pool())
    .await?;
    let mut events = Vec::new();
    for r in &rows {
        events.push(json!({
            "kind": col::<String>(r, "kind")?,
            "code": col::<Option<i64>>(r, "code")?,
            "detail": col::<String>(r, "detail")?,
            "at": col::<i64>(r, "at")?,
        }));
    }
    Ok(Json(
        json!({ "device": d.record, "updates": ups, "events": events }),
    ))
}

async fn deactivate(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let d = registry::set_active(&app.db, &id, false).await?;
    Ok(Json(json!({ "device": d.record })))
}

async fn activate(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let d = registry::set_active(&app.db, &id, true).await?;
    Ok(Json(json!({ "device": d.record })))
}

#[derive(Debug, Deserialize)]
struct ChangeId {
    new_id: String,
}

async fn change_id(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(c): Json<ChangeId>,
) -> Result<Json<serde_json::Value>> {
    let d = registry::change_id(&app.db, &id, &c.new_id).await?;
    Ok(Json(json!({ "device": d.record })))
}

async fn add_firmware(
    State(app): State<Arc<AppState>>,
    Json(f): Json<Firmware>,
) -> Result<Response> {
    repository::add_firmware(&app.db, &f).await?;
    Ok((StatusCode::CREATED, Json(json!({ "firmware": f }))).into_response())
}

/// `POST /packages`, multipart: `make`, `model`, `package` (the file),
/// `notes` (the release notes, optional).
async fn upload(State(app): State<Arc<AppState>>, mut form: Multipart) -> Result<Response> {
    let (mut make, mut model, mut notes, mut package) = (None, None, String::new(), None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| Error::BadRequest(format!("package upload: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        let data = field
            .bytes()
            .await
            .map_err(|e| Error::BadRequest(format!("package upload, field {name:?}: {e}")))?;
        let text = || {
            String::from_utf8(data.to_vec()).map_err(|_| {
                Error::BadRequest(format!("package upload: field {name:?} is not UTF-8"))
            })
        };
        match name.as_str() {
            "make" => make = Some(text()?),
            "model" => model = Some(text()?),
            "notes" => notes = text()?,
            "package" => package = Some(data),
            other => {
                return Err(Error::BadRequest(format!(
                    "package upload: unknown field {other:?} (make, model, notes, package)"
                )))
            }
        }
    }
    let (Some(make), Some(model), Some(package)) = (make, model, package) else {
        return Err(Error::BadRequest(
            "package upload: the fields make, model and package are required".into(),
        ));
    };
    let info = repository::upload(
        &app.db,
        app.store.as_ref(),
        &app.trusted,
        &make,
        &model,
        package,
        &notes,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "package": info }))).into_response())
}

/// `PUT /packages/{id}/artifacts/{kind}?filename=NAME`: the package in
/// another client's form (kind `swu`), the raw file as the body.
async fn put_artifact(
    State(app): State<Arc<AppState>>,
    Path((id, kind)): Path<(String, String)>,
    Query(q): Query<ArtifactQuery>,
    body: Bytes,
) -> Result<Response> {
    let kind = crate::artifacts::ArtifactKind::parse(&kind).ok_or_else(|| {
        Error::BadRequest(format!("artifact kind {kind:?}: expected swu or mender"))
    })?;
    let filename = q
        .filename
        .unwrap_or_else(|| format!("{id}.{}", kind.as_str()));
    let a =
        crate::artifacts::attach(&app.db, app.store.as_ref(), &id, kind, &filename, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "artifact": a }))).into_response())
}

/// The artifact upload's query.
#[derive(Debug, Deserialize)]
struct ArtifactQuery {
    filename: Option<String>,
}

async fn list_artifacts(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    repository::package(&app.db, &id).await?;
    Ok(Json(
        json!({ "artifacts": crate::artifacts::for_package(&app.db, &id).await? }),
    ))
}

/// `POST /updates/{id}/cancel`: stops an update. A DDI device is told at
/// its next poll (the update is "canceling" until it says it stopped);
/// other devices' updates are canceled at once.
async fn cancel_update(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let u = updates::get(&app.db, &id).await?;
    let d = registry::require(&app.db, &u.device_id).await?;
    let state = updates::cancel(&app.db, &u, d.record.capability == Capability::Ddi).await?;
    Ok(Json(json!({ "update": id, "state": state })))
}

async fn list_packages(State(app): State<Arc<AppState>>) -> Result<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "packages": repository::packages(&app.db).await? }),
    ))
}

async fn create_campaign(
    State(app): State<Arc<AppState>>,
    Json(spec): Json<CampaignSpec>,
) -> Result<Response> {
    let c = campaigns::create(&app, &spec).await?;
    Ok((StatusCode::CREATED, Json(json!({ "campaign": c }))).into_response())
}

async fn campaign(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let p = campaigns::progress(&app.db, &id).await?;
    Ok(Json(json!({ "progress": p })))
}

async fn renotify(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let n = campaigns::renotify(&app, &id).await?;
    Ok(Json(json!({ "renotified": n })))
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<i64>,
}

async fn outbox(
    State(app): State<Arc<AppState>>,
    Query(l): Query<Limit>,
) -> Result<Json<serde_json::Value>> {
    let items = campaigns::outbox(&app.db, l.limit.unwrap_or(1000)).await?;
    Ok(Json(json!({ "outbox": items })))
}

async fn outbox_sent(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    campaigns::mark_sent(&app.db, &id).await?;
    Ok(Json(json!({ "sent": id })))
}

#[derive(Debug, Deserialize)]
struct PurgeQuery {
    /// Overrides the configured period (days), e.g. 0 in tests.
    after_days: Option<u64>,
}

async fn purge(
    State(app): State<Arc<AppState>>,
    Query(q): Query<PurgeQuery>,
) -> Result<Json<serde_json::Value>> {
    let days = q.after_days.unwrap_or(app.config.purge_after_days);
    let r = registry::purge(
        &app.db,
        now(),
        (days * 86_400) as i64,
        &app.config.archive_dir,
    )
    .await?;
    Ok(Json(json!({ "purge": r })))
}

async fn reimport(
    State(app): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>> {
    let n = registry::reimport(&app.db, &body).await?;
    Ok(Json(json!({ "restored": n })))
}

async fn update_report(State(app): State<Arc<AppState>>) -> Result<Json<serde_json::Value>> {
    let rows =
        sqlx::query("SELECT state, COUNT(*) AS n FROM updates GROUP BY state ORDER BY state")
            .fetch_all(app.db.pool())
            .await?;
    let mut by_state = serde_json::Map::new();
    for r in &rows {
        by_state.insert(col::<String>(r, "state")?, json!(col::<i64>(r, "n")?));
    }
    Ok(Json(json!({ "updates": by_state })))
}
