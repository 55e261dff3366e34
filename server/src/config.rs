//! The server's configuration: defaults, then a TOML file, then `FOTA_*`
//! environment variables, then command-line flags (applied by the `fota`
//! command over [`Config`]'s public fields).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How the DM component authenticates devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmAuth {
    /// `syncml:auth-md5` (the default).
    Md5,
    /// `syncml:auth-MAC` (HMAC over each message).
    Hmac,
    /// No client authentication (labs only).
    None,
}

/// How the DDI component (hawkBit API) authenticates devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DdiAuth {
    /// `Authorization: TargetToken <the device's secret>` (the default; the
    /// secret is the one the registry holds for its DM account).
    TargetToken,
    /// No device authentication (labs only).
    None,
}

/// Everything the server needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL devices reach this server at (package URLs, redirects,
    /// trigger URIs are built on it); empty: `http://<listen>`.
    pub public_url: String,
    /// `sqlite://FILE?mode=rwc` (created and migrated on start) or
    /// `postgres://…`.
    pub database_url: String,
    /// Folder of the local package store.
    pub package_dir: PathBuf,
    /// The operator's trusted signing keys (PEM public keys, as `fota
    /// keygen` writes them): uploads must verify against one of them.
    pub trusted_keys: Vec<PathBuf>,
    /// Admin bearer tokens, given in clear here or in `FOTA_ADMIN_TOKEN`
    /// and stored hashed (sha256) in the database on start.
    pub admin_tokens: Vec<String>,
    /// Days a deactivated device stays in the registry before the purge
    /// moves it to the archive.
    pub purge_after_days: u64,
    /// Folder the purge writes archives into.
    pub archive_dir: PathBuf,
    /// Device authentication in DM sessions.
    pub dm_auth: DmAuth,
    /// The server's DM identity (SyncHdr Source, package #0 server id).
    pub dm_server_id: String,
    /// The server's DM password, for the server `Cred` and package #0
    /// digests; empty sends no server credentials.
    pub dm_server_password: String,
    /// Host (or parent domain) IOTA handsets trust; empty: the host of
    /// `public_url`.
    pub iota_trusted_domain: String,
    /// Seconds a client-initiated session may wait for the device.
    pub session_timeout_secs: u64,
    /// Offer an OMA download descriptor (with installNotifyURI) instead of
    /// the package URL itself.
    pub download_descriptor: bool,
    /// The hawkBit tenant DDI devices poll under (`/{tenant}/controller/v1/…`).
    pub ddi_tenant: String,
    /// Seconds a DDI device waits between polls (`config.polling.sleep`).
    pub ddi_polling_secs: u64,
    /// Device authentication on the DDI API.
    pub ddi_auth: DdiAuth,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            database_url: "sqlite://fota.db?mode=rwc".to_string(),
            package_dir: PathBuf::from("packages"),
            trusted_keys: Vec::new(),
            admin_tokens: Vec::new(),
            purge_after_days: 90,
            archive_dir: PathBuf::from("archive"),
            dm_auth: DmAuth::Md5,
            dm_server_id: "fota".to_string(),
            dm_server_password: String::new(),
            iota_trusted_domain: String::new(),
            session_timeout_secs: crate::iota::session::HANDSET_TIMEOUT_SECS,
            download_descriptor: false,
            ddi_tenant: "DEFAULT".to_string(),
            ddi_polling_secs: 300,
            ddi_auth: DdiAuth::TargetToken,
        }
    }
}

impl Config {
    /// Defaults, overridden by the TOML file `file` (if given) and then by
    /// the `FOTA_*` variables in `env`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file or variable that is wrong.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                    path: path.display().to_string(),
                    source: e,
                })?;
                toml::from_str(&text)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => Config::default(),
        };
        for (k, v) in env {
            c.set_env(&k, &v)?;
        }
        Ok(c)
    }

    fn set_env(&mut self, key: &str, v: &str) -> Result<()> {
        let bad = |what: &str| Error::Config(format!("{key}={v:?}: expected {what}"));
        match key {
            "FOTA_LISTEN" => self.listen = v.parse().map_err(|_| bad("HOST:PORT"))?,
            "FOTA_PUBLIC_URL" => self.public_url = v.to_string(),
            "FOTA_DATABASE_URL" => self.database_url = v.to_string(),
            "FOTA_PACKAGE_DIR" => self.package_dir = PathBuf::from(v),
            "FOTA_TRUSTED_KEYS" => {
                self.trusted_keys = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            }
            "FOTA_ADMIN_TOKEN" => self.admin_tokens.push(v.to_string()),
            "FOTA_PURGE_AFTER_DAYS" => {
                self.purge_after_days = v.parse().map_err(|_| bad("a number of days"))?
            }
            "FOTA_ARCHIVE_DIR" => self.archive_dir = PathBuf::from(v),
            "FOTA_DM_AUTH" => {
                self.dm_auth = match v {
                    "md5" => DmAuth::Md5,
                    "hmac" => DmAuth::Hmac,
                    "none" => DmAuth::None,
                    _ => return Err(bad("md5, hmac or none")),
                }
            }
            "FOTA_DM_SERVER_ID" => self.dm_server_id = v.to_string(),
            "FOTA_DM_SERVER_PASSWORD" => self.dm_server_password = v.to_string(),
            "FOTA_IOTA_TRUSTED_DOMAIN" => self.iota_trusted_domain = v.to_string(),
            "FOTA_DDI_TENANT" => self.ddi_tenant = v.to_string(),
            "FOTA_DDI_POLLING_SECS" => {
                self.ddi_polling_secs = v.parse().map_err(|_| bad("a number of seconds"))?
            }
            "FOTA_DDI_AUTH" => {
                self.ddi_auth = match v {
                    "target-token" => DdiAuth::TargetToken,
                    "none" => DdiAuth::None,
                    _ => return Err(bad("target-token or none")),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The public base URL, without a trailing slash.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    /// Reads the trusted keys.
    ///
    /// # Errors
    /// [`Error::Config`] naming a file that is not an Ed25519 PEM public
    /// key; [`Error::Io`] when it cannot be read.
    pub fn read_trusted_keys(&self) -> Result<Vec<VerifyingKey>> {
        self.trusted_keys
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).map_err(|e| Error::Io {
                    path: p.display().to_string(),
                    source: e,
                })?;
                VerifyingKey::from_public_key_pem(&text).map_err(|e| {
                    Error::Config(format!(
                        "{}: expected an Ed25519 public key in PEM (\"BEGIN PUBLIC KEY\"): {e}",
                        p.display()
                    ))
                })
            })
            .collect()
    }
}
