//! FUMO (Firmware Update Management Object): the alert codes, the Generic
//! Alert types, the result codes and the report a device sends when an
//! update has run.
//!
//! The result codes and their meanings follow FUMO TS §10.2 as `oma-dm.md`
//! records it. Two codes differ between FUMO versions and clients: 500 is
//! "Firmware Update Failed" in that table (later texts and several clients
//! call it "Alternate Download Server Error"), and 412 ("Alternate Download
//! Server Unavailable") is not in the table; such codes are kept as
//! [`ResultCode::Unlisted`] with their number.

use super::message::{Alert, Item, Location, Meta};

/// Alert code: a session the server asked for (after package #0).
pub const ALERT_SERVER_INITIATED: u16 = 1200;
/// Alert code: a session the client started by itself.
pub const ALERT_CLIENT_INITIATED: u16 = 1201;
/// Alert code: Generic Alert (a FUMO report or request).
pub const ALERT_GENERIC: u16 = 1226;

/// The FUMO node the server uses when the device names none.
pub const DEFAULT_NODE: &str = "./FUMO";

/// Generic Alert `Meta/Type`: the result of a Download.
pub const TYPE_DOWNLOAD: &str = "org.openmobilealliance.dm.firmwareupdate.download";
/// Generic Alert `Meta/Type`: the result of an Update.
pub const TYPE_UPDATE: &str = "org.openmobilealliance.dm.firmwareupdate.update";
/// Generic Alert `Meta/Type`: the result of a DownloadAndUpdate.
pub const TYPE_DOWNLOAD_AND_UPDATE: &str =
    "org.openmobilealliance.dm.firmwareupdate.downloadandupdate";
/// Generic Alert `Meta/Type`: the device asks for an update by itself.
pub const TYPE_DEVICE_REQUEST: &str = "org.openmobilealliance.dm.firmwareupdate.devicerequest";
/// Generic Alert `Meta/Type`: the user asked for an update.
pub const TYPE_USER_REQUEST: &str = "org.openmobilealliance.dm.firmwareupdate.userrequest";

/// What a Generic Alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertType {
    /// The result of an Exec on `x/Download`.
    Download,
    /// The result of an Exec on `x/Update`.
    Update,
    /// The result of an Exec on `x/DownloadAndUpdate`.
    DownloadAndUpdate,
    /// The device asks for an update (client-initiated FUMO).
    DeviceRequest,
    /// The user asked for an update.
    UserRequest,
}

impl AlertType {
    /// Every type.
    pub const ALL: [AlertType; 5] = [
        AlertType::Download,
        AlertType::Update,
        AlertType::DownloadAndUpdate,
        AlertType::DeviceRequest,
        AlertType::UserRequest,
    ];

    /// The `Meta/Type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::Download => TYPE_DOWNLOAD,
            AlertType::Update => TYPE_UPDATE,
            AlertType::DownloadAndUpdate => TYPE_DOWNLOAD_AND_UPDATE,
            AlertType::DeviceRequest => TYPE_DEVICE_REQUEST,
            AlertType::UserRequest => TYPE_USER_REQUEST,
        }
    }

    /// The type a `Meta/Type` names.
    pub fn parse(s: &str) -> Option<AlertType> {
        AlertType::ALL.into_iter().find(|t| t.as_str() == s.trim())
    }

    /// Whether this reports the result of an operation (not a request).
    pub fn is_result(self) -> bool {
        matches!(
            self,
            AlertType::Download | AlertType::Update | AlertType::DownloadAndUpdate
        )
    }
}

/// The FUMO operations the server starts with `Exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `x/Download`: fetch the package from `x/Download/PkgURL`.
    Download,
    /// `x/Update`: install a package already downloaded.
    Update,
    /// `x/DownloadAndUpdate`: fetch from `x/DownloadAndUpdate/PkgURL`,
    /// then install.
    DownloadAndUpdate,
}

