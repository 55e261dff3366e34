//! OMA DM 1.2 security: how a client and a server prove who they are.
//!
//! Three schemes (DM Security §5.1, `oma-dm.md` §5), `H` = MD5, `B64` =
//! base64, the nonce taken as raw bytes (the base64 `NextNonce` decoded):
//!
//! | scheme | where | value |
//! |---|---|---|
//! | `syncml:auth-basic` | `Cred` | `B64(user ":" pwd)`; refused unless allowed |
//! | `syncml:auth-md5` | `Cred` (Format `b64`) | `B64(H(B64(H(user ":" pwd)) ":" nonce))` |
//! | `syncml:auth-MAC` | HTTP header `x-syncml-hmac` | `mac = B64(H(B64(H(user ":" pwd)) ":" nonce ":" B64(H(body))))` |
//!
//! The HMAC is over the exact body bytes (XML or WBXML) and is never in a
//! `Cred`. Nonces are [`NONCE_LEN`] random bytes, a new one for each
//! challenge. A server that rejects credentials challenges once more with
//! a fresh nonce and then refuses ([`Challenger`]). Every comparison of a
//! secret-derived value runs in constant time.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest as _, Md5};

use super::message::{Chal, Cred, Meta, SyncHdr};

/// The length of the nonces this module makes (DM Security: at least 16).
pub const NONCE_LEN: usize = 16;

/// The HTTP header that carries the HMAC (`x-syncml-hmac`).
pub const HMAC_HEADER: &str = "x-syncml-hmac";

/// SyncHdr status: authentication accepted for the rest of the session.
pub const STATUS_AUTH_ACCEPTED: u16 = 212;
/// SyncHdr status: credentials wrong.
pub const STATUS_INVALID_CREDENTIALS: u16 = 401;
/// SyncHdr status: credentials missing.
pub const STATUS_MISSING_CREDENTIALS: u16 = 407;

/// An authentication scheme, as `Meta/Type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `syncml:auth-basic`: the password in clear (base64). Weak.
    Basic,
    /// `syncml:auth-md5`: the MD5 digest with a nonce.
    Md5,
    /// `syncml:auth-MAC`: an HMAC of the body in an HTTP header.
    Hmac,
}

impl Scheme {
    /// The `Meta/Type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Basic => "syncml:auth-basic",
            Scheme::Md5 => "syncml:auth-md5",
            Scheme::Hmac => "syncml:auth-MAC",
        }
    }

    /// The scheme a `Meta/Type` names (case-insensitively: clients differ
    /// in how they write `auth-MAC`).
    pub fn from_type(type_: &str) -> Option<Scheme> {
        let t = type_.trim();
        [Scheme::Basic, Scheme::Md5, Scheme::Hmac]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(t))
    }
}

/// A user name and password: a device's DM account on the server, or the
/// server's own account on the device.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (the client's: its SyncHdr `Source/LocName`; the
    /// server's: its server id).
    pub username: String,
    /// The shared secret.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

impl Credentials {
    /// Credentials from a user name and a password.
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }
    }
}

/// Why authentication failed, or could not be attempted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials where they are required.
    #[error("DM auth: no credentials")]
    Missing,
    /// Credentials of a scheme this side does not accept.
    #[error("DM auth: scheme {found:?} not accepted (expected {expected})")]
    WrongScheme {
        /// The `Meta/Type` received.
        found: String,
        /// The scheme required.
        expected: &'static str,
    },
    /// Basic credentials, which are refused unless allowed.
    #[error("DM auth: syncml:auth-basic is refused")]
    BasicRefused,
    /// The credentials do not match.
    #[error("DM auth: credentials do not match")]
    Mismatch,
    /// The `x-syncml-hmac` header cannot be read.
    #[error("DM auth: bad x-syncml-hmac header: {reason}")]
    BadHeader {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The system's random source failed.
    #[error("DM auth: no random bytes for a nonce: {0}")]
    Random(String),
}

/// `B64(H(data))`.
pub fn b64_md5(data: &[u8]) -> String {
    B64.encode(Md5::digest(data))
}

/// `B64(H(user ":" pwd))`: the part of every digest that only the account
/// determines.
fn account_hash(creds: &Credentials) -> String {
    let mut h = Md5::new();
    h.update(creds.username.as_bytes());
    h.update(b":");
    h.update(creds.password.as_bytes());
    B64.encode(h.finalize())
}

/// The `syncml:auth-md5` credential: `B64(H(B64(H(user:pwd)) ":" nonce))`.
pub fn md5_digest(creds: &Credentials, nonce: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(account_hash(creds).as_bytes());
    h.update(b":");
    h.update(nonce);
    B64.encode(h.finalize())
}

/// The `syncml:auth-basic` credential: `B64(user ":" pwd)`.
pub fn basic(creds: &Credentials) -> String {
    B64.encode(format!("{}:{}", creds.username, creds.password))
}

