//! MMC documents: what the TPS and the handset exchange over HTTP.
//!
//! The server sends `<mmc ver="1.0" sid seq>` with commands, each with a
//! `cid`; the handset answers `<mmc-result sid seq>` with one
//! `<result cid code>value</result>` per command, in order. The document
//! schema is ours (iota.md, "defined here"): C.S0040's own schema is not
//! public, so everything about it stays in this module.
//!
//! ```text
//! <mmc ver="1.0" sid="S" seq="1">
//!   <read cid="1" valueref="dev/man"/>
//!   <write cid="2" valueref="fota/pkgurl">https://…</write>
//!   <display cid="3">release notes…</display>
//!   <commit cid="4"/>
//!   <disconnect/>
//! </mmc>
//! ```
//!
//! Parsing never panics: every input is untrusted, and every refusal
//! names the element and the byte offset.

use std::borrow::Cow;
use std::fmt;

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// The MIME type of MMC documents (ours; `text/xml` is accepted too).
pub const CONTENT_TYPE: &str = "application/x-iota-mmc+xml";

/// The only document version.
pub const VERSION: &str = "1.0";

/// Whether a request's `Content-Type` carries an MMC document (its
/// parameters, such as `charset=utf-8`, ignored).
pub fn accepts_content_type(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == CONTENT_TYPE || mime == "text/xml" || mime == "application/xml"
}

/// A value on the handset, by reference (iota.md's value references; the
/// `dev/*` ones mean what OMA-DM's DevInfo Man/Mod/FwV mean, so one
/// registry mapping serves both protocols).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueRef {
    /// `dev/esn`: the handset's ESN.
    DevEsn,
    /// `dev/meid`: the handset's MEID.
    DevMeid,
    /// `dev/man`: manufacturer.
    DevMan,
    /// `dev/mod`: model.
    DevMod,
    /// `dev/fwv`: firmware version.
    DevFwv,
    /// `fota/pkgurl`: where to download the package.
    FotaPkgUrl,
    /// `fota/pkgsize`: the package's size in bytes.
    FotaPkgSize,
    /// `fota/pkghash`: the package's sha256, hex.
    FotaPkgHash,
    /// `fota/state`: the handset's update state.
    FotaState,
    /// `fota/result`: the result code of the last update.
    FotaResult,
    /// Any other reference: kept, so the handset can answer
    /// INVALID_VALUEREF for it.
    Other(String),
}

impl ValueRef {
    /// The reference as written in documents.
    pub fn as_str(&self) -> &str {
        match self {
            ValueRef::DevEsn => "dev/esn",
            ValueRef::DevMeid => "dev/meid",
            ValueRef::DevMan => "dev/man",
            ValueRef::DevMod => "dev/mod",
            ValueRef::DevFwv => "dev/fwv",
            ValueRef::FotaPkgUrl => "fota/pkgurl",
            ValueRef::FotaPkgSize => "fota/pkgsize",
            ValueRef::FotaPkgHash => "fota/pkghash",
            ValueRef::FotaState => "fota/state",
            ValueRef::FotaResult => "fota/result",
            ValueRef::Other(s) => s,
        }
    }

    /// The reference a document names.
    pub fn parse(s: &str) -> ValueRef {
        match s {
            "dev/esn" => ValueRef::DevEsn,
            "dev/meid" => ValueRef::DevMeid,
            "dev/man" => ValueRef::DevMan,
            "dev/mod" => ValueRef::DevMod,
            "dev/fwv" => ValueRef::DevFwv,
            "fota/pkgurl" => ValueRef::FotaPkgUrl,
            "fota/pkgsize" => ValueRef::FotaPkgSize,
            "fota/pkghash" => ValueRef::FotaPkgHash,
            "fota/state" => ValueRef::FotaState,
            "fota/result" => ValueRef::FotaResult,
            other => ValueRef::Other(other.to_string()),
        }
    }
}

