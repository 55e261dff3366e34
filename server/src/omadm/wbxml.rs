//! SyncML DM messages as WBXML (`application/vnd.syncml.dm+wbxml`): our own
//! codec for WBXML 1.1–1.3 with the SyncML 1.2 code pages.
//!
//! Tokens (SyncML Representation Protocol 1.2, WBXML section; the same
//! numbers as libwbxml's tables):
//!
//! | code page | language | tags |
//! |---|---|---|
//! | 0 | SyncML (`-//SYNCML//DTD SyncML 1.2//EN`, public id 0x1201) | `Add` 0x05 … `Correlator` 0x3C |
//! | 1 | MetInf (`syncml:metinf`) | `Anchor` 0x05 … `FieldLevel` 0x16 |
//! | 0 of DevInf (`-//SYNCML//DTD DevInf 1.2//EN`, 0x1203) | DevInf | `CTCap` 0x05 … `SupportHierarchicalSync` 0x34 |
//!
//! Writing: WBXML 1.2, the public id as a string-table literal (what DM
//! clients send; libwbxml writes the number, and both are read), UTF-8,
//! element text as inline strings and `Data` content as opaque data (binary
//! safe, as the representation protocol allows). Names no code page has
//! are written as LITERAL tags, so writing never fails.
//!
//! Reading: inline strings, string-table references, entities and opaque
//! data (which must be UTF-8: the model holds text); LITERAL tags;
//! SWITCH_PAGE anywhere. Refused with the byte offset: attributes and
//! extension tokens (SyncML has none), unknown tokens, other public ids,
//! charsets other than UTF-8/US-ASCII, nesting deeper than [`MAX_DEPTH`],
//! decoded text larger than the input plus 1 MiB, and trailing bytes.

use super::element::{Element, MAX_DEPTH};
use super::error::Error;
use super::message::SyncMl;

/// The SyncML 1.2 formal public identifier.
pub const SYNCML12_PUBLIC_ID: &str = "-//SYNCML//DTD SyncML 1.2//EN";
/// The DevInf 1.2 formal public identifier.
pub const DEVINF12_PUBLIC_ID: &str = "-//SYNCML//DTD DevInf 1.2//EN";

/// WBXML global tokens.
mod token {
    pub const SWITCH_PAGE: u8 = 0x00;
    pub const END: u8 = 0x01;
    pub const ENTITY: u8 = 0x02;
    pub const STR_I: u8 = 0x03;
    pub const LITERAL: u8 = 0x04;
    pub const STR_T: u8 = 0x83;
    pub const OPAQUE: u8 = 0xC3;
    /// Tag has content.
    pub const CONTENT: u8 = 0x40;
    /// Tag has attributes.
    pub const ATTRIBUTES: u8 = 0x80;
}

/// The IANA MIBenum of UTF-8.
const CHARSET_UTF8: u32 = 106;
/// The IANA MIBenum of US-ASCII (a subset of UTF-8).
const CHARSET_ASCII: u32 = 3;

