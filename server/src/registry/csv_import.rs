//! Devices from CSV files (RFC 4180, a header row, columns by name in any
//! order), and id lists for campaign targets. Every error names the line
//! and column.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::record::{Capability, DeviceId};

/// The most rows one file may hold.
pub const MAX_ROWS: usize = 1_000_000;

/// A device to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevice {
    /// ESN, MEID or IMEI.
    pub id: DeviceId,
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// The firmware version it runs.
    pub fw_version: String,
    /// The protocol it speaks.
    pub capability: Capability,
    /// Subscriber (may be empty).
    pub subscriber: String,
    /// Whether it gets updates.
    pub active: bool,
}

/// Why a CSV file cannot be imported. Lines count from 1 (the header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A required column is missing from the header.
    #[error("line 1: no {column:?} column (columns: id, make, model, fw_version, capability, subscriber, active)")]
    MissingColumn {
        /// The column.
        column: &'static str,
    },
    /// A header names a column not known.
    #[error("line 1: unknown column {found:?} (columns: id, make, model, fw_version, capability, subscriber, active)")]
    UnknownColumn {
        /// The header text.
        found: String,
    },
    /// A required field is empty.
    #[error("line {line}, column {column:?}: empty")]
    Empty {
        /// Line.
        line: u64,
        /// Column.
        column: &'static str,
    },
    /// Not a device id.
    #[error("line {line}, column \"id\": {detail}")]
    BadId {
        /// Line.
        line: u64,
        /// The id error.
        detail: String,
    },
    /// Not a capability.
    #[error("line {line}, column \"capability\": {found:?}, expected oma-dm or iota")]
    BadCapability {
        /// Line.
        line: u64,
        /// The text.
        found: String,
    },
    /// Not a boolean.
    #[error("line {line}, column \"active\": {found:?}, expected true/false, 1/0 or yes/no")]
    BadBool {
        /// Line.
        line: u64,
        /// The text.
        found: String,
    },
    /// The same id twice.
    #[error("line {line}: device {id} is on line {first_line} already")]
    Duplicate {
        /// The id.
        id: String,
        /// Where it first appeared.
        first_line: u64,
        /// Where again.
        line: u64,
    },
    /// Not CSV (quoting, field counts), or not UTF-8.
    #[error("line {line}: {detail}")]
    Malformed {
        /// Line.
        line: u64,
        /// The reader's words.
        detail: String,
    },
    /// More than [`MAX_ROWS`] rows.
    #[error("more than {MAX_ROWS} rows")]
    TooManyRows,
}

/// The 1-based line of a byte offset (the csv reader's own line count
/// skips blank lines).
fn line_at(bytes: &[u8], pos: Option<&csv::Position>) -> u64 {
    let mut at = pos.map_or(0, |p| p.byte() as usize).min(bytes.len());
    // The reader's position may sit before the blank lines it skipped.
    while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
        at += 1;
    }
    bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

fn malformed(e: &csv::Error) -> CsvError {
    CsvError::Malformed {
        line: e.position().map_or(0, csv::Position::line),
        detail: e.to_string(),
    }
}

fn column(name: &str) -> Option<&'static str> {
    Some(match name.trim().to_ascii_lowercase().as_str() {
        "id" | "esn" | "meid" | "imei" => "id",
        "make" => "make",
        "model" => "model",
        "fw_version" | "version" => "fw_version",
        "capability" => "capability",
        "subscriber" => "subscriber",
        "active" => "active",
        _ => return None,
    })
}

/// Reads devices from CSV.
///
/// # Errors
/// [`CsvError`] naming the first problem's line and column.
pub fn parse_devices(bytes: &[u8]) -> Result<Vec<NewDevice>, CsvError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = r.headers().map_err(|e| malformed(&e))?.clone();
    let mut at: HashMap<&'static str, usize> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let c = column(h).ok_or_else(|| CsvError::UnknownColumn {
            found: h.to_string(),
        })?;
        at.insert(c, i);
    }
    for c in ["id", "make", "model", "fw_version", "capability"] {
        if !at.contains_key(c) {
            return Err(CsvError::MissingColumn { column: c });
        }
    }
    let mut out = Vec::new();
    let mut seen: HashMap<DeviceId, u64> = HashMap::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| malformed(&e))?;
        let line = line_at(bytes, rec.position());
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        if out.len() >= MAX_ROWS {
            return Err(CsvError::TooManyRows);
        }
        let field = |c: &str| at.get(c).and_then(|&i| rec.get(i)).unwrap_or("");
        let required = |c: &'static str| {
            let v = field(c);
            if v.is_empty() {
                Err(CsvError::Empty { line, column: c })
            } else {
                Ok(v.to_string())
            }
        };
        let id = DeviceId::parse(&required("id")?).map_err(|e| CsvError::BadId {
            line,
            detail: e.to_string(),
        })?;
        let cap_text = required("capability")?;
        let capability = Capability::parse(&cap_text).ok_or(CsvError::BadCapability {
            line,
            found: cap_text,
        })?;
        let active = match field("active").to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => {
                return Err(CsvError::BadBool {
                    line,
                    found: other.to_string(),
                })
            }
        };
        if let Some(&first_line) = seen.get(&id) {
            return Err(CsvError::Duplicate {
                id: id.to_string(),
                first_line,
                line,
            });
        }
        seen.insert(id.clone(), line);
        out.push(NewDevice {
            id,
            make: required("make")?,
            model: required("model")?,
            fw_version: required("fw_version")?,
            capability,
            subscriber: field("subscriber").to_string(),
            active,
        });
    }
    Ok(out)
}

/// Reads a campaign's id list: one id per line, or a CSV with an `id`
/// (or `esn`/`meid`/`imei`) column. Blank lines and `#` comments are
/// skipped; repeated ids are kept once, in first-seen order.
///
/// # Errors
/// [`CsvError::BadId`] with its line; [`CsvError::Malformed`].
pub fn parse_id_list(bytes: &[u8]) -> Result<Vec<DeviceId>, CsvError> {
    let text = std::str::from_utf8(bytes).map_err(|e| CsvError::Malformed {
        line: bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1,
        detail: "not UTF-8".into(),
    })?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    });
    let Some((first_no, first)) = lines.next() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |id: DeviceId, out: &mut Vec<DeviceId>| {
        if seen.insert(id.clone()) {
            out.push(id);
        }
    };
    if first.contains(',') || column(first) == Some("id") {
        // A CSV: the id column of each row.
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(bytes);
        let headers = r.headers().map_err(|e| malformed(&e))?.clone();
        let idx = headers
            .iter()
            .position(|h| column(h) == Some("id"))
            .ok_or(CsvError::MissingColumn { column: "id" })?;
        for rec in r.records() {
            let rec = rec.map_err(|e| malformed(&e))?;
            let line = line_at(bytes, rec.position());
            let v = rec.get(idx).unwrap_or("");
            if v.is_empty() {
                continue;
            }
            let id = DeviceId::parse(v).map_err(|e| CsvError::BadId {
                line,
                detail: e.to_string(),
            })?;
            push(id, &mut out);
        }
    } else {
        for (no, l) in std::iter::once((first_no, first)).chain(lines) {
            let id = DeviceId::parse(l.trim()).map_err(|e| CsvError::BadId {
                line: no as u64 + 1,
                detail: e.to_string(),
            })?;
            push(id, &mut out);
        }
    }
    Ok(out)
}
