//! A DM 1.2 FUMO session as two pure state machines: the server's
//! ([`ServerSession`]) and the handset's ([`ClientSession`], for the device
//! simulator). Bytes in, bytes out; the caller does HTTP, storage and the
//! package lookup.
//!
//! ```text
//!  client                                   server
//!  Pkg1: Alert 1201|1200, Replace ./DevInfo/*,
//!        [Generic Alert 1226]          ──►  authenticate (Chal 401/407 + fresh nonce, once more, then refuse)
//!                                      ◄──  [Status 212 + Get ./DevDetail/FwV]      (when FwV is unknown)
//!  Status, Results FwV                 ──►  NeedDecision { device, reports } → decide(offer)
//!                                      ◄──  Pkg2: Status 212|200, Status per command,
//!                                              Replace ./FUMO/x/Download/PkgURL, Exec ./FUMO/x/Download
//!                                              (Correlator), Final
//!  Pkg3: Status per command (Exec 202) ──►  Done { Accepted | Rejected }
//!                                      ◄──  Status for the SyncHdr, Final
//!  … later, a new session:
//!  Alert 1201, Replace DevInfo, Generic Alert 1226 (result code) ──► NeedDecision { reports: [Report] }
//! ```
//!
//! Bookkeeping: every server message has the client's SessionID, its own
//! MsgID counting from 1, CmdIDs counting from 1 in each message, and a
//! Status (MsgRef = the client's MsgID, CmdRef = the command's CmdID, 0 for
//! the SyncHdr) for every client command that wants one. A message that
//! repeats the last MsgID (a retransmission) gets the same reply again;
//! any other MsgID than the next is refused.

use std::collections::BTreeMap;

use super::auth::{self, AuthError, Challenger, Credentials, Scheme, Verdict};
use super::error::Error;
use super::fumo::{self, Operation, Report};
use super::message::{
    Alert, Command, Cred, Exec, Item, ItemCommand, Location, Meta, Results, Status, SyncBody,
    SyncHdr, SyncMl, VER_DTD, VER_PROTO,
};
use super::Encoding;

/// Status: OK.
pub const STATUS_OK: u16 = 200;
/// Status: accepted for later processing (an Exec that runs after the
/// session).
pub const STATUS_ACCEPTED: u16 = 202;
/// Status: command failed (a malformed Generic Alert).
pub const STATUS_BAD_REQUEST: u16 = 400;
/// Status: not found (a Get of a node the device lacks).
pub const STATUS_NOT_FOUND: u16 = 404;
/// Status: command not allowed (a client command the server does not take).
pub const STATUS_NOT_ALLOWED: u16 = 405;
/// Status: optional feature not supported.
pub const STATUS_NOT_SUPPORTED: u16 = 406;

/// The DevInfo leaves a client sends in Pkg1.
pub const DEVINFO_DEVID: &str = "./DevInfo/DevId";
/// Manufacturer.
pub const DEVINFO_MAN: &str = "./DevInfo/Man";
/// Model.
pub const DEVINFO_MOD: &str = "./DevInfo/Mod";
/// DM version of the client.
pub const DEVINFO_DMV: &str = "./DevInfo/DmV";
/// Language.
pub const DEVINFO_LANG: &str = "./DevInfo/Lang";
/// The firmware version (DevDetail: not part of Pkg1's DevInfo).
pub const DEVDETAIL_FWV: &str = "./DevDetail/FwV";

/// What the device told about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// `./DevInfo/DevId` (IMEI:…, MEID:…, ESN:…).
    pub dev_id: String,
    /// `./DevInfo/Man`.
    pub man: String,
    /// `./DevInfo/Mod`.
    pub model: String,
    /// `./DevInfo/DmV`.
    pub dm_version: Option<String>,
    /// `./DevInfo/Lang`.
    pub lang: Option<String>,
    /// `./DevDetail/FwV`; `None` when the device could not say.
    pub fw_version: Option<String>,
}

/// How the server authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAuthPolicy {
    /// `Md5` or `Hmac` (`Basic` only together with `allow_basic`).
    pub scheme: Scheme,
    /// Whether `syncml:auth-basic` is accepted (it sends the password).
    pub allow_basic: bool,
}

/// The server's settings for DM sessions.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's URI: Source of its messages, Target of the client's.
    pub server_uri: String,
    /// Client authentication; `None` accepts any client (tests, labs).
    pub client_auth: Option<ClientAuthPolicy>,
    /// The server's own account on devices: a `Cred` goes in every SyncHdr
    /// (MD5), or an `x-syncml-hmac` header on every reply (HMAC scheme).
    pub server_credentials: Option<Credentials>,
    /// Download then Update later, or DownloadAndUpdate.
    pub operation: Operation,
    /// The FUMO node when the device names none (in a 1226 request).
    pub fumo_node: String,
    /// `MaxMsgSize` to announce.
    pub max_msg_size: Option<u64>,
}

impl ServerConfig {
    /// A configuration with MD5 client authentication, no server
    /// credentials, DownloadAndUpdate on `./FUMO`.
    pub fn new(server_uri: &str) -> ServerConfig {
        ServerConfig {
            server_uri: server_uri.to_string(),
            client_auth: Some(ClientAuthPolicy {
                scheme: Scheme::Md5,
                allow_basic: false,
            }),
            server_credentials: None,
            operation: Operation::DownloadAndUpdate,
            fumo_node: fumo::DEFAULT_NODE.to_string(),
            max_msg_size: None,
        }
    }
}

/// What the server keeps per device between sessions.
#[derive(Debug, Clone, Default)]
pub struct DeviceSecrets {
    /// The device's DM account; `None` when unknown (then an
    /// authenticating server refuses).
    pub credentials: Option<Credentials>,
    /// The nonce the server gave the device last time (its next `Cred`
    /// uses it); `None` challenges the first message.
    pub client_nonce: Option<Vec<u8>>,
    /// The nonce the device gave the server for the server's `Cred`.
    pub server_nonce: Option<Vec<u8>>,
}

