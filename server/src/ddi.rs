//! hawkBit's Direct Device Integration (DDI) API, the documents only:
//! what a polling device is told, and what it reports back. The HTTP side
//! is `http::ddi`; the update's life behind it is `updates`.
//!
//! ```text
//! GET  /{tenant}/controller/v1/{id}                          poll: sleep, links
//! GET  …/deploymentBase/{action}                             the update: chunks, artifacts
//! GET  …/softwaremodules/{module}/artifacts/{file}           the artifact (Range); file.MD5SUM
//! POST …/deploymentBase/{action}/feedback                    progress and result
//! PUT  …/configData                                          the device's attributes
//! GET  …/cancelAction/{action}                               the action to stop
//! POST …/cancelAction/{action}/feedback                      stopped, or not
//! ```
//!
//! Clients write their JSON by hand: swupdate 2022.12 puts raw newlines
//! into strings of a failure report, and swaps `cnt` and `of` in some
//! progress records. [`Feedback::parse`] takes such bodies; nothing here
//! trusts a count. What swupdate does on the wire, observed, is in
//! `server/CLIENTS.md`.

use std::collections::BTreeMap;

use serde_json::Value;

/// What a feedback says the device is doing (`status.execution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Finished, with [`Finished`] saying how.
    Closed,
    /// Under way.
    Proceeding,
    /// The device cancelled the action.
    Canceled,
    /// Scheduled for later.
    Scheduled,
    /// The device (or its user) refused it.
    Rejected,
    /// Resumed after an interruption.
    Resumed,
    /// Downloaded, not yet installed.
    Downloaded,
    /// Downloading.
    Download,
}

impl Execution {
    fn parse(s: &str) -> Option<Execution> {
        Some(match s {
            "closed" => Execution::Closed,
            "proceeding" => Execution::Proceeding,
            "canceled" => Execution::Canceled,
            "scheduled" => Execution::Scheduled,
            "rejected" => Execution::Rejected,
            "resumed" => Execution::Resumed,
            "downloaded" => Execution::Downloaded,
            "download" => Execution::Download,
            _ => return None,
        })
    }

    /// The DDI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Closed => "closed",
            Execution::Proceeding => "proceeding",
            Execution::Canceled => "canceled",
            Execution::Scheduled => "scheduled",
            Execution::Rejected => "rejected",
            Execution::Resumed => "resumed",
            Execution::Downloaded => "downloaded",
            Execution::Download => "download",
        }
    }
}

/// How a closed action ended (`status.result.finished`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Installed.
    Success,
    /// Failed.
    Failure,
    /// Not finished (progress reports).
    None,
}

impl Finished {
    /// The DDI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Finished::Success => "success",
            Finished::Failure => "failure",
            Finished::None => "none",
        }
    }
}

/// A device's feedback on an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// What the device is doing.
    pub execution: Execution,
    /// How it ended, when closed.
    pub finished: Finished,
    /// `status.result.progress` as given (`cnt`, `of`), not checked.
    pub progress: Option<(u64, u64)>,
    /// The device's messages.
    pub details: Vec<String>,
}

/// Why a DDI document was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DDI {document}: {what}")]
pub struct DdiError {
    /// Which document.
    pub document: &'static str,
    /// What was expected.
    pub what: String,
}

/// Most details kept from one feedback, and their longest length.
const MAX_DETAILS: usize = 64;
const MAX_DETAIL_LEN: usize = 1024;