impl fmt::Display for ValueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// MMC result codes, numbered as deployed modem firmware numbers them
/// (iota.md); 4, 15 and 24 are reserved and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResultCode {
    /// Success; on `disconnect`, the normal release.
    Ok = 0,
    /// The value reference is unknown.
    InvalidValueRef = 1,
    /// The command has no `cid`.
    CidMissing = 2,
    /// The package download failed.
    DownloadFailed = 3,
    /// The content is not acceptable.
    InvalidContent = 5,
    /// The user refused (consent prompt).
    UserDenied = 6,
    /// A value of the wrong type.
    BadValue = 7,
    /// The handset timed out.
    Timeout = 8,
    /// A newer document arrived.
    NewDocArrived = 9,
    /// A delete failed.
    DeleteFailed = 10,
    /// Malformed data.
    BadData = 11,
    /// The display is disabled.
    DisplayDisabled = 12,
    /// A read of a write-only value.
    WriteOnly = 13,
    /// The handset aborted.
    Abort = 14,
    /// A bad object.
    BadObject = 16,
    /// Any other error.
    UnknownError = 17,
    /// A file is locked.
    FileLocked = 18,
    /// A file could not be opened.
    FileOpen = 19,
    /// A hash or signature check failed.
    CheckFailed = 20,
    /// The package size is wrong.
    InvalidSize = 21,
    /// A download offset is wrong.
    InvalidOffset = 22,
    /// The handset is busy: the TPS keeps the session and pushes again.
    DeviceBusy = 23,
}

impl ResultCode {
    /// Every code, in numeric order.
    pub const ALL: [ResultCode; 21] = [
        ResultCode::Ok,
        ResultCode::InvalidValueRef,
        ResultCode::CidMissing,
        ResultCode::DownloadFailed,
        ResultCode::InvalidContent,
        ResultCode::UserDenied,
        ResultCode::BadValue,
        ResultCode::Timeout,
        ResultCode::NewDocArrived,
        ResultCode::DeleteFailed,
        ResultCode::BadData,
        ResultCode::DisplayDisabled,
        ResultCode::WriteOnly,
        ResultCode::Abort,
        ResultCode::BadObject,
        ResultCode::UnknownError,
        ResultCode::FileLocked,
        ResultCode::FileOpen,
        ResultCode::CheckFailed,
        ResultCode::InvalidSize,
        ResultCode::InvalidOffset,
    ];

    /// The code with this number; `None` for reserved or unknown ones.
    pub fn from_code(code: u32) -> Option<ResultCode> {
        if code == ResultCode::DeviceBusy as u32 {
            return Some(ResultCode::DeviceBusy);
        }
        ResultCode::ALL.into_iter().find(|c| *c as u32 == code)
    }

    /// The name deployed firmware logs for it.
    pub fn name(self) -> &'static str {
        match self {
            ResultCode::Ok => "OK",
            ResultCode::InvalidValueRef => "INVALID_VALUEREF",
            ResultCode::CidMissing => "CID_MISSING",
            ResultCode::DownloadFailed => "DOWNLOAD_FAILED",
            ResultCode::InvalidContent => "INVALID_CONTENT",
            ResultCode::UserDenied => "USER_DENIED",
            ResultCode::BadValue => "BAD_VALUE",
            ResultCode::Timeout => "TIMEOUT",
            ResultCode::NewDocArrived => "NEW_DOC_ARRIVED",
            ResultCode::DeleteFailed => "DELETE_FAILED",
            ResultCode::BadData => "BAD_DATA",
            ResultCode::DisplayDisabled => "DISPLAY_DISABLED",
            ResultCode::WriteOnly => "WRITE_ONLY",
            ResultCode::Abort => "ABORT",
            ResultCode::BadObject => "BAD_OBJECT",
            ResultCode::UnknownError => "UNKNOWN_ERROR",
            ResultCode::FileLocked => "FILE_LOCKED",
            ResultCode::FileOpen => "FILE_OPEN",
            ResultCode::CheckFailed => "CHECK_FAILED",
            ResultCode::InvalidSize => "INVALID_SIZE",
            ResultCode::InvalidOffset => "INVALID_OFFSET",
            ResultCode::DeviceBusy => "DEVICE_BUSY",
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", *self as u8, self.name())
    }
}

/// One command of a server document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read a value; the result carries it.
    Read {
        /// Command id, echoed in the result.
        cid: u32,
        /// What to read.
        valueref: ValueRef,
    },
    /// Stage a value (committed by a later `commit`).
    Write {
        /// Command id.
        cid: u32,
        /// What to write.
        valueref: ValueRef,
        /// The value.
        value: String,
    },
    /// Delete a value.
    Delete {
        /// Command id.
        cid: u32,
        /// What to delete.
        valueref: ValueRef,
    },
    /// Show text and ask the user (release notes, consent, the
    /// emergency-call notice); refusal is USER_DENIED.
    Display {
        /// Command id.
        cid: u32,
        /// The text.
        text: String,
    },
    /// Commit the staged writes.
    Commit {
        /// Command id.
        cid: u32,
    },
    /// End of session; always the last command.
    Disconnect,
}