/// The HMAC of a message body:
/// `B64(H(B64(H(user:pwd)) ":" nonce ":" B64(H(body))))`.
pub fn hmac_mac(creds: &Credentials, nonce: &[u8], body: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(account_hash(creds).as_bytes());
    h.update(b":");
    h.update(nonce);
    h.update(b":");
    h.update(b64_md5(body).as_bytes());
    B64.encode(h.finalize())
}

/// The value of the `x-syncml-hmac` header for `body`.
pub fn hmac_header(creds: &Credentials, nonce: &[u8], body: &[u8]) -> String {
    HmacHeader {
        algorithm: Some("MD5".to_string()),
        username: creds.username.clone(),
        mac: hmac_mac(creds, nonce, body),
    }
    .to_string()
}

/// A fresh nonce of [`NONCE_LEN`] random bytes.
///
/// # Errors
/// [`AuthError::Random`] when the system has no randomness to give.
pub fn new_nonce() -> Result<Vec<u8>, AuthError> {
    let mut n = vec![0u8; NONCE_LEN];
    getrandom::getrandom(&mut n).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(n)
}

/// Whether two byte strings are equal, in time that depends only on their
/// lengths (no early exit on the first difference).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

/// Decodes a base64 nonce as `NextNonce` carries it.
pub fn decode_nonce(b64: &str) -> Option<Vec<u8>> {
    B64.decode(b64.trim()).ok()
}

/// A `Cred` for `scheme` (`Basic` or `Md5`; an HMAC goes in a header, so
/// `Hmac` gives `None`).
pub fn cred(scheme: Scheme, creds: &Credentials, nonce: &[u8]) -> Option<Cred> {
    let data = match scheme {
        Scheme::Basic => basic(creds),
        Scheme::Md5 => md5_digest(creds, nonce),
        Scheme::Hmac => return None,
    };
    Some(Cred {
        meta: Meta {
            format: Some("b64".to_string()),
            type_: Some(scheme.as_str().to_string()),
            ..Meta::default()
        },
        data,
    })
}

/// A `Chal` asking for `scheme` with `nonce` as the next nonce.
pub fn chal(scheme: Scheme, nonce: &[u8]) -> Chal {
    Chal {
        meta: Meta {
            format: Some("b64".to_string()),
            type_: Some(scheme.as_str().to_string()),
            next_nonce: Some(B64.encode(nonce)),
            ..Meta::default()
        },
    }
}

/// Checks a `Cred` against the account and the nonce this side issued.
///
/// # Errors
/// [`AuthError::BasicRefused`] for basic credentials unless `allow_basic`,
/// [`AuthError::WrongScheme`] for any other scheme than `expected`,
/// [`AuthError::Mismatch`] when the value is wrong.
pub fn verify_cred(
    cred: &Cred,
    expected: Scheme,
    creds: &Credentials,
    nonce: &[u8],
    allow_basic: bool,
) -> Result<(), AuthError> {
    let type_ = cred.meta.type_.as_deref().unwrap_or(Scheme::Basic.as_str());
    let scheme = Scheme::from_type(type_);
    let want = match scheme {
        Some(Scheme::Basic) if allow_basic => basic(creds),
        Some(Scheme::Basic) => return Err(AuthError::BasicRefused),
        Some(Scheme::Md5) if expected == Scheme::Md5 => md5_digest(creds, nonce),
        _ => {
            return Err(AuthError::WrongScheme {
                found: super::error::quote(type_),
                expected: expected.as_str(),
            })
        }
    };
    if constant_time_eq(want.as_bytes(), cred.data.trim().as_bytes()) {
        Ok(())
    } else {
        Err(AuthError::Mismatch)
    }
}

/// The `x-syncml-hmac` header: `algorithm=MD5, username="…", mac=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacHeader {
    /// `algorithm` (MD5 when absent; nothing else is defined).
    pub algorithm: Option<String>,
    /// `username`: the client's SyncHdr `Source/LocName` (or server id).
    pub username: String,
    /// `mac`: the base64 HMAC.
    pub mac: String,
}

impl HmacHeader {
    /// Reads the header's value. Parameter names are case-insensitive,
    /// values may be quoted, order does not matter.
    ///
    /// # Errors
    /// [`AuthError::BadHeader`] when `username` or `mac` is absent, a
    /// parameter is not `name=value`, or the algorithm is not MD5.
    pub fn parse(value: &str) -> Result<HmacHeader, AuthError> {
        let mut algorithm = None;
        let mut username = None;
        let mut mac = None;
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, v) = part.split_once('=').ok_or(AuthError::BadHeader {
                reason: "a parameter is not name=value",
            })?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "algorithm" => algorithm = Some(v),
                "username" => username = Some(v),
                "mac" => mac = Some(v),
                _ => {}
            }
        }
        if let Some(a) = &algorithm {
            if !a.eq_ignore_ascii_case("MD5") {
                return Err(AuthError::BadHeader {
                    reason: "algorithm is not MD5",
                });
            }
        }
        Ok(HmacHeader {
            algorithm,
            username: username.ok_or(AuthError::BadHeader {
                reason: "no username",
            })?,
            mac: mac.ok_or(AuthError::BadHeader { reason: "no mac" })?,
        })
    }
}

