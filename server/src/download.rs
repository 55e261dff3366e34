//! How the server answers a package download (RFC 9110 ranges and
//! validators, so a dropped transfer resumes where it stopped), the OMA
//! download descriptor, and the install-notify status a device posts
//! after downloading (OMA Download OTA 1.0 codes 900–954). Pure: no I/O.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// The media type of an OMA download descriptor.
pub const DD_CONTENT_TYPE: &str = "application/vnd.oma.dd+xml";

/// The descriptor's XML namespace.
pub const DD_NAMESPACE: &str = "http://www.openmobilealliance.org/xmlns/dd";

/// The longest install-notify body taken, in bytes.
pub const MAX_NOTIFY_LEN: usize = 1024;

/// A strong ETag for the package with this sha256: `"sha256-<64 hex>"`,
/// quotes included.
pub fn etag(sha256: &[u8; 32]) -> String {
    let mut s = String::with_capacity(73);
    s.push_str("\"sha256-");
    for b in sha256 {
        let _ = write!(s, "{b:02x}");
    }
    s.push('"');
    s
}

/// The request headers that decide the answer (raw field values).
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// A `HEAD` request: `Range` is ignored (RFC 9110 §14.2 defines range
    /// handling for GET only), the caller sends headers without a body.
    pub head: bool,
}

/// How to answer a download request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole package.
    Full,
    /// 304: the client's copy is current.
    NotModified,
    /// 206 with bytes `start..=end_inclusive` (never empty, within the
    /// package).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte.
        end_inclusive: u64,
    },
    /// 416: no requested range overlaps the package, or a range is invalid
    /// (last before first).
    Unsatisfiable,
}

impl Plan {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Plan::Full => 200,
            Plan::NotModified => 304,
            Plan::Partial { .. } => 206,
            Plan::Unsatisfiable => 416,
        }
    }

    /// The `Content-Range` value: `bytes s-e/len` for 206, `bytes */len`
    /// for 416, none otherwise.
    pub fn content_range(&self, len: u64) -> Option<String> {
        match self {
            Plan::Partial {
                start,
                end_inclusive,
            } => Some(format!("bytes {start}-{end_inclusive}/{len}")),
            Plan::Unsatisfiable => Some(format!("bytes */{len}")),
            Plan::Full | Plan::NotModified => None,
        }
    }

    /// The bytes of the package the body carries (for a HEAD request, the
    /// ones it would carry: its length is the Content-Length); none for
    /// 304 and 416.
    pub fn body_range(&self, len: u64) -> Option<std::ops::Range<u64>> {
        match self {
            Plan::Full => Some(0..len),
            Plan::Partial {
                start,
                end_inclusive,
            } => Some(*start..end_inclusive.saturating_add(1)),
            Plan::NotModified | Plan::Unsatisfiable => None,
        }
    }
}

