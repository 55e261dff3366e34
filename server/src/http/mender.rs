//! The Mender device API for mender-client: a Mender device is a registry
//! device of capability `mender` whose identity data the operator gave at
//! registration; its deployments are the same updates the other flows and
//! campaigns make, and its artifact is the package's Mender artifact (see
//! `artifacts`).
//!
//! Status codes are the client's (`server/CLIENTS.md`): inventory 200,
//! status and log 204, no update 204, a token as the raw body with no
//! newline; a deployment the operator canceled answers its status with
//! 409 (the client then stops).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::artifacts::{self, ArtifactKind};
use crate::db::{col, now, AttributesOf};
use crate::error::{Error, Result};
use crate::mender::{log_errors, parse_inventory, AuthRequest, Status};
use crate::registry::{self, Device};
use crate::repository;
use crate::updates::{self, State as UpdateState, Update};

/// How long a token is good for.
const TOKEN_SECS: i64 = 7 * 24 * 3600;

pub(super) fn routes() -> Router<Arc<AppState>> {
    let deployments = "/api/devices/v1/deployments/device/deployments";
    Router::new()
        .route("/api/devices/v1/authentication/auth_requests", post(auth))
        .route(
            "/api/devices/v1/inventory/device/attributes",
            put(inventory).patch(inventory),
        )
        .route(
            "/api/devices/v2/deployments/device/deployments/next",
            post(next_post),
        )
        .route(
            &format!("{deployments}/next"),
            post(next_post).get(next_query),
        )
        .route(&format!("{deployments}/{{id}}/status"), put(status))
        .route(&format!("{deployments}/{{id}}/log"), put(log))
        .route(
            "/api/devices/v1/deployments/download/{update}/{file}",
            get(download),
        )
}

/// A Mender-style error reply (`{"error": …}`), which the client logs.
fn refuse(status: StatusCode, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), "mender: {message}");
    (status, Json(json!({ "error": message }))).into_response()
}

async fn auth(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let sig = headers
        .get("x-men-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let req = match AuthRequest::verify(&body, sig) {
        Ok(r) => r,
        Err(e) => return Ok(refuse(StatusCode::UNAUTHORIZED, e.to_string())),
    };
    let row = sqlx::query("SELECT device_id, pubkey FROM mender_identities WHERE identity = $1")
        .bind(&req.identity)
        .fetch_optional(app.db.pool())
        .await?;
    let Some(row) = row else {
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            format!(
                "no device is registered with identity {} (register it with capability mender and this mender_identity)",
                req.identity
            ),
        ));
    };
    let device_id: String = col(&row, "device_id")?;
    let pinned: String = col(&row, "pubkey")?;
    let d = registry::require(&app.db, &device_id).await?;
    if !d.record.active {
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            format!("device {device_id} is deactivated"),
        ));
    }
    // The first key a device authenticates with is its key from then on.
    if pinned.is_empty() {
        sqlx::query("UPDATE mender_identities SET pubkey = $1 WHERE identity = $2")
            .bind(&req.pubkey)
            .bind(&req.identity)
            .execute(app.db.pool())
            .await?;
    } else if pinned.trim() != req.pubkey.trim() {
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            format!("device {device_id} signed with another key than its first one"),
        ));
    }
    let token = jwt(&app, &device_id).await?;
    sqlx::query(
        "INSERT INTO mender_tokens (token_hash, device_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(hex::encode(Sha256::digest(token.as_bytes())))
    .bind(&device_id)
    .bind(now() + TOKEN_SECS)
    .execute(app.db.pool())
    .await?;
    tracing::info!(device = %device_id, "mender: authenticated");
    // The client sends the body back as it is: no newline.
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/jwt")],
        token,
    )
        .into_response())
}