impl Command {
    /// The command's id (`None` for `disconnect`, which has none).
    pub fn cid(&self) -> Option<u32> {
        match self {
            Command::Read { cid, .. }
            | Command::Write { cid, .. }
            | Command::Delete { cid, .. }
            | Command::Display { cid, .. }
            | Command::Commit { cid } => Some(*cid),
            Command::Disconnect => None,
        }
    }
}

/// A server → handset document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mmc {
    /// Session id.
    pub sid: String,
    /// Exchange number within the session.
    pub seq: u32,
    /// The commands, in order.
    pub commands: Vec<Command>,
}

/// One command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// The command's id.
    pub cid: u32,
    /// How it went.
    pub code: ResultCode,
    /// The value read, for `read`.
    pub value: Option<String>,
}

/// A handset → server document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmcResult {
    /// Session id.
    pub sid: String,
    /// Exchange number (0 for the hello that opens a session).
    pub seq: u32,
    /// One result per command of the document answered, in order.
    pub results: Vec<CommandResult>,
}

/// Why bytes are not an MMC document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MmcError {
    /// Not well-formed XML (or not UTF-8).
    #[error("MMC document: malformed XML at byte {offset}: {message}")]
    Xml {
        /// Byte offset of the error.
        offset: u64,
        /// The parser's message.
        message: String,
    },
    /// The root element is not the one expected.
    #[error("MMC document: root element <{found}> at byte {offset}, expected <{expected}>")]
    WrongRoot {
        /// Byte offset of the element.
        offset: u64,
        /// The element found.
        found: String,
        /// The element expected.
        expected: &'static str,
    },
    /// An element that has no place there.
    #[error("MMC document: unexpected <{found}> at byte {offset} inside <{parent}>")]
    UnexpectedElement {
        /// Byte offset of the element.
        offset: u64,
        /// The element found.
        found: String,
        /// Where it was found.
        parent: &'static str,
    },
    /// A required attribute is absent.
    #[error("MMC document: <{element}> at byte {offset} has no {attribute} attribute")]
    MissingAttribute {
        /// Byte offset of the element.
        offset: u64,
        /// The element.
        element: String,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute's value is not what the schema allows.
    #[error(
        "MMC document: <{element}> at byte {offset}: {attribute}=\"{value}\" is not {expected}"
    )]
    BadAttribute {
        /// Byte offset of the element.
        offset: u64,
        /// The element.
        element: String,
        /// The attribute.
        attribute: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// `disconnect` is not the last command.
    #[error("MMC document: <disconnect/> at byte {offset} is not the last command")]
    DisconnectNotLast {
        /// Byte offset of the element.
        offset: u64,
    },
    /// The document ends before its root element closes, or has none.
    #[error("MMC document: ends at byte {offset} before </{expected}>")]
    Truncated {
        /// Where it ends.
        offset: u64,
        /// The element still open.
        expected: &'static str,
    },
}

/// One element of a document: name, attributes, text, where it starts.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    offset: u64,
}

impl Element {
    fn attr(&self, name: &'static str) -> Result<&str, MmcError> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| MmcError::MissingAttribute {
                offset: self.offset,
                element: self.name.clone(),
                attribute: name,
            })
    }

    fn number(&self, name: &'static str) -> Result<u32, MmcError> {
        let v = self.attr(name)?;
        v.parse().map_err(|_| MmcError::BadAttribute {
            offset: self.offset,
            element: self.name.clone(),
            attribute: name,
            value: v.to_string(),
            expected: "a decimal number below 2^32",
        })
    }
}

fn xml_err(reader: &Reader<&[u8]>, e: impl fmt::Display) -> MmcError {
    MmcError::Xml {
        offset: reader.error_position(),
        message: e.to_string(),
    }
}

fn element(
    reader: &Reader<&[u8]>,
    start: &BytesStart<'_>,
    offset: u64,
) -> Result<Element, MmcError> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| xml_err(reader, e))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a.unescape_value().map_err(|e| xml_err(reader, e))?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        text: String::new(),
        offset,
    })
}