/// A WBXML language: its public identifier and its code pages.
#[derive(Debug)]
pub struct Language {
    /// The formal public identifier (string form).
    pub public_id: &'static str,
    /// The registered numeric public id.
    pub public_id_number: u32,
    /// The root element's name.
    pub root: &'static str,
    /// Code pages: `(page, names)`, where `names[i]` is tag token `i + 5`
    /// (an empty name is a hole in the table).
    pub pages: &'static [(u8, &'static [&'static str])],
}

/// Code page 0 of SyncML 1.2: tokens 0x05..=0x3C.
const SYNCML_PAGE: [&str; 56] = [
    "Add",
    "Alert",
    "Archive",
    "Atomic",
    "Chal",
    "Cmd",
    "CmdID",
    "CmdRef",
    "Copy",
    "Cred",
    "Data",
    "Delete",
    "Exec",
    "Final",
    "Get",
    "Item",
    "Lang",
    "LocName",
    "LocURI",
    "Map",
    "MapItem",
    "Meta",
    "MsgID",
    "MsgRef",
    "NoResp",
    "NoResults",
    "Put",
    "Replace",
    "RespURI",
    "Results",
    "Search",
    "Sequence",
    "SessionID",
    "SftDel",
    "Source",
    "SourceRef",
    "Status",
    "Sync",
    "SyncBody",
    "SyncHdr",
    "SyncML",
    "Target",
    "TargetRef",
    "", // 0x30: reserved
    "VerDTD",
    "VerProto",
    "NumberOfChanges",
    "MoreData",
    "Field",
    "Filter",
    "Record",
    "FilterType",
    "SourceParent",
    "TargetParent",
    "Move",
    "Correlator",
];

/// Code page 1 of SyncML 1.2, MetInf: tokens 0x05..=0x16.
const METINF_PAGE: [&str; 18] = [
    "Anchor",
    "EMI",
    "Format",
    "FreeID",
    "FreeMem",
    "Last",
    "Mark",
    "MaxMsgSize",
    "Mem",
    "MetInf",
    "Next",
    "NextNonce",
    "SharedMem",
    "Size",
    "Type",
    "Version",
    "MaxObjSize",
    "FieldLevel",
];

/// Code page 0 of DevInf 1.2: tokens 0x05..=0x34 (0x2F unassigned).
const DEVINF_PAGE: [&str; 48] = [
    "CTCap",
    "CTType",
    "DataStore",
    "DataType",
    "DevID",
    "DevInf",
    "DevTyp",
    "DisplayName",
    "DSMem",
    "Ext",
    "FwV",
    "HwV",
    "Man",
    "MaxGUIDSize",
    "MaxID",
    "MaxMem",
    "Mod",
    "OEM",
    "ParamName",
    "PropName",
    "Rx",
    "Rx-Pref",
    "SharedMem",
    "MaxSize",
    "SourceRef",
    "SwV",
    "SyncCap",
    "SyncType",
    "Tx",
    "Tx-Pref",
    "ValEnum",
    "VerCT",
    "VerDTD",
    "XNam",
    "XVal",
    "UTC",
    "SupportNumberOfChanges",
    "SupportLargeObjs",
    "Property",
    "PropParam",
    "MaxOccur",
    "NoTruncate",
    "", // 0x2F: unassigned
    "Filter-Rx",
    "FilterCap",
    "FilterKeyword",
    "FieldLevel",
    "SupportHierarchicalSync",
];

/// SyncML 1.2: code page 0 SyncML, code page 1 MetInf.
pub static SYNCML12: Language = Language {
    public_id: SYNCML12_PUBLIC_ID,
    public_id_number: 0x1201,
    root: "SyncML",
    pages: &[(0, &SYNCML_PAGE), (1, &METINF_PAGE)],
};

/// DevInf 1.2 (a document of its own; SyncML DS embeds it in `Data`).
pub static DEVINF12: Language = Language {
    public_id: DEVINF12_PUBLIC_ID,
    public_id_number: 0x1203,
    root: "DevInf",
    pages: &[(0, &DEVINF_PAGE)],
};

impl Language {
    /// The name of tag `token` on `page`.
    pub fn name(&self, page: u8, token: u8) -> Option<&'static str> {
        let (_, names) = self.pages.iter().find(|(p, _)| *p == page)?;
        let name = *names.get(usize::from(token.checked_sub(5)?))?;
        (!name.is_empty()).then_some(name)
    }

    /// The `(page, token)` of a tag name; `prefer` is tried first (names
    /// shared by two pages stay on the current one).
    pub fn token(&self, name: &str, prefer: u8) -> Option<(u8, u8)> {
        let find = |page: u8, names: &[&str]| {
            names
                .iter()
                .position(|n| !n.is_empty() && *n == name)
                .and_then(|i| u8::try_from(i).ok())
                .and_then(|i| i.checked_add(5))
                .map(|t| (page, t))
        };
        let preferred = self
            .pages
            .iter()
            .find(|(p, _)| *p == prefer)
            .and_then(|(p, names)| find(*p, names));
        preferred.or_else(|| self.pages.iter().find_map(|(p, names)| find(*p, names)))
    }
}