/// A package to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgOffer {
    /// Where the device downloads it (goes into `PkgURL`).
    pub url: String,
    /// A correlator for the Exec, echoed in the device's final report.
    pub correlator: Option<String>,
}

/// A message to send: body, content type, and the HMAC header value when
/// the HMAC scheme is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The message bytes (XML or WBXML, as the other side used).
    pub body: Vec<u8>,
    /// The `Content-Type` to send them with.
    pub content_type: String,
    /// The `x-syncml-hmac` header value, if any.
    pub hmac: Option<String>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The device took the offer: Exec answered 202 (accepted, it runs
    /// after the session) or 200 (done within it). The result comes later
    /// in a Generic Alert.
    Accepted {
        /// 202 or 200.
        status: u16,
        /// The operation started.
        operation: Operation,
        /// The correlator sent with the Exec.
        correlator: Option<String>,
    },
    /// The device refused the Replace or the Exec.
    Rejected {
        /// `Replace` or `Exec`.
        cmd: String,
        /// Its status code.
        status: u16,
    },
    /// No package was offered.
    NoOffer,
    /// The client failed authentication (twice) or has no account.
    AuthFailed(AuthError),
    /// The device did not accept the server's credentials (401/407 on the
    /// server's SyncHdr).
    ServerAuthRejected {
        /// The status.
        status: u16,
    },
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Send the reply as the HTTP response; the session waits for the
    /// device's next message ([`ServerSession::receive`]).
    Reply(Reply),
    /// The device is known. Record the reports (Generic Alerts of this
    /// message, already answered with 200), look up a package for the
    /// device, then call [`ServerSession::decide`] — before anything else.
    NeedDecision {
        /// What the device said about itself.
        device: DevInfo,
        /// FUMO Generic Alerts received (results and requests).
        reports: Vec<Report>,
    },
    /// Send the reply; the session is over.
    Done {
        /// The last message.
        reply: Reply,
        /// How it ended.
        end: End,
        /// Generic Alerts received after the decision (rare).
        reports: Vec<Report>,
    },
}

/// Why a message cannot be taken in this session. Nothing was changed: the
/// caller answers with an HTTP error (or drops the session).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The bytes are not a SyncML DM message.
    #[error(transparent)]
    Decode(#[from] Error),
    /// Not SyncML 1.2 / DM 1.2.
    #[error("DM session: VerDTD {ver_dtd:?} / VerProto {ver_proto:?}, expected 1.2 / DM/1.2")]
    Version {
        /// `VerDTD` received.
        ver_dtd: String,
        /// `VerProto` received.
        ver_proto: String,
    },
    /// Another SessionID than the session's.
    #[error("DM session: SessionID {found:?}, expected {expected:?}")]
    WrongSession {
        /// The session's id.
        expected: String,
        /// The id received.
        found: String,
    },
    /// A MsgID that is neither the next nor a repetition of the last.
    #[error("DM session: MsgID {found}, expected {expected}")]
    OutOfOrder {
        /// The next MsgID.
        expected: u32,
        /// The MsgID received.
        found: u32,
    },
    /// A message that does not fit the session's state.
    #[error("DM session: {reason} (state: {state})")]
    Unexpected {
        /// What the session was waiting for.
        state: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Pkg1 lacks a DevInfo leaf the server needs.
    #[error("DM session: Pkg1 has no {node}")]
    MissingDevInfo {
        /// The missing leaf.
        node: &'static str,
    },
    /// A decision is pending: call `decide` first.
    #[error("DM session: waiting for the server's decision")]
    DecisionPending,
    /// `decide` called when no decision was asked for.
    #[error("DM session: no decision was asked for (state: {state})")]
    NotDeciding {
        /// The session's state.
        state: &'static str,
    },
    /// The session is over.
    #[error("DM session: the session has ended")]
    Ended,
    /// A nonce could not be made.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Where a server session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ServerState {
    /// Waiting for Pkg1.
    Start,
    /// Sent a challenge; waiting for Pkg1 again, with credentials.
    Challenged,
    /// Sent `Get ./DevDetail/FwV`; waiting for its Results.
    AwaitFwV { msg_id: u32, cmd_id: u32 },
    /// Returned `NeedDecision`; waiting for `decide`.
    Deciding,
    /// Sent Pkg2; waiting for the statuses of Replace and Exec.
    AwaitStatuses {
        msg_id: u32,
        replace: Option<u32>,
        exec: u32,
        operation: Operation,
        correlator: Option<String>,
    },
    /// Over.
    Ended,
}

impl ServerState {
    fn name(&self) -> &'static str {
        match self {
            ServerState::Start => "waiting for Pkg1",
            ServerState::Challenged => "waiting for Pkg1 with credentials",
            ServerState::AwaitFwV { .. } => "waiting for the Results of Get ./DevDetail/FwV",
            ServerState::Deciding => "waiting for decide()",
            ServerState::AwaitStatuses { .. } => "waiting for Pkg3 (statuses)",
            ServerState::Ended => "ended",
        }
    }
}

/// The server's side of one DM session. Create it when a device's first
/// message arrives (after reading its SyncHdr Source to find the device's
/// secrets), feed it every message of the session with
/// [`receive`](ServerSession::receive), and act on each [`Step`].
#[derive(Debug, Clone)]
pub struct ServerSession {
    config: ServerConfig,
    secrets: DeviceSecrets,
    challenger: Option<Challenger>,
    authenticated: bool,
    /// The nonce for the device's next session (sent in the 212's Chal).
    next_nonce: Option<Vec<u8>>,
    state: ServerState,
    session_id: Option<String>,
    /// The client's SyncHdr of the last message (Source, Target).
    client_hdr: Option<SyncHdr>,
    last_client_msg: Option<u32>,
    /// The step returned for the last client message (repeated on a
    /// retransmission).
    last_step: Option<Step>,
    server_msg_id: u32,
    encoding: Encoding,
    content_type: String,
    /// Statuses for the current client message, waiting for `decide`.
    pending: Vec<Status>,
    device: Option<DevInfo>,
    fumo_node: String,
    reports: Vec<Report>,
}