/// Decides the answer for a package of `len` bytes whose current ETag is
/// `etag` (as [`etag`] makes it, quotes included), following RFC 9110
/// §13.2.2's order: `If-None-Match`, then `If-Range`, then `Range`.
///
/// - `If-None-Match` matching `etag` (weak comparison: `W/` is ignored),
///   in a comma list, or `*` → [`Plan::NotModified`]. A malformed list
///   matches nothing.
/// - `Range` is ignored for HEAD (§14.2: range handling is defined for GET
///   only), when missing, when its unit is not `bytes` (compared without
///   case) and when it is malformed (not `1#range-spec`) → [`Plan::Full`];
///   §14.2 lets a server ignore `Range`.
/// - `If-Range` that is not exactly `etag` (strong comparison, so a weak
///   tag never matches; an HTTP-date never matches since the package has
///   no Last-Modified) → [`Plan::Full`].
/// - One range: `bytes=a-b` (b clamped to `len-1`), `bytes=a-`, `bytes=-n`
///   (the last n bytes, the whole package when n ≥ len) → [`Plan::Partial`];
///   `a ≥ len`, `b < a`, `-0`, or any range of an empty package →
///   [`Plan::Unsatisfiable`].
/// - Several ranges (`bytes=0-1,5-6`): the whole package, 200 — §14.2
///   lets a server ignore `Range`, and it saves a multipart body a
///   resuming device never asks for; 416 when none is satisfiable or one
///   is invalid (§14.1.1, §15.5.17).
///
/// Numbers too large for a `u64` are still valid (`1*DIGIT` has no
/// bound): they saturate, so a huge last-pos means "to the end", a huge
/// suffix the whole package, a huge first-pos 416. Never panics.
pub fn plan(len: u64, etag: &str, req: &Request) -> Plan {
    if let Some(list) = req.if_none_match {
        if none_match(list, etag) {
            return Plan::NotModified;
        }
    }
    if req.head {
        return Plan::Full;
    }
    let Some(range) = req.range else {
        return Plan::Full;
    };
    if let Some(v) = req.if_range {
        if !if_range_matches(v, etag) {
            return Plan::Full;
        }
    }
    let Some(set) = bytes_range_set(range) else {
        return Plan::Full;
    };
    // One malformed element and the whole field is ignored.
    let mut count = 0usize;
    let mut first = None;
    let mut any_satisfiable = false;
    let mut any_invalid = false;
    for elem in set.split(',') {
        let elem = elem.trim_matches(is_ows);
        if elem.is_empty() {
            // Empty list elements are allowed (RFC 9110 §5.6.1.2).
            continue;
        }
        let Some(spec) = RangeSpec::parse(elem) else {
            return Plan::Full;
        };
        let resolved = spec.resolve(len);
        match resolved {
            Resolved::Range(..) => any_satisfiable = true,
            Resolved::Invalid => any_invalid = true,
            Resolved::Unsatisfiable => {}
        }
        count += 1;
        first.get_or_insert(resolved);
    }
    match first {
        None => Plan::Full,
        Some(Resolved::Range(start, end_inclusive)) if count == 1 => Plan::Partial {
            start,
            end_inclusive,
        },
        Some(_) if any_invalid || !any_satisfiable => Plan::Unsatisfiable,
        Some(_) => Plan::Full,
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The range set after `bytes=`, or none for another unit or no `=`.
fn bytes_range_set(range: &str) -> Option<&str> {
    let (unit, set) = range.trim_matches(is_ows).split_once('=')?;
    unit.eq_ignore_ascii_case("bytes").then_some(set)
}

#[derive(Debug, Clone, Copy)]
enum RangeSpec {
    /// `first-` or `first-last`.
    Int(u64, Option<u64>),
    /// `-n`.
    Suffix(u64),
}

#[derive(Debug, Clone, Copy)]
enum Resolved {
    Range(u64, u64),
    Unsatisfiable,
    Invalid,
}

/// `1*DIGIT`, saturating at `u64::MAX`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, c| {
        n.saturating_mul(10).saturating_add(u64::from(c - b'0'))
    }))
}

impl RangeSpec {
    fn parse(s: &str) -> Option<RangeSpec> {
        let (a, b) = s.split_once('-')?;
        if a.is_empty() {
            return digits(b).map(RangeSpec::Suffix);
        }
        let first = digits(a)?;
        let last = if b.is_empty() { None } else { Some(digits(b)?) };
        Some(RangeSpec::Int(first, last))
    }

    fn resolve(self, len: u64) -> Resolved {
        match self {
            RangeSpec::Int(first, Some(last)) if last < first => Resolved::Invalid,
            _ if len == 0 => Resolved::Unsatisfiable,
            RangeSpec::Int(first, _) if first >= len => Resolved::Unsatisfiable,
            RangeSpec::Int(first, last) => {
                Resolved::Range(first, last.map_or(len - 1, |l| l.min(len - 1)))
            }
            RangeSpec::Suffix(0) => Resolved::Unsatisfiable,
            RangeSpec::Suffix(n) => Resolved::Range(len - n.min(len), len - 1),
        }
    }
}

/// The entity tags of a `#entity-tag` list as `(weak, opaque-tag)`, or
/// none when the list is malformed.
fn entity_tags(list: &str) -> Option<Vec<(bool, &str)>> {
    let mut tags = Vec::new();
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches(|c: char| is_ows(c) || c == ',');
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, r) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let body = r.strip_prefix('"')?;
        let close = body.find('"')?;
        tags.push((weak, &r[..close + 2]));
        rest = &body[close + 1..];
        let after = rest.trim_start_matches(is_ows);
        if !after.is_empty() && !after.starts_with(',') {
            return None;
        }
    }
}

/// Whether `If-None-Match: list` matches `etag` (weak comparison).
fn none_match(list: &str, etag: &str) -> bool {
    if list.trim_matches(is_ows) == "*" {
        return true;
    }
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    entity_tags(list).is_some_and(|tags| tags.iter().any(|(_, t)| *t == ours))
}

