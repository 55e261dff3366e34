//! The handset's side of an IOTA session, as a pure state machine (the
//! device simulator's PSA): it checks a trigger against its trusted
//! domain, answers reads from its values, stages writes, shows `display`
//! text and asks its user, commits, and ends on `disconnect`.
//!
//! Codes follow iota.md: an unknown value reference → 1, a read of a
//! write-only one → 13, a bad value → 7, a refused prompt → 6, a failed
//! delete → 10. A package URL outside the trusted domain is a bad value
//! (7) and the offer is dropped; writes to `dev/*` are refused as
//! write-protected objects (16, BAD_OBJECT).

use crate::iota::mmc::{Command, CommandResult, Mmc, MmcError, MmcResult, ResultCode, ValueRef};

/// The longest trigger URI a push may carry (iota.md).
pub const MAX_TRIGGER_LEN: usize = 128;

/// What the handset knows about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandsetConfig {
    /// `dev/esn`.
    pub esn: Option<String>,
    /// `dev/meid`.
    pub meid: Option<String>,
    /// `dev/man`.
    pub man: String,
    /// `dev/mod`.
    pub model: String,
    /// `dev/fwv`.
    pub fw_version: String,
    /// The host (or parent domain) it trusts: a URL is trusted when its
    /// host equals it or ends with `.` + it.
    pub trusted_domain: String,
}

/// The user's answer to a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Yes.
    Accept,
    /// No (USER_DENIED).
    Refuse,
}

/// The person in front of the handset.
pub trait User {
    /// Shows `text` and returns the answer.
    fn consent(&mut self, text: &str) -> Consent;
}

/// A user who always answers the same.
#[derive(Debug, Clone, Copy)]
pub struct Always(pub Consent);

impl User for Always {
    fn consent(&mut self, _text: &str) -> Consent {
        self.0
    }
}

/// A parsed trigger URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The whole URL to post to.
    pub url: String,
    /// The session id.
    pub sid: String,
    /// The one-time token.
    pub token: String,
}

/// Why the handset cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandsetError {
    /// The URL's host is outside the trusted domain (the push is dropped).
    #[error("not trusted domain: {host:?} is outside {domain:?}")]
    NotTrusted {
        /// The URL's host.
        host: String,
        /// The trusted domain.
        domain: String,
    },
    /// Not a trigger URI.
    #[error("trigger URI {uri:?}: {why}")]
    BadTrigger {
        /// The URI (cut short).
        uri: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The server's document is not MMC.
    #[error(transparent)]
    Mmc(#[from] MmcError),
    /// A document for another session.
    #[error("document for session {found:?}, this is {expected:?}")]
    WrongSession {
        /// This session.
        expected: String,
        /// The document's.
        found: String,
    },
    /// A document out of sequence.
    #[error("document seq {found}, expected {expected}")]
    OutOfOrder {
        /// Expected.
        expected: u32,
        /// Received.
        found: u32,
    },
    /// The session is over.
    #[error("the session has ended")]
    Ended,
}

/// The host of an `http(s)://` URL.
fn host_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if authority.starts_with('[') {
        authority
            .split(']')
            .next()
            .map(|h| h.trim_start_matches('['))?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// Whether `url` lies in `domain`.
pub fn trusted(url: &str, domain: &str) -> Result<(), HandsetError> {
    let host = host_of(url).ok_or(HandsetError::BadTrigger {
        uri: url.chars().take(64).collect(),
        why: "not an http(s) URL",
    })?;
    let h = host.to_ascii_lowercase();
    let d = domain.trim().trim_start_matches('.').to_ascii_lowercase();
    if !d.is_empty() && (h == d || h.ends_with(&format!(".{d}"))) {
        Ok(())
    } else {
        Err(HandsetError::NotTrusted {
            host: host.to_string(),
            domain: domain.to_string(),
        })
    }
}

/// Reads a trigger URI (`http(s)://host/path?sid=S&t=TOKEN`, at most 128
/// bytes) and checks it against the trusted domain.
///
/// # Errors
/// [`HandsetError::BadTrigger`], [`HandsetError::NotTrusted`].
pub fn parse_trigger(uri: &str, cfg: &HandsetConfig) -> Result<Trigger, HandsetError> {
    let bad = |why| HandsetError::BadTrigger {
        uri: uri.chars().take(64).collect(),
        why,
    };
    if uri.len() > MAX_TRIGGER_LEN {
        return Err(bad("longer than 128 bytes"));
    }
    trusted(uri, &cfg.trusted_domain)?;
    let query = uri.split_once('?').map(|(_, q)| q).ok_or(bad("no query"))?;
    let mut sid = None;
    let mut token = None;
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("sid", v)) if !v.is_empty() => sid = Some(v.to_string()),
            Some(("t", v)) if !v.is_empty() => token = Some(v.to_string()),
            _ => {}
        }
    }
    Ok(Trigger {
        url: uri.to_string(),
        sid: sid.ok_or(bad("no sid"))?,
        token: token.ok_or(bad("no t (token)"))?,
    })
}

