//! The TPS side of one IOTA session, as a pure state machine (iota.md,
//! flows (a) and (b)): the HTTP layer hands it each handset document and
//! the time, and sends back what it answers. Nothing here reads a clock,
//! a database or the network.
//!
//! ```text
//! check:  hello ─▶ read man/mod/fwv ─▶ NeedDecision ─decide─▶
//!         write url/size/hash, display, commit ─▶ disconnect ─▶ closed
//! report: hello ─▶ read fwv/state/result ─▶ Report + disconnect ─▶ closed
//! ```

use crate::iota::mmc::{Command, CommandResult, Mmc, MmcResult, ResultCode, ValueRef};

/// Seconds a handset session may stay idle (iota.md: 15 min in service).
pub const HANDSET_TIMEOUT_SECS: u64 = 15 * 60;

/// Seconds a queued network-initiated session waits for the handset's
/// hello (iota.md: 72 h).
pub const QUEUED_EXPIRY_SECS: u64 = 72 * 3600;

/// Why a session is being run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Find out what the handset runs and offer it a package.
    Check,
    /// After an install: read the handset's version and result.
    Report {
        /// The version the package installs.
        target_version: String,
    },
}

/// Who opened the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The handset called the FOTA URL.
    Client,
    /// A campaign pushed a trigger; the session waits for the hello.
    Network,
}

/// What the TPS offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The package's download URL.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, hex.
    pub sha256_hex: String,
    /// Release notes shown with the consent prompt.
    pub notes: String,
    /// A mandatory campaign: a refusal is a postponement.
    pub mandatory: bool,
}

/// Why a session ended (iota.md's session-end reasons, plus the FOTA
/// outcomes the TPS records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The package URL was delivered and committed.
    UrlDelivered,
    /// No package for what the handset runs.
    NoUpdate,
    /// The user refused (optional update).
    UserDenied,
    /// The user refused a mandatory update: one postponement.
    Postponed,
    /// The post-install report was read.
    Reported,
    /// A command failed on the handset with this code.
    Mmc(ResultCode),
    /// The handset sent something out of order.
    ClientAbort,
    /// Idle past [`HANDSET_TIMEOUT_SECS`] or, queued, past
    /// [`QUEUED_EXPIRY_SECS`].
    SessionTimeout,
}

/// What the TPS reads after an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// `dev/fwv`.
    pub fw_version: String,
    /// `fota/state`.
    pub state: String,
    /// `fota/result`.
    pub result: String,
    /// The handset runs the target version and reports result 0.
    pub installed: bool,
}

/// What the caller does with a handset document's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this document back.
    Reply(Mmc),
    /// Look up the package for this handset, then call
    /// [`TpsSession::decide`] and send what it returns.
    NeedDecision {
        /// `dev/man`.
        man: String,
        /// `dev/mod`.
        model: String,
        /// `dev/fwv`.
        fw_version: String,
    },
    /// The handset is busy: keep the session and push again later.
    Busy,
    /// Record the report, then send the reply (a disconnect).
    Report(InstallReport, Mmc),
    /// The session is over (the handset acknowledged the disconnect).
    Closed(EndReason),
}

/// Documents the session cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Another session's document (HTTP 404).
    #[error("IOTA session {expected}: document for session {found}")]
    WrongSession {
        /// This session.
        expected: String,
        /// The document's.
        found: String,
    },
    /// The one-time token does not match (HTTP 403).
    #[error("IOTA session {sid}: bad token")]
    BadToken {
        /// The session.
        sid: String,
    },
    /// The session expired (HTTP 404).
    #[error("IOTA session {sid}: expired")]
    Expired {
        /// The session.
        sid: String,
    },
    /// The session already ended (HTTP 404).
    #[error("IOTA session {sid}: already closed ({reason:?})")]
    Closed {
        /// The session.
        sid: String,
        /// How it ended.
        reason: EndReason,
    },
    /// A document with an unexpected sequence number (HTTP 409).
    #[error("IOTA session {sid}: document seq {found}, expected {expected}")]
    OutOfOrder {
        /// The session.
        sid: String,
        /// The seq expected.
        expected: u32,
        /// The seq received.
        found: u32,
    },
    /// `decide` called when no decision is pending.
    #[error("IOTA session {sid}: no decision pending")]
    NoDecisionPending {
        /// The session.
        sid: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Hello,
    Values,
    Decision,
    OfferResults { mandatory: bool },
    Bye(EndReason),
    Closed(EndReason),
}