/// A token for `device_id`: a JWT (HS256, signed with the server's own
/// secret) whose claims say which device and until when; its sha256 is
/// stored too, so that the server can check it by lookup and revoke it.
async fn jwt(app: &AppState, device_id: &str) -> Result<String> {
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret = server_secret(app, "mender-jwt").await?;
    let mut jti = [0u8; 16];
    getrandom::getrandom(&mut jti)
        .map_err(|e| Error::Protocol(format!("no random bytes for a token: {e}")))?;
    let t = now();
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64.encode(
        json!({
            "iss": "fota", "sub": device_id, "iat": t, "exp": t + TOKEN_SECS,
            "jti": hex::encode(jti), "mender.device": true,
        })
        .to_string(),
    );
    let input = format!("{header}.{claims}");
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&secret)
        .map_err(|e| Error::Protocol(format!("token key: {e}")))?;
    mac.update(input.as_bytes());
    Ok(format!(
        "{input}.{}",
        b64.encode(mac.finalize().into_bytes())
    ))
}

/// The server's secret `name` (32 random bytes), made on first use.
async fn server_secret(app: &AppState, name: &str) -> Result<Vec<u8>> {
    for _ in 0..2 {
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(app.db.pool())
            .await?;
        if let Some(r) = row {
            let text: String = col(&r, "value")?;
            return hex::decode(text)
                .map_err(|_| Error::Protocol(format!("server secret {name} is not hex")));
        }
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw)
            .map_err(|e| Error::Protocol(format!("no random bytes for a secret: {e}")))?;
        // Two first uses at once: one insert wins, both read it.
        let _ = sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2)")
            .bind(name)
            .bind(hex::encode(raw))
            .execute(app.db.pool())
            .await;
    }
    Err(Error::Protocol(format!(
        "server secret {name} could not be made"
    )))
}

/// The device a bearer token was given to.
async fn device(app: &AppState, headers: &HeaderMap) -> std::result::Result<Device, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    let found = sqlx::query(
        "SELECT device_id FROM mender_tokens WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(hex::encode(Sha256::digest(token.as_bytes())))
    .bind(now())
    .fetch_optional(app.db.pool())
    .await;
    let row = match found {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unknown or expired token: authenticate again".into(),
            ))
        }
        Err(e) => return Err(Error::Db(e).into_response()),
    };
    let id: String = match col(&row, "device_id") {
        Ok(id) => id,
        Err(e) => return Err(e.into_response()),
    };
    match registry::require(&app.db, &id).await {
        Ok(d) if d.record.active => Ok(d),
        Ok(_) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            format!("device {id} is deactivated"),
        )),
        Err(e) => Err(e.into_response()),
    }
}

/// Runs `f` for the token's device, or answers as the client expects.
macro_rules! with_device {
    ($app:expr, $headers:expr) => {
        match device(&$app, &$headers).await {
            Ok(d) => d,
            Err(resp) => return Ok(resp),
        }
    };
}

async fn inventory(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = with_device!(app, headers);
    let attrs = parse_inventory(&body)
        .map_err(|e| Error::BadRequest(format!("device {}: {e}", d.record.id)))?;
    // The running artifact is the device's version.
    if let Some(v) = attrs.get("artifact_name").filter(|v| !v.is_empty()) {
        if *v != d.record.fw_version {
            registry::set_reported_version(&app.db, &d.record.id, v).await?;
        }
    }
    let text = serde_json::to_string(&attrs)
        .map_err(|e| Error::Protocol(format!("Mender inventory: {e}")))?;
    crate::db::put_attributes(&app.db, AttributesOf::Mender, d.record.id.as_str(), &text).await?;
    Ok(StatusCode::OK.into_response())
}

