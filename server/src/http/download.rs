//! Package downloads: the bytes with HTTP Range, If-Range and ETag (a
//! dropped transfer resumes where it stopped), the OMA download
//! descriptor, and the install-notify status the device posts after the
//! download (900 success, 901–954 failures).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::AppState;
use crate::download::{self, Descriptor, InstallStatus, Plan, Request};
use crate::error::{Error, Result};
use crate::repository;
use crate::updates::{self, State as UpdateState};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dl/{update}", get(package))
        .route("/dl/{update}/dd", get(descriptor))
        .route("/dl/{update}/notify", post(notify))
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn package(
    State(app): State<Arc<AppState>>,
    Path(update): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response> {
    let u = updates::get(&app.db, &update).await?;
    let p = repository::package(&app.db, &u.package_id).await?;
    ranged(
        &app,
        &u,
        &p.storage_key,
        p.size,
        &p.sha256,
        "application/vnd.fota.package",
        &method,
        &headers,
    )
    .await
}

/// Serves the `size` bytes stored at `key` (whose sha256 is `sha256`,
/// hex: the ETag) for update `u`, with Range, If-Range, If-None-Match and
/// HEAD; the bytes sent count as served. An update that ended serves
/// nothing.
#[allow(clippy::too_many_arguments)]
pub(super) async fn ranged(
    app: &AppState,
    u: &crate::updates::Update,
    key: &str,
    size: u64,
    sha256: &str,
    content_type: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response> {
    if u.state.is_final() {
        return Err(Error::SessionOver {
            sid: u.id.clone(),
            why: format!("the update is {}", u.state.as_str()),
        });
    }
    let mut sha = [0u8; 32];
    hex::decode_to_slice(sha256, &mut sha)
        .map_err(|_| Error::Protocol(format!("{key}: stored sha256 is not hex")))?;
    let etag = &download::etag(&sha);
    let req = Request {
        range: header_str(headers, header::RANGE),
        if_range: header_str(headers, header::IF_RANGE),
        if_none_match: header_str(headers, header::IF_NONE_MATCH),
        head: method == Method::HEAD,
    };
    let plan = download::plan(size, etag, &req);
    let status = StatusCode::from_u16(plan.status()).unwrap_or(StatusCode::OK);
    let mut resp = Response::builder()
        .status(status)
        .header(header::ETAG, etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type);
    if let Some(cr) = plan.content_range(size) {
        resp = resp.header(header::CONTENT_RANGE, cr);
    }
    let body = match (&plan, plan.body_range(size)) {
        (Plan::Full | Plan::Partial { .. }, Some(r)) => {
            resp = resp.header(header::CONTENT_LENGTH, r.end - r.start);
            if req.head || r.is_empty() {
                Body::empty()
            } else {
                let bytes = app.store.get_range(key, r.clone()).await?;
                updates::served(&app.db, u, bytes.len() as u64).await?;
                Body::from(bytes)
            }
        }
        _ => Body::empty(),
    };
    resp.body(body)
        .map_err(|e| Error::Protocol(format!("download response: {e}")))
}

async fn descriptor(
    State(app): State<Arc<AppState>>,
    Path(update): Path<String>,
) -> Result<Response> {
    let u = updates::get(&app.db, &update).await?;
    let p = repository::package(&app.db, &u.package_id).await?;
    let dd = Descriptor {
        name: format!(
            "{} {} {} -> {}",
            p.make, p.model, p.from_version, p.to_version
        ),
        object_uri: format!("{}/dl/{}", app.base_url, u.id),
        size: p.size,
        content_type: "application/vnd.fota.package".into(),
        install_notify_uri: Some(format!("{}/dl/{}/notify", app.base_url, u.id)),
        description: (!p.notes.is_empty()).then(|| p.notes.clone()),
        vendor: Some(p.make.clone()),
        dd_version: "1.0".into(),
        install_param: None,
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, download::DD_CONTENT_TYPE)],
        dd.to_xml(),
    )
        .into_response())
}

async fn notify(
    State(app): State<Arc<AppState>>,
    Path(update): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let u = updates::get(&app.db, &update).await?;
    let (status, message) = download::parse_install_notify(&body)
        .map_err(|e| Error::BadRequest(format!("install notify for update {}: {e}", u.id)))?;
    let code = i64::from(status.code());
    if u.state.is_final() {
        updates::event(
            &app.db,
            &u.device_id,
            "install-notify",
            Some(code),
            "after the update ended",
        )
        .await?;
    } else if status.is_success() {
        updates::set_state(
            &app.db,
            &u,
            UpdateState::Downloaded,
            &message,
            Some(code),
            "install-notify",
        )
        .await?;
    } else if status == InstallStatus::UserCancelled {
        updates::refused(&app.db, &u, code, "install-notify").await?;
    } else {
        updates::set_state(
            &app.db,
            &u,
            UpdateState::Failed,
            &format!("download: {} ({message})", status.meaning()),
            Some(code),
            "install-notify",
        )
        .await?;
    }
    // OMA Download OTA: the server answers the notification with 200.
    Ok(StatusCode::OK.into_response())
}