impl Operation {
    /// The child node of the FUMO node that the Exec targets.
    pub fn node_name(self) -> &'static str {
        match self {
            Operation::Download => "Download",
            Operation::Update => "Update",
            Operation::DownloadAndUpdate => "DownloadAndUpdate",
        }
    }

    /// The Exec target under FUMO node `node`, e.g. `./FUMO/Download`.
    pub fn exec_uri(self, node: &str) -> String {
        format!("{}/{}", node.trim_end_matches('/'), self.node_name())
    }

    /// The `PkgURL` leaf under FUMO node `node` (Update has none: the
    /// package is already on the device).
    pub fn pkg_url_uri(self, node: &str) -> Option<String> {
        match self {
            Operation::Update => None,
            _ => Some(format!("{}/PkgURL", self.exec_uri(node))),
        }
    }

    /// The Generic Alert type that reports this operation's result.
    pub fn alert_type(self) -> AlertType {
        match self {
            Operation::Download => AlertType::Download,
            Operation::Update => AlertType::Update,
            Operation::DownloadAndUpdate => AlertType::DownloadAndUpdate,
        }
    }

    /// The operation an Exec target URI names, and the FUMO node above it.
    pub fn from_exec_uri(uri: &str) -> Option<(Operation, String)> {
        let (node, leaf) = uri.trim_end_matches('/').rsplit_once('/')?;
        let op = match leaf {
            "Download" => Operation::Download,
            "Update" => Operation::Update,
            "DownloadAndUpdate" => Operation::DownloadAndUpdate,
            _ => return None,
        };
        Some((op, node.to_string()))
    }
}

/// A FUMO result code (FUMO TS §10.2), as a Generic Alert's `Data` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    /// 200: the request has succeeded.
    Successful,
    /// 250–299: success with a vendor-specified code.
    SuccessfulVendor(u16),
    /// 400: management client error (user or device behaviour).
    ClientError,
    /// 401: the user chose not to accept the operation.
    UserCancelled,
    /// 402: the package is corrupt (did not store correctly).
    CorruptedPackage,
    /// 403: the package does not fit this device.
    DeviceMismatch,
    /// 404: the package's digital signature did not validate.
    ValidationFailed,
    /// 405: the package is not acceptable.
    NotAcceptable,
    /// 406: alternate download: authentication failed.
    DownloadAuthFailed,
    /// 407: alternate download: the request timed out.
    DownloadTimeout,
    /// 408: the device does not support the requested operation.
    NotImplemented,
    /// 409: a failure no other code describes.
    UndefinedError,
    /// 410: the firmware update failed in the device.
    UpdateFailed,
    /// 411: the download URL is malformed or bad.
    BadUrl,
    /// 450–499: client error with a vendor-specified code.
    ClientErrorVendor(u16),
    /// 500: the firmware update failed (FUMO TS §10.2's wording).
    UpdateFailedServer,
    /// 501: the download failed: the device is out of memory.
    DownloadOutOfMemory,
    /// 502: the update failed: the device is out of memory.
    UpdateOutOfMemory,
    /// 503: the download failed on network or transport errors.
    NetworkError,
    /// 550–599: alternate download server error, vendor-specified code.
    DownloadServerVendor(u16),
    /// A number outside the table (e.g. 412 from other FUMO texts).
    Unlisted(u16),
}

impl ResultCode {
    /// The code with this number.
    pub fn from_code(code: u16) -> ResultCode {
        match code {
            200 => ResultCode::Successful,
            250..=299 => ResultCode::SuccessfulVendor(code),
            400 => ResultCode::ClientError,
            401 => ResultCode::UserCancelled,
            402 => ResultCode::CorruptedPackage,
            403 => ResultCode::DeviceMismatch,
            404 => ResultCode::ValidationFailed,
            405 => ResultCode::NotAcceptable,
            406 => ResultCode::DownloadAuthFailed,
            407 => ResultCode::DownloadTimeout,
            408 => ResultCode::NotImplemented,
            409 => ResultCode::UndefinedError,
            410 => ResultCode::UpdateFailed,
            411 => ResultCode::BadUrl,
            450..=499 => ResultCode::ClientErrorVendor(code),
            500 => ResultCode::UpdateFailedServer,
            501 => ResultCode::DownloadOutOfMemory,
            502 => ResultCode::UpdateOutOfMemory,
            503 => ResultCode::NetworkError,
            550..=599 => ResultCode::DownloadServerVendor(code),
            other => ResultCode::Unlisted(other),
        }
    }