/// `deployments/next` for a device running `artifact_name` of
/// `device_type`: 200 with the deployment, or 204.
async fn next(
    app: &AppState,
    d: &Device,
    artifact_name: &str,
    device_type: &str,
) -> Result<Response> {
    let version = match artifact_name.is_empty() {
        true => d.record.fw_version.clone(),
        false => artifact_name.to_string(),
    };
    if version != d.record.fw_version {
        registry::set_reported_version(&app.db, &d.record.id, &version).await?;
    }
    let Some(decision) = updates::decide(&app.db, d, &version).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let u = &decision.update;
    if u.state == UpdateState::Canceling {
        // Nothing to tell a client that has no cancel: it is canceled.
        updates::set_state(
            &app.db,
            u,
            UpdateState::Canceled,
            "canceled by the operator",
            None,
            "mender",
        )
        .await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let Some(a) = artifacts::get(&app.db, &decision.package.id, ArtifactKind::Mender).await? else {
        tracing::warn!(device = %d.record.id, package = %decision.package.id, "mender: the package has no Mender artifact (fota export mender, then PUT /admin/v1/packages/{{id}}/artifacts/mender): not offered");
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let Some(meta) = a.mender.clone() else {
        return Err(Error::Protocol(format!(
            "artifact of package {} without its metadata",
            a.package_id
        )));
    };
    if !device_type.is_empty() && !meta.device_types.iter().any(|t| t == device_type) {
        tracing::warn!(device = %d.record.id, device_type, "mender: the artifact is not for this device type: not offered");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if u.state == UpdateState::Notified {
        updates::set_state(
            &app.db,
            u,
            UpdateState::Offered,
            "deployment offered",
            None,
            "mender",
        )
        .await?;
    }
    let uri = format!(
        "{}/api/devices/v1/deployments/download/{}/{}",
        app.base_url, u.id, a.filename
    );
    Ok(Json(json!({
        "id": u.id,
        "artifact": {
            "id": a.sha256,
            "artifact_name": meta.artifact_name,
            "source": { "uri": uri, "expire": "2100-01-01T00:00:00Z" },
            "device_types_compatible": meta.device_types,
        },
    }))
    .into_response())
}

/// The POST forms: v2 (`device_provides`) and v1 (the fields at the top).
async fn next_post(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = with_device!(app, headers);
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!(
            "device {}: deployments/next: JSON ({e})",
            d.record.id
        ))
    })?;
    let p = v.get("device_provides").unwrap_or(&v);
    next(
        &app,
        &d,
        p["artifact_name"].as_str().unwrap_or(""),
        p["device_type"].as_str().unwrap_or(""),
    )
    .await
}

/// The v1 GET form's query.
#[derive(Debug, Deserialize)]
struct NextQuery {
    #[serde(default)]
    artifact_name: String,
    #[serde(default)]
    device_type: String,
}

