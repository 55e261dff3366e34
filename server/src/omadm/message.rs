//! The typed SyncML DM 1.2 message, and its mapping to and from the element
//! tree that the XML and WBXML codecs share.
//!
//! ```text
//! SyncML
//! ├── SyncHdr: VerDTD 1.2, VerProto DM/1.2, SessionID, MsgID,
//! │            Target, Source (LocURI, LocName), Cred?, Meta? (MaxMsgSize)
//! └── SyncBody: Alert | Add | Replace | Delete | Get | Exec | Status | Results …, Final?
//! ```
//!
//! The model carries what OMA DM 1.2 uses (the DM Representation Protocol
//! restricts SyncML: no Sync, Map, Put, Search...). Commands DM allows but
//! this server does not carry out (Sequence, Atomic, Copy) are refused with
//! [`Error::Unsupported`]. Meta information the model does not keep (EMI,
//! Anchor, Mem, Version, ...) is skipped when read.
//!
//! Values are kept as the message writes them (text), except numbers the
//! protocol relies on (MsgID, CmdID, MsgRef, CmdRef, status and alert
//! codes), which are parsed so that a malformed number is an error here and
//! not a surprise later.

use super::element::Element;
use super::error::{quote, Error};

/// `VerDTD` of SyncML 1.2.
pub const VER_DTD: &str = "1.2";
/// `VerProto` of OMA DM 1.2.
pub const VER_PROTO: &str = "DM/1.2";
/// The XML namespace of the SyncML 1.2 root element.
pub const SYNCML_NS: &str = "SYNCML:SYNCML1.2";
/// The XML namespace of meta information elements (MetInf).
pub const METINF_NS: &str = "syncml:metinf";

/// One SyncML DM message: a header and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMl {
    /// Who sends, to whom, in which session, with which credentials.
    pub hdr: SyncHdr,
    /// The commands.
    pub body: SyncBody,
}

/// The message header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncHdr {
    /// `VerDTD`: [`VER_DTD`] for DM 1.2.
    pub ver_dtd: String,
    /// `VerProto`: [`VER_PROTO`] for DM 1.2.
    pub ver_proto: String,
    /// `SessionID`: the same in every message of a session.
    pub session_id: String,
    /// `MsgID`: counts the sender's messages in the session, from 1.
    pub msg_id: u32,
    /// The receiver: the server URI, or the device id.
    pub target: Location,
    /// The sender: the device id (LocName = user name) or the server URI.
    pub source: Location,
    /// `RespURI`: where the client sends its next message (server only).
    pub resp_uri: Option<String>,
    /// `NoResp`: the sender wants no Status for any command.
    pub no_resp: bool,
    /// The sender's credentials.
    pub cred: Option<Cred>,
    /// Header meta information (`MaxMsgSize`, `MaxObjSize`).
    pub meta: Option<Meta>,
}

/// A `Target` or `Source`: a URI and an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// `LocURI`.
    pub loc_uri: String,
    /// `LocName` (in the client's SyncHdr Source: the user name that
    /// authentication uses).
    pub loc_name: Option<String>,
}

impl Location {
    /// A location with only a URI.
    pub fn uri(loc_uri: &str) -> Location {
        Location {
            loc_uri: loc_uri.to_string(),
            loc_name: None,
        }
    }
}

/// `Cred`: credentials with their scheme in `Meta` (Type, Format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cred {
    /// `Type` (e.g. `syncml:auth-md5`) and `Format` (`b64`).
    pub meta: Meta,
    /// The credential itself.
    pub data: String,
}

/// `Chal`: an authentication challenge in a Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chal {
    /// `Type` (scheme), `Format` (`b64`) and `NextNonce`.
    pub meta: Meta,
}

/// `Meta`: the meta information elements the model keeps (MetInf).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// `Format`: `b64`, `chr`, `int`, `bin`, `node`, ...
    pub format: Option<String>,
    /// `Type`: a MIME type or an authentication scheme.
    pub type_: Option<String>,
    /// `Mark`: the alert's importance (`critical`, `informational`, ...).
    pub mark: Option<String>,
    /// `Size`: the size of the data.
    pub size: Option<u64>,
    /// `NextNonce`: the nonce (base64) for the next credential.
    pub next_nonce: Option<String>,
    /// `MaxMsgSize`: the largest message the sender accepts.
    pub max_msg_size: Option<u64>,
    /// `MaxObjSize`: the largest object the sender accepts.
    pub max_obj_size: Option<u64>,
}

