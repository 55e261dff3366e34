//! A device as the registry keeps it, independent of the database: what
//! CSV import produces, what the purge archive stores, what the admin API
//! shows.

use serde::{Deserialize, Serialize};

/// Which update protocol a device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// OMA-DM 1.2 with FUMO.
    OmaDm,
    /// IOTA-HCM style MMC sessions.
    Iota,
    /// hawkBit's Direct Device Integration API, polled by the device
    /// (swupdate's suricatta and other hawkBit clients).
    Ddi,
    /// The Mender device API, polled by mender-client.
    Mender,
}

impl Capability {
    /// The name used in CSV files, the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::OmaDm => "oma-dm",
            Capability::Iota => "iota",
            Capability::Ddi => "ddi",
            Capability::Mender => "mender",
        }
    }

    /// Parses [`Capability::as_str`]'s names (also `omadm`, `dm`,
    /// `hawkbit`; any case).
    pub fn parse(s: &str) -> Option<Capability> {
        match s.trim().to_ascii_lowercase().as_str() {
            "oma-dm" | "omadm" | "dm" => Some(Capability::OmaDm),
            "iota" => Some(Capability::Iota),
            "ddi" | "hawkbit" => Some(Capability::Ddi),
            "mender" => Some(Capability::Mender),
            _ => None,
        }
    }
}

/// The kind of a device identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    /// 8 hex digits (32-bit ESN).
    Esn,
    /// 14 hex digits (56-bit MEID).
    Meid,
    /// 15 decimal digits (IMEI with its Luhn check digit).
    Imei,
    /// A name the device gives itself (a hawkBit controller id): 1 to
    /// [`MAX_NAME_LEN`] letters, digits, `.`, `_` and `-`, case kept,
    /// always written with its `ID:` prefix.
    Name,
}

/// The longest device name ([`IdKind::Name`]).
pub const MAX_NAME_LEN: usize = 64;

/// A device's identifier (ESN, MEID or IMEI), normalised: upper-case hex
/// for ESN and MEID, digits for IMEI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// Why a text is not a device identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a device id: expected an ESN (8 hex digits), a MEID (14 hex digits) or an IMEI (15 digits with a valid check digit), optionally prefixed ESN:, MEID: or IMEI:, or ID: and a name of 1 to 64 letters, digits, '.', '_' and '-'")]
pub struct DeviceIdError {
    /// The text given.
    pub found: String,
}

impl DeviceId {
    /// Parses `ESN:…`, `MEID:…`, `IMEI:…`, `ID:<name>` or a bare id (the
    /// kind is then told by its length: 8 hex → ESN, 14 hex → MEID, 15
    /// digits → IMEI).
    ///
    /// # Errors
    /// [`DeviceIdError`] for anything else, including a wrong IMEI check digit.
    pub fn parse(text: &str) -> Result<DeviceId, DeviceIdError> {
        let err = || DeviceIdError {
            found: text.to_string(),
        };
        let t = text.trim();
        let (prefix, body) = match t.split_once(':') {
            Some((p, b)) => (Some(p.to_ascii_uppercase()), b.trim()),
            None => (None, t),
        };
        if prefix.as_deref() == Some("ID") {
            return match is_name(body) {
                true => Ok(DeviceId(format!("ID:{body}"))),
                false => Err(err()),
            };
        }
        let hex = |n: usize| body.len() == n && body.bytes().all(|b| b.is_ascii_hexdigit());
        let kind = match prefix.as_deref() {
            Some("ESN") if hex(8) => IdKind::Esn,
            Some("MEID") if hex(14) => IdKind::Meid,
            Some("IMEI") if body.len() == 15 => IdKind::Imei,
            Some(_) => return Err(err()),
            None if hex(8) => IdKind::Esn,
            None if hex(14) => IdKind::Meid,
            None if body.len() == 15 => IdKind::Imei,
            None => return Err(err()),
        };
        if kind == IdKind::Imei && !luhn_ok(body) {
            return Err(err());
        }
        let norm = match kind {
            IdKind::Imei => body.to_string(),
            _ => body.to_ascii_uppercase(),
        };
        Ok(DeviceId(norm))
    }

    /// The id a device names itself by where it chooses its own (a
    /// hawkBit controller id): an ESN, MEID or IMEI when it reads as one,
    /// else a name ([`IdKind::Name`]).
    ///
    /// # Errors
    /// [`DeviceIdError`] when it is neither.
    pub fn from_controller_id(text: &str) -> Result<DeviceId, DeviceIdError> {
        DeviceId::parse(text).or_else(|e| match is_name(text) {
            true => Ok(DeviceId(format!("ID:{text}"))),
            false => Err(e),
        })
    }