/// One TPS session.
#[derive(Debug, Clone)]
pub struct TpsSession {
    sid: String,
    token: String,
    purpose: Purpose,
    origin: Origin,
    created: u64,
    last_seen: u64,
    phase: Phase,
    /// The seq the next handset document must carry.
    expected_seq: u32,
    /// The last handset seq answered and the answer, for repeats.
    last: Option<(u32, Outcome)>,
    next_cid: u32,
}

/// Constant-time string comparison for tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl TpsSession {
    /// A new session created at `now` (seconds).
    pub fn new(sid: &str, token: &str, purpose: Purpose, origin: Origin, now: u64) -> Self {
        TpsSession {
            sid: sid.to_string(),
            token: token.to_string(),
            purpose,
            origin,
            created: now,
            last_seen: now,
            phase: Phase::Hello,
            expected_seq: 0,
            last: None,
            next_cid: 1,
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// How the session ended, once it has.
    pub fn end(&self) -> Option<&EndReason> {
        match &self.phase {
            Phase::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the session has expired at `now`.
    pub fn expired(&self, now: u64) -> bool {
        let queued = self.origin == Origin::Network && self.phase == Phase::Hello;
        if queued {
            now.saturating_sub(self.created) > QUEUED_EXPIRY_SECS
        } else {
            now.saturating_sub(self.last_seen) > HANDSET_TIMEOUT_SECS
        }
    }

    fn doc(&self, seq: u32, commands: Vec<Command>) -> Mmc {
        Mmc {
            sid: self.sid.clone(),
            seq,
            commands,
        }
    }

    fn cid(&mut self) -> u32 {
        let c = self.next_cid;
        self.next_cid += 1;
        c
    }

    fn reads(&mut self, refs: [ValueRef; 3]) -> Vec<Command> {
        refs.into_iter()
            .map(|valueref| Command::Read {
                cid: self.cid(),
                valueref,
            })
            .collect()
    }

    fn bye(&mut self, seq: u32, reason: EndReason) -> Mmc {
        self.phase = Phase::Bye(reason);
        self.expected_seq = seq;
        self.doc(seq, vec![Command::Disconnect])
    }

    /// Takes one handset document at `now` with the token from the URL.
    ///
    /// # Errors
    /// [`SessionError`]: wrong session or token, expired, closed, out of
    /// order. A repeated document gets the same outcome again.
    pub fn handle(
        &mut self,
        doc: &MmcResult,
        token: &str,
        now: u64,
    ) -> Result<Outcome, SessionError> {
        if doc.sid != self.sid {
            return Err(SessionError::WrongSession {
                expected: self.sid.clone(),
                found: doc.sid.clone(),
            });
        }
        if !same(token, &self.token) {
            return Err(SessionError::BadToken {
                sid: self.sid.clone(),
            });
        }
        if let Phase::Closed(reason) = &self.phase {
            return Err(SessionError::Closed {
                sid: self.sid.clone(),
                reason: reason.clone(),
            });
        }
        if self.expired(now) {
            self.phase = Phase::Closed(EndReason::SessionTimeout);
            return Err(SessionError::Expired {
                sid: self.sid.clone(),
            });
        }
        if let Some((seq, outcome)) = &self.last {
            if *seq == doc.seq {
                return Ok(outcome.clone());
            }
        }
        if doc.seq != self.expected_seq {
            return Err(SessionError::OutOfOrder {
                sid: self.sid.clone(),
                expected: self.expected_seq,
                found: doc.seq,
            });
        }
        self.last_seen = now;
        let next = doc.seq.wrapping_add(1);
        let outcome = self.step(doc, next);
        if !matches!(outcome, Outcome::NeedDecision { .. } | Outcome::Busy) {
            self.last = Some((doc.seq, outcome.clone()));
        }
        Ok(outcome)
    }

    fn step(&mut self, doc: &MmcResult, next: u32) -> Outcome {
        let failed = doc.results.iter().find(|r| r.code != ResultCode::Ok);
        match self.phase.clone() {
            Phase::Hello => {
                if doc.results.iter().any(|r| r.code == ResultCode::DeviceBusy) {
                    // Keep the session for a re-push; the next hello is seq 0 again.
                    return Outcome::Busy;
                }
                let refs = match self.purpose {
                    Purpose::Check => [ValueRef::DevMan, ValueRef::DevMod, ValueRef::DevFwv],
                    Purpose::Report { .. } => {
                        [ValueRef::DevFwv, ValueRef::FotaState, ValueRef::FotaResult]
                    }
                };
                let commands = self.reads(refs);
                self.phase = Phase::Values;
                self.expected_seq = next;
                Outcome::Reply(self.doc(next, commands))
            }
            Phase::Values => {
                if let Some(f) = failed {
                    return Outcome::Reply(self.bye(next, EndReason::Mmc(f.code)));
                }
                let value = |i: usize| value_of(&doc.results, i);
                let (a, b, c) = match (value(0), value(1), value(2)) {
                    (Some(a), Some(b), Some(c)) => (a, b, c),
                    _ => {
                        return Outcome::Reply(
                            self.bye(next, EndReason::Mmc(ResultCode::CidMissing)),
                        )
                    }
                };
                match self.purpose.clone() {
                    Purpose::Check => {
                        self.phase = Phase::Decision;
                        self.expected_seq = next;
                        Outcome::NeedDecision {
                            man: a,
                            model: b,
                            fw_version: c,
                        }
                    }
                    Purpose::Report { target_version } => {
                        let installed = a == target_version && c == "0";
                        let report = InstallReport {
                            fw_version: a,
                            state: b,
                            result: c,
                            installed,
                        };
                        Outcome::Report(report, self.bye(next, EndReason::Reported))
                    }
                }
            }
            Phase::Decision => Outcome::Closed(EndReason::ClientAbort),
            Phase::OfferResults { mandatory } => {
                let reason = match failed {
                    None => EndReason::UrlDelivered,
                    Some(f) if f.code == ResultCode::UserDenied && mandatory => {
                        EndReason::Postponed
                    }
                    Some(f) if f.code == ResultCode::UserDenied => EndReason::UserDenied,
                    Some(f) => EndReason::Mmc(f.code),
                };
                Outcome::Reply(self.bye(next, reason))
            }
            Phase::Bye(reason) => {
                self.phase = Phase::Closed(reason.clone());
                Outcome::Closed(reason)
            }
            Phase::Closed(reason) => Outcome::Closed(reason),
        }
    }

    /// The caller's decision after [`Outcome::NeedDecision`]: the offer,
    /// or none (the session then says goodbye, "no update").
    ///
    /// # Errors
    /// [`SessionError::NoDecisionPending`] outside that state.
    pub fn decide(&mut self, offer: Option<Offer>) -> Result<Mmc, SessionError> {
        if self.phase != Phase::Decision {
            return Err(SessionError::NoDecisionPending {
                sid: self.sid.clone(),
            });
        }
        let seq = self.expected_seq;
        let reply = match offer {
            None => self.bye(seq, EndReason::NoUpdate),
            Some(o) => {
                let commands = vec![
                    Command::Write {
                        cid: self.cid(),
                        valueref: ValueRef::FotaPkgUrl,
                        value: o.url,
                    },
                    Command::Write {
                        cid: self.cid(),
                        valueref: ValueRef::FotaPkgSize,
                        value: o.size.to_string(),
                    },
                    Command::Write {
                        cid: self.cid(),
                        valueref: ValueRef::FotaPkgHash,
                        value: o.sha256_hex,
                    },
                    Command::Display {
                        cid: self.cid(),
                        text: consent_text(&o.notes, o.mandatory),
                    },
                    Command::Commit { cid: self.cid() },
                ];
                self.phase = Phase::OfferResults {
                    mandatory: o.mandatory,
                };
                self.doc(seq, commands)
            }
        };
        // A repeat of the document that led here gets this reply.
        self.last = Some((seq.wrapping_sub(1), Outcome::Reply(reply.clone())));
        Ok(reply)
    }
}

/// The value of the `i`-th result, when it has one.
fn value_of(results: &[CommandResult], i: usize) -> Option<String> {
    results.get(i).and_then(|r| r.value.clone())
}

/// The text of the consent prompt: release notes, the question, and the
/// emergency-call notice the flow requires.
pub fn consent_text(notes: &str, mandatory: bool) -> String {
    let ask = if mandatory {
        "This update is required. Install now? (Declining postpones it.)"
    } else {
        "Install this update now?"
    };
    format!(
        "{notes}\n\n{ask}\nDuring the update the phone cannot be used, not even for emergency calls."
    )
}