impl Meta {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Meta::default()
    }
}

/// The body: commands in order and whether this message ends the package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncBody {
    /// The commands, in the order they are to be carried out.
    pub commands: Vec<Command>,
    /// `Final`: the last message of the package.
    pub final_: bool,
}

/// A SyncML DM command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `Alert`: session start (1200/1201), Generic Alert (1226), ...
    Alert(Alert),
    /// `Add`: create nodes.
    Add(ItemCommand),
    /// `Replace`: set node values.
    Replace(ItemCommand),
    /// `Delete`: remove nodes.
    Delete(ItemCommand),
    /// `Get`: read node values (answered with Results).
    Get(ItemCommand),
    /// `Exec`: run an executable node (FUMO Download, Update, ...).
    Exec(Exec),
    /// `Status`: the outcome of a command of the other side.
    Status(Status),
    /// `Results`: the values a Get asked for.
    Results(Results),
}

impl Command {
    /// The element name, which is also what a Status names in `Cmd`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Alert(_) => "Alert",
            Command::Add(_) => "Add",
            Command::Replace(_) => "Replace",
            Command::Delete(_) => "Delete",
            Command::Get(_) => "Get",
            Command::Exec(_) => "Exec",
            Command::Status(_) => "Status",
            Command::Results(_) => "Results",
        }
    }

    /// The command's `CmdID`.
    pub fn cmd_id(&self) -> u32 {
        match self {
            Command::Alert(c) => c.cmd_id,
            Command::Add(c) | Command::Replace(c) | Command::Delete(c) | Command::Get(c) => {
                c.cmd_id
            }
            Command::Exec(c) => c.cmd_id,
            Command::Status(c) => c.cmd_id,
            Command::Results(c) => c.cmd_id,
        }
    }

    /// Whether the sender asked for no Status (`NoResp`).
    pub fn no_resp(&self) -> bool {
        match self {
            Command::Alert(c) => c.no_resp,
            Command::Add(c) | Command::Replace(c) | Command::Delete(c) | Command::Get(c) => {
                c.no_resp
            }
            Command::Exec(c) => c.no_resp,
            Command::Status(_) | Command::Results(_) => false,
        }
    }
}

/// `Alert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `CmdID`.
    pub cmd_id: u32,
    /// `NoResp`.
    pub no_resp: bool,
    /// `Data`: the alert code (1200, 1201, 1226, ...).
    pub code: u16,
    /// `Correlator`: ties a Generic Alert to the Exec it reports on.
    pub correlator: Option<String>,
    /// Items (a Generic Alert's Source, Meta and Data).
    pub items: Vec<Item>,
}

/// `Add`, `Replace`, `Delete` or `Get`: a meta and items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCommand {
    /// `CmdID`.
    pub cmd_id: u32,
    /// `NoResp`.
    pub no_resp: bool,
    /// Meta information for all items.
    pub meta: Option<Meta>,
    /// The items (at least one).
    pub items: Vec<Item>,
}

/// `Exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    /// `CmdID`.
    pub cmd_id: u32,
    /// `NoResp`.
    pub no_resp: bool,
    /// Meta information.
    pub meta: Option<Meta>,
    /// `Correlator`: echoed by the client in the Generic Alert that reports
    /// the outcome.
    pub correlator: Option<String>,
    /// The node to execute (Target) and its argument (Data).
    pub item: Item,
}

/// `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `CmdID`.
    pub cmd_id: u32,
    /// `MsgRef`: the MsgID of the message holding the command.
    pub msg_ref: u32,
    /// `CmdRef`: the CmdID of the command; 0 for the SyncHdr.
    pub cmd_ref: u32,
    /// `Cmd`: the command's name (`SyncHdr` for the header).
    pub cmd: String,
    /// `TargetRef`s.
    pub target_refs: Vec<String>,
    /// `SourceRef`s.
    pub source_refs: Vec<String>,
    /// `Chal`: asks for (new) credentials.
    pub chal: Option<Chal>,
    /// `Data`: the status code (200, 212, 401, ...).
    pub code: u16,
    /// Items (rarely used in DM).
    pub items: Vec<Item>,
}

