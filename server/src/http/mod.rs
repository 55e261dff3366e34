//! The HTTP face of the server (axum): device endpoints (check-in, the DM
//! and IOTA components, downloads) and the admin API, over one shared
//! state.
//!
//! ```text
//! GET  /fota/check?id=…[&make&model&version]  check-in → 302 to /dm or /iota
//! POST /dm[?sid&t]                             SyncML DM 1.2 (XML or WBXML)
//! POST /iota?sid&t                             IOTA MMC documents
//! GET  /dl/{update}                            the package (Range, ETag)
//! GET  /dl/{update}/dd                         its OMA download descriptor
//! POST /dl/{update}/notify                     install notify (900–954)
//! /{tenant}/controller/v1/{id}/…               hawkBit DDI (polling devices)
//! /api/devices/…                               the Mender device API
//! /admin/v1/…                                  admin API (bearer token)
//! ```

mod admin;
mod checkin;
mod ddi;
mod dm;
mod download;
mod iota;
mod mender;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use ed25519_dalek::VerifyingKey;
use tokio::sync::Mutex;

use crate::campaigns::{Notifier, Outbox};
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::store::{ObjectStorePackages, PackageStore};

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The package store.
    pub store: Arc<dyn PackageStore>,
    /// The configuration.
    pub config: Config,
    /// The operator's trusted package keys.
    pub trusted: Vec<VerifyingKey>,
    /// The public base URL (no trailing slash).
    pub base_url: String,
    /// How campaign notifications reach devices.
    pub notifier: Arc<dyn Notifier>,
    /// DM sessions in progress, by device id and SessionID.
    dm: Mutex<HashMap<String, dm::Live>>,
    /// IOTA sessions in progress, by sid.
    iota: Mutex<HashMap<String, iota::Live>>,
}

impl AppState {
    /// Opens the database (migrating it) and the package store, reads the
    /// trusted keys and stores the admin tokens' hashes.
    ///
    /// # Errors
    /// Configuration, database and store errors.
    pub async fn open(config: Config) -> Result<Arc<AppState>> {
        let db = Db::connect(&config.database_url).await?;
        let store = Arc::new(ObjectStorePackages::local(&config.package_dir)?);
        let trusted = config.read_trusted_keys()?;
        for t in &config.admin_tokens {
            admin::store_token(&db, t, "config").await?;
        }
        Ok(Arc::new(AppState {
            base_url: config.base_url(),
            db,
            store,
            config,
            trusted,
            notifier: Arc::new(Outbox),
            dm: Mutex::new(HashMap::new()),
            iota: Mutex::new(HashMap::new()),
        }))
    }

    /// The number of protocol sessions held in memory (DM, IOTA).
    pub async fn live_sessions(&self) -> (usize, usize) {
        (self.dm.lock().await.len(), self.iota.lock().await.len())
    }
}

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(checkin::routes())
        .merge(dm::routes())
        .merge(iota::routes())
        .merge(download::routes())
        .merge(ddi::routes())
        .merge(mender::routes())
        .nest("/admin/v1", admin::routes(state.clone()))
        .with_state(state)
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<AppState>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, finishes the requests in flight, closes the database.
    ///
    /// # Errors
    /// [`Error::Io`] when the server failed.
    pub async fn stop(self) -> Result<()> {
        let _ = self.shutdown.send(());
        let r = self.task.await.map_err(|e| Error::Io {
            path: "server task".into(),
            source: std::io::Error::other(e),
        })?;
        self.state.db.close().await;
        r.map_err(|e| Error::Io {
            path: self.addr.to_string(),
            source: e,
        })
    }
}

/// Starts serving `config` in the background. A port of 0 picks a free
/// one; an empty `public_url` becomes `http://<the bound address>`.
///
/// # Errors
/// [`Error::Io`] when the address cannot be bound; the errors of
/// [`AppState::open`].
pub async fn start(mut config: Config) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Io {
            path: config.listen.to_string(),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| Error::Io {
        path: config.listen.to_string(),
        source: e,
    })?;
    config.listen = addr;
    let state = AppState::open(config).await?;
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    tracing::info!(%addr, "serving");
    Ok(Running {
        addr,
        state,
        shutdown: tx,
        task,
    })
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
///
/// # Errors
/// As [`start`].
pub async fn serve(config: Config) -> Result<()> {
    let running = start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