async fn next_query(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Result<Response> {
    let d = with_device!(app, headers);
    next(&app, &d, &q.artifact_name, &q.device_type).await
}

/// The device's update `id`.
async fn own_update(app: &AppState, d: &Device, id: &str) -> Result<Update> {
    let u = updates::get(&app.db, id).await?;
    if u.device_id != d.record.id.as_str() {
        return Err(Error::NotFound {
            what: "deployment",
            id: id.to_string(),
        });
    }
    Ok(u)
}

async fn status(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = with_device!(app, headers);
    let u = own_update(&app, &d, &id).await?;
    let s = Status::parse(&body).map_err(|e| Error::BadRequest(format!("deployment {id}: {e}")))?;
    // The operator stopped it: 409 tells the client to stop.
    if matches!(u.state, UpdateState::Canceling | UpdateState::Canceled) {
        if u.state == UpdateState::Canceling {
            updates::set_state(
                &app.db,
                &u,
                UpdateState::Canceled,
                &format!("canceled by the operator; the device was {}", s.as_str()),
                None,
                "mender",
            )
            .await?;
        }
        return Ok(refuse(
            StatusCode::CONFLICT,
            format!("deployment {id} was canceled"),
        ));
    }
    if u.state.is_final() {
        updates::note(
            &app.db,
            &u,
            "mender-status",
            &format!("after the update ended: {}", s.as_str()),
        )
        .await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let moved = match s {
        Status::Downloading
            if matches!(
                u.state,
                UpdateState::Notified | UpdateState::Offered | UpdateState::Postponed
            ) =>
        {
            Some(UpdateState::Downloading)
        }
        // Downloaded and being written, or rebooting into it.
        Status::Installing | Status::Rebooting if u.state != UpdateState::Downloaded => {
            Some(UpdateState::Downloaded)
        }
        Status::Success | Status::AlreadyInstalled => Some(UpdateState::Installed),
        Status::Failure => Some(UpdateState::Failed),
        _ => None,
    };
    match moved {
        Some(state) => {
            updates::set_state(
                &app.db,
                &u,
                state,
                &format!("mender: {}", s.as_str()),
                None,
                "mender-status",
            )
            .await?;
            if state == UpdateState::Installed {
                let p = repository::package(&app.db, &u.package_id).await?;
                registry::set_reported_version(&app.db, &d.record.id, &p.to_version).await?;
            }
        }
        None => updates::note(&app.db, &u, "mender-status", s.as_str()).await?,
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Most error lines of a failure log quoted in the update's reason.
const MAX_LOG_ERRORS: usize = 4;

async fn log(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let d = with_device!(app, headers);
    let u = own_update(&app, &d, &id).await?;
    let errors =
        log_errors(&body).map_err(|e| Error::BadRequest(format!("deployment {id}: {e}")))?;
    let last = &errors[errors.len().saturating_sub(MAX_LOG_ERRORS)..];
    if !last.is_empty() {
        updates::note(&app.db, &u, "mender-log", &last.join(" / ")).await?;
        // The log follows the failure: its errors are the reason.
        if u.state == UpdateState::Failed {
            let reason = format!("{}; device errors: {}", u.reason, last.join(" / "));
            updates::set_state(
                &app.db,
                &u,
                UpdateState::Failed,
                &reason,
                None,
                "mender-log",
            )
            .await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The artifact of update `update` (the client sends no token here: the
/// update's id, 128 random bits, is the capability, as for `/dl`).
async fn download(
    State(app): State<Arc<AppState>>,
    Path((update, file)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let u = updates::get(&app.db, &update).await?;
    let not_found = || Error::NotFound {
        what: "artifact",
        id: file.clone(),
    };
    let a = artifacts::get(&app.db, &u.package_id, ArtifactKind::Mender)
        .await?
        .filter(|a| a.filename == file)
        .ok_or_else(not_found)?;
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

/// `identity` as the registry keeps it (canonical JSON).
fn canonical(identity: &BTreeMap<String, Value>) -> Result<String> {
    let text = serde_json::to_string(identity)
        .map_err(|e| Error::BadRequest(format!("mender_identity: {e}")))?;
    crate::mender::canonical_identity(&text)
        .map_err(|e| Error::BadRequest(format!("mender_identity: {e}")))
}

/// Refuses identity data another device has, before a registration.
///
/// # Errors
/// [`Error::BadRequest`] for identity data that is not an object;
/// [`Error::Conflict`] when another device has it.
pub(super) async fn check_identity_free(
    app: &AppState,
    identity: &BTreeMap<String, Value>,
) -> Result<()> {
    let canonical = canonical(identity)?;
    let taken = sqlx::query("SELECT device_id FROM mender_identities WHERE identity = $1")
        .bind(&canonical)
        .fetch_optional(app.db.pool())
        .await?;
    if let Some(r) = taken {
        let other: String = col(&r, "device_id")?;
        return Err(Error::Conflict(format!(
            "mender identity {canonical} is device {other}'s"
        )));
    }
    Ok(())
}

/// Stores a Mender device's identity at registration (canonical JSON).
///
/// # Errors
/// As [`check_identity_free`].
pub(super) async fn register_identity(
    app: &AppState,
    device_id: &str,
    identity: &BTreeMap<String, Value>,
) -> Result<String> {
    check_identity_free(app, identity).await?;
    let canonical = canonical(identity)?;
    sqlx::query("INSERT INTO mender_identities (identity, device_id, pubkey, created_at) VALUES ($1, $2, '', $3)")
        .bind(&canonical)
        .bind(device_id)
        .bind(now())
        .execute(app.db.pool())
        .await?;
    Ok(canonical)
}
