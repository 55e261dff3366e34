//! The client-initiated check: the device calls the FOTA URL with its id;
//! the registry finds it, a pending session is registered with the
//! component that fits its capability, and the device is redirected there.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::AppState;
use crate::error::{Error, Result};
use crate::registry::{self, Capability, DeviceId};
use crate::sessions::{self, Protocol};
use crate::updates::{self, State as UpdateState};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/fota/check", get(check))
}

/// The check-in query.
#[derive(Debug, Deserialize)]
struct CheckQuery {
    /// ESN, MEID or IMEI.
    id: Option<String>,
    make: Option<String>,
    model: Option<String>,
    version: Option<String>,
}

async fn check(State(app): State<Arc<AppState>>, Query(q): Query<CheckQuery>) -> Result<Response> {
    let Some(raw) = q.id.as_deref().filter(|s| !s.trim().is_empty()) else {
        return Err(Error::BadRequest(
            "check-in: give the device id: /fota/check?id=<ESN|MEID|IMEI>".into(),
        ));
    };
    let id = DeviceId::parse(raw).map_err(|e| Error::BadRequest(format!("check-in: {e}")))?;
    let device = registry::require(&app.db, id.as_str()).await?;
    let r = &device.record;
    if !r.active {
        return Err(Error::Deactivated {
            id: r.id.to_string(),
        });
    }
    for (what, given, known) in [("make", &q.make, &r.make), ("model", &q.model, &r.model)] {
        if let Some(g) = given {
            if g != known {
                return Err(Error::Conflict(format!(
                    "check-in: device {} reports {what} {g:?} but is registered as {known:?}",
                    r.id
                )));
            }
        }
    }
    if let Some(v) = q.version.as_deref().filter(|v| !v.is_empty()) {
        if v != r.fw_version {
            registry::set_reported_version(&app.db, &r.id, v).await?;
        }
    }
    let pending = updates::pending(&app.db, r.id.as_str()).await?;
    let (protocol, path) = match r.capability {
        Capability::OmaDm => (Protocol::Dm, "dm"),
        Capability::Iota => (Protocol::Iota, "iota"),
        Capability::Ddi => {
            return Err(Error::Conflict(format!(
                "check-in: device {} speaks hawkBit DDI: it polls {}/{}/controller/v1/{}",
                r.id,
                app.base_url,
                app.config.ddi_tenant,
                r.id.controller_id()
            )))
        }
        Capability::Mender => {
            return Err(Error::Conflict(format!(
                "check-in: device {} speaks the Mender device API: it polls {}/api/devices/",
                r.id, app.base_url
            )))
        }
    };
    // After an install an IOTA handset's session reads the result; a DM
    // device carries its result in the session's Generic Alert.
    let purpose = match (&pending, protocol) {
        (Some(u), Protocol::Iota) if u.state == UpdateState::Downloaded => "report",
        _ => "check",
    };
    let (s, token) = sessions::register(
        &app.db,
        r.id.as_str(),
        protocol,
        purpose,
        "client",
        pending.as_ref().map(|u| u.id.as_str()),
        app.config.session_timeout_secs,
    )
    .await?;
    let location = format!("{}/{path}?sid={}&t={token}", app.base_url, s.id);
    tracing::info!(device = %r.id, session = %s.id, protocol = protocol.as_str(), purpose, "check-in: redirect");
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}