    /// The kind, told by the `ID:` prefix or the normalised form's length.
    pub fn kind(&self) -> IdKind {
        if self.0.starts_with("ID:") {
            return IdKind::Name;
        }
        match self.0.len() {
            8 => IdKind::Esn,
            14 => IdKind::Meid,
            _ => IdKind::Imei,
        }
    }

    /// The id as the device itself gives it: a name without its `ID:`
    /// prefix, any other id as [`DeviceId::as_str`].
    pub fn controller_id(&self) -> &str {
        self.0.strip_prefix("ID:").unwrap_or(&self.0)
    }

    /// The normalised id, without prefix (the registry's key).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The OMA-DM `DevId` form: `IMEI:…`, `MEID:…`, `ESN:…` or `ID:…`.
    pub fn dev_id(&self) -> String {
        let p = match self.kind() {
            IdKind::Esn => "ESN",
            IdKind::Meid => "MEID",
            IdKind::Imei => "IMEI",
            IdKind::Name => return self.0.clone(),
        };
        format!("{p}:{}", self.0)
    }
}

/// Whether `s` is a device name ([`IdKind::Name`]).
fn is_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The IMEI's Luhn check over 15 decimal digits.
fn luhn_ok(digits: &str) -> bool {
    if digits.len() != 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DeviceId::parse(&s)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.0
    }
}

/// A device's registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Its current identifier.
    pub id: DeviceId,
    /// Manufacturer (`./DevInfo/Man`, `dev/man`).
    pub make: String,
    /// Model (`./DevInfo/Mod`, `dev/mod`).
    pub model: String,
    /// Firmware version it last reported (`./DevDetail/FwV`, `dev/fwv`).
    pub fw_version: String,
    /// The protocol it speaks.
    pub capability: Capability,
    /// The subscriber (account, MDN); may be empty.
    pub subscriber: String,
    /// Whether it gets updates; deactivated devices are refused and, after
    /// the purge period, archived.
    pub active: bool,
    /// Unix seconds of deactivation, when deactivated.
    pub deactivated_at: Option<i64>,
    /// Unix seconds of registration.
    pub created_at: i64,
    /// Earlier identifiers (ESN change history), oldest first, with the
    /// unix seconds each was replaced.
    pub previous_ids: Vec<(DeviceId, i64)>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbered_ids_keep_their_kinds() {
        let esn = DeviceId::parse("esn:1a2b3c4d").unwrap();
        assert_eq!(
            (esn.kind(), esn.as_str(), esn.dev_id().as_str()),
            (IdKind::Esn, "1A2B3C4D", "ESN:1A2B3C4D")
        );
        let imei = DeviceId::parse("490154203237518").unwrap();
        assert_eq!(imei.kind(), IdKind::Imei);
        assert!(DeviceId::parse("490154203237519").is_err(), "Luhn");
    }

    #[test]
    fn names_are_ids_with_their_prefix() {
        let n = DeviceId::parse("ID:gw-0001").unwrap();
        assert_eq!(
            (n.kind(), n.as_str(), n.controller_id()),
            (IdKind::Name, "ID:gw-0001", "gw-0001")
        );
        assert_eq!(n.dev_id(), "ID:gw-0001");
        // A name that looks like an ESN stays a name.
        let hexy = DeviceId::parse("ID:deadbeef").unwrap();
        assert_eq!(hexy.kind(), IdKind::Name);
        assert_eq!(DeviceId::parse(hexy.as_str()).unwrap(), hexy);
        // Controller ids: a number when they read as one, else a name.
        assert_eq!(
            DeviceId::from_controller_id("deadbeef").unwrap().kind(),
            IdKind::Esn
        );
        assert_eq!(
            DeviceId::from_controller_id("dev1").unwrap().as_str(),
            "ID:dev1"
        );
        let longest = "x".repeat(MAX_NAME_LEN);
        assert!(DeviceId::from_controller_id(&longest).is_ok());
        for bad in ["", "a b", "a/b", "ä", "x:y", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(DeviceId::from_controller_id(bad).is_err(), "{bad:?}");
            assert!(DeviceId::parse(&format!("ID:{bad}")).is_err(), "{bad:?}");
        }
        assert!(
            DeviceId::parse("dev1").is_err(),
            "a bare name needs its prefix"
        );
    }
}