/// A status for a client command (CmdID filled in when the message is
/// built).
fn status_for(msg_id: u32, cmd: &Command, code: u16) -> Status {
    Status {
        cmd_id: 0,
        msg_ref: msg_id,
        cmd_ref: cmd.cmd_id(),
        cmd: cmd.name().to_string(),
        target_refs: Vec::new(),
        source_refs: Vec::new(),
        chal: None,
        code,
        items: Vec::new(),
    }
}

/// The status for a SyncHdr.
fn hdr_status(hdr: &SyncHdr, code: u16, chal: Option<super::message::Chal>) -> Status {
    Status {
        cmd_id: 0,
        msg_ref: hdr.msg_id,
        cmd_ref: 0,
        cmd: "SyncHdr".to_string(),
        target_refs: vec![hdr.target.loc_uri.clone()],
        source_refs: vec![hdr.source.loc_uri.clone()],
        chal,
        code,
        items: Vec::new(),
    }
}

/// Numbers commands 1, 2, … in message order.
fn number_commands(commands: &mut [Command]) {
    for (i, c) in commands.iter_mut().enumerate() {
        let id = u32::try_from(i).unwrap_or(u32::MAX).saturating_add(1);
        match c {
            Command::Alert(a) => a.cmd_id = id,
            Command::Add(x) | Command::Replace(x) | Command::Delete(x) | Command::Get(x) => {
                x.cmd_id = id
            }
            Command::Exec(e) => e.cmd_id = id,
            Command::Status(s) => s.cmd_id = id,
            Command::Results(r) => r.cmd_id = id,
        }
    }
}

/// The CmdID a command will get when `before` commands precede it.
fn cmd_id_at(before: usize) -> u32 {
    u32::try_from(before).unwrap_or(u32::MAX).saturating_add(1)
}

/// The URI an item names (Source for values a client sends, else Target).
fn item_uri(item: &Item) -> Option<&str> {
    item.source
        .as_ref()
        .or(item.target.as_ref())
        .map(|l| l.loc_uri.as_str())
}