/// `Results`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Results {
    /// `CmdID`.
    pub cmd_id: u32,
    /// `MsgRef`: the MsgID of the Get's message.
    pub msg_ref: Option<u32>,
    /// `CmdRef`: the Get's CmdID.
    pub cmd_ref: u32,
    /// Meta information for all items.
    pub meta: Option<Meta>,
    /// `TargetRef`.
    pub target_ref: Option<String>,
    /// `SourceRef`.
    pub source_ref: Option<String>,
    /// The values (at least one).
    pub items: Vec<Item>,
}

/// `Item`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// `Target`: the node a command acts on.
    pub target: Option<Location>,
    /// `Source`: the node a value comes from.
    pub source: Option<Location>,
    /// Meta information for this item.
    pub meta: Option<Meta>,
    /// `Data`: the value, as text.
    pub data: Option<String>,
    /// `MoreData`: the value continues in the next message.
    pub more_data: bool,
}

impl Item {
    /// An item aimed at `uri` with no data.
    pub fn target(uri: &str) -> Item {
        Item {
            target: Some(Location::uri(uri)),
            ..Item::default()
        }
    }

    /// An item from `uri` carrying `data`.
    pub fn source_data(uri: &str, data: &str) -> Item {
        Item {
            source: Some(Location::uri(uri)),
            data: Some(data.to_string()),
            ..Item::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Element tree -> model.

fn unexpected(parent: &Element, child: &Element) -> Error {
    Error::Unexpected {
        offset: child.offset,
        found: child.name.clone(),
        parent: parent.name.clone(),
    }
}

fn missing(parent: &Element, missing: &'static str) -> Error {
    Error::Missing {
        offset: parent.offset,
        parent: parent.name.clone(),
        missing,
    }
}

/// Puts `value` in an empty slot; a second occurrence is an error.
fn once<T>(slot: &mut Option<T>, el: &Element, value: T) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::Duplicate {
            offset: el.offset,
            element: el.name.clone(),
        });
    }
    *slot = Some(value);
    Ok(())
}

/// A flag element (`Final`, `NoResp`, `MoreData`): no content, once.
fn flag(slot: &mut bool, el: &Element) -> Result<(), Error> {
    if let Some(child) = el.children.first() {
        return Err(unexpected(el, child));
    }
    if *slot {
        return Err(Error::Duplicate {
            offset: el.offset,
            element: el.name.clone(),
        });
    }
    *slot = true;
    Ok(())
}

/// The text of an element that may only hold text.
fn leaf(el: &Element) -> Result<String, Error> {
    if let Some(child) = el.children.first() {
        return Err(unexpected(el, child));
    }
    Ok(el.text().to_string())
}

/// A leaf's text with surrounding white space removed (identifiers and
/// URIs; `Data` keeps its text exactly).
fn trimmed(el: &Element) -> Result<String, Error> {
    Ok(leaf(el)?.trim().to_string())
}

fn bad_value(el: &Element, expected: &'static str) -> Error {
    Error::BadValue {
        offset: el.offset,
        element: el.name.clone(),
        value: quote(el.text()),
        expected,
    }
}

fn number_u32(el: &Element) -> Result<u32, Error> {
    let text = trimmed(el)?;
    text.parse()
        .map_err(|_| bad_value(el, "a decimal number below 2^32"))
}

fn number_u64(el: &Element) -> Result<u64, Error> {
    let text = trimmed(el)?;
    text.parse()
        .map_err(|_| bad_value(el, "a decimal number below 2^64"))
}

/// A status or alert code: three or four decimal digits.
fn code(el: &Element) -> Result<u16, Error> {
    let text = trimmed(el)?;
    match text.parse::<u16>() {
        Ok(c) if (100..=9999).contains(&c) => Ok(c),
        _ => Err(bad_value(el, "a status or alert code (100-9999)")),
    }
}

fn location(el: &Element) -> Result<Location, Error> {
    let mut loc_uri = None;
    let mut loc_name = None;
    for c in &el.children {
        match c.name.as_str() {
            "LocURI" => once(&mut loc_uri, c, trimmed(c)?)?,
            "LocName" => once(&mut loc_name, c, trimmed(c)?)?,
            _ => return Err(unexpected(el, c)),
        }
    }
    if el.text().trim() != "" {
        return Err(Error::MixedContent {
            offset: el.offset,
            element: el.name.clone(),
        });
    }
    Ok(Location {
        loc_uri: loc_uri.ok_or_else(|| missing(el, "LocURI"))?,
        loc_name,
    })
}