/// `s` with control characters as spaces: what [`lenient_json`] makes of
/// raw ones, applied to escaped ones too, so that a value reads the same
/// however it was written.
fn plain_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Parses JSON as hawkBit clients write it: control characters (raw
/// newlines in strings included) read as spaces.
fn lenient_json(document: &'static str, body: &[u8]) -> Result<Value, DdiError> {
    serde_json::from_str(&plain_text(&String::from_utf8_lossy(body))).map_err(|e| DdiError {
        document,
        what: format!("a JSON object ({e})"),
    })
}

impl Feedback {
    /// Parses a `deploymentBase/{action}/feedback` body.
    ///
    /// # Errors
    /// [`DdiError`] for a body that is not JSON, or has no known
    /// `status.execution`.
    pub fn parse(body: &[u8]) -> Result<Feedback, DdiError> {
        let doc = "feedback";
        let v = lenient_json(doc, body)?;
        let status = v.get("status").ok_or_else(|| DdiError {
            document: doc,
            what: "a \"status\" object".into(),
        })?;
        let execution = status
            .get("execution")
            .and_then(Value::as_str)
            .and_then(Execution::parse)
            .ok_or_else(|| DdiError {
                document: doc,
                what: "status.execution: closed, proceeding, canceled, scheduled, rejected, resumed, downloaded or download".into(),
            })?;
        let result = status.get("result");
        let finished = match result
            .and_then(|r| r.get("finished"))
            .and_then(Value::as_str)
        {
            Some("success") => Finished::Success,
            Some("failure") => Finished::Failure,
            Some("none") | None => Finished::None,
            Some(other) => {
                return Err(DdiError {
                    document: doc,
                    what: format!("status.result.finished success, failure or none, not {other:?}"),
                })
            }
        };
        let progress = result
            .and_then(|r| r.get("progress"))
            .and_then(|p| Some((p.get("cnt")?.as_u64()?, p.get("of")?.as_u64()?)));
        let details = status
            .get("details")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| {
                        plain_text(s)
                            .trim()
                            .chars()
                            .take(MAX_DETAIL_LEN)
                            .collect::<String>()
                    })
                    .map(|s| s.trim_end().to_string())
                    .filter(|s| !s.is_empty())
                    .take(MAX_DETAILS)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Feedback {
            execution,
            finished,
            progress,
            details,
        })
    }

    /// Whether every chunk is reported installed (`cnt` = `of` > 0 while
    /// proceeding): the device waits for its own confirmation (a reboot).
    pub fn all_chunks_done(&self) -> bool {
        self.execution == Execution::Proceeding
            && matches!(self.progress, Some((cnt, of)) if of > 0 && cnt == of)
    }

    /// A one-line account for the update's history.
    pub fn summary(&self) -> String {
        let mut s = format!("{}/{}", self.execution.as_str(), self.finished.as_str());
        if let Some((cnt, of)) = self.progress {
            s.push_str(&format!(" {cnt}/{of}"));
        }
        if !self.details.is_empty() {
            s.push_str(": ");
            s.push_str(&self.details.join(" | "));
        }
        s
    }
}

/// What `configData` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigMode {
    /// Add to and overwrite the attributes held (the default).
    Merge,
    /// Replace them.
    Replace,
    /// Remove the keys given.
    Remove,
}

/// A `configData` body: the device's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigData {
    /// Attribute names and values (values given as numbers or booleans
    /// are kept as their JSON text; control characters read as spaces).
    pub data: BTreeMap<String, String>,
    /// How they apply.
    pub mode: ConfigMode,
}

impl ConfigData {
    /// Parses a `configData` body.
    ///
    /// # Errors
    /// [`DdiError`] for a body that is not JSON, has no `data` object, or
    /// an unknown `mode`.
    pub fn parse(body: &[u8]) -> Result<ConfigData, DdiError> {
        let doc = "configData";
        let v = lenient_json(doc, body)?;
        let data = v
            .get("data")
            .and_then(Value::as_object)
            .ok_or_else(|| DdiError {
                document: doc,
                what: "a \"data\" object of attributes".into(),
            })?
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (plain_text(k), plain_text(&text))
            })
            .collect();
        let mode = match v.get("mode").and_then(Value::as_str) {
            None | Some("merge") => ConfigMode::Merge,
            Some("replace") => ConfigMode::Replace,
            Some("remove") => ConfigMode::Remove,
            Some(other) => {
                return Err(DdiError {
                    document: doc,
                    what: format!("mode merge, replace or remove, not {other:?}"),
                })
            }
        };
        Ok(ConfigData { data, mode })
    }

    /// `held` after this change.
    pub fn apply(&self, mut held: BTreeMap<String, String>) -> BTreeMap<String, String> {
        match self.mode {
            ConfigMode::Merge => held.extend(self.data.clone()),
            ConfigMode::Replace => held = self.data.clone(),
            ConfigMode::Remove => held.retain(|k, _| !self.data.contains_key(k)),
        }
        held
    }
}