/// Why the handset is in the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandsetPurpose {
    /// Asking for an update.
    Check,
    /// After an install: answers `fota/state` and `fota/result`.
    Report {
        /// `fota/state` (`installed`, `failed`, …).
        state: String,
        /// `fota/result` (an MMC result code, 0 on success).
        result: u8,
    },
}

/// An offer the server committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedOffer {
    /// `fota/pkgurl`.
    pub url: String,
    /// `fota/pkgsize`.
    pub size: u64,
    /// `fota/pkghash`.
    pub sha256_hex: String,
    /// The text shown (release notes and notices).
    pub notes: String,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandsetStep {
    /// Post this document.
    Send(MmcResult),
    /// The server said disconnect. `last`: the acknowledgement to post;
    /// `offer`: the committed offer, if any.
    Done {
        /// The committed offer.
        offer: Option<ReceivedOffer>,
        /// The final document.
        last: Option<MmcResult>,
    },
}

#[derive(Debug, Clone, Default)]
struct Staged {
    url: Option<String>,
    size: Option<u64>,
    hash: Option<String>,
    denied: bool,
    shown: String,
}

/// The handset's side of one session.
#[derive(Debug, Clone)]
pub struct HandsetSession {
    cfg: HandsetConfig,
    sid: String,
    purpose: HandsetPurpose,
    staged: Staged,
    committed: Option<ReceivedOffer>,
    /// The seq of the next server document.
    expected: u32,
    last: Option<(u32, HandsetStep)>,
    ended: bool,
}

impl HandsetSession {
    /// A session `sid` for `purpose`.
    pub fn new(cfg: HandsetConfig, sid: &str, purpose: HandsetPurpose) -> HandsetSession {
        HandsetSession {
            cfg,
            sid: sid.to_string(),
            purpose,
            staged: Staged::default(),
            committed: None,
            // The hello is seq 0; the server's first document is seq 1.
            expected: 1,
            last: None,
            ended: false,
        }
    }

    /// The hello that opens the session (seq 0, no results).
    pub fn hello(&mut self) -> MmcResult {
        MmcResult {
            sid: self.sid.clone(),
            seq: 0,
            results: Vec::new(),
        }
    }

    fn read(&self, r: &ValueRef) -> (ResultCode, Option<String>) {
        let v = |s: &str| (ResultCode::Ok, Some(s.to_string()));
        match r {
            ValueRef::DevEsn => self
                .cfg
                .esn
                .as_deref()
                .map_or((ResultCode::InvalidValueRef, None), v),
            ValueRef::DevMeid => self
                .cfg
                .meid
                .as_deref()
                .map_or((ResultCode::InvalidValueRef, None), v),
            ValueRef::DevMan => v(&self.cfg.man),
            ValueRef::DevMod => v(&self.cfg.model),
            ValueRef::DevFwv => v(&self.cfg.fw_version),
            ValueRef::FotaState => match &self.purpose {
                HandsetPurpose::Report { state, .. } => v(state),
                HandsetPurpose::Check => v("idle"),
            },
            ValueRef::FotaResult => match &self.purpose {
                HandsetPurpose::Report { result, .. } => v(&result.to_string()),
                HandsetPurpose::Check => v("0"),
            },
            ValueRef::FotaPkgUrl | ValueRef::FotaPkgSize | ValueRef::FotaPkgHash => {
                (ResultCode::WriteOnly, None)
            }
            ValueRef::Other(_) => (ResultCode::InvalidValueRef, None),
        }
    }