/// MetInf elements the model does not keep; skipped when read.
const METINF_SKIPPED: [&str; 12] = [
    "Anchor",
    "EMI",
    "FreeID",
    "FreeMem",
    "Last",
    "Mem",
    "MetInf",
    "Next",
    "SharedMem",
    "Version",
    "FieldLevel",
    "MaxGUIDSize",
];

fn meta(el: &Element) -> Result<Meta, Error> {
    let mut m = Meta::default();
    for c in &el.children {
        match c.name.as_str() {
            "Format" => once(&mut m.format, c, trimmed(c)?)?,
            "Type" => once(&mut m.type_, c, trimmed(c)?)?,
            "Mark" => once(&mut m.mark, c, trimmed(c)?)?,
            "Size" => once(&mut m.size, c, number_u64(c)?)?,
            "NextNonce" => once(&mut m.next_nonce, c, trimmed(c)?)?,
            "MaxMsgSize" => once(&mut m.max_msg_size, c, number_u64(c)?)?,
            "MaxObjSize" => once(&mut m.max_obj_size, c, number_u64(c)?)?,
            name if METINF_SKIPPED.contains(&name) => {}
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(m)
}

fn cred(el: &Element) -> Result<Cred, Error> {
    let mut m = None;
    let mut data = None;
    for c in &el.children {
        match c.name.as_str() {
            "Meta" => once(&mut m, c, meta(c)?)?,
            "Data" => once(&mut data, c, leaf(c)?)?,
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(Cred {
        meta: m.unwrap_or_default(),
        data: data.ok_or_else(|| missing(el, "Data"))?,
    })
}

fn chal(el: &Element) -> Result<Chal, Error> {
    let mut m = None;
    for c in &el.children {
        match c.name.as_str() {
            "Meta" => once(&mut m, c, meta(c)?)?,
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(Chal {
        meta: m.ok_or_else(|| missing(el, "Meta"))?,
    })
}

fn item(el: &Element) -> Result<Item, Error> {
    let mut it = Item::default();
    for c in &el.children {
        match c.name.as_str() {
            "Target" => once(&mut it.target, c, location(c)?)?,
            "Source" => once(&mut it.source, c, location(c)?)?,
            "Meta" => once(&mut it.meta, c, meta(c)?)?,
            "Data" => once(&mut it.data, c, leaf(c)?)?,
            "MoreData" => flag(&mut it.more_data, c)?,
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(it)
}

fn hdr(el: &Element) -> Result<SyncHdr, Error> {
    let mut ver_dtd = None;
    let mut ver_proto = None;
    let mut session_id = None;
    let mut msg_id = None;
    let mut target = None;
    let mut source = None;
    let mut resp_uri = None;
    let mut no_resp = false;
    let mut cred_ = None;
    let mut meta_ = None;
    for c in &el.children {
        match c.name.as_str() {
            "VerDTD" => once(&mut ver_dtd, c, trimmed(c)?)?,
            "VerProto" => once(&mut ver_proto, c, trimmed(c)?)?,
            "SessionID" => once(&mut session_id, c, trimmed(c)?)?,
            "MsgID" => once(&mut msg_id, c, number_u32(c)?)?,
            "Target" => once(&mut target, c, location(c)?)?,
            "Source" => once(&mut source, c, location(c)?)?,
            "RespURI" => once(&mut resp_uri, c, trimmed(c)?)?,
            "NoResp" => flag(&mut no_resp, c)?,
            "Cred" => once(&mut cred_, c, cred(c)?)?,
            "Meta" => once(&mut meta_, c, meta(c)?)?,
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(SyncHdr {
        ver_dtd: ver_dtd.ok_or_else(|| missing(el, "VerDTD"))?,
        ver_proto: ver_proto.ok_or_else(|| missing(el, "VerProto"))?,
        session_id: session_id.ok_or_else(|| missing(el, "SessionID"))?,
        msg_id: msg_id.ok_or_else(|| missing(el, "MsgID"))?,
        target: target.ok_or_else(|| missing(el, "Target"))?,
        source: source.ok_or_else(|| missing(el, "Source"))?,
        resp_uri,
        no_resp,
        cred: cred_,
        meta: meta_,
    })
}

fn alert(el: &Element) -> Result<Alert, Error> {
    let mut cmd_id = None;
    let mut no_resp = false;
    let mut code_ = None;
    let mut correlator = None;
    let mut items = Vec::new();
    for c in &el.children {
        match c.name.as_str() {
            "CmdID" => once(&mut cmd_id, c, number_u32(c)?)?,
            "NoResp" => flag(&mut no_resp, c)?,
            "Data" => once(&mut code_, c, code(c)?)?,
            "Correlator" => once(&mut correlator, c, trimmed(c)?)?,
            "Item" => items.push(item(c)?),
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(Alert {
        cmd_id: cmd_id.ok_or_else(|| missing(el, "CmdID"))?,
        no_resp,
        code: code_.ok_or_else(|| missing(el, "Data"))?,
        correlator,
        items,
    })
}

fn item_command(el: &Element) -> Result<ItemCommand, Error> {
    let mut cmd_id = None;
    let mut no_resp = false;
    let mut meta_ = None;
    let mut items = Vec::new();
    for c in &el.children {
        match c.name.as_str() {
            "CmdID" => once(&mut cmd_id, c, number_u32(c)?)?,
            "NoResp" => flag(&mut no_resp, c)?,
            "Meta" => once(&mut meta_, c, meta(c)?)?,
            "Item" => items.push(item(c)?),
            _ => return Err(unexpected(el, c)),
        }
    }
    if items.is_empty() {
        return Err(missing(el, "Item"));
    }
    Ok(ItemCommand {
        cmd_id: cmd_id.ok_or_else(|| missing(el, "CmdID"))?,
        no_resp,
        meta: meta_,
        items,
    })
}

fn exec(el: &Element) -> Result<Exec, Error> {
    let mut cmd_id = None;
    let mut no_resp = false;
    let mut meta_ = None;
    let mut correlator = None;
    let mut item_ = None;
    for c in &el.children {
        match c.name.as_str() {
            "CmdID" => once(&mut cmd_id, c, number_u32(c)?)?,
            "NoResp" => flag(&mut no_resp, c)?,
            "Meta" => once(&mut meta_, c, meta(c)?)?,
            "Correlator" => once(&mut correlator, c, trimmed(c)?)?,
            "Item" => once(&mut item_, c, item(c)?)?,
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(Exec {
        cmd_id: cmd_id.ok_or_else(|| missing(el, "CmdID"))?,
        no_resp,
        meta: meta_,
        correlator,
        item: item_.ok_or_else(|| missing(el, "Item"))?,
    })
}

fn status(el: &Element) -> Result<Status, Error> {
    let mut cmd_id = None;
    let mut msg_ref = None;
    let mut cmd_ref = None;
    let mut cmd = None;
    let mut target_refs = Vec::new();
    let mut source_refs = Vec::new();
    let mut chal_ = None;
    let mut code_ = None;
    let mut items = Vec::new();
    for c in &el.children {
        match c.name.as_str() {
            "CmdID" => once(&mut cmd_id, c, number_u32(c)?)?,
            "MsgRef" => once(&mut msg_ref, c, number_u32(c)?)?,
            "CmdRef" => once(&mut cmd_ref, c, number_u32(c)?)?,
            "Cmd" => once(&mut cmd, c, trimmed(c)?)?,
            "TargetRef" => target_refs.push(trimmed(c)?),
            "SourceRef" => source_refs.push(trimmed(c)?),
            "Chal" => once(&mut chal_, c, chal(c)?)?,
            "Data" => once(&mut code_, c, code(c)?)?,
            "Item" => items.push(item(c)?),
            _ => return Err(unexpected(el, c)),
        }
    }
    Ok(Status {
        cmd_id: cmd_id.ok_or_else(|| missing(el, "CmdID"))?,
        msg_ref: msg_ref.ok_or_else(|| missing(el, "MsgRef"))?,
        cmd_ref: cmd_ref.ok_or_else(|| missing(el, "CmdRef"))?,
        cmd: cmd.ok_or_else(|| missing(el, "Cmd"))?,
        target_refs,
        source_refs,
        chal: chal_,
        code: code_.ok_or_else(|| missing(el, "Data"))?,
        items,
    })
}

fn results(el: &Element) -> Result<Results, Error> {
    let mut cmd_id = None;
    let mut msg_ref = None;
    let mut cmd_ref = None;
    let mut meta_ = None;
    let mut target_ref = None;
    let mut source_ref = None;
    let mut items = Vec::new();
    for c in &el.children {
        match c.name.as_str() {
            "CmdID" => once(&mut cmd_id, c, number_u32(c)?)?,
            "MsgRef" => once(&mut msg_ref, c, number_u32(c)?)?,
            "CmdRef" => once(&mut cmd_ref, c, number_u32(c)?)?,
            "Meta" => once(&mut meta_, c, meta(c)?)?,
            "TargetRef" => once(&mut target_ref, c, trimmed(c)?)?,
            "SourceRef" => once(&mut source_ref, c, trimmed(c)?)?,
            "Item" => items.push(item(c)?),
            _ => return Err(unexpected(el, c)),
        }
    }
    if items.is_empty() {
        return Err(missing(el, "Item"));
    }
    Ok(Results {
        cmd_id: cmd_id.ok_or_else(|| missing(el, "CmdID"))?,
        msg_ref,
        cmd_ref: cmd_ref.ok_or_else(|| missing(el, "CmdRef"))?,
        meta: meta_,
        target_ref,
        source_ref,
        items,
    })
}

/// SyncML commands DM does not use or this server does not carry out.
const UNSUPPORTED: [&str; 9] = [
    "Atomic", "Sequence", "Copy", "Sync", "Map", "Put", "Search", "Move", "Cred",
];

fn body(el: &Element) -> Result<SyncBody, Error> {
    let mut b = SyncBody::default();
    for c in &el.children {
        if b.final_ {
            // Nothing may follow Final.
            return Err(unexpected(el, c));
        }
        let cmd = match c.name.as_str() {
            "Alert" => Command::Alert(alert(c)?),
            "Add" => Command::Add(item_command(c)?),
            "Replace" => Command::Replace(item_command(c)?),
            "Delete" => Command::Delete(item_command(c)?),
            "Get" => Command::Get(item_command(c)?),
            "Exec" => Command::Exec(exec(c)?),
            "Status" => Command::Status(status(c)?),
            "Results" => Command::Results(results(c)?),
            "Final" => {
                flag(&mut b.final_, c)?;
                continue;
            }
            name if UNSUPPORTED.contains(&name) => {
                return Err(Error::Unsupported {
                    offset: c.offset,
                    name: c.name.clone(),
                })
            }
            _ => return Err(unexpected(el, c)),
        };
        b.commands.push(cmd);
    }
    Ok(b)
}

impl SyncMl {
    /// Reads a message from its element tree (as either codec produced it).
    ///
    /// # Errors
    /// [`Error::WrongRoot`], [`Error::Unexpected`], [`Error::Missing`],
    /// [`Error::Duplicate`], [`Error::BadValue`] or [`Error::Unsupported`],
    /// each with the offset of the element at fault.
    pub fn from_element(root: &Element) -> Result<SyncMl, Error> {
        if root.name != "SyncML" {
            return Err(Error::WrongRoot {
                offset: root.offset,
                found: root.name.clone(),
                expected: "SyncML",
            });
        }
        let mut hdr_ = None;
        let mut body_ = None;
        for c in &root.children {
            match c.name.as_str() {
                "SyncHdr" if body_.is_none() => once(&mut hdr_, c, hdr(c)?)?,
                "SyncBody" if hdr_.is_some() => once(&mut body_, c, body(c)?)?,
                _ => return Err(unexpected(root, c)),
            }
        }
        Ok(SyncMl {
            hdr: hdr_.ok_or_else(|| missing(root, "SyncHdr"))?,
            body: body_.ok_or_else(|| missing(root, "SyncBody"))?,
        })
    }

    /// The message as an element tree, in DTD order, ready for either codec.
    pub fn to_element(&self) -> Element {
        Element::new("SyncML")
            .child(hdr_element(&self.hdr))
            .child(body_element(&self.body))
    }
}

// ---------------------------------------------------------------------------
// Model -> element tree.

fn text(name: &str, value: &str) -> Element {
    Element::with_text(name, value)
}

fn number(name: &str, value: impl ToString) -> Element {
    Element::with_text(name, &value.to_string())
}

fn location_element(name: &str, loc: &Location) -> Element {
    Element::new(name)
        .child(text("LocURI", &loc.loc_uri))
        .opt_child(loc.loc_name.as_deref().map(|n| text("LocName", n)))
}

fn meta_element(m: &Meta) -> Element {
    Element::new("Meta")
        .opt_child(m.format.as_deref().map(|v| text("Format", v)))
        .opt_child(m.type_.as_deref().map(|v| text("Type", v)))
        .opt_child(m.mark.as_deref().map(|v| text("Mark", v)))
        .opt_child(m.size.map(|v| number("Size", v)))
        .opt_child(m.next_nonce.as_deref().map(|v| text("NextNonce", v)))
        .opt_child(m.max_msg_size.map(|v| number("MaxMsgSize", v)))
        .opt_child(m.max_obj_size.map(|v| number("MaxObjSize", v)))
}

fn flag_element(name: &str, on: bool) -> Option<Element> {
    on.then(|| Element::new(name))
}

fn item_element(it: &Item) -> Element {
    Element::new("Item")
        .opt_child(it.target.as_ref().map(|l| location_element("Target", l)))
        .opt_child(it.source.as_ref().map(|l| location_element("Source", l)))
        .opt_child(it.meta.as_ref().map(meta_element))
        .opt_child(it.data.as_deref().map(|d| text("Data", d)))
        .opt_child(flag_element("MoreData", it.more_data))
}

fn hdr_element(h: &SyncHdr) -> Element {
    Element::new("SyncHdr")
        .child(text("VerDTD", &h.ver_dtd))
        .child(text("VerProto", &h.ver_proto))
        .child(text("SessionID", &h.session_id))
        .child(number("MsgID", h.msg_id))
        .child(location_element("Target", &h.target))
        .child(location_element("Source", &h.source))
        .opt_child(h.resp_uri.as_deref().map(|v| text("RespURI", v)))
        .opt_child(flag_element("NoResp", h.no_resp))
        .opt_child(h.cred.as_ref().map(|c| {
            Element::new("Cred")
                .child(meta_element(&c.meta))
                .child(text("Data", &c.data))
        }))
        .opt_child(h.meta.as_ref().map(meta_element))
}

fn items(mut el: Element, items: &[Item]) -> Element {
    el.children.extend(items.iter().map(item_element));
    el
}

fn command_element(cmd: &Command) -> Element {
    let name = cmd.name();
    match cmd {
        Command::Alert(a) => items(
            Element::new(name)
                .child(number("CmdID", a.cmd_id))
                .opt_child(flag_element("NoResp", a.no_resp))
                .child(number("Data", a.code))
                .opt_child(a.correlator.as_deref().map(|v| text("Correlator", v))),
            &a.items,
        ),
        Command::Add(c) | Command::Replace(c) | Command::Delete(c) | Command::Get(c) => items(
            Element::new(name)
                .child(number("CmdID", c.cmd_id))
                .opt_child(flag_element("NoResp", c.no_resp))
                .opt_child(c.meta.as_ref().map(meta_element)),
            &c.items,
        ),
        Command::Exec(e) => Element::new(name)
            .child(number("CmdID", e.cmd_id))
            .opt_child(flag_element("NoResp", e.no_resp))
            .opt_child(e.meta.as_ref().map(meta_element))
            .opt_child(e.correlator.as_deref().map(|v| text("Correlator", v)))
            .child(item_element(&e.item)),
        Command::Status(s) => {
            let mut el = Element::new(name)
                .child(number("CmdID", s.cmd_id))
                .child(number("MsgRef", s.msg_ref))
                .child(number("CmdRef", s.cmd_ref))
                .child(text("Cmd", &s.cmd));
            el.children
                .extend(s.target_refs.iter().map(|r| text("TargetRef", r)));
            el.children
                .extend(s.source_refs.iter().map(|r| text("SourceRef", r)));
            let el = el
                .opt_child(
                    s.chal
                        .as_ref()
                        .map(|c| Element::new("Chal").child(meta_element(&c.meta))),
                )
                .child(number("Data", s.code));
            items(el, &s.items)
        }
        Command::Results(r) => items(
            Element::new(name)
                .child(number("CmdID", r.cmd_id))
                .opt_child(r.msg_ref.map(|v| number("MsgRef", v)))
                .child(number("CmdRef", r.cmd_ref))
                .opt_child(r.meta.as_ref().map(meta_element))
                .opt_child(r.target_ref.as_deref().map(|v| text("TargetRef", v)))
                .opt_child(r.source_ref.as_deref().map(|v| text("SourceRef", v))),
            &r.items,
        ),
    }
}

fn body_element(b: &SyncBody) -> Element {
    let mut el = Element::new("SyncBody");
    el.children.extend(b.commands.iter().map(command_element));
    el.opt_child(flag_element("Final", b.final_))
}
