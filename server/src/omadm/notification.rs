//! The server-initiated session's trigger, "package #0" (OMA DM
//! Notification Initiated Session 1.2): what the server pushes (WAP push,
//! SMS) so that a device opens a DM session with Alert 1200.
//!
//! ```text
//! digest (16 bytes) | trigger-hdr | trigger-body (vendor, optional)
//! trigger-hdr, big-endian bit fields:
//!   version 10 bits (12 = DM 1.2) | ui-mode 2 | initiator 1 | future-use 27 (0)
//!   | session-id 16 | server-id length 8 | server-id (that many bytes)
//! digest = H(B64(H(server-id ":" server-password)) ":" nonce ":" B64(H(trigger)))
//! ```
//!
//! `H` is MD5 and the digest is the raw 16 bytes; `trigger` is the header
//! plus the body. The nonce is the one the device keeps for the server
//! (the same the server's `Cred` uses).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest as _, Md5};

use super::auth::{self, Credentials};

/// The `version` field for DM 1.2.
pub const VERSION_1_2: u16 = 12;

/// The length of the digest.
pub const DIGEST_LEN: usize = 16;

/// The length of the fixed part of the trigger header.
const HEADER_LEN: usize = 8;

/// How the device involves its user (`ui-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UiMode {
    /// 0: not specified (the device decides).
    NotSpecified,
    /// 1: background: no user interaction.
    Background,
    /// 2: informative: the user is told.
    Informative,
    /// 3: user interaction: the user is asked.
    UserInteraction,
}

impl UiMode {
    fn bits(self) -> u8 {
        match self {
            UiMode::NotSpecified => 0,
            UiMode::Background => 1,
            UiMode::Informative => 2,
            UiMode::UserInteraction => 3,
        }
    }

    fn from_bits(b: u8) -> UiMode {
        match b & 3 {
            1 => UiMode::Background,
            2 => UiMode::Informative,
            3 => UiMode::UserInteraction,
            _ => UiMode::NotSpecified,
        }
    }
}

/// Who asked for the session (`initiator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// 0: the user (through the operator).
    User,
    /// 1: the server.
    Server,
}

/// A package #0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The DM version, ten times ([`VERSION_1_2`]).
    pub version: u16,
    /// How the device involves its user.
    pub ui_mode: UiMode,
    /// Who asked.
    pub initiator: Initiator,
    /// The session id the device uses for the session it opens.
    pub session_id: u16,
    /// The server identifier (the device's DM account for this server).
    pub server_id: String,
    /// The vendor-specific trigger body (often empty).
    pub body: Vec<u8>,
}

/// Why bytes are not a package #0, or it cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// Shorter than the digest and fixed header, or than the server id
    /// length says.
    #[error("package #0: {len} bytes, needs at least {needed}")]
    Truncated {
        /// The length received.
        len: usize,
        /// The length needed.
        needed: usize,
    },
    /// The server id is not UTF-8.
    #[error("package #0: server id at byte 24 is not UTF-8")]
    ServerIdNotUtf8,
    /// The server id is longer than 255 bytes.
    #[error("package #0: server id of {len} bytes, at most 255")]
    ServerIdTooLong {
        /// Its length.
        len: usize,
    },
    /// A version that does not fit ten bits.
    #[error("package #0: version {version} does not fit 10 bits")]
    VersionTooLarge {
        /// The version.
        version: u16,
    },
    /// The digest does not match the server's account and nonce.
    #[error("package #0: digest does not match")]
    BadDigest,
}

/// Offset of the trigger in a package #0.
const TRIGGER_AT: usize = DIGEST_LEN;

impl Notification {
    /// A DM 1.2 notification from the server, with no vendor body.
    pub fn new(session_id: u16, server_id: &str, ui_mode: UiMode) -> Notification {
        Notification {
            version: VERSION_1_2,
            ui_mode,
            initiator: Initiator::Server,
            session_id,
            server_id: server_id.to_string(),
            body: Vec::new(),
        }
    }