/// Parses a SyncML 1.2 message from WBXML bytes.
///
/// # Errors
/// [`Error::Wbxml`], [`Error::UnknownToken`], [`Error::PublicId`],
/// [`Error::TooDeep`], [`Error::TooLarge`], [`Error::Truncated`], or a
/// structural error of [`SyncMl::from_element`]; each with its offset.
pub fn parse(bytes: &[u8]) -> Result<SyncMl, Error> {
    SyncMl::from_element(&decode_element(bytes, &SYNCML12)?)
}

/// Writes a message as WBXML 1.2.
pub fn write(msg: &SyncMl) -> Vec<u8> {
    encode_element(&msg.to_element(), &SYNCML12)
}

/// A cursor over the input that cannot panic.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, message: &'static str) -> Error {
        Error::Wbxml {
            offset: self.pos,
            message,
        }
    }

    fn truncated(&self, what: &str) -> Error {
        Error::Truncated {
            offset: self.pos,
            open: what.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn byte(&mut self, what: &str) -> Result<u8, Error> {
        let b = self.peek().ok_or_else(|| self.truncated(what))?;
        self.pos = self.pos.saturating_add(1);
        Ok(b)
    }

    /// A multi-byte unsigned integer (at most 32 bits, at most 5 bytes).
    fn mb_u32(&mut self, what: &str) -> Result<u32, Error> {
        let start = self.pos;
        let mut value: u32 = 0;
        for _ in 0..5 {
            let b = self.byte(what)?;
            if value > (u32::MAX >> 7) {
                self.pos = start;
                return Err(self.err("multi-byte integer overflows 32 bits"));
            }
            value = (value << 7) | u32::from(b & 0x7F);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.pos = start;
        Err(self.err("multi-byte integer longer than 5 bytes"))
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or_else(|| self.truncated(what))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(what))?;
        self.pos = end;
        Ok(slice)
    }

    /// A NUL-terminated inline string.
    fn cstr(&mut self, what: &str) -> Result<&'a str, Error> {
        let start = self.pos;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.truncated(what))?;
        let raw = rest.get(..len).unwrap_or_default();
        let s = std::str::from_utf8(raw).map_err(|_| self.err("inline string is not UTF-8"))?;
        self.pos = start.saturating_add(len).saturating_add(1);
        Ok(s)
    }
}

/// A NUL-terminated string at `index` of the string table.
fn table_str(table: &[u8], index: u32, at: usize) -> Result<&str, Error> {
    let bad = |message| Error::Wbxml {
        offset: at,
        message,
    };
    let start = usize::try_from(index).map_err(|_| bad("string table index out of range"))?;
    let rest = table
        .get(start..)
        .ok_or_else(|| bad("string table index out of range"))?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| bad("string table entry not terminated"))?;
    std::str::from_utf8(rest.get(..len).unwrap_or_default())
        .map_err(|_| bad("string table entry is not UTF-8"))
}