    fn write(&mut self, r: &ValueRef, value: &str) -> ResultCode {
        match r {
            ValueRef::FotaPkgUrl => {
                if trusted(value, &self.cfg.trusted_domain).is_err() {
                    return ResultCode::BadValue;
                }
                self.staged.url = Some(value.to_string());
                ResultCode::Ok
            }
            ValueRef::FotaPkgSize => match value.trim().parse() {
                Ok(n) => {
                    self.staged.size = Some(n);
                    ResultCode::Ok
                }
                Err(_) => ResultCode::BadValue,
            },
            ValueRef::FotaPkgHash => {
                let v = value.trim();
                if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    self.staged.hash = Some(v.to_ascii_lowercase());
                    ResultCode::Ok
                } else {
                    ResultCode::BadValue
                }
            }
            ValueRef::Other(_) => ResultCode::InvalidValueRef,
            _ => ResultCode::BadObject,
        }
    }

    /// Answers one server document (XML bytes), asking `user` on `display`.
    ///
    /// # Errors
    /// [`HandsetError`]: not MMC, another session, out of order, ended.
    pub fn handle(
        &mut self,
        body: &[u8],
        user: &mut dyn User,
    ) -> Result<HandsetStep, HandsetError> {
        let doc = Mmc::parse(body)?;
        self.handle_doc(&doc, user)
    }

    /// [`HandsetSession::handle`] on a parsed document.
    ///
    /// # Errors
    /// As [`HandsetSession::handle`].
    pub fn handle_doc(
        &mut self,
        doc: &Mmc,
        user: &mut dyn User,
    ) -> Result<HandsetStep, HandsetError> {
        if doc.sid != self.sid {
            return Err(HandsetError::WrongSession {
                expected: self.sid.clone(),
                found: doc.sid.clone(),
            });
        }
        if let Some((seq, step)) = &self.last {
            if *seq == doc.seq {
                return Ok(step.clone());
            }
        }
        if self.ended {
            return Err(HandsetError::Ended);
        }
        if doc.seq != self.expected {
            return Err(HandsetError::OutOfOrder {
                expected: self.expected,
                found: doc.seq,
            });
        }
        let mut results = Vec::new();
        let mut disconnect = false;
        for c in &doc.commands {
            let (cid, code, value) = match c {
                Command::Read { cid, valueref } => {
                    let (code, value) = self.read(valueref);
                    (*cid, code, value)
                }
                Command::Write {
                    cid,
                    valueref,
                    value,
                } => (*cid, self.write(valueref, value), None),
                Command::Delete { cid, valueref } => {
                    let code = match valueref {
                        ValueRef::FotaPkgUrl => {
                            self.staged.url = None;
                            ResultCode::Ok
                        }
                        ValueRef::FotaPkgSize => {
                            self.staged.size = None;
                            ResultCode::Ok
                        }
                        ValueRef::FotaPkgHash => {
                            self.staged.hash = None;
                            ResultCode::Ok
                        }
                        _ => ResultCode::DeleteFailed,
                    };
                    (*cid, code, None)
                }
                Command::Display { cid, text } => {
                    self.staged.shown = text.clone();
                    let code = match user.consent(text) {
                        Consent::Accept => ResultCode::Ok,
                        Consent::Refuse => {
                            self.staged.denied = true;
                            ResultCode::UserDenied
                        }
                    };
                    (*cid, code, None)
                }
                Command::Commit { cid } => {
                    let s = std::mem::take(&mut self.staged);
                    if !s.denied {
                        if let (Some(url), Some(size), Some(hash)) = (s.url, s.size, s.hash) {
                            self.committed = Some(ReceivedOffer {
                                url,
                                size,
                                sha256_hex: hash,
                                notes: s.shown,
                            });
                        }
                    }
                    (*cid, ResultCode::Ok, None)
                }
                Command::Disconnect => {
                    disconnect = true;
                    break;
                }
            };
            results.push(CommandResult { cid, code, value });
        }
        let reply = MmcResult {
            sid: self.sid.clone(),
            seq: doc.seq,
            results,
        };
        let step = if disconnect {
            self.ended = true;
            HandsetStep::Done {
                offer: self.committed.clone(),
                last: Some(reply),
            }
        } else {
            HandsetStep::Send(reply)
        };
        self.expected = doc.seq.wrapping_add(1);
        self.last = Some((doc.seq, step.clone()));
        Ok(step)
    }
}