impl std::fmt::Display for HmacHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(a) = &self.algorithm {
            write!(f, "algorithm={a}, ")?;
        }
        write!(f, "username=\"{}\", mac={}", self.username, self.mac)
    }
}

/// Checks an `x-syncml-hmac` header over `body`.
///
/// # Errors
/// [`AuthError::BadHeader`], or [`AuthError::Mismatch`] when the user name
/// or the mac is wrong.
pub fn verify_hmac(
    header: &str,
    body: &[u8],
    creds: &Credentials,
    nonce: &[u8],
) -> Result<(), AuthError> {
    let h = HmacHeader::parse(header)?;
    let want = hmac_mac(creds, nonce, body);
    let user_ok = constant_time_eq(h.username.as_bytes(), creds.username.as_bytes());
    let mac_ok = constant_time_eq(want.as_bytes(), h.mac.trim().as_bytes());
    if user_ok & mac_ok {
        Ok(())
    } else {
        Err(AuthError::Mismatch)
    }
}

/// What the server does with a message's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated: answer the SyncHdr with 212 and carry on.
    Accepted,
    /// Not (yet) authenticated: answer the SyncHdr with `status` (401 or
    /// 407) and this `Chal`, carry out nothing, wait for the client to
    /// send its message again with credentials.
    Challenge {
        /// 401 (wrong) or 407 (missing).
        status: u16,
        /// The challenge, with a fresh nonce.
        chal: Chal,
        /// Why.
        reason: AuthError,
    },
    /// Refused for good: answer 401 without a challenge and end the
    /// session.
    Refused {
        /// Why.
        reason: AuthError,
    },
}

/// The server's side of authentication over one session: which scheme it
/// requires, the nonce the client must use, and how many failures it has
/// seen. After one failure it challenges once more with a fresh nonce; the
/// second failure is refused.
#[derive(Debug, Clone)]
pub struct Challenger {
    scheme: Scheme,
    allow_basic: bool,
    nonce: Vec<u8>,
    failures: u8,
    challenged: bool,
}

impl Challenger {
    /// A challenger requiring `scheme`, expecting `nonce` (the one given
    /// to this device at the end of its last session; `None` when there is
    /// none, so the first message is challenged).
    ///
    /// # Errors
    /// [`AuthError::Random`] when a fresh nonce is needed and cannot be
    /// made.
    pub fn new(
        scheme: Scheme,
        allow_basic: bool,
        nonce: Option<Vec<u8>>,
    ) -> Result<Challenger, AuthError> {
        let nonce = match nonce {
            Some(n) => n,
            None => new_nonce()?,
        };
        Ok(Challenger {
            scheme,
            allow_basic,
            nonce,
            failures: 0,
            challenged: false,
        })
    }

    /// The nonce the client is expected to use now.
    pub fn nonce(&self) -> &[u8] {
        &self.nonce
    }

    /// The scheme required.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Judges one message: its SyncHdr's `Cred`, its `x-syncml-hmac`
    /// header (if any), its exact body bytes, against the device account.
    ///
    /// # Errors
    /// [`AuthError::Random`] when a challenge needs a nonce and none can be
    /// made.
    pub fn check(
        &mut self,
        hdr: &SyncHdr,
        hmac: Option<&str>,
        body: &[u8],
        creds: &Credentials,
    ) -> Result<Verdict, AuthError> {
        let result = match (self.scheme, &hdr.cred, hmac) {
            (Scheme::Hmac, _, Some(h)) => verify_hmac(h, body, creds, &self.nonce),
            (_, Some(c), _) => verify_cred(c, self.scheme, creds, &self.nonce, self.allow_basic),
            (_, None, _) => Err(AuthError::Missing),
        };
        let reason = match result {
            Ok(()) => return Ok(Verdict::Accepted),
            Err(e) => e,
        };
        // Missing credentials before any challenge: the client did not
        // know it had to authenticate. Everything else is a failure.
        let status = if reason == AuthError::Missing && !self.challenged {
            STATUS_MISSING_CREDENTIALS
        } else {
            self.failures = self.failures.saturating_add(1);
            STATUS_INVALID_CREDENTIALS
        };
        if self.failures >= 2 {
            return Ok(Verdict::Refused { reason });
        }
        self.nonce = new_nonce()?;
        self.challenged = true;
        Ok(Verdict::Challenge {
            status,
            chal: chal(self.scheme, &self.nonce),
            reason,
        })
    }
}
