//! The server's error type: every failure a request or a background job
//! can meet, each with the HTTP status it maps to and a message that says
//! what was wrong with which object.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failure in the server. Handlers return it; it becomes an HTTP error
/// with a JSON body `{"error": kind, "message": text}` and a log line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such object.
    #[error("{what} {id:?} is not known")]
    NotFound {
        /// The kind of object: "device", "package", "session", …
        what: &'static str,
        /// Its id as given.
        id: String,
    },
    /// The device is known but deactivated.
    #[error("device {id} is deactivated")]
    Deactivated {
        /// The device.
        id: String,
    },
    /// The request is malformed or names impossible values.
    #[error("{0}")]
    BadRequest(String),
    /// The object already exists or the request conflicts with its state.
    #[error("{0}")]
    Conflict(String),
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// An uploaded package is refused (signature, manifest, versions).
    #[error("package refused: {0}")]
    PackageRefused(String),
    /// A protocol message could not be taken (DM or IOTA session error).
    #[error("{0}")]
    Protocol(String),
    /// The session expired or ended.
    #[error("session {sid:?} is over: {why}")]
    SessionOver {
        /// The session id.
        sid: String,
        /// Why.
        why: String,
    },
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database schema could not be migrated.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The package store failed.
    #[error("package store: {0}")]
    Store(#[from] object_store::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The server's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Deactivated { .. } => StatusCode::FORBIDDEN,
            Error::BadRequest(_) | Error::Protocol(_) => StatusCode::BAD_REQUEST,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::PackageRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::SessionOver { .. } => StatusCode::GONE,
            Error::Config(_)
            | Error::Db(_)
            | Error::Migrate(_)
            | Error::Store(_)
            | Error::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable kind for the JSON body.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not-found",
            Error::Deactivated { .. } => "deactivated",
            Error::BadRequest(_) => "bad-request",
            Error::Conflict(_) => "conflict",
            Error::Unauthorized(_) => "unauthorized",
            Error::PackageRefused(_) => "package-refused",
            Error::Protocol(_) => "protocol",
            Error::SessionOver { .. } => "session-over",
            Error::Config(_) => "config",
            Error::Db(_) | Error::Migrate(_) => "database",
            Error::Store(_) => "store",
            Error::Io { .. } => "io",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(kind = self.kind(), "{self}");
        } else {
            tracing::warn!(kind = self.kind(), status = status.as_u16(), "{self}");
        }
        let body = serde_json::json!({ "error": self.kind(), "message": self.to_string() });
        (status, axum::Json(body)).into_response()
    }
}