/// Whether `If-Range: value` lets a range through (strong comparison).
fn if_range_matches(value: &str, etag: &str) -> bool {
    let v = value.trim_matches(is_ows);
    !etag.starts_with("W/") && v.starts_with('"') && v == etag
}

/// An OMA download descriptor (OMA Download OTA 1.0, `<media>` in
/// [`DD_NAMESPACE`], served as [`DD_CONTENT_TYPE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `name`: what the user is shown ("" when absent).
    pub name: String,
    /// `objectURI`: where the content is (mandatory).
    pub object_uri: String,
    /// `size` in bytes (mandatory).
    pub size: u64,
    /// `type`: the content's media type (mandatory; the first when there
    /// are several).
    pub content_type: String,
    /// `installNotifyURI`: where the device posts its status.
    pub install_notify_uri: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `vendor`.
    pub vendor: Option<String>,
    /// `DDVersion` ("1.0" when absent).
    pub dd_version: String,
    /// `installParam`: handed to the installer.
    pub install_param: Option<String>,
}

/// Why bytes are not a download descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// Not well-formed XML.
    #[error("download descriptor: malformed XML at byte {offset}: {detail}")]
    Xml {
        /// Byte offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// No root element at all.
    #[error(
        "download descriptor: no element in {len} bytes, expected <media xmlns=\"{DD_NAMESPACE}\">"
    )]
    NoRoot {
        /// The document's length.
        len: u64,
    },
    /// The root (or a second top-level element) is not the one `<media>`.
    #[error("download descriptor: element <{found}> at byte {offset}, expected a single root <media xmlns=\"{DD_NAMESPACE}\">")]
    Root {
        /// The element's name as written.
        found: String,
        /// Byte offset.
        offset: u64,
    },
    /// An element inside a text-only element.
    #[error("download descriptor: element <{found}> inside <{element}> at byte {offset}, expected text only")]
    Nested {
        /// The text-only element.
        element: &'static str,
        /// The element found in it.
        found: String,
        /// Byte offset of the inner element.
        offset: u64,
    },
    /// An element that may appear once appears again.
    #[error("download descriptor: second <{element}> at byte {offset} (first at byte {first}), expected one")]
    Duplicate {
        /// The element.
        element: &'static str,
        /// Byte offset of the second one.
        offset: u64,
        /// Byte offset of the first one.
        first: u64,
    },
    /// A mandatory element is missing.
    #[error("download descriptor: no <{element}> in <media> at byte {offset}, expected one (type, objectURI and size are mandatory)")]
    Missing {
        /// The element.
        element: &'static str,
        /// Byte offset of `<media>`.
        offset: u64,
    },
    /// An element's text is not valid (bad UTF-8 or escape).
    #[error("download descriptor: text of <{element}> at byte {offset}: {detail}")]
    Text {
        /// The element.
        element: &'static str,
        /// Byte offset of the element.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// `size` is not a byte count.
    #[error("download descriptor: <size> {found:?} at byte {offset}, expected a byte count (decimal digits, at most {max})", max = u64::MAX)]
    BadSize {
        /// The text.
        found: String,
        /// Byte offset of `<size>`.
        offset: u64,
    },
}

/// Whether XML 1.0 can carry `c` (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes text so that it reads back exactly: markup characters as
/// entities, tab/LF/CR always and spaces at either end as character
/// references (a reader trims and normalises literal whitespace), and
/// characters XML 1.0 cannot carry as U+FFFD.
fn escape_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    let lead = s.len() - s.trim_start_matches(' ').len();
    let trail_at = s.trim_end_matches(' ').len().max(lead);
    for (i, c) in s.char_indices() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' => o.push_str("&#9;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            ' ' if i < lead || i >= trail_at => o.push_str("&#32;"),
            c if !xml_char(c) => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// The descriptor elements this module reads.
const FIELDS: [&str; 9] = [
    "type",
    "objectURI",
    "size",
    "name",
    "DDVersion",
    "vendor",
    "description",
    "installNotifyURI",
    "installParam",
];

fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl Descriptor {
    /// The descriptor as an XML document (UTF-8), elements in the order
    /// `type`, `objectURI`, `size`, `name`, `DDVersion`, `vendor`,
    /// `description`, `installNotifyURI`, `installParam`, the optional
    /// ones when present. Every text is escaped so that [`Descriptor::parse`]
    /// gives it back exactly; characters XML 1.0 cannot carry (C0 controls
    /// other than tab, LF, CR; U+FFFE, U+FFFF) become U+FFFD.
    pub fn to_xml(&self) -> String {
        let mut x = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<media xmlns=\"{DD_NAMESPACE}\">\n"
        );
        let mut el = |name: &str, v: &str| {
            let _ = writeln!(x, "  <{name}>{}</{name}>", escape_text(v));
        };
        el("type", &self.content_type);
        el("objectURI", &self.object_uri);
        el("size", &self.size.to_string());
        el("name", &self.name);
        el("DDVersion", &self.dd_version);
        for (name, v) in [
            ("vendor", &self.vendor),
            ("description", &self.description),
            ("installNotifyURI", &self.install_notify_uri),
            ("installParam", &self.install_param),
        ] {
            if let Some(v) = v {
                el(name, v);
            }
        }
        x.push_str("</media>\n");
        x
    }

    /// Reads a descriptor: one root `<media>` in [`DD_NAMESPACE`] (or in
    /// no namespace); its children in that namespace named as in
    /// [`Descriptor::to_xml`] are text-only and, but for `type`, appear at
    /// most once; other elements (other OMA fields such as `nextURL`,
    /// extensions in other namespaces) are skipped. Text is trimmed of
    /// literal whitespace at either end.
    ///
    /// # Errors
    /// [`DescriptorError`], naming the element and its byte offset.
    pub fn parse(xml: &[u8]) -> Result<Descriptor, DescriptorError> {
        struct Open {
            element: &'static str,
            offset: u64,
            raw: String,
        }
        let mut r = NsReader::from_reader(xml);
        let mut buf = Vec::new();
        let mut depth = 0usize;
        let mut open_names: Vec<String> = Vec::new();
        let mut media_at: Option<u64> = None;
        let mut current: Option<Open> = None;
        let mut values: [Option<(String, u64)>; 9] = Default::default();
        loop {
            let offset = r.buffer_position();
            let ev = match r.read_event_into(&mut buf) {
                Ok(ev) => ev,
                Err(e) => {
                    return Err(DescriptorError::Xml {
                        offset: r.error_position(),
                        detail: e.to_string(),
                    })
                }
            };
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let empty = matches!(ev, Event::Empty(_));
                    let written = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    let (ns, local) = r.resolve_element(e.name());
                    let ours = match ns {
                        ResolveResult::Unbound => true,
                        ResolveResult::Bound(n) => n.as_ref() == DD_NAMESPACE.as_bytes(),
                        ResolveResult::Unknown(_) => false,
                    };
                    let local = local.as_ref();
                    if depth == 0 {
                        if media_at.is_some() || !ours || local != b"media" {
                            return Err(DescriptorError::Root {
                                found: written,
                                offset,
                            });
                        }
                        media_at = Some(offset);
                    } else if let Some(open) = &current {
                        return Err(DescriptorError::Nested {
                            element: open.element,
                            found: written,
                            offset,
                        });
                    } else if depth == 1 && ours {
                        if let Some(i) = FIELDS.iter().position(|f| f.as_bytes() == local) {
                            current = Some(Open {
                                element: FIELDS[i],
                                offset,
                                raw: String::new(),
                            });
                        }
                    }
                    if empty {
                        if depth == 1 {
                            if let Some(open) = current.take() {
                                store(&mut values, open.element, String::new(), open.offset)?;
                            }
                        }
                    } else {
                        depth += 1;
                        open_names.push(written);
                    }
                }
                Event::Text(t) => {
                    if let Some(open) = &mut current {
                        let s = std::str::from_utf8(&t).map_err(|e| DescriptorError::Text {
                            element: open.element,
                            offset: open.offset,
                            detail: format!("not UTF-8: {e}"),
                        })?;
                        open.raw.push_str(s);
                    }
                }
                Event::CData(t) => {
                    if let Some(open) = &mut current {
                        let s = std::str::from_utf8(&t).map_err(|e| DescriptorError::Text {
                            element: open.element,
                            offset: open.offset,
                            detail: format!("not UTF-8: {e}"),
                        })?;
                        // Kept literally: escaped so that trimming spares it.
                        for c in s.chars() {
                            match c {
                                ' ' => open.raw.push_str("&#32;"),
                                c => open.raw.push_str(&escape_text(c.encode_utf8(&mut [0; 4]))),
                            }
                        }
                    }
                }
                Event::End(_) => {
                    open_names.pop();
                    depth = depth.saturating_sub(1);
                    if depth == 1 {
                        if let Some(open) = current.take() {
                            let raw = open.raw.trim_matches(is_xml_ws);
                            let text = quick_xml::escape::unescape(raw).map_err(|e| {
                                DescriptorError::Text {
                                    element: open.element,
                                    offset: open.offset,
                                    detail: e.to_string(),
                                }
                            })?;
                            if let Some(c) = text.chars().find(|&c| !xml_char(c)) {
                                return Err(DescriptorError::Text {
                                    element: open.element,
                                    offset: open.offset,
                                    detail: format!(
                                        "character U+{:04X} is not allowed in XML 1.0",
                                        u32::from(c)
                                    ),
                                });
                            }
                            store(&mut values, open.element, text.into_owned(), open.offset)?;
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if let Some(name) = open_names.last() {
            return Err(DescriptorError::Xml {
                offset: xml.len() as u64,
                detail: format!("end of input inside <{name}>, expected </{name}>"),
            });
        }
        let Some(media_at) = media_at else {
            return Err(DescriptorError::NoRoot {
                len: xml.len() as u64,
            });
        };
        let mut take = |name: &str| {
            let i = FIELDS.iter().position(|f| *f == name).unwrap_or(0);
            values[i].take()
        };
        let missing = |element: &'static str| DescriptorError::Missing {
            element,
            offset: media_at,
        };
        let (content_type, _) = take("type").ok_or_else(|| missing("type"))?;
        let (object_uri, _) = take("objectURI").ok_or_else(|| missing("objectURI"))?;
        let (size_text, size_at) = take("size").ok_or_else(|| missing("size"))?;
        let size = match digits(&size_text).and_then(|_| size_text.parse::<u64>().ok()) {
            Some(n) => n,
            None => {
                return Err(DescriptorError::BadSize {
                    found: size_text,
                    offset: size_at,
                })
            }
        };
        let mut opt = |n: &str| take(n).map(|(v, _)| v);
        Ok(Descriptor {
            name: opt("name").unwrap_or_default(),
            dd_version: opt("DDVersion").unwrap_or_else(|| "1.0".into()),
            vendor: opt("vendor"),
            description: opt("description"),
            install_notify_uri: opt("installNotifyURI"),
            install_param: opt("installParam"),
            object_uri,
            size,
            content_type,
        })
    }
}

/// Records a field's value; a second one is an error (but for `type`,
/// whose first value wins).
fn store(
    values: &mut [Option<(String, u64)>; 9],
    element: &'static str,
    text: String,
    offset: u64,
) -> Result<(), DescriptorError> {
    let i = FIELDS.iter().position(|f| *f == element).unwrap_or(0);
    match &values[i] {
        Some(_) if element == "type" => Ok(()),
        Some((_, first)) => Err(DescriptorError::Duplicate {
            element,
            offset,
            first: *first,
        }),
        None => {
            values[i] = Some((text, offset));
            Ok(())
        }
    }
}

/// An install-notify status (OMA Download OTA 1.0, §9.1 status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstallStatus {
    /// 900 Success.
    Success,
    /// 901 Insufficient memory.
    InsufficientMemory,
    /// 902 User Cancelled.
    UserCancelled,
    /// 903 Loss of Service.
    LossOfService,
    /// 905 Attribute mismatch (size or type differ from the descriptor's).
    AttributeMismatch,
    /// 906 Invalid descriptor.
    InvalidDescriptor,
    /// 951 Invalid DDVersion.
    InvalidDdVersion,
    /// 952 Device Aborted.
    DeviceAborted,
    /// 953 Non-Acceptable Content.
    NonAcceptableContent,
    /// 954 Loader Error.
    LoaderError,
}