/// Decodes a WBXML document of `lang` into an element tree.
///
/// # Errors
/// See [`parse`].
pub fn decode_element(bytes: &[u8], lang: &Language) -> Result<Element, Error> {
    let mut cur = Cursor { bytes, pos: 0 };
    let version = cur.byte("the WBXML header")?;
    if !(0x01..=0x03).contains(&version) {
        cur.pos = 0;
        return Err(cur.err("WBXML version is not 1.1, 1.2 or 1.3"));
    }
    let pid_at = cur.pos;
    let public_id = cur.mb_u32("the public id")?;
    let pid_index = if public_id == 0 {
        Some(cur.mb_u32("the public id's string table index")?)
    } else {
        None
    };
    let charset_at = cur.pos;
    let charset = cur.mb_u32("the charset")?;
    if charset != CHARSET_UTF8 && charset != CHARSET_ASCII && charset != 0 {
        cur.pos = charset_at;
        return Err(cur.err("charset is not UTF-8"));
    }
    let table_len = cur.mb_u32("the string table length")?;
    let table_len = usize::try_from(table_len).unwrap_or(usize::MAX);
    let table = cur.take(table_len, "the string table")?;
    match pid_index {
        Some(index) => {
            let found = table_str(table, index, pid_at)?;
            if found != lang.public_id {
                return Err(Error::PublicId {
                    offset: pid_at,
                    found: format!("{found:?}"),
                    expected: lang.public_id,
                });
            }
        }
        // 1 is "unknown or missing": the root element still decides.
        None if public_id == lang.public_id_number || public_id == 1 => {}
        None => {
            return Err(Error::PublicId {
                offset: pid_at,
                found: format!("{public_id:#x}"),
                expected: lang.public_id,
            })
        }
    }

    let limit = bytes.len().saturating_add(1 << 20);
    let mut text_total: usize = 0;
    let mut page: u8 = 0;
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let at = cur.pos;
        let Some(b) = cur.peek() else {
            let open = stack
                .last()
                .map_or_else(|| "the body".to_string(), |e| e.name.clone());
            return Err(cur.truncated(&open));
        };
        cur.pos = cur.pos.saturating_add(1);
        let mut text: Option<std::borrow::Cow<'_, str>> = None;
        match b {
            token::SWITCH_PAGE => {
                page = cur.byte("SWITCH_PAGE")?;
                if !lang.pages.iter().any(|(p, _)| *p == page) {
                    cur.pos = at;
                    return Err(cur.err("SWITCH_PAGE to a code page this language lacks"));
                }
            }
            token::END => {
                let Some(el) = stack.pop() else {
                    cur.pos = at;
                    return Err(cur.err("END without an open element"));
                };
                match stack.last_mut() {
                    Some(parent) => attach(parent, el)?,
                    None => {
                        if cur.pos != bytes.len() {
                            return Err(cur.err("bytes after the root element"));
                        }
                        return Ok(el);
                    }
                }
            }
            token::ENTITY => {
                let code = cur.mb_u32("ENTITY")?;
                let c = char::from_u32(code).ok_or(Error::Wbxml {
                    offset: at,
                    message: "ENTITY is not a Unicode scalar value",
                })?;
                text = Some(c.to_string().into());
            }
            token::STR_I => text = Some(cur.cstr("STR_I")?.into()),
            token::STR_T => {
                let index = cur.mb_u32("STR_T")?;
                text = Some(table_str(table, index, at)?.into());
            }
            token::OPAQUE => {
                let len = cur.mb_u32("OPAQUE")?;
                let data = cur.take(usize::try_from(len).unwrap_or(usize::MAX), "OPAQUE")?;
                let s = std::str::from_utf8(data).map_err(|_| Error::Wbxml {
                    offset: at,
                    message: "opaque data is not UTF-8 text",
                })?;
                text = Some(s.into());
            }
            0x40..=0x43 | 0x80..=0x82 | 0xC0..=0xC2 => {
                cur.pos = at;
                return Err(cur.err("extension and PI tokens are not used in SyncML"));
            }
            tag => {
                if tag & token::ATTRIBUTES != 0 {
                    cur.pos = at;
                    return Err(cur.err("attributes are not used in SyncML"));
                }
                let id = tag & 0x3F;
                let name = if id == token::LITERAL {
                    let index = cur.mb_u32("LITERAL")?;
                    table_str(table, index, at)?.to_string()
                } else {
                    lang.name(page, id)
                        .ok_or(Error::UnknownToken {
                            offset: at,
                            page,
                            token: id,
                        })?
                        .to_string()
                };
                if stack.is_empty() && name != lang.root {
                    return Err(Error::WrongRoot {
                        offset: at,
                        found: name,
                        expected: lang.root,
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep {
                        offset: at,
                        limit: MAX_DEPTH,
                    });
                }
                let el = Element {
                    name,
                    children: Vec::new(),
                    text: None,
                    offset: at,
                };
                if tag & token::CONTENT != 0 {
                    stack.push(el);
                } else {
                    match stack.last_mut() {
                        Some(parent) => attach(parent, el)?,
                        None => {
                            if cur.pos != bytes.len() {
                                return Err(cur.err("bytes after the root element"));
                            }
                            return Ok(el);
                        }
                    }
                }
            }
        }
        if let Some(t) = text {
            text_total = text_total.saturating_add(t.len());
            if text_total > limit {
                return Err(Error::TooLarge { offset: at, limit });
            }
            let Some(el) = stack.last_mut() else {
                cur.pos = at;
                return Err(cur.err("text outside the root element"));
            };
            if el.children.is_empty() {
                el.text.get_or_insert_with(String::new).push_str(&t);
            } else if !t.trim().is_empty() {
                return Err(Error::MixedContent {
                    offset: at,
                    element: el.name.clone(),
                });
            }
        }
    }
}