/// Parses a document of one root element whose children hold only text:
/// the shape of both MMC documents.
fn parse_tree(bytes: &[u8], root: &'static str) -> Result<(Element, Vec<Element>), MmcError> {
    let mut reader = Reader::from_reader(bytes);
    let mut top: Option<Element> = None;
    let mut children: Vec<Element> = Vec::new();
    // The child being read (between its start and end tags).
    let mut open: Option<Element> = None;
    let mut closed = false;
    loop {
        let offset = reader.buffer_position();
        let event = reader.read_event().map_err(|e| xml_err(&reader, e))?;
        match event {
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Start(ref s) | Event::Empty(ref s) => {
                let is_empty = matches!(event, Event::Empty(_));
                let el = element(&reader, s, offset)?;
                if closed {
                    return Err(MmcError::UnexpectedElement {
                        offset,
                        found: el.name,
                        parent: "the end of the document",
                    });
                }
                match (&top, &open) {
                    (None, _) => {
                        if el.name != root {
                            return Err(MmcError::WrongRoot {
                                offset,
                                found: el.name,
                                expected: root,
                            });
                        }
                        top = Some(el);
                        if is_empty {
                            closed = true;
                        }
                    }
                    (Some(_), None) => {
                        if is_empty {
                            children.push(el);
                        } else {
                            open = Some(el);
                        }
                    }
                    (Some(_), Some(parent)) => {
                        return Err(MmcError::UnexpectedElement {
                            offset,
                            found: el.name,
                            parent: static_name(&parent.name),
                        });
                    }
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| xml_err(&reader, e))?;
                push_text(&mut open, &text, offset)?;
            }
            Event::CData(t) => {
                let text =
                    String::from_utf8(t.into_inner().into_owned()).map_err(|e| MmcError::Xml {
                        offset,
                        message: e.to_string(),
                    })?;
                push_text(&mut open, &text, offset)?;
            }
            Event::End(_) => match open.take() {
                Some(el) => children.push(el),
                None => closed = true,
            },
            Event::Eof => break,
        }
    }
    match top {
        Some(top) if closed => Ok((top, children)),
        _ => Err(MmcError::Truncated {
            offset: reader.buffer_position(),
            expected: root,
        }),
    }
}

/// Text belongs inside a child; between elements only whitespace may be.
fn push_text(open: &mut Option<Element>, text: &str, offset: u64) -> Result<(), MmcError> {
    match open {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(MmcError::UnexpectedElement {
            offset,
            found: "text".to_string(),
            parent: "the document (text outside a command)",
        }),
    }
}

/// Element names used in errors (the known ones; anything else is
/// "a command").
fn static_name(name: &str) -> &'static str {
    match name {
        "read" => "read",
        "write" => "write",
        "delete" => "delete",
        "display" => "display",
        "commit" => "commit",
        "disconnect" => "disconnect",
        "result" => "result",
        _ => "a command",
    }
}

fn header(top: &Element) -> Result<(String, u32), MmcError> {
    Ok((top.attr("sid")?.to_string(), top.number("seq")?))
}

fn escape_attr(s: &str) -> Cow<'_, str> {
    escape(s)
}

impl Mmc {
    /// Parses a server document.
    ///
    /// # Errors
    /// [`MmcError`], naming the element and byte offset.
    pub fn parse(bytes: &[u8]) -> Result<Mmc, MmcError> {
        let (top, children) = parse_tree(bytes, "mmc")?;
        let ver = top.attr("ver")?;
        if ver != VERSION {
            return Err(MmcError::BadAttribute {
                offset: top.offset,
                element: top.name.clone(),
                attribute: "ver",
                value: ver.to_string(),
                expected: "1.0",
            });
        }
        let (sid, seq) = header(&top)?;
        let mut commands = Vec::with_capacity(children.len());
        let count = children.len();
        for (i, c) in children.into_iter().enumerate() {
            let cmd = match c.name.as_str() {
                "read" => Command::Read {
                    cid: c.number("cid")?,
                    valueref: ValueRef::parse(c.attr("valueref")?),
                },
                "write" => Command::Write {
                    cid: c.number("cid")?,
                    valueref: ValueRef::parse(c.attr("valueref")?),
                    value: c.text.clone(),
                },
                "delete" => Command::Delete {
                    cid: c.number("cid")?,
                    valueref: ValueRef::parse(c.attr("valueref")?),
                },
                "display" => Command::Display {
                    cid: c.number("cid")?,
                    text: c.text.clone(),
                },
                "commit" => Command::Commit {
                    cid: c.number("cid")?,
                },
                "disconnect" => {
                    if i + 1 != count {
                        return Err(MmcError::DisconnectNotLast { offset: c.offset });
                    }
                    Command::Disconnect
                }
                _ => {
                    return Err(MmcError::UnexpectedElement {
                        offset: c.offset,
                        found: c.name,
                        parent: "mmc",
                    })
                }
            };
            commands.push(cmd);
        }
        Ok(Mmc { sid, seq, commands })
    }

