//! A handset in software (`fota device`): it checks in at the FOTA URL or
//! takes a campaign's push, speaks OMA-DM or IOTA with the server,
//! downloads the package with resume, shows the release notes and the
//! emergency-call notice and asks for consent, applies the package with
//! the real agent on file-backed flash (a power cut can be injected),
//! "reboots" into the new slot and reports the final status.
//!
//! Every step is told through a callback, so the demo prints it and the
//! load test stays quiet.

pub mod flash;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePublicKey;
use fota_format::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::download::{self, InstallStatus};
use crate::iota::handset::{
    Consent, HandsetConfig, HandsetPurpose, HandsetSession, HandsetStep, User,
};
use crate::iota::mmc;
use crate::omadm::auth::{Credentials, Scheme};
use crate::omadm::fumo::{Operation, Report, ResultCode};
use crate::omadm::notification::{Notification, UiMode};
use crate::omadm::session::{ClientConfig, ClientSession, ClientStep, Request};
use crate::omadm::Encoding;
use crate::registry::{Capability, DeviceId};
use flash::{ApplyOutcome, DeviceFlash, Faults};
pub use state::{ConsentPolicy, DeviceState, Outcome, Pending};

/// Why the simulated device stopped.
#[derive(Debug, thiserror::Error)]
#[error("device {device}: {what}")]
pub struct DeviceError {
    /// The device id.
    pub device: String,
    /// What went wrong.
    pub what: String,
}

/// How to misbehave in this run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Lose the connection after this many bytes of the download (once).
    pub drop_after: Option<u64>,
    /// Flash faults while installing.
    pub faults: Faults,
    /// Answer every consent prompt with yes (scripts).
    pub yes: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `installed`, `refused`, `failed`, `up to date`, `postponed`.
    pub result: String,
    /// The version the device runs now.
    pub fw_version: String,
    /// Package bytes received over HTTP in this run.
    pub bytes_fetched: u64,
    /// The package's size, when one was downloaded.
    pub package_size: Option<u64>,
}

/// Prints (or collects) the device's steps.
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// The simulated handset.
pub struct Device {
    dir: PathBuf,
    /// Its state (saved in `device.json` after every step).
    pub state: DeviceState,
    http: reqwest::Client,
    opts: Options,
    say: Say,
    bytes_fetched: u64,
    package_size: Option<u64>,
    last_result: Option<String>,
    /// How long each check-in request took (for load reports).
    pub checkin_latencies: Vec<Duration>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("dir", &self.dir)
            .field("id", &self.state.id)
            .finish()
    }
}

const STATE_FILE: &str = "device.json";
const PACKAGE_FILE: &str = "package.fota";

impl Device {
    /// Makes a new device in `dir`: its state file and its flash, slot A
    /// holding `image` (the firmware it runs).
    ///
    /// # Errors
    /// When the folder or files cannot be written.
    pub fn create(
        dir: &Path,
        state: DeviceState,
        image: &[u8],
        opts: Options,
        say: Say,
    ) -> Result<Device, DeviceError> {
        let err = |what: String| DeviceError {
            device: state.id.clone(),
            what,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
        let fl = DeviceFlash::in_dir(dir, state.erase_size, state.write_size);
        std::fs::write(&fl.slots[0], image)
            .map_err(|e| err(format!("{}: {e}", fl.slots[0].display())))?;
        let _ = std::fs::remove_file(&fl.slots[1]);
        fl.clear_journal().map_err(|e| err(e.to_string()))?;
        state.save(&dir.join(STATE_FILE)).map_err(err)?;
        Device::open(dir, opts, say)
    }

    /// Opens the device in `dir` (its `device.json`).
    ///
    /// # Errors
    /// When the state file is missing or malformed.
    pub fn open(dir: &Path, opts: Options, say: Say) -> Result<Device, DeviceError> {
        let state = DeviceState::load(&dir.join(STATE_FILE)).map_err(|what| DeviceError {
            device: dir.display().to_string(),
            what,
        })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| DeviceError {
                device: state.id.clone(),
                what: format!("HTTP client: {e}"),
            })?;
        Ok(Device {
            dir: dir.to_path_buf(),
            state,
            http,
            opts,
            say,
            bytes_fetched: 0,
            package_size: None,
            last_result: None,
            checkin_latencies: Vec::new(),
        })
    }