    /// The number.
    pub fn code(self) -> u16 {
        match self {
            ResultCode::Successful => 200,
            ResultCode::ClientError => 400,
            ResultCode::UserCancelled => 401,
            ResultCode::CorruptedPackage => 402,
            ResultCode::DeviceMismatch => 403,
            ResultCode::ValidationFailed => 404,
            ResultCode::NotAcceptable => 405,
            ResultCode::DownloadAuthFailed => 406,
            ResultCode::DownloadTimeout => 407,
            ResultCode::NotImplemented => 408,
            ResultCode::UndefinedError => 409,
            ResultCode::UpdateFailed => 410,
            ResultCode::BadUrl => 411,
            ResultCode::UpdateFailedServer => 500,
            ResultCode::DownloadOutOfMemory => 501,
            ResultCode::UpdateOutOfMemory => 502,
            ResultCode::NetworkError => 503,
            ResultCode::SuccessfulVendor(c)
            | ResultCode::ClientErrorVendor(c)
            | ResultCode::DownloadServerVendor(c)
            | ResultCode::Unlisted(c) => c,
        }
    }

    /// Whether the operation succeeded (200, 250–299).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            ResultCode::Successful | ResultCode::SuccessfulVendor(_)
        )
    }

    /// The meaning, in words (FUMO TS §10.2).
    pub fn meaning(self) -> &'static str {
        match self {
            ResultCode::Successful => "successful",
            ResultCode::SuccessfulVendor(_) => "successful (vendor-specified code)",
            ResultCode::ClientError => "management client error",
            ResultCode::UserCancelled => "user cancelled",
            ResultCode::CorruptedPackage => "corrupted firmware update package",
            ResultCode::DeviceMismatch => "firmware update package does not fit the device",
            ResultCode::ValidationFailed => "firmware update package signature validation failed",
            ResultCode::NotAcceptable => "firmware update package not acceptable",
            ResultCode::DownloadAuthFailed => "alternate download authentication failure",
            ResultCode::DownloadTimeout => "alternate download request time-out",
            ResultCode::NotImplemented => "not implemented",
            ResultCode::UndefinedError => "undefined error",
            ResultCode::UpdateFailed => "firmware update failed",
            ResultCode::BadUrl => "malformed or bad URL",
            ResultCode::ClientErrorVendor(_) => "client error (vendor-specified code)",
            ResultCode::UpdateFailedServer => "firmware update failed",
            ResultCode::DownloadOutOfMemory => "download failed: device out of memory",
            ResultCode::UpdateOutOfMemory => "update failed: device out of memory",
            ResultCode::NetworkError => "download failed: network error",
            ResultCode::DownloadServerVendor(_) => {
                "alternate download server error (vendor-specified code)"
            }
            ResultCode::Unlisted(_) => "a result code outside the FUMO table",
        }
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.meaning())
    }
}

/// What a FUMO Generic Alert (1226) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The CmdID of the alert (the server's Status refers to it).
    pub cmd_id: u32,
    /// The FUMO node (`Source/LocURI`), e.g. `./FUMO`.
    pub node: String,
    /// The alert's type.
    pub alert_type: AlertType,
    /// The Correlator, echoed from the Exec when the server gave one.
    pub correlator: Option<String>,
    /// The result code (`Data`); `None` in a device or user request.
    pub result: Option<ResultCode>,
    /// `Meta/Mark` (`critical`, `informational`, ...), if given.
    pub mark: Option<String>,
}