/// The mime type of a content type (parameters dropped), for echoing.
fn mime(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

impl ServerSession {
    /// A new session for a device whose secrets the caller looked up.
    ///
    /// # Errors
    /// [`SessionError::Auth`] when a nonce cannot be made.
    pub fn new(
        config: ServerConfig,
        secrets: DeviceSecrets,
    ) -> Result<ServerSession, SessionError> {
        let challenger = match config.client_auth {
            Some(p) => Some(Challenger::new(
                p.scheme,
                p.allow_basic,
                secrets.client_nonce.clone(),
            )?),
            None => None,
        };
        let fumo_node = config.fumo_node.clone();
        Ok(ServerSession {
            config,
            secrets,
            challenger,
            authenticated: false,
            next_nonce: None,
            state: ServerState::Start,
            session_id: None,
            client_hdr: None,
            last_client_msg: None,
            last_step: None,
            server_msg_id: 0,
            encoding: Encoding::Xml,
            content_type: super::CONTENT_TYPE_XML.to_string(),
            pending: Vec::new(),
            device: None,
            fumo_node,
            reports: Vec::new(),
        })
    }

    /// The session's id (the client's SessionID), once a message arrived.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The nonce to store for the device's next session (given to it in the
    /// Chal of the 212 status); `None` until authenticated.
    pub fn next_client_nonce(&self) -> Option<&[u8]> {
        self.next_nonce.as_deref()
    }

    /// The nonce the device asked the server to use next (from a Chal on
    /// the server's SyncHdr); store it with the device.
    pub fn server_nonce(&self) -> Option<&[u8]> {
        self.secrets.server_nonce.as_deref()
    }

    /// Whether the session is over.
    pub fn is_ended(&self) -> bool {
        self.state == ServerState::Ended
    }

    /// Takes one client message.
    ///
    /// `content_type` is the request's; the reply uses the same form.
    /// `hmac` is the request's `x-syncml-hmac` header, if any.
    ///
    /// # Errors
    /// [`SessionError`]: undecodable bytes, another protocol version or
    /// session, a MsgID out of order, a message that does not fit the state
    /// (e.g. no Alert 1201/1200 in Pkg1), a pending decision, an ended
    /// session. The session is unchanged by an error.
    pub fn receive(
        &mut self,
        body: &[u8],
        content_type: &str,
        hmac: Option<&str>,
    ) -> Result<Step, SessionError> {
        let encoding = Encoding::from_content_type(content_type)?;
        let msg = match encoding {
            Encoding::Xml => super::xml::parse(body)?,
            Encoding::Wbxml => super::wbxml::parse(body)?,
        };
        let hdr = &msg.hdr;
        if hdr.ver_dtd != VER_DTD || hdr.ver_proto != VER_PROTO {
            return Err(SessionError::Version {
                ver_dtd: hdr.ver_dtd.clone(),
                ver_proto: hdr.ver_proto.clone(),
            });
        }
        if let Some(id) = &self.session_id {
            if *id != hdr.session_id {
                return Err(SessionError::WrongSession {
                    expected: id.clone(),
                    found: hdr.session_id.clone(),
                });
            }
        }
        if let Some(last) = self.last_client_msg {
            if hdr.msg_id == last {
                return match &self.last_step {
                    Some(step) => Ok(step.clone()),
                    None if self.state == ServerState::Deciding => {
                        Err(SessionError::DecisionPending)
                    }
                    None => Err(SessionError::Ended),
                };
            }
            let expected = last.saturating_add(1);
            if hdr.msg_id != expected {
                return Err(SessionError::OutOfOrder {
                    expected,
                    found: hdr.msg_id,
                });
            }
        }
        match self.state {
            ServerState::Ended => return Err(SessionError::Ended),
            ServerState::Deciding => return Err(SessionError::DecisionPending),
            _ => {}
        }
        // Check the message fits the state before touching anything.
        self.precheck(&msg)?;

        // From here on the message is taken.
        let mut work = self.clone();
        work.session_id = Some(hdr.session_id.clone());
        work.last_client_msg = Some(hdr.msg_id);
        work.client_hdr = Some(hdr.clone());
        work.encoding = encoding;
        work.content_type = mime(content_type);
        let step = work.process(&msg, body, hmac)?;
        work.last_step = match step {
            Step::NeedDecision { .. } => None,
            _ => Some(step.clone()),
        };
        *self = work;
        Ok(step)
    }

    /// Refuses messages that do not fit the state (no side effects).
    fn precheck(&self, msg: &SyncMl) -> Result<(), SessionError> {
        let state = self.state.name();
        match &self.state {
            ServerState::Start | ServerState::Challenged => {
                let has_session_alert = msg.body.commands.iter().any(|c| {
                    matches!(c, Command::Alert(a)
                        if a.code == fumo::ALERT_CLIENT_INITIATED || a.code == fumo::ALERT_SERVER_INITIATED)
                });
                if !has_session_alert {
                    return Err(SessionError::Unexpected {
                        state,
                        reason: "Pkg1 has no Alert 1201 or 1200",
                    });
                }
            }
            ServerState::AwaitFwV { msg_id, cmd_id } => {
                let answered = msg.body.commands.iter().any(|c| match c {
                    Command::Results(r) => {
                        r.cmd_ref == *cmd_id && r.msg_ref.is_none_or(|m| m == *msg_id)
                    }
                    Command::Status(s) => s.cmd_ref == *cmd_id && s.msg_ref == *msg_id,
                    _ => false,
                });
                if !answered {
                    return Err(SessionError::Unexpected {
                        state,
                        reason: "no Results or Status for Get ./DevDetail/FwV",
                    });
                }
            }
            ServerState::AwaitStatuses { msg_id, exec, .. } => {
                let answered = msg.body.commands.iter().any(|c| {
                    matches!(c, Command::Status(s) if s.cmd_ref == *exec && s.msg_ref == *msg_id)
                });
                if !answered {
                    return Err(SessionError::Unexpected {
                        state,
                        reason: "no Status for the Exec",
                    });
                }
            }
            ServerState::Deciding => return Err(SessionError::DecisionPending),
            ServerState::Ended => return Err(SessionError::Ended),
        }
        Ok(())
    }

    /// Takes a checked message (on a working copy of the session).
    fn process(
        &mut self,
        msg: &SyncMl,
        body: &[u8],
        hmac: Option<&str>,
    ) -> Result<Step, SessionError> {
        let hdr = &msg.hdr;
        // The device's answer to the server's own credentials.
        for c in &msg.body.commands {
            if let Command::Status(s) = c {
                if s.cmd_ref == 0 {
                    if let Some(n) = s
                        .chal
                        .as_ref()
                        .and_then(|ch| ch.meta.next_nonce.as_deref())
                        .and_then(auth::decode_nonce)
                    {
                        self.secrets.server_nonce = Some(n);
                    }
                    if self.config.server_credentials.is_some()
                        && (s.code == auth::STATUS_INVALID_CREDENTIALS
                            || s.code == auth::STATUS_MISSING_CREDENTIALS)
                        && self.server_msg_id > 0
                    {
                        let reply =
                            self.build(vec![Command::Status(hdr_status(hdr, STATUS_OK, None))]);
                        self.state = ServerState::Ended;
                        return Ok(Step::Done {
                            reply,
                            end: End::ServerAuthRejected { status: s.code },
                            reports: std::mem::take(&mut self.reports),
                        });
                    }
                }
            }
        }

        // Authentication: MD5/basic once per session, HMAC every message.
        let mut hdr_code = STATUS_OK;
        let mut hdr_chal = None;
        let must_check = match (&self.challenger, self.authenticated) {
            (None, _) => false,
            (Some(c), true) => c.scheme() == Scheme::Hmac,
            (Some(_), false) => true,
        };
        if must_check {
            let verdict = match (&mut self.challenger, &self.secrets.credentials) {
                (Some(ch), Some(creds)) => ch.check(hdr, hmac, body, creds)?,
                _ => Verdict::Refused {
                    reason: AuthError::Missing,
                },
            };
            match verdict {
                Verdict::Accepted => {
                    if !self.authenticated {
                        self.authenticated = true;
                        hdr_code = auth::STATUS_AUTH_ACCEPTED;
                        if let Some(ch) = &self.challenger {
                            let next = auth::new_nonce()?;
                            hdr_chal = Some(auth::chal(ch.scheme(), &next));
                            self.next_nonce = Some(next);
                        }
                    }
                }
                // Within an authenticated session (HMAC on every
                // message) a failure ends the session.
                Verdict::Challenge { reason, .. } | Verdict::Refused { reason }
                    if self.authenticated =>
                {
                    let reply = self.build(vec![Command::Status(hdr_status(
                        hdr,
                        auth::STATUS_INVALID_CREDENTIALS,
                        None,
                    ))]);
                    self.state = ServerState::Ended;
                    return Ok(Step::Done {
                        reply,
                        end: End::AuthFailed(reason),
                        reports: Vec::new(),
                    });
                }
                Verdict::Challenge { status, chal, .. } => {
                    let reply =
                        self.build(vec![Command::Status(hdr_status(hdr, status, Some(chal)))]);
                    self.state = ServerState::Challenged;
                    return Ok(Step::Reply(reply));
                }
                Verdict::Refused { reason } => {
                    let reply = self.build(vec![Command::Status(hdr_status(
                        hdr,
                        auth::STATUS_INVALID_CREDENTIALS,
                        None,
                    ))]);
                    self.state = ServerState::Ended;
                    return Ok(Step::Done {
                        reply,
                        end: End::AuthFailed(reason),
                        reports: Vec::new(),
                    });
                }
            }
        }
        let mut statuses = vec![hdr_status(hdr, hdr_code, hdr_chal)];

        match self.state.clone() {
            ServerState::Start | ServerState::Challenged => {
                let mut values: BTreeMap<&str, &str> = BTreeMap::new();
                for c in &msg.body.commands {
                    let code = match c {
                        Command::Alert(a) if a.code == fumo::ALERT_GENERIC => {
                            self.take_generic_alert(a)
                        }
                        Command::Alert(a)
                            if a.code == fumo::ALERT_CLIENT_INITIATED
                                || a.code == fumo::ALERT_SERVER_INITIATED =>
                        {
                            STATUS_OK
                        }
                        Command::Alert(_) => STATUS_NOT_SUPPORTED,
                        Command::Replace(r) => {
                            for it in &r.items {
                                if let (Some(uri), Some(data)) = (item_uri(it), it.data.as_deref())
                                {
                                    values.insert(uri, data.trim());
                                }
                            }
                            STATUS_OK
                        }
                        // The device's statuses (e.g. for a challenge) need none.
                        Command::Status(_) => continue,
                        _ => STATUS_NOT_ALLOWED,
                    };
                    if !c.no_resp() {
                        statuses.push(status_for(hdr.msg_id, c, code));
                    }
                }
                let get = |node: &'static str| values.get(node).map(|v| v.to_string());
                let need =
                    |node: &'static str| get(node).ok_or(SessionError::MissingDevInfo { node });
                let device = DevInfo {
                    dev_id: need(DEVINFO_DEVID)?,
                    man: need(DEVINFO_MAN)?,
                    model: need(DEVINFO_MOD)?,
                    dm_version: get(DEVINFO_DMV),
                    lang: get(DEVINFO_LANG),
                    fw_version: get(DEVDETAIL_FWV)
                        .or_else(|| values.get("./DevInfo/FwV").map(|v| v.to_string())),
                };
                if device.fw_version.is_some() {
                    return Ok(self.ask_decision(device, statuses));
                }
                // Ask for the firmware version first.
                let get_cmd = Command::Get(ItemCommand {
                    cmd_id: 0,
                    no_resp: false,
                    meta: None,
                    items: vec![Item::target(DEVDETAIL_FWV)],
                });
                let get_id = cmd_id_at(statuses.len());
                let mut commands: Vec<Command> =
                    statuses.into_iter().map(Command::Status).collect();
                commands.push(get_cmd);
                let reply = self.build(commands);
                self.device = Some(device);
                self.state = ServerState::AwaitFwV {
                    msg_id: self.server_msg_id,
                    cmd_id: get_id,
                };
                Ok(Step::Reply(reply))
            }
            ServerState::AwaitFwV { msg_id, cmd_id } => {
                let mut fw = None;
                for c in &msg.body.commands {
                    let code = match c {
                        Command::Results(r) => {
                            if r.cmd_ref == cmd_id && r.msg_ref.is_none_or(|m| m == msg_id) {
                                fw = r
                                    .items
                                    .iter()
                                    .find(|it| item_uri(it).is_none_or(|u| u == DEVDETAIL_FWV))
                                    .and_then(|it| it.data.as_deref())
                                    .map(|d| d.trim().to_string());
                            }
                            STATUS_OK
                        }
                        Command::Alert(a) if a.code == fumo::ALERT_GENERIC => {
                            self.take_generic_alert(a)
                        }
                        Command::Status(_) => continue,
                        _ => STATUS_NOT_ALLOWED,
                    };
                    if !c.no_resp() {
                        statuses.push(status_for(hdr.msg_id, c, code));
                    }
                }
                let mut device = self.device.take().ok_or(SessionError::Unexpected {
                    state: "waiting for the Results of Get ./DevDetail/FwV",
                    reason: "no device information kept",
                })?;
                device.fw_version = fw;
                Ok(self.ask_decision(device, statuses))
            }
            ServerState::AwaitStatuses {
                msg_id,
                replace,
                exec,
                operation,
                correlator,
            } => {
                let mut replace_code = None;
                let mut exec_code = None;
                for c in &msg.body.commands {
                    let code = match c {
                        Command::Status(s) if s.msg_ref == msg_id => {
                            if Some(s.cmd_ref) == replace {
                                replace_code = Some(s.code);
                            } else if s.cmd_ref == exec {
                                exec_code = Some(s.code);
                            }
                            continue;
                        }
                        Command::Status(_) => continue,
                        Command::Alert(a) if a.code == fumo::ALERT_GENERIC => {
                            self.take_generic_alert(a)
                        }
                        Command::Results(_) => STATUS_OK,
                        _ => STATUS_NOT_ALLOWED,
                    };
                    if !c.no_resp() {
                        statuses.push(status_for(hdr.msg_id, c, code));
                    }
                }
                let end = match (replace_code, exec_code) {
                    (Some(r), _) if !(200..300).contains(&r) => End::Rejected {
                        cmd: "Replace".to_string(),
                        status: r,
                    },
                    (_, Some(e)) if e == STATUS_ACCEPTED || e == STATUS_OK => End::Accepted {
                        status: e,
                        operation,
                        correlator,
                    },
                    (_, e) => End::Rejected {
                        cmd: "Exec".to_string(),
                        status: e.unwrap_or(0),
                    },
                };
                let reply = self.build(statuses.into_iter().map(Command::Status).collect());
                self.state = ServerState::Ended;
                Ok(Step::Done {
                    reply,
                    end,
                    reports: std::mem::take(&mut self.reports),
                })
            }
            ServerState::Deciding => Err(SessionError::DecisionPending),
            ServerState::Ended => Err(SessionError::Ended),
        }
    }

    /// Reads a Generic Alert: a FUMO report is kept (status 200); a device
    /// or user request names the FUMO node to use; anything else is 400.
    fn take_generic_alert(&mut self, a: &Alert) -> u16 {
        match Report::from_alert(a) {
            Ok(r) => {
                if !r.alert_type.is_result() {
                    self.fumo_node = r.node.clone();
                }
                self.reports.push(r);
                STATUS_OK
            }
            Err(_) => STATUS_BAD_REQUEST,
        }
    }

    fn ask_decision(&mut self, device: DevInfo, statuses: Vec<Status>) -> Step {
        self.pending = statuses;
        self.device = Some(device.clone());
        self.state = ServerState::Deciding;
        Step::NeedDecision {
            device,
            reports: std::mem::take(&mut self.reports),
        }
    }

    /// Answers a [`Step::NeedDecision`]: `Some(offer)` sends Pkg2 (Replace
    /// PkgURL + Exec + Final) and waits for Pkg3; `None` answers the
    /// device's commands and ends the session.
    ///
    /// # Errors
    /// [`SessionError::NotDeciding`] when no decision was asked for.
    pub fn decide(&mut self, offer: Option<PkgOffer>) -> Result<Step, SessionError> {
        if self.state != ServerState::Deciding {
            return Err(SessionError::NotDeciding {
                state: self.state.name(),
            });
        }
        let mut commands: Vec<Command> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(Command::Status)
            .collect();
        let step = match offer {
            None => {
                let reply = self.build(commands);
                self.state = ServerState::Ended;
                Step::Done {
                    reply,
                    end: End::NoOffer,
                    reports: Vec::new(),
                }
            }
            Some(offer) => {
                let op = self.config.operation;
                let node = self.fumo_node.clone();
                let replace = op.pkg_url_uri(&node).map(|uri| {
                    commands.push(Command::Replace(ItemCommand {
                        cmd_id: 0,
                        no_resp: false,
                        meta: None,
                        items: vec![Item {
                            target: Some(Location::uri(&uri)),
                            meta: Some(Meta {
                                format: Some("chr".to_string()),
                                type_: Some("text/plain".to_string()),
                                ..Meta::default()
                            }),
                            data: Some(offer.url.clone()),
                            ..Item::default()
                        }],
                    }));
                    cmd_id_at(commands.len().saturating_sub(1))
                });
                let exec = cmd_id_at(commands.len());
                commands.push(Command::Exec(Exec {
                    cmd_id: 0,
                    no_resp: false,
                    meta: None,
                    correlator: offer.correlator.clone(),
                    item: Item::target(&op.exec_uri(&node)),
                }));
                let reply = self.build(commands);
                self.state = ServerState::AwaitStatuses {
                    msg_id: self.server_msg_id,
                    replace,
                    exec,
                    operation: op,
                    correlator: offer.correlator,
                };
                Step::Reply(reply)
            }
        };
        self.last_step = Some(step.clone());
        Ok(step)
    }

    /// Builds the server's next message: header, numbered commands, Final.
    fn build(&mut self, mut commands: Vec<Command>) -> Reply {
        self.server_msg_id = self.server_msg_id.saturating_add(1);
        number_commands(&mut commands);
        let client = self.client_hdr.clone();
        let hmac_scheme = self
            .config
            .client_auth
            .is_some_and(|p| p.scheme == Scheme::Hmac);
        let server_nonce = self.secrets.server_nonce.clone().unwrap_or_default();
        let cred: Option<Cred> = match &self.config.server_credentials {
            Some(sc) if !hmac_scheme => auth::cred(Scheme::Md5, sc, &server_nonce),
            _ => None,
        };
        let msg = SyncMl {
            hdr: SyncHdr {
                ver_dtd: VER_DTD.to_string(),
                ver_proto: VER_PROTO.to_string(),
                session_id: self.session_id.clone().unwrap_or_default(),
                msg_id: self.server_msg_id,
                target: client
                    .as_ref()
                    .map(|h| Location::uri(&h.source.loc_uri))
                    .unwrap_or_default(),
                source: Location {
                    loc_uri: self.config.server_uri.clone(),
                    loc_name: self
                        .config
                        .server_credentials
                        .as_ref()
                        .map(|c| c.username.clone()),
                },
                resp_uri: None,
                no_resp: false,
                cred,
                meta: self.config.max_msg_size.map(|m| Meta {
                    max_msg_size: Some(m),
                    ..Meta::default()
                }),
            },
            body: SyncBody {
                commands,
                final_: true,
            },
        };
        let body = super::encode(&msg, self.encoding);
        let hmac = match &self.config.server_credentials {
            Some(sc) if hmac_scheme => Some(auth::hmac_header(sc, &server_nonce, &body)),
            _ => None,
        };
        Reply {
            body,
            content_type: self.content_type.clone(),
            hmac,
        }
    }
}

// ---------------------------------------------------------------------------
// The client (handset) side.

/// A handset's settings for DM sessions.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `./DevInfo/DevId`, also the SyncHdr Source LocURI (`IMEI:…`).
    pub dev_id: String,
    /// The server's URI (SyncHdr Target).
    pub server_uri: String,
    /// The device's DM account (LocName = user name).
    pub credentials: Credentials,
    /// How the device authenticates: `Md5`, `Hmac` or `Basic`.
    pub scheme: Scheme,
    /// The server's account, to check the server's `Cred`; `None` skips
    /// the check.
    pub server_credentials: Option<Credentials>,
    /// The nonce the device gave the server (for the server's `Cred`).
    pub server_nonce: Vec<u8>,
    /// XML or WBXML.
    pub encoding: Encoding,
    /// `./DevInfo/Man`.
    pub man: String,
    /// `./DevInfo/Mod`.
    pub model: String,
    /// `./DevInfo/DmV`.
    pub dm_version: String,
    /// `./DevInfo/Lang`.
    pub lang: String,
    /// `./DevDetail/FwV` (answered to a Get).
    pub fw_version: String,
    /// `MaxMsgSize` to announce.
    pub max_msg_size: Option<u64>,
}