    /// The image in the slot the device boots (its first `len` bytes).
    ///
    /// # Errors
    /// When the slot cannot be read.
    pub fn running_image(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(&self.flash().slots[self.state.active_slot])
    }

    fn flash(&self) -> DeviceFlash {
        DeviceFlash::in_dir(&self.dir, self.state.erase_size, self.state.write_size)
    }

    fn err(&self, what: impl Into<String>) -> DeviceError {
        DeviceError {
            device: self.state.id.clone(),
            what: what.into(),
        }
    }

    fn tell(&self, msg: &str) {
        (self.say)(msg);
    }

    fn save(&self) -> Result<(), DeviceError> {
        self.state
            .save(&self.dir.join(STATE_FILE))
            .map_err(|e| self.err(e))
    }

    fn server_base(&self) -> String {
        let u = &self.state.fota_url;
        match u
            .find("://")
            .and_then(|i| u[i + 3..].find('/').map(|j| i + 3 + j))
        {
            Some(end) => u[..end].to_string(),
            None => u.clone(),
        }
    }

    /// A client-initiated check: reports what is left to report, takes an
    /// offer, downloads, asks, installs, reboots and reports, until the
    /// server has nothing more to say.
    ///
    /// # Errors
    /// HTTP failures and server refusals (unknown device, deactivated, …).
    pub async fn check(&mut self) -> Result<Summary, DeviceError> {
        self.reset_run();
        self.check_rounds().await
    }

    fn reset_run(&mut self) {
        self.last_result = None;
        self.bytes_fetched = 0;
        self.package_size = None;
    }

    async fn check_rounds(&mut self) -> Result<Summary, DeviceError> {
        for _ in 0..4 {
            let offer = self.client_session().await?;
            if let Some(p) = offer {
                self.state.pending = Some(p);
                self.save()?;
            }
            if self.state.pending.is_none() {
                break;
            }
            self.work_on_pending().await?;
        }
        Ok(self.summary())
    }