/// Why a Generic Alert is not a FUMO report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Not alert 1226.
    #[error("FUMO: alert {code} is not a Generic Alert (1226)")]
    NotGeneric {
        /// The alert code.
        code: u16,
    },
    /// A Generic Alert with no item (or more than one).
    #[error("FUMO: Generic Alert {cmd_id} has {items} items, expected 1")]
    Items {
        /// The CmdID.
        cmd_id: u32,
        /// How many.
        items: usize,
    },
    /// The item lacks something a FUMO report needs.
    #[error("FUMO: Generic Alert {cmd_id} has no {missing}")]
    Missing {
        /// The CmdID.
        cmd_id: u32,
        /// What is missing.
        missing: &'static str,
    },
    /// A `Meta/Type` that is not a FUMO type.
    #[error("FUMO: Generic Alert {cmd_id} has type {found:?}, not a FUMO type")]
    NotFumo {
        /// The CmdID.
        cmd_id: u32,
        /// The type found.
        found: String,
    },
    /// `Data` is not a number.
    #[error("FUMO: Generic Alert {cmd_id} has result {found:?}, not a number")]
    BadResult {
        /// The CmdID.
        cmd_id: u32,
        /// The data found.
        found: String,
    },
}

impl Report {
    /// Reads a FUMO Generic Alert.
    ///
    /// # Errors
    /// [`ReportError`]: not 1226, not exactly one item, no Source or Type,
    /// a non-FUMO type, a result type without a numeric `Data`.
    pub fn from_alert(alert: &Alert) -> Result<Report, ReportError> {
        let cmd_id = alert.cmd_id;
        if alert.code != ALERT_GENERIC {
            return Err(ReportError::NotGeneric { code: alert.code });
        }
        let [item] = alert.items.as_slice() else {
            return Err(ReportError::Items {
                cmd_id,
                items: alert.items.len(),
            });
        };
        let node = item
            .source
            .as_ref()
            .map(|s| s.loc_uri.clone())
            .ok_or(ReportError::Missing {
                cmd_id,
                missing: "Source/LocURI",
            })?;
        let meta = item.meta.as_ref();
        let type_ = meta
            .and_then(|m| m.type_.as_deref())
            .ok_or(ReportError::Missing {
                cmd_id,
                missing: "Meta/Type",
            })?;
        let alert_type = AlertType::parse(type_).ok_or_else(|| ReportError::NotFumo {
            cmd_id,
            found: super::error::quote(type_),
        })?;
        let data = item
            .data
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        let result = match data {
            Some(d) => Some(ResultCode::from_code(d.parse().map_err(|_| {
                ReportError::BadResult {
                    cmd_id,
                    found: super::error::quote(d),
                }
            })?)),
            None if alert_type.is_result() => {
                return Err(ReportError::Missing {
                    cmd_id,
                    missing: "Data (the result code)",
                })
            }
            None => None,
        };
        Ok(Report {
            cmd_id,
            node,
            alert_type,
            correlator: alert.correlator.clone(),
            result,
            mark: meta.and_then(|m| m.mark.clone()),
        })
    }

    /// The report of an operation's result, as a client sends it: `Mark`
    /// is `informational` on success and `critical` on failure.
    pub fn result(
        cmd_id: u32,
        node: &str,
        operation: Operation,
        correlator: Option<&str>,
        result: ResultCode,
    ) -> Report {
        let mark = if result.is_success() {
            "informational"
        } else {
            "critical"
        };
        Report {
            cmd_id,
            node: node.to_string(),
            alert_type: operation.alert_type(),
            correlator: correlator.map(str::to_string),
            result: Some(result),
            mark: Some(mark.to_string()),
        }
    }

    /// The Generic Alert that carries this report (the client's side).
    pub fn to_alert(&self) -> Alert {
        Alert {
            cmd_id: self.cmd_id,
            no_resp: false,
            code: ALERT_GENERIC,
            correlator: self.correlator.clone(),
            items: vec![Item {
                source: Some(Location::uri(&self.node)),
                meta: Some(Meta {
                    format: self.result.map(|_| "int".to_string()),
                    type_: Some(self.alert_type.as_str().to_string()),
                    mark: self.mark.clone(),
                    ..Meta::default()
                }),
                data: self.result.map(|r| r.code().to_string()),
                ..Item::default()
            }],
        }
    }
}