/// A request to send to the server.
pub type Request = Reply;

/// What the server asked the device to do (an Exec on a FUMO node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedOffer {
    /// The operation.
    pub operation: Operation,
    /// The FUMO node (`./FUMO`).
    pub node: String,
    /// The package URL (from `PkgURL`), if the server set one.
    pub url: Option<String>,
    /// The Exec's correlator, to echo in the Generic Alert.
    pub correlator: Option<String>,
}

/// What the device does next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ClientStep {
    /// Send this request and feed the answer to [`ClientSession::receive`].
    Send(Request),
    /// The session is over. `offer`: the server asked for an update
    /// (answered 202): download and install it, then report the result in
    /// a new session with a Generic Alert ([`Report::result`]).
    Done {
        /// The update asked for, if any.
        offer: Option<ReceivedOffer>,
    },
}

/// Why the device cannot take a server message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Not a SyncML DM message.
    #[error(transparent)]
    Decode(#[from] Error),
    /// The server refused the device's credentials for good.
    #[error("DM client: the server refused the credentials (status {status})")]
    AuthRejected {
        /// 401 or 407.
        status: u16,
    },
    /// The server's `Cred` is missing or wrong.
    #[error("DM client: the server did not authenticate: {0}")]
    ServerAuth(AuthError),
    /// The message does not fit the session.
    #[error("DM client: {reason}")]
    Unexpected {
        /// What is wrong.
        reason: &'static str,
    },
    /// The session is over.
    #[error("DM client: the session has ended")]
    Ended,
}

