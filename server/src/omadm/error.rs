//! Why bytes are not a SyncML DM message: one error type for the XML and
//! WBXML codecs, the message model and the notification, each variant with
//! the byte offset where the input went wrong.

/// The longest value an error message quotes; longer values are cut (an
/// attacker's megabyte of text should not end up in a log line).
const QUOTE_MAX: usize = 64;

/// A value as an error quotes it: at most [`QUOTE_MAX`] characters.
pub(crate) fn quote(value: &str) -> String {
    if value.chars().count() <= QUOTE_MAX {
        value.to_string()
    } else {
        let mut cut: String = value.chars().take(QUOTE_MAX).collect();
        cut.push('…');
        cut
    }
}

/// Why bytes are not a SyncML DM 1.2 message (or a notification).
///
/// Every variant names where in the input it went wrong: for XML the byte
/// offset of the element's start tag, for WBXML the offset of its token.
/// The caller answers such a message with an HTTP error and logs this text;
/// nothing of the message was acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not well-formed XML (or not UTF-8).
    #[error("SyncML: malformed XML at byte {offset}: {message}")]
    Xml {
        /// Byte offset of the error.
        offset: usize,
        /// The XML parser's message.
        message: String,
    },
    /// Not well-formed WBXML.
    #[error("SyncML: malformed WBXML at byte {offset}: {message}")]
    Wbxml {
        /// Byte offset of the offending byte.
        offset: usize,
        /// What was wrong.
        message: &'static str,
    },
    /// A WBXML tag token this code page does not define.
    #[error("SyncML: unknown WBXML tag token {token:#04x} on code page {page} at byte {offset}")]
    UnknownToken {
        /// Byte offset of the token.
        offset: usize,
        /// The code page in force.
        page: u8,
        /// The token (without its attribute and content bits).
        token: u8,
    },
    /// A WBXML document of another language.
    #[error("SyncML: WBXML public id {found} at byte {offset} is not {expected}")]
    PublicId {
        /// Byte offset of the public id.
        offset: usize,
        /// The public id found (number or string).
        found: String,
        /// The one expected.
        expected: &'static str,
    },
    /// The root element is not `SyncML`.
    #[error("SyncML: root element <{found}> at byte {offset}, expected <{expected}>")]
    WrongRoot {
        /// Byte offset of the element.
        offset: usize,
        /// The element found.
        found: String,
        /// The element expected.
        expected: &'static str,
    },
    /// An element that has no place there.
    #[error("SyncML: unexpected <{found}> at byte {offset} inside <{parent}>")]
    Unexpected {
        /// Byte offset of the element.
        offset: usize,
        /// The element found (`#text` for text).
        found: String,
        /// Where it was found.
        parent: String,
    },
    /// A required element is absent.
    #[error("SyncML: <{parent}> at byte {offset} has no <{missing}>")]
    Missing {
        /// Byte offset of the parent element.
        offset: usize,
        /// The parent element.
        parent: String,
        /// The element that must be there.
        missing: &'static str,
    },
    /// An element that may appear once appears again.
    #[error("SyncML: second <{element}> at byte {offset}")]
    Duplicate {
        /// Byte offset of the second occurrence.
        offset: usize,
        /// The element.
        element: String,
    },
    /// An element's text is not what the DTD allows.
    #[error("SyncML: <{element}> at byte {offset} holds {value:?}, expected {expected}")]
    BadValue {
        /// Byte offset of the element.
        offset: usize,
        /// The element.
        element: String,
        /// Its text (cut to 64 characters).
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// Text and elements mixed in one element (SyncML has no mixed content).
    #[error("SyncML: <{element}> at byte {offset} mixes text and elements")]
    MixedContent {
        /// Byte offset of the element.
        offset: usize,
        /// The element.
        element: String,
    },
    /// Elements nested deeper than any SyncML message needs.
    #[error("SyncML: elements nested deeper than {limit} at byte {offset}")]
    TooDeep {
        /// Byte offset of the element too deep.
        offset: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// Decoded text larger than the limit (WBXML string-table references
    /// can repeat one string many times).
    #[error("SyncML: decoded text passes {limit} bytes at byte {offset}")]
    TooLarge {
        /// Byte offset where the limit was passed.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// A SyncML command this implementation does not carry out (Sequence,
    /// Atomic, Sync, Map, ...).
    #[error("SyncML: unsupported command <{name}> at byte {offset}")]
    Unsupported {
        /// Byte offset of the command.
        offset: usize,
        /// The command.
        name: String,
    },
    /// The document ends before it is complete.
    #[error("SyncML: input ends at byte {offset} inside <{open}>")]
    Truncated {
        /// Where it ends.
        offset: usize,
        /// The element still open (or what was being read).
        open: String,
    },
    /// A `Content-Type` that is no SyncML DM form.
    #[error("SyncML: content type {found:?} is not a SyncML DM type")]
    ContentType {
        /// The content type received.
        found: String,
    },
}

impl Error {
    /// The byte offset the error points at (0 for a content type).
    pub fn offset(&self) -> usize {
        match self {
            Error::Xml { offset, .. }
            | Error::Wbxml { offset, .. }
            | Error::UnknownToken { offset, .. }
            | Error::PublicId { offset, .. }
            | Error::WrongRoot { offset, .. }
            | Error::Unexpected { offset, .. }
            | Error::Missing { offset, .. }
            | Error::Duplicate { offset, .. }
            | Error::BadValue { offset, .. }
            | Error::MixedContent { offset, .. }
            | Error::TooDeep { offset, .. }
            | Error::TooLarge { offset, .. }
            | Error::Unsupported { offset, .. }
            | Error::Truncated { offset, .. } => *offset,
            Error::ContentType { .. } => 0,
        }
    }
}
