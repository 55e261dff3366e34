//! The database: one connection pool over SQLite (the embedded default, a
//! file created and migrated on start) or PostgreSQL (fleets), the same
//! portable queries and migrations for both.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;

use crate::error::{Error, Result};

/// The migrations in `server/migrations`, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The server's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to `url` and migrates the schema. A SQLite URL with
    /// `mode=rwc` creates the file.
    ///
    /// # Errors
    /// [`Error::Config`] for an unsupported URL; [`Error::Db`] when the
    /// database cannot be reached; [`Error::Migrate`] when the schema
    /// cannot be brought up to date.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Config(format!(
                "database url {url:?}: expected sqlite://FILE?mode=rwc or postgres://…"
            )));
        };
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; the connect
            // options keep a 5-s busy timeout and synchronous=FULL.
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            // Creates the file and switches it to WAL once.
            let conn = sqlx::ConnectOptions::connect(&opts).await?;
            sqlx::Connection::close(conn).await?;
        }
        let max = if backend == Backend::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(60))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Db { pool, backend })
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A new random id (128 bits, hex): the server makes every id itself.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    // An OS without randomness cannot run a server; fall back to time and
    // a counter so ids stay unique within the process.
    if getrandom::getrandom(&mut b).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b[..8].copy_from_slice(&t.to_le_bytes());
        b[8..].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    hex::encode(b)
}

/// Reads a column, mapping a missing or mistyped one to [`Error::Db`].
pub fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    Ok(row.try_get(name)?)
}

/// Whose attributes [`put_attributes`] stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributesOf {
    /// A DDI device's configData (`ddi_attributes`).
    Ddi,
    /// A Mender device's inventory (`mender_inventory`).
    Mender,
}

/// Replaces a device's attributes (JSON text), in one transaction.
///
/// # Errors
/// [`Error::Db`](crate::Error::Db).
pub async fn put_attributes(
    db: &Db,
    of: AttributesOf,
    device_id: &str,
    json: &str,
) -> crate::Result<()> {
    let table = match of {
        AttributesOf::Ddi => "ddi_attributes",
        AttributesOf::Mender => "mender_inventory",
    };
    let mut tx = db.pool().begin().await?;
    sqlx::query(&format!("DELETE FROM {table} WHERE device_id = $1"))
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO {table} (device_id, attributes, updated_at) VALUES ($1, $2, $3)"
    ))
    .bind(device_id)
    .bind(json)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