/// The handset's side of one DM session.
#[derive(Debug, Clone)]
pub struct ClientSession {
    config: ClientConfig,
    session_id: String,
    session_alert: u16,
    msg_id: u32,
    nonce: Vec<u8>,
    next_nonce: Option<Vec<u8>>,
    tree: BTreeMap<String, String>,
    report: Option<Report>,
    offer: Option<ReceivedOffer>,
    challenges: u8,
    ended: bool,
}

impl ClientSession {
    /// A session with id `session_id` (from package #0 for a
    /// server-initiated one), started with alert `session_alert` (1201 or
    /// 1200), using `nonce` (the last one the server gave) for credentials.
    pub fn new(
        config: ClientConfig,
        session_id: &str,
        session_alert: u16,
        nonce: Vec<u8>,
    ) -> ClientSession {
        let mut tree = BTreeMap::new();
        tree.insert(DEVINFO_DEVID.to_string(), config.dev_id.clone());
        tree.insert(DEVINFO_MAN.to_string(), config.man.clone());
        tree.insert(DEVINFO_MOD.to_string(), config.model.clone());
        tree.insert(DEVINFO_DMV.to_string(), config.dm_version.clone());
        tree.insert(DEVINFO_LANG.to_string(), config.lang.clone());
        tree.insert(DEVDETAIL_FWV.to_string(), config.fw_version.clone());
        ClientSession {
            config,
            session_id: session_id.to_string(),
            session_alert,
            msg_id: 0,
            nonce,
            next_nonce: None,
            tree,
            report: None,
            offer: None,
            challenges: 0,
            ended: false,
        }
    }