const STATUSES: [(InstallStatus, u16, &str); 10] = [
    (InstallStatus::Success, 900, "Success"),
    (
        InstallStatus::InsufficientMemory,
        901,
        "Insufficient memory",
    ),
    (InstallStatus::UserCancelled, 902, "User Cancelled"),
    (InstallStatus::LossOfService, 903, "Loss of Service"),
    (InstallStatus::AttributeMismatch, 905, "Attribute mismatch"),
    (InstallStatus::InvalidDescriptor, 906, "Invalid descriptor"),
    (InstallStatus::InvalidDdVersion, 951, "Invalid DDVersion"),
    (InstallStatus::DeviceAborted, 952, "Device Aborted"),
    (
        InstallStatus::NonAcceptableContent,
        953,
        "Non-Acceptable Content",
    ),
    (InstallStatus::LoaderError, 954, "Loader Error"),
];

impl InstallStatus {
    /// Every status, in code order.
    pub const ALL: [InstallStatus; 10] = [
        InstallStatus::Success,
        InstallStatus::InsufficientMemory,
        InstallStatus::UserCancelled,
        InstallStatus::LossOfService,
        InstallStatus::AttributeMismatch,
        InstallStatus::InvalidDescriptor,
        InstallStatus::InvalidDdVersion,
        InstallStatus::DeviceAborted,
        InstallStatus::NonAcceptableContent,
        InstallStatus::LoaderError,
    ];

