//! The simulated handset's state file (`device.json`): who it is, what it
//! runs, its accounts and consent policy, and the update in progress, so
//! that `fota device` can be stopped and run again at any point.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::registry::Capability;

/// What the user answers to a consent prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentPolicy {
    /// Installs when asked.
    Accept,
    /// Declines.
    Refuse,
}

/// An update the device was offered and is working on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Where to download it (a package or an OMA download descriptor).
    pub url: String,
    /// The DM Exec's correlator, echoed in the final report.
    pub correlator: Option<String>,
    /// Size and hash the server announced (IOTA), checked after download.
    pub size: Option<u64>,
    /// sha256, hex.
    pub sha256_hex: Option<String>,
    /// Release notes shown with the consent prompt.
    pub notes: String,
    /// Install without asking (a mandatory update out of postponements).
    pub forced: bool,
    /// The user already agreed (IOTA asks during the session).
    pub consented: bool,
    /// The download's ETag, for a resumed range.
    pub etag: Option<String>,
    /// The download is complete and checked.
    pub downloaded: bool,
    /// Where the device posts its install notify, if a descriptor said.
    pub install_notify_url: Option<String>,
}

impl Pending {
    /// A fresh offer of `url`, nothing known about it yet. A `forced=1`
    /// in the URL (the server's own download URLs) marks a mandatory
    /// update out of postponements.
    pub fn offered(url: String) -> Pending {
        Pending {
            forced: url.contains("forced=1"),
            url,
            correlator: None,
            size: None,
            sha256_hex: None,
            notes: String::new(),
            consented: false,
            etag: None,
            downloaded: false,
            install_notify_url: None,
        }
    }
}

/// What the device reports after an install attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The FUMO result code (200 success, 401 cancelled, 410 failed, …).
    pub fumo: u16,
    /// The IOTA `fota/result` code (0 success, 6 denied, 20 check failed, …).
    pub iota: u8,
    /// `fota/state`: `installed`, `failed`, `refused`.
    pub state: String,
    /// The correlator of the offer it answers.
    pub correlator: Option<String>,
}

/// The device's whole state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// ESN, MEID or IMEI.
    pub id: String,
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// The firmware version it runs.
    pub fw_version: String,
    /// `oma-dm` or `iota`.
    pub capability: Capability,
    /// What the user answers.
    pub consent: ConsentPolicy,
    /// The FOTA check-in URL (`http://host:port/fota/check`).
    pub fota_url: String,
    /// The host (or parent domain) IOTA triggers and URLs must be in.
    pub trusted_domain: String,
    /// The DM account password (user name: the `DevId`).
    pub dm_password: String,
    /// The server's DM id and password (to check package #0 and the
    /// server's credentials); empty password: not checked.
    pub dm_server_id: String,
    /// See `dm_server_id`.
    pub dm_server_password: String,
    /// Use WBXML for DM messages.
    pub dm_wbxml: bool,
    /// The nonce the server gave for the next DM session (base64).
    pub dm_nonce: String,
    /// The device class its packages must name.
    pub device_class: String,
    /// Its anti-rollback counter.
    pub security_counter: u64,
    /// The operator's public key (PEM) packages must be signed with.
    pub public_key_pem: String,
    /// Flash erase block size.
    pub erase_size: u64,
    /// Flash program unit.
    pub write_size: usize,
    /// The slot it boots (0 = A, 1 = B).
    pub active_slot: usize,
    /// The update in progress.
    pub pending: Option<Pending>,
    /// The result to report at the next session.
    pub to_report: Option<Outcome>,
}

impl DeviceState {
    /// Reads `device.json`.
    ///
    /// # Errors
    /// A message naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<DeviceState, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes it atomically (temporary file, sync, rename).
    ///
    /// # Errors
    /// A message naming the file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("json.tmp");
        let io = |e: std::io::Error| format!("{}: {e}", path.display());
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}