    /// The trigger: header and body.
    ///
    /// # Errors
    /// [`NotificationError::ServerIdTooLong`],
    /// [`NotificationError::VersionTooLarge`].
    pub fn trigger(&self) -> Result<Vec<u8>, NotificationError> {
        if self.version > 0x3FF {
            return Err(NotificationError::VersionTooLarge {
                version: self.version,
            });
        }
        let id = self.server_id.as_bytes();
        let id_len = u8::try_from(id.len())
            .map_err(|_| NotificationError::ServerIdTooLong { len: id.len() })?;
        let initiator = match self.initiator {
            Initiator::User => 0u64,
            Initiator::Server => 1,
        };
        let fixed: u64 = (u64::from(self.version) << 54)
            | (u64::from(self.ui_mode.bits()) << 52)
            | (initiator << 51)
            | (u64::from(self.session_id) << 8)
            | u64::from(id_len);
        let mut out = Vec::with_capacity(HEADER_LEN + id.len() + self.body.len());
        out.extend_from_slice(&fixed.to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// The package #0 bytes: digest (with the server's account and the
    /// device's nonce for the server) and trigger.
    ///
    /// # Errors
    /// As [`Notification::trigger`].
    pub fn encode(&self, server: &Credentials, nonce: &[u8]) -> Result<Vec<u8>, NotificationError> {
        let trigger = self.trigger()?;
        let mut out = digest(server, nonce, &trigger).to_vec();
        out.extend_from_slice(&trigger);
        Ok(out)
    }

    /// Reads a package #0 without checking its digest (the device needs
    /// the server id to find the password); returns it with the digest.
    ///
    /// # Errors
    /// [`NotificationError::Truncated`], [`NotificationError::ServerIdNotUtf8`].
    pub fn parse(bytes: &[u8]) -> Result<(Notification, [u8; DIGEST_LEN]), NotificationError> {
        let needed = DIGEST_LEN + HEADER_LEN;
        let truncated = |needed| NotificationError::Truncated {
            len: bytes.len(),
            needed,
        };
        let digest: [u8; DIGEST_LEN] = bytes
            .get(..DIGEST_LEN)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| truncated(needed))?;
        let fixed: [u8; HEADER_LEN] = bytes
            .get(TRIGGER_AT..needed)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| truncated(needed))?;
        let fixed = u64::from_be_bytes(fixed);
        let id_len = usize::from((fixed & 0xFF) as u8);
        let id_end = needed.saturating_add(id_len);
        let id = bytes.get(needed..id_end).ok_or_else(|| truncated(id_end))?;
        let server_id =
            String::from_utf8(id.to_vec()).map_err(|_| NotificationError::ServerIdNotUtf8)?;
        let body = bytes.get(id_end..).unwrap_or_default().to_vec();
        let n = Notification {
            version: ((fixed >> 54) & 0x3FF) as u16,
            ui_mode: UiMode::from_bits(((fixed >> 52) & 3) as u8),
            initiator: if (fixed >> 51) & 1 == 1 {
                Initiator::Server
            } else {
                Initiator::User
            },
            session_id: ((fixed >> 8) & 0xFFFF) as u16,
            server_id,
            body,
        };
        Ok((n, digest))
    }

    /// Reads a package #0 and checks its digest (in constant time) with the
    /// server's account and the nonce the device keeps for it.
    ///
    /// # Errors
    /// As [`Notification::parse`], and [`NotificationError::BadDigest`].
    pub fn verify(
        bytes: &[u8],
        server: &Credentials,
        nonce: &[u8],
    ) -> Result<Notification, NotificationError> {
        let (n, got) = Notification::parse(bytes)?;
        let trigger = bytes.get(TRIGGER_AT..).unwrap_or_default();
        let want = digest(server, nonce, trigger);
        if auth::constant_time_eq(&want, &got) {
            Ok(n)
        } else {
            Err(NotificationError::BadDigest)
        }
    }

    /// The session id as the Pkg1 `SessionID` text: hexadecimal, upper
    /// case (decimal is accepted too by [`Notification::is_session`]).
    pub fn session_id_text(&self) -> String {
        format!("{:X}", self.session_id)
    }

    /// Whether a Pkg1 `SessionID` is this notification's session id,
    /// written in hexadecimal or in decimal (clients differ).
    pub fn is_session(&self, session_id: &str) -> bool {
        let s = session_id.trim();
        u16::from_str_radix(s, 16).ok() == Some(self.session_id)
            || s.parse::<u16>().ok() == Some(self.session_id)
    }
}

/// `H(B64(H(server-id:password)) ":" nonce ":" B64(H(trigger)))`.
pub fn digest(server: &Credentials, nonce: &[u8], trigger: &[u8]) -> [u8; DIGEST_LEN] {
    let mut account = Md5::new();
    account.update(server.username.as_bytes());
    account.update(b":");
    account.update(server.password.as_bytes());
    let mut h = Md5::new();
    h.update(B64.encode(account.finalize()).as_bytes());
    h.update(b":");
    h.update(nonce);
    h.update(b":");
    h.update(auth::b64_md5(trigger).as_bytes());
    h.finalize().into()
}