/// `config.polling.sleep`: `HH:MM:SS`, at most `23:59:59`, at least a
/// second (clients read `00:00:00` as their own default).
pub fn sleep_text(secs: u64) -> String {
    let s = secs.clamp(1, 24 * 3600 - 1);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn swupdate_feedback_with_raw_newlines_is_taken() {
        let body = b"{ \"id\": 1, \"time\": \"20261207T003603\", \"status\": { \"result\": { \"progress\": { \"cnt\" : 0, \"of\" : 0 }, \"finished\": \"failure\" }, \"execution\": \"closed\", \"details\" : [ \"No artifact download URL reported by server.\n\",\"No suitable .swu image found\" ] } }";
        let f = Feedback::parse(body).unwrap();
        assert_eq!(
            (f.execution, f.finished),
            (Execution::Closed, Finished::Failure)
        );
        assert_eq!(
            f.details,
            [
                "No artifact download URL reported by server.",
                "No suitable .swu image found"
            ]
        );
        assert!(f.summary().starts_with("closed/failure 0/0: No artifact"));
    }

    #[test]
    fn progress_is_read_not_trusted() {
        let body = br#"{"id":1,"status":{"result":{"progress":{"cnt":1,"of":0},"finished":"none"},"execution":"proceeding","details":["x"]}}"#;
        let f = Feedback::parse(body).unwrap();
        assert_eq!(f.progress, Some((1, 0)));
        assert!(!f.all_chunks_done());
        let done = br#"{"id":1,"status":{"result":{"progress":{"cnt":1,"of":1},"finished":"none"},"execution":"proceeding","details":["All Chunks Installed."]}}"#;
        assert!(Feedback::parse(done).unwrap().all_chunks_done());
        let cancel = br#"{"id":1,"status":{"result":{"finished":"success"},"execution":"closed","details":["cancellation acknowledged."]}}"#;
        assert_eq!(Feedback::parse(cancel).unwrap().progress, None);
    }

    #[test]
    fn bad_feedback_says_what_is_missing() {
        for (body, what) in [
            (&b"not json"[..], "JSON"),
            (br#"{"id":1}"#, "status"),
            (br#"{"status":{"execution":"exploded"}}"#, "execution"),
            (
                br#"{"status":{"execution":"closed","result":{"finished":"maybe"}}}"#,
                "finished",
            ),
        ] {
            let e = Feedback::parse(body).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
    }

    #[test]
    fn config_data_modes() {
        let held: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        let merge = ConfigData::parse(br#"{"id":"","time":"x","status":{"result":{"finished":"success"},"execution":"closed","details":[""]},"data":{"b":"3","n":4}}"#).unwrap();
        assert_eq!(merge.mode, ConfigMode::Merge);
        let m = merge.apply(held.clone());
        assert_eq!(
            (m["a"].as_str(), m["b"].as_str(), m["n"].as_str()),
            ("1", "3", "4")
        );
        let replace = ConfigData::parse(br#"{"data":{"c":"5"},"mode":"replace"}"#).unwrap();
        assert_eq!(replace.apply(held.clone()).len(), 1);
        let remove = ConfigData::parse(br#"{"data":{"a":""},"mode":"remove"}"#).unwrap();
        assert_eq!(remove.apply(held).keys().collect::<Vec<_>>(), ["b"]);
        assert!(ConfigData::parse(br#"{"mode":"merge"}"#)
            .unwrap_err()
            .what
            .contains("data"));
        assert!(ConfigData::parse(br#"{"data":{},"mode":"add"}"#)
            .unwrap_err()
            .what
            .contains("mode"));
    }

    #[test]
    fn escaped_control_characters_read_as_raw_ones_do() {
        let escaped =
            ConfigData::parse(br#"{"data":{"":["\u008d"],"a\u0001":"x\u007fy"}}"#).unwrap();
        let raw =
            ConfigData::parse("{\"data\":{\"\":[\"\u{8d}\"],\"a\u{1}\":\"x\u{7f}y\"}}".as_bytes())
                .unwrap();
        assert_eq!(escaped, raw);
        assert_eq!(escaped.data["a "], "x y");
        let f = Feedback::parse(
            br#"{"status":{"execution":"proceeding","details":["a\u0085b","\u0000"]}}"#,
        )
        .unwrap();
        assert_eq!(f.details, ["a b"]);
    }

    #[test]
    fn sleep_is_hours_minutes_seconds() {
        assert_eq!(sleep_text(300), "00:05:00");
        assert_eq!(sleep_text(3725), "01:02:05");
        assert_eq!(sleep_text(0), "00:00:01");
        assert_eq!(sleep_text(1 << 40), "23:59:59");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Feedback::parse(&body);
            let _ = ConfigData::parse(&body);
        }
    }
}