/// Adds a finished child; text before it must have been white space.
fn attach(parent: &mut Element, el: Element) -> Result<(), Error> {
    if let Some(t) = parent.text.take() {
        if !t.trim().is_empty() {
            return Err(Error::MixedContent {
                offset: el.offset,
                element: parent.name.clone(),
            });
        }
    }
    parent.children.push(el);
    Ok(())
}

fn put_mb_u32(out: &mut Vec<u8>, value: u32) {
    let mut groups = [0u8; 5];
    let mut n = 0;
    let mut v = value;
    loop {
        if let Some(slot) = groups.get_mut(n) {
            *slot = (v & 0x7F) as u8;
        }
        n += 1;
        v >>= 7;
        if v == 0 || n == groups.len() {
            break;
        }
    }
    for i in (0..n).rev() {
        let g = groups.get(i).copied().unwrap_or(0);
        out.push(if i == 0 { g } else { g | 0x80 });
    }
}

/// Encodes an element tree as a WBXML 1.2 document of `lang`.
pub fn encode_element(root: &Element, lang: &Language) -> Vec<u8> {
    let mut table: Vec<u8> = Vec::new();
    table.extend_from_slice(lang.public_id.as_bytes());
    table.push(0);
    let mut body = Vec::new();
    let mut page = 0u8;
    encode_node(root, lang, &mut page, &mut table, &mut body);

    let mut out = vec![0x02, 0x00, 0x00];
    put_mb_u32(&mut out, CHARSET_UTF8);
    put_mb_u32(&mut out, u32::try_from(table.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(&table);
    out.extend_from_slice(&body);
    out
}

fn encode_node(
    el: &Element,
    lang: &Language,
    page: &mut u8,
    table: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let text = el.text.as_deref().filter(|t| !t.is_empty());
    let has_content = text.is_some() || !el.children.is_empty();
    let content_bit = if has_content { token::CONTENT } else { 0 };
    match lang.token(&el.name, *page) {
        Some((p, t)) => {
            if p != *page {
                out.push(token::SWITCH_PAGE);
                out.push(p);
                *page = p;
            }
            out.push(t | content_bit);
        }
        None => {
            let index = u32::try_from(table.len()).unwrap_or(u32::MAX);
            table.extend_from_slice(el.name.as_bytes());
            table.push(0);
            out.push(token::LITERAL | content_bit);
            put_mb_u32(out, index);
        }
    }
    if !has_content {
        return;
    }
    if let Some(t) = text {
        if el.name == "Data" || t.contains('\0') {
            out.push(token::OPAQUE);
            put_mb_u32(out, u32::try_from(t.len()).unwrap_or(u32::MAX));
            out.extend_from_slice(t.as_bytes());
        } else {
            out.push(token::STR_I);
            out.extend_from_slice(t.as_bytes());
            out.push(0);
        }
    }
    for c in &el.children {
        encode_node(c, lang, page, table, out);
    }
    out.push(token::END);
}