    fn entry(self) -> (u16, &'static str) {
        // STATUSES is in the same order as ALL.
        let (_, code, meaning) = STATUSES[self as usize];
        (code, meaning)
    }

    /// The numeric code (900–954).
    pub fn code(self) -> u16 {
        self.entry().0
    }

    /// The status with this code, if the specification defines one.
    pub fn from_code(code: u16) -> Option<InstallStatus> {
        STATUSES.iter().find(|s| s.1 == code).map(|s| s.0)
    }

    /// The specification's status message ("Success", "Insufficient
    /// memory", ...); also the reason string used in reports.
    pub fn meaning(self) -> &'static str {
        self.entry().1
    }

    /// Whether the download succeeded (900).
    pub fn is_success(self) -> bool {
        self == InstallStatus::Success
    }
}

impl std::fmt::Display for InstallStatus {
    /// `"<code> <meaning>"`, e.g. `900 Success`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.meaning())
    }
}

/// Why an install-notify body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Longer than [`MAX_NOTIFY_LEN`].
    #[error("install notify: body of {len} bytes, expected at most {MAX_NOTIFY_LEN}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Not UTF-8 text.
    #[error("install notify: byte {offset} is not UTF-8, expected text \"<code> <message>\"")]
    NotText {
        /// The first bad byte.
        offset: usize,
    },
    /// Nothing but whitespace.
    #[error(
        "install notify: empty body, expected \"<code> <message>\" with a code 900-906 or 951-954"
    )]
    Empty,
    /// The first word is not a defined status code.
    #[error("install notify: status {found:?} at byte {offset}, expected one of 900, 901, 902, 903, 905, 906, 951, 952, 953, 954")]
    UnknownStatus {
        /// The first word (at most 32 characters of it).
        found: String,
        /// Its byte offset.
        offset: usize,
    },
}

/// Reads an install-notify body: `"<code> <message>"`, e.g. `900 Success`
/// (whitespace around it, such as a trailing newline, is dropped). The
/// code is exactly three digits; the message is the rest, trimmed, or the
/// status's [`InstallStatus::meaning`] when the device sent none.
///
/// # Errors
/// [`NotifyError`]: over [`MAX_NOTIFY_LEN`] bytes, not UTF-8, empty, or
/// an undefined code (904, 950, 999, text...).
pub fn parse_install_notify(body: &[u8]) -> Result<(InstallStatus, String), NotifyError> {
    if body.len() > MAX_NOTIFY_LEN {
        return Err(NotifyError::TooLong { len: body.len() });
    }
    let text = std::str::from_utf8(body).map_err(|e| NotifyError::NotText {
        offset: e.valid_up_to(),
    })?;
    let trimmed = text.trim_start();
    let offset = text.len() - trimmed.len();
    let trimmed = trimmed.trim_end();
    if trimmed.is_empty() {
        return Err(NotifyError::Empty);
    }
    let (code, message) = trimmed
        .split_once(char::is_whitespace)
        .unwrap_or((trimmed, ""));
    let status = (code.len() == 3 && code.bytes().all(|c| c.is_ascii_digit()))
        .then(|| code.parse::<u16>().ok())
        .flatten()
        .and_then(InstallStatus::from_code)
        .ok_or_else(|| NotifyError::UnknownStatus {
            found: code.chars().take(32).collect(),
            offset,
        })?;
    let message = message.trim();
    let message = if message.is_empty() {
        status.meaning().to_string()
    } else {
        message.to_string()
    };
    Ok((status, message))
}

/// The body a device posts for `status`: `"<code> <meaning>"`, e.g.
/// `900 Success`.
pub fn install_notify_body(status: InstallStatus) -> String {
    status.to_string()
}