    /// Takes a notification from the outbox: a WAP push with an IOTA
    /// trigger, or an OMA-DM package #0; runs that session, then works on
    /// the update and reports through client-initiated checks.
    ///
    /// # Errors
    /// An untrusted trigger, a bad package #0 digest, HTTP failures.
    pub async fn on_notification(
        &mut self,
        transport: &str,
        payload: &str,
    ) -> Result<Summary, DeviceError> {
        self.reset_run();
        let offer = match transport {
            "wap-push" => {
                let cfg = self.handset_config();
                let trigger = crate::iota::handset::parse_trigger(payload, &cfg)
                    .map_err(|e| self.err(format!("push dropped: {e}")))?;
                self.tell(&format!(
                    "push      IOTA trigger for session {}",
                    trigger.sid
                ));
                self.iota_session(&trigger.url, HandsetPurpose::Check)
                    .await?
            }
            "dm-notification" => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .map_err(|e| self.err(format!("package #0 is not base64: {e}")))?;
                let n = if self.state.dm_server_password.is_empty() {
                    Notification::parse(&bytes).map(|(n, _)| n)
                } else {
                    let server =
                        Credentials::new(&self.state.dm_server_id, &self.state.dm_server_password);
                    Notification::verify(&bytes, &server, b"")
                }
                .map_err(|e| self.err(format!("package #0 refused: {e}")))?;
                self.tell(&format!(
                    "push      DM package #0, session {}, ui-mode {:?}",
                    n.session_id_text(),
                    n.ui_mode
                ));
                let url = format!("{}/dm", self.server_base());
                let mut offer = self
                    .dm_session(&url, &n.session_id_text(), 1200, None)
                    .await?;
                if n.ui_mode == UiMode::Background {
                    if let Some(o) = offer.as_mut() {
                        o.forced = true;
                    }
                }
                offer
            }
            other => return Err(self.err(format!("unknown notification transport {other:?}"))),
        };
        if let Some(p) = offer {
            self.state.pending = Some(p);
            self.save()?;
            self.work_on_pending().await?;
        }
        // Report what was done; a prompt declined in the session leaves
        // nothing to report.
        if self.state.to_report.is_some() {
            self.check_rounds().await
        } else {
            Ok(self.summary())
        }
    }

    fn summary(&self) -> Summary {
        Summary {
            result: self
                .last_result
                .clone()
                .unwrap_or_else(|| "up to date".into()),
            fw_version: self.state.fw_version.clone(),
            bytes_fetched: self.bytes_fetched,
            package_size: self.package_size,
        }
    }

    /// GET the FOTA URL, follow the 302 into the protocol session.
    async fn client_session(&mut self) -> Result<Option<Pending>, DeviceError> {
        let id = DeviceId::parse(&self.state.id).map_err(|e| self.err(e.to_string()))?;
        let url = format!(
            "{}?id={}&make={}&model={}&version={}",
            self.state.fota_url,
            id.as_str(),
            urlencode(&self.state.make),
            urlencode(&self.state.model),
            urlencode(&self.state.fw_version)
        );
        self.tell(&format!("check-in  GET {}", self.state.fota_url));
        let t0 = std::time::Instant::now();
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| self.err(format!("check-in: {e}")))?;
        self.checkin_latencies.push(t0.elapsed());
        if resp.status() != reqwest::StatusCode::FOUND {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(self.err(format!("check-in: HTTP {status}: {body}")));
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        self.tell(&format!("redirect  302 -> {location}"));
        match self.state.capability {
            Capability::OmaDm => {
                let report = self.state.to_report.clone();
                // A fresh numeric SessionID (1..=65535) for each session.
                let sid = (1 + u32::from_str_radix(&crate::db::new_id()[..4], 16).unwrap_or(0)
                    % 65535)
                    .to_string();
                let offer = self.dm_session(&location, &sid, 1201, report).await?;
                self.state.to_report = None;
                self.save()?;
                Ok(offer)
            }
            Capability::Iota => {
                let purpose = match &self.state.to_report {
                    Some(o) => HandsetPurpose::Report {
                        state: o.state.clone(),
                        result: o.iota,
                    },
                    None => HandsetPurpose::Check,
                };
                let offer = self.iota_session(&location, purpose).await?;
                self.state.to_report = None;
                self.save()?;
                Ok(offer)
            }
            Capability::Ddi | Capability::Mender => Err(self.err(
                "the simulated handset speaks OMA-DM or IOTA; DDI and Mender devices poll the server themselves"
                    .to_string(),
            )),
        }
    }

    fn dm_config(&self) -> Result<ClientConfig, DeviceError> {
        let id = DeviceId::parse(&self.state.id).map_err(|e| self.err(e.to_string()))?;
        Ok(ClientConfig {
            dev_id: id.dev_id(),
            server_uri: format!("{}/dm", self.server_base()),
            credentials: Credentials::new(&id.dev_id(), &self.state.dm_password),
            scheme: Scheme::Md5,
            server_credentials: (!self.state.dm_server_password.is_empty()).then(|| {
                Credentials::new(&self.state.dm_server_id, &self.state.dm_server_password)
            }),
            server_nonce: Vec::new(),
            encoding: if self.state.dm_wbxml {
                Encoding::Wbxml
            } else {
                Encoding::Xml
            },
            man: self.state.make.clone(),
            model: self.state.model.clone(),
            dm_version: "1.2".into(),
            lang: "en".into(),
            fw_version: self.state.fw_version.clone(),
            max_msg_size: None,
        })
    }

    /// One DM session at `url`: Pkg1 (with the report, if any) through to
    /// the end; the offer if the server made one.
    async fn dm_session(
        &mut self,
        url: &str,
        session_id: &str,
        alert: u16,
        report: Option<Outcome>,
    ) -> Result<Option<Pending>, DeviceError> {
        let nonce = base64::engine::general_purpose::STANDARD
            .decode(&self.state.dm_nonce)
            .unwrap_or_default();
        let mut client = ClientSession::new(self.dm_config()?, session_id, alert, nonce);
        let report = report.map(|o| {
            self.tell(&format!(
                "report    FUMO Generic Alert 1226: result {} ({})",
                o.fumo,
                ResultCode::from_code(o.fumo).meaning()
            ));
            Report::result(
                0,
                crate::omadm::fumo::DEFAULT_NODE,
                Operation::DownloadAndUpdate,
                o.correlator.as_deref(),
                ResultCode::from_code(o.fumo),
            )
        });
        let mut req = client.start(report);
        self.tell(&format!(
            "dm        session {session_id}: Pkg1 (alert {alert}, DevInfo)"
        ));
        for round in 0..16 {
            let body = self.post(url, &req).await?;
            match client
                .receive(&body)
                .map_err(|e| self.err(format!("DM: {e}")))?
            {
                ClientStep::Send(next) => {
                    if round == 0 {
                        self.tell("dm        server answered; sending statuses and results");
                    }
                    req = next;
                }
                ClientStep::Done { offer } => {
                    if let Some(n) = client.next_nonce() {
                        self.state.dm_nonce = base64::engine::general_purpose::STANDARD.encode(n);
                    }
                    let Some(o) = offer else {
                        self.tell("dm        session over: no update offered");
                        return Ok(None);
                    };
                    let Some(u) = o.url else {
                        return Err(self.err("DM: Exec without a PkgURL"));
                    };
                    self.tell(&format!(
                        "dm        offer: Replace PkgURL {u} + Exec {} (accepted 202)",
                        o.operation.node_name()
                    ));
                    return Ok(Some(Pending {
                        correlator: o.correlator,
                        ..Pending::offered(u)
                    }));
                }
            }
        }
        Err(self.err("DM: the session did not end in 16 messages"))
    }

    async fn post(&self, url: &str, req: &Request) -> Result<Vec<u8>, DeviceError> {
        let mut r = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, &req.content_type)
            .body(req.body.clone());
        if let Some(h) = &req.hmac {
            r = r.header("x-syncml-hmac", h);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| self.err(format!("DM POST {url}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.err(format!("DM POST {url}: {e}")))?;
        if !status.is_success() {
            return Err(self.err(format!(
                "DM POST: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(body.to_vec())
    }

    fn asker(&self) -> Asker {
        Asker {
            policy: self.state.consent,
            yes: self.opts.yes,
            say: self.say.clone(),
            answer: None,
        }
    }

    fn handset_config(&self) -> HandsetConfig {
        let id = DeviceId::parse(&self.state.id).ok();
        let (esn, meid) = match id.as_ref().map(|i| (i.kind(), i.as_str().to_string())) {
            Some((crate::registry::record::IdKind::Esn, s)) => (Some(s), None),
            Some((crate::registry::record::IdKind::Meid, s)) => (None, Some(s)),
            _ => (None, None),
        };
        HandsetConfig {
            esn,
            meid,
            man: self.state.make.clone(),
            model: self.state.model.clone(),
            fw_version: self.state.fw_version.clone(),
            trusted_domain: self.state.trusted_domain.clone(),
        }
    }

    /// One IOTA session at `url` (`…/iota?sid=S&t=T`).
    async fn iota_session(
        &mut self,
        url: &str,
        purpose: HandsetPurpose,
    ) -> Result<Option<Pending>, DeviceError> {
        let cfg = self.handset_config();
        let trigger = crate::iota::handset::parse_trigger(url, &cfg)
            .map_err(|e| self.err(format!("IOTA: {e}")))?;
        let mut session = HandsetSession::new(cfg, &trigger.sid, purpose);
        let mut user = self.asker();
        let mut doc = session.hello();
        self.tell(&format!("iota      session {}: hello", trigger.sid));
        for _ in 0..16 {
            let resp = self
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, mmc::CONTENT_TYPE)
                .body(doc.to_xml())
                .send()
                .await
                .map_err(|e| self.err(format!("IOTA POST: {e}")))?;
            let status = resp.status();
            let body = resp
                .bytes()
                .await
                .map_err(|e| self.err(format!("IOTA POST: {e}")))?;
            if status == reqwest::StatusCode::NO_CONTENT {
                self.tell("iota      session closed");
                return Ok(None);
            }
            if !status.is_success() {
                return Err(self.err(format!(
                    "IOTA POST: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            match session
                .handle(&body, &mut user)
                .map_err(|e| self.err(format!("IOTA: {e}")))?
            {
                HandsetStep::Send(next) => doc = next,
                HandsetStep::Done { offer, last } => {
                    if let Some(last) = last {
                        let _ = self
                            .http
                            .post(url)
                            .header(reqwest::header::CONTENT_TYPE, mmc::CONTENT_TYPE)
                            .body(last.to_xml())
                            .send()
                            .await
                            .map_err(|e| self.err(format!("IOTA POST: {e}")))?;
                    }
                    if user.answer == Some(Consent::Refuse) {
                        self.last_result = Some("refused".into());
                    }
                    let Some(o) = offer else {
                        self.tell("iota      disconnect: no update taken");
                        return Ok(None);
                    };
                    self.tell(&format!(
                        "iota      offer committed: {} ({} bytes, sha256 {}…)",
                        o.url,
                        o.size,
                        &o.sha256_hex[..o.sha256_hex.len().min(12)]
                    ));
                    return Ok(Some(Pending {
                        size: Some(o.size),
                        sha256_hex: Some(o.sha256_hex),
                        notes: o.notes,
                        consented: true,
                        ..Pending::offered(o.url)
                    }));
                }
            }
        }
        Err(self.err("IOTA: the session did not end in 16 documents"))
    }

    /// Download, consent, install, reboot: the update in `pending`.
    async fn work_on_pending(&mut self) -> Result<(), DeviceError> {
        let Some(mut p) = self.state.pending.clone() else {
            return Ok(());
        };
        let pkg_path = self.dir.join(PACKAGE_FILE);
        if !p.downloaded {
            match self.download(&mut p, &pkg_path).await? {
                Ok(()) => {
                    p.downloaded = true;
                    self.state.pending = Some(p.clone());
                    self.save()?;
                    self.notify(&p, InstallStatus::Success).await?;
                }
                Err((status, why)) => {
                    self.tell(&format!("download  failed: {why}"));
                    self.notify(&p, status).await?;
                    self.finish(
                        &p,
                        Outcome {
                            fumo: 402,
                            iota: 20,
                            state: "failed".into(),
                            correlator: p.correlator.clone(),
                        },
                        "failed",
                    )?;
                    return Ok(());
                }
            }
        }
        if p.forced {
            self.tell("consent   mandatory update: installing without asking");
        } else if !p.consented {
            let mut user = self.asker();
            let text = crate::iota::session::consent_text(&p.notes, false);
            if user.consent(&text) == Consent::Refuse {
                self.finish(
                    &p,
                    Outcome {
                        fumo: 401,
                        iota: 6,
                        state: "refused".into(),
                        correlator: p.correlator.clone(),
                    },
                    "refused",
                )?;
                return Ok(());
            }
        }
        self.install(&p, &pkg_path).await
    }

    /// Downloads `p` into `path`, resuming a partial file; checks size and
    /// hash when the server announced them. The inner error is the
    /// install-notify status to post.
    async fn download(
        &mut self,
        p: &mut Pending,
        path: &Path,
    ) -> Result<Result<(), (InstallStatus, String)>, DeviceError> {
        let mut url = p.url.clone();
        // A descriptor first, when the URL names one.
        if url.split('?').next().unwrap_or("").ends_with("/dd") {
            let resp = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| self.err(format!("descriptor: {e}")))?;
            let body = resp
                .bytes()
                .await
                .map_err(|e| self.err(format!("descriptor: {e}")))?;
            let dd = match download::Descriptor::parse(&body) {
                Ok(d) => d,
                Err(e) => return Ok(Err((InstallStatus::InvalidDescriptor, e.to_string()))),
            };
            self.tell(&format!(
                "download  descriptor: {} ({} bytes)",
                dd.object_uri, dd.size
            ));
            url = dd.object_uri.clone();
            if p.notes.is_empty() {
                p.notes = dd.description.clone().unwrap_or_default();
            }
            p.size = p.size.or(Some(dd.size));
            p.install_notify_url = dd.install_notify_uri.clone();
        }
        let part = path.with_extension("part");
        let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let mut drop_after = self.opts.drop_after.take();
        self.opts.drop_after = None;
        let mut total: Option<u64> = p.size;
        for _attempt in 0..8 {
            let mut req = self.http.get(&url);
            if have > 0 {
                req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
                if let Some(e) = &p.etag {
                    req = req.header(reqwest::header::IF_RANGE, e);
                }
                self.tell(&format!(
                    "download  resuming at byte {have} (Range: bytes={have}-)"
                ));
            }
            let mut resp = req
                .send()
                .await
                .map_err(|e| self.err(format!("download: {e}")))?;
            let status = resp.status();
            let etag = resp
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match status.as_u16() {
                200 => {
                    have = 0;
                    std::fs::write(&part, b"")
                        .map_err(|e| self.err(format!("{}: {e}", part.display())))?;
                    total = resp.content_length().or(total);
                }
                206 => {
                    let cr = resp
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if let Some(t) = cr.rsplit('/').next().and_then(|t| t.parse().ok()) {
                        total = Some(t);
                    }
                }
                416 if total == Some(have) => break,
                _ => {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(self.err(format!("download: HTTP {status}: {body}")));
                }
            }
            if etag.is_some() {
                p.etag = etag;
            }
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&part)
                .map_err(|e| self.err(format!("{}: {e}", part.display())))?;
            let mut dropped = false;
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| self.err(format!("download: {e}")))?
            {
                self.bytes_fetched += chunk.len() as u64;
                let mut take = chunk.len();
                if let Some(d) = drop_after {
                    if have + take as u64 >= d {
                        take = (d.saturating_sub(have)) as usize;
                        dropped = true;
                    }
                }
                use std::io::Write as _;
                file.write_all(&chunk[..take])
                    .map_err(|e| self.err(format!("{}: {e}", part.display())))?;
                have += take as u64;
                if dropped {
                    break;
                }
            }
            file.sync_all()
                .map_err(|e| self.err(format!("{}: {e}", part.display())))?;
            drop(resp);
            if dropped {
                drop_after = None;
                self.tell(&format!("download  connection lost after {have} bytes"));
                continue;
            }
            if total.is_none_or(|t| have >= t) {
                break;
            }
        }
        self.package_size = Some(have);
        let bytes =
            std::fs::read(&part).map_err(|e| self.err(format!("{}: {e}", part.display())))?;
        if let Some(size) = p.size {
            if size != bytes.len() as u64 {
                return Ok(Err((
                    InstallStatus::AttributeMismatch,
                    format!("{} bytes, announced {size}", bytes.len()),
                )));
            }
        }
        if let Some(h) = &p.sha256_hex {
            let got = hex::encode(Sha256::digest(&bytes));
            if !got.eq_ignore_ascii_case(h) {
                return Ok(Err((
                    InstallStatus::AttributeMismatch,
                    format!("sha256 {got}, announced {h}"),
                )));
            }
        }
        std::fs::rename(&part, path).map_err(|e| self.err(format!("{}: {e}", path.display())))?;
        self.tell(&format!(
            "download  complete: {} bytes ({} fetched in this run)",
            bytes.len(),
            self.bytes_fetched
        ));
        Ok(Ok(()))
    }

    async fn notify(&self, p: &Pending, status: InstallStatus) -> Result<(), DeviceError> {
        let url = match &p.install_notify_url {
            Some(u) => u.clone(),
            None => {
                let base = p.url.split('?').next().unwrap_or("");
                format!("{}/notify", base.trim_end_matches("/dd"))
            }
        };
        let body = download::install_notify_body(status);
        self.tell(&format!("notify    POST {body:?}"));
        let resp = self
            .http
            .post(&url)
            .body(body)
            .send()
            .await
            .map_err(|e| self.err(format!("install notify: {e}")))?;
        if !resp.status().is_success() {
            let s = resp.status();
            let t = resp.text().await.unwrap_or_default();
            return Err(self.err(format!("install notify: HTTP {s}: {t}")));
        }
        Ok(())
    }

    fn trusted(&self) -> Result<Vec<VerifyingKey>, DeviceError> {
        VerifyingKey::from_public_key_pem(&self.state.public_key_pem)
            .map(|k| vec![k])
            .map_err(|e| self.err(format!("public key: {e}")))
    }

    async fn install(&mut self, p: &Pending, pkg: &Path) -> Result<(), DeviceError> {
        let trusted = self.trusted()?;
        let fl = self.flash();
        let mut faults = self.opts.faults;
        self.tell("install   applying with the agent (signature checked before any write)");
        for boot in 0..4 {
            // The agent blocks on file I/O: off the async workers.
            let (fl2, pkg2, trusted2) = (fl.clone(), pkg.to_path_buf(), trusted.clone());
            let (active, class, counter) = (
                self.state.active_slot,
                self.state.device_class.clone(),
                self.state.security_counter,
            );
            let (outcome, target) = tokio::task::spawn_blocking(move || {
                fl2.apply(&pkg2, active, &trusted2, &class, counter, faults)
            })
            .await
            .map_err(|e| self.err(format!("install task: {e}")))?
            .map_err(|e| self.err(e))?;
            match outcome {
                ApplyOutcome::Done { resumed, ops } => {
                    let m = manifest_of(pkg).map_err(|e| self.err(e))?;
                    self.tell(&format!(
                        "install   done: {ops} ops{}, target verified",
                        if resumed {
                            ", resumed from the journal"
                        } else {
                            ""
                        }
                    ));
                    fl.clear_journal().map_err(|e| self.err(e.to_string()))?;
                    self.state.active_slot = target;
                    self.state.fw_version = m.to_version.as_str().to_string();
                    self.state.security_counter =
                        self.state.security_counter.max(m.security_counter);
                    self.tell(&format!(
                        "reboot    into slot {}: runs {}",
                        ["A", "B"][target],
                        self.state.fw_version
                    ));
                    self.finish(
                        p,
                        Outcome {
                            fumo: 200,
                            iota: 0,
                            state: "installed".into(),
                            correlator: p.correlator.clone(),
                        },
                        "installed",
                    )?;
                    return Ok(());
                }
                ApplyOutcome::PowerCut { after_ops } => {
                    self.tell(&format!("install   POWER CUT after {after_ops} flash operations; rebooting (boot {})", boot + 2));
                    faults.cut_after_ops = None;
                }
                ApplyOutcome::Failed(e) => {
                    let (fumo, iota) = codes_for(&e);
                    self.tell(&format!(
                        "install   failed: {e}; the old image stays in slot {}",
                        ["A", "B"][self.state.active_slot]
                    ));
                    fl.clear_journal().map_err(|e| self.err(e.to_string()))?;
                    self.finish(
                        p,
                        Outcome {
                            fumo,
                            iota,
                            state: "failed".into(),
                            correlator: p.correlator.clone(),
                        },
                        "failed",
                    )?;
                    return Ok(());
                }
            }
        }
        Err(self.err("install: no progress after 4 boots"))
    }

    /// Ends work on `p` with `outcome`, to be reported at the next session.
    fn finish(&mut self, p: &Pending, outcome: Outcome, result: &str) -> Result<(), DeviceError> {
        let _ = p;
        self.state.pending = None;
        self.state.to_report = Some(outcome);
        self.last_result = Some(result.to_string());
        let _ = std::fs::remove_file(self.dir.join(PACKAGE_FILE));
        let _ = std::fs::remove_file(self.dir.join(PACKAGE_FILE).with_extension("part"));
        self.save()
    }
}

/// The FUMO and IOTA result codes for an agent failure.
fn codes_for(e: &fota_agent::Error) -> (u16, u8) {
    use fota_format::Error as F;
    match e {
        fota_agent::Error::Package(F::BadSignature | F::UnknownKey { .. }) => (404, 20),
        fota_agent::Error::Package(
            F::DeviceClassMismatch { .. } | F::SecurityCounterTooLow { .. },
        ) => (403, 20),
        fota_agent::Error::Package(_) => (402, 20),
        _ => (410, 17),
    }
}

fn manifest_of(pkg: &Path) -> Result<fota_format::Manifest, String> {
    let bytes = std::fs::read(pkg).map_err(|e| format!("{}: {e}", pkg.display()))?;
    fota_format::Package::parse(&bytes)
        .and_then(|p| p.manifest_unverified())
        .map_err(|e| format!("{}: {e}", pkg.display()))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The user in front of the simulated handset.
struct Asker {
    policy: ConsentPolicy,
    yes: bool,
    say: Say,
    answer: Option<Consent>,
}

impl User for Asker {
    fn consent(&mut self, text: &str) -> Consent {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            (self.say)(&format!("screen    | {line}"));
        }
        if text.contains(crate::campaigns::FORCED_NOTICE) {
            (self.say)("consent   mandatory update: shown, not asked");
            self.answer = Some(Consent::Accept);
            return Consent::Accept;
        }
        let a = if self.yes || self.policy == ConsentPolicy::Accept {
            Consent::Accept
        } else {
            Consent::Refuse
        };
        (self.say)(if a == Consent::Accept {
            "consent   the user accepts"
        } else {
            "consent   the user declines"
        });
        self.answer = Some(a);
        a
    }
}