    /// The device's management tree (leaf URI → value): Gets read it,
    /// Replaces write it.
    pub fn tree(&self) -> &BTreeMap<String, String> {
        &self.tree
    }

    /// The nonce the server gave for the next session (store it).
    pub fn next_nonce(&self) -> Option<&[u8]> {
        self.next_nonce.as_deref()
    }

    /// Pkg1: the session alert, `Replace ./DevInfo/*`, and `report` (a
    /// Generic Alert 1226) if given, then Final.
    pub fn start(&mut self, report: Option<Report>) -> Request {
        self.report = report;
        let commands = self.pkg1_commands();
        self.message(commands)
    }

    fn pkg1_commands(&self) -> Vec<Command> {
        let devinfo = [
            DEVINFO_DEVID,
            DEVINFO_MAN,
            DEVINFO_MOD,
            DEVINFO_DMV,
            DEVINFO_LANG,
        ];
        let items = devinfo
            .iter()
            .map(|uri| Item::source_data(uri, self.tree.get(*uri).map_or("", |v| v.as_str())))
            .collect();
        let mut commands = vec![
            Command::Alert(Alert {
                cmd_id: 0,
                no_resp: false,
                code: self.session_alert,
                correlator: None,
                items: Vec::new(),
            }),
            Command::Replace(ItemCommand {
                cmd_id: 0,
                no_resp: false,
                meta: Some(Meta {
                    format: Some("chr".to_string()),
                    type_: Some("text/plain".to_string()),
                    ..Meta::default()
                }),
                items,
            }),
        ];
        if let Some(r) = &self.report {
            commands.push(Command::Alert(r.to_alert()));
        }
        commands
    }