    /// The document as UTF-8 XML.
    pub fn to_xml(&self) -> String {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mmc ver=\"{VERSION}\" sid=\"{}\" seq=\"{}\">\n",
            escape_attr(&self.sid),
            self.seq
        );
        for c in &self.commands {
            let line = match c {
                Command::Read { cid, valueref } => {
                    format!(
                        "<read cid=\"{cid}\" valueref=\"{}\"/>",
                        escape_attr(valueref.as_str())
                    )
                }
                Command::Write {
                    cid,
                    valueref,
                    value,
                } => format!(
                    "<write cid=\"{cid}\" valueref=\"{}\">{}</write>",
                    escape_attr(valueref.as_str()),
                    escape(value.as_str())
                ),
                Command::Delete { cid, valueref } => format!(
                    "<delete cid=\"{cid}\" valueref=\"{}\"/>",
                    escape_attr(valueref.as_str())
                ),
                Command::Display { cid, text } => {
                    format!("<display cid=\"{cid}\">{}</display>", escape(text.as_str()))
                }
                Command::Commit { cid } => format!("<commit cid=\"{cid}\"/>"),
                Command::Disconnect => "<disconnect/>".to_string(),
            };
            s.push_str("  ");
            s.push_str(&line);
            s.push('\n');
        }
        s.push_str("</mmc>\n");
        s
    }
}

impl MmcResult {
    /// Parses a handset document.
    ///
    /// # Errors
    /// [`MmcError`], naming the element and byte offset; a reserved or
    /// unknown result code is a [`MmcError::BadAttribute`].
    pub fn parse(bytes: &[u8]) -> Result<MmcResult, MmcError> {
        let (top, children) = parse_tree(bytes, "mmc-result")?;
        let (sid, seq) = header(&top)?;
        let mut results = Vec::with_capacity(children.len());
        for c in children {
            if c.name != "result" {
                return Err(MmcError::UnexpectedElement {
                    offset: c.offset,
                    found: c.name,
                    parent: "mmc-result",
                });
            }
            let raw = c.number("code")?;
            let code = ResultCode::from_code(raw).ok_or_else(|| MmcError::BadAttribute {
                offset: c.offset,
                element: c.name.clone(),
                attribute: "code",
                value: raw.to_string(),
                expected: "an MMC result code (0-23, not 4, 15)",
            })?;
            let has_value =
                c.attrs.iter().any(|(k, v)| k == "value" && v == "1") || !c.text.is_empty();
            results.push(CommandResult {
                cid: c.number("cid")?,
                code,
                value: has_value.then(|| c.text.clone()),
            });
        }
        Ok(MmcResult { sid, seq, results })
    }

    /// The document as UTF-8 XML. A present but empty value is written
    /// with `value="1"` so that it parses back as present.
    pub fn to_xml(&self) -> String {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mmc-result sid=\"{}\" seq=\"{}\">\n",
            escape_attr(&self.sid),
            self.seq
        );
        for r in &self.results {
            let code = r.code as u8;
            let line = match &r.value {
                None => format!("<result cid=\"{}\" code=\"{code}\"/>", r.cid),
                Some(v) if v.is_empty() => {
                    format!("<result cid=\"{}\" code=\"{code}\" value=\"1\"/>", r.cid)
                }
                Some(v) => format!(
                    "<result cid=\"{}\" code=\"{code}\">{}</result>",
                    r.cid,
                    escape(v.as_str())
                ),
            };
            s.push_str("  ");
            s.push_str(&line);
            s.push('\n');
        }
        s.push_str("</mmc-result>\n");
        s
    }
}