    /// Builds the device's next message.
    fn message(&mut self, mut commands: Vec<Command>) -> Request {
        self.msg_id = self.msg_id.saturating_add(1);
        number_commands(&mut commands);
        let creds = &self.config.credentials;
        let msg = SyncMl {
            hdr: SyncHdr {
                ver_dtd: VER_DTD.to_string(),
                ver_proto: VER_PROTO.to_string(),
                session_id: self.session_id.clone(),
                msg_id: self.msg_id,
                target: Location::uri(&self.config.server_uri),
                source: Location {
                    loc_uri: self.config.dev_id.clone(),
                    loc_name: Some(creds.username.clone()),
                },
                resp_uri: None,
                no_resp: false,
                cred: auth::cred(self.config.scheme, creds, &self.nonce),
                meta: self.config.max_msg_size.map(|m| Meta {
                    max_msg_size: Some(m),
                    ..Meta::default()
                }),
            },
            body: SyncBody {
                commands,
                final_: true,
            },
        };
        let body = super::encode(&msg, self.config.encoding);
        let hmac = (self.config.scheme == Scheme::Hmac)
            .then(|| auth::hmac_header(creds, &self.nonce, &body));
        Reply {
            body,
            content_type: self.config.encoding.content_type().to_string(),
            hmac,
        }
    }

    /// Takes one server message and answers it.
    ///
    /// # Errors
    /// [`ClientError`]: undecodable bytes, refused credentials, a server
    /// that does not authenticate, an ended session.
    pub fn receive(&mut self, body: &[u8]) -> Result<ClientStep, ClientError> {
        if self.ended {
            return Err(ClientError::Ended);
        }
        let msg = match self.config.encoding {
            Encoding::Xml => super::xml::parse(body)?,
            Encoding::Wbxml => super::wbxml::parse(body)?,
        };
        if msg.hdr.session_id != self.session_id {
            return Err(ClientError::Unexpected {
                reason: "another SessionID",
            });
        }
        if let Some(sc) = &self.config.server_credentials {
            let cred = msg
                .hdr
                .cred
                .as_ref()
                .ok_or(ClientError::ServerAuth(AuthError::Missing))?;
            auth::verify_cred(cred, Scheme::Md5, sc, &self.config.server_nonce, false)
                .map_err(ClientError::ServerAuth)?;
        }
        // The server's verdict on our header.
        let verdict = msg.body.commands.iter().find_map(|c| match c {
            Command::Status(s) if s.cmd_ref == 0 && s.msg_ref == self.msg_id => Some(s),
            _ => None,
        });
        if let Some(s) = verdict {
            let nonce = s
                .chal
                .as_ref()
                .and_then(|c| c.meta.next_nonce.as_deref())
                .and_then(auth::decode_nonce);
            match s.code {
                auth::STATUS_INVALID_CREDENTIALS | auth::STATUS_MISSING_CREDENTIALS => {
                    let Some(n) = nonce else {
                        self.ended = true;
                        return Err(ClientError::AuthRejected { status: s.code });
                    };
                    self.challenges = self.challenges.saturating_add(1);
                    if self.challenges > 2 {
                        self.ended = true;
                        return Err(ClientError::AuthRejected { status: s.code });
                    }
                    // Send Pkg1 again with credentials over the new nonce.
                    self.nonce = n;
                    let mut commands = vec![Command::Status(hdr_status(&msg.hdr, STATUS_OK, None))];
                    commands.extend(self.pkg1_commands());
                    return Ok(ClientStep::Send(self.message(commands)));
                }
                _ => {
                    if let Some(n) = nonce {
                        self.next_nonce = Some(n);
                    }
                }
            }
        }

        let mut answers = vec![Command::Status(hdr_status(&msg.hdr, STATUS_OK, None))];
        let mut asked = false;
        for c in &msg.body.commands {
            let mut results = None;
            let code = match c {
                Command::Status(_) | Command::Results(_) => continue,
                Command::Get(g) => {
                    let items: Vec<Item> = g
                        .items
                        .iter()
                        .filter_map(|it| {
                            let uri = it.target.as_ref()?.loc_uri.as_str();
                            let v = self.tree.get(uri)?;
                            Some(Item::source_data(uri, v))
                        })
                        .collect();
                    if items.len() == g.items.len() {
                        results = Some(Command::Results(Results {
                            cmd_id: 0,
                            msg_ref: Some(msg.hdr.msg_id),
                            cmd_ref: g.cmd_id,
                            meta: Some(Meta {
                                format: Some("chr".to_string()),
                                type_: Some("text/plain".to_string()),
                                ..Meta::default()
                            }),
                            target_ref: None,
                            source_ref: None,
                            items,
                        }));
                        STATUS_OK
                    } else {
                        STATUS_NOT_FOUND
                    }
                }
                Command::Replace(r) | Command::Add(r) => {
                    for it in &r.items {
                        if let Some(t) = &it.target {
                            self.tree
                                .insert(t.loc_uri.clone(), it.data.clone().unwrap_or_default());
                        }
                    }
                    STATUS_OK
                }
                Command::Delete(d) => {
                    for it in &d.items {
                        if let Some(t) = &it.target {
                            self.tree.remove(&t.loc_uri);
                        }
                    }
                    STATUS_OK
                }
                Command::Exec(e) => {
                    match e
                        .item
                        .target
                        .as_ref()
                        .and_then(|t| Operation::from_exec_uri(&t.loc_uri))
                    {
                        Some((operation, node)) => {
                            let url = operation
                                .pkg_url_uri(&node)
                                .and_then(|u| self.tree.get(&u).cloned());
                            self.offer = Some(ReceivedOffer {
                                operation,
                                node,
                                url,
                                correlator: e.correlator.clone(),
                            });
                            STATUS_ACCEPTED
                        }
                        None => STATUS_NOT_SUPPORTED,
                    }
                }
                Command::Alert(_) => STATUS_OK,
            };
            asked = true;
            if !c.no_resp() {
                answers.push(Command::Status(status_for(msg.hdr.msg_id, c, code)));
            }
            if let Some(r) = results {
                answers.push(r);
            }
        }
        if !asked {
            // Only statuses: the server has nothing more to ask.
            self.ended = true;
            return Ok(ClientStep::Done {
                offer: self.offer.clone(),
            });
        }
        Ok(ClientStep::Send(self.message(answers)))
    }
}
