//! OMA-DM 1.2 (SyncML DM) and FUMO: the message model, its XML and WBXML
//! forms, client and server authentication, and the session logic, all
//! pure (bytes in, typed messages out). See `oma-dm.md` in the design notes.
//!
//! | module | concept |
//! |---|---|
//! | [`message`] | the typed SyncML DM 1.2 message |
//! | [`xml`], [`wbxml`] | its two wire forms, over one [`element`] tree |
//! | [`auth`] | DM 1.2 security: MD5 digest, basic, HMAC, nonces, challenges |
//! | [`fumo`] | FUMO alert codes, Generic Alert types, result codes, reports |
//! | [`session`] | the server's and the client's side of a DM session |
//! | [`notification`] | the server-initiated "package #0" |
//!
//! [`decode`] and [`encode`] pick the wire form from the HTTP content type.

pub mod auth;
pub mod element;
pub mod error;
pub mod fumo;
pub mod message;
pub mod notification;
pub mod session;
pub mod wbxml;
pub mod xml;

pub use error::Error;
pub use message::SyncMl;

/// The DM 1.2 content type of XML messages.
pub const CONTENT_TYPE_XML: &str = "application/vnd.syncml.dm+xml";
/// The DM 1.2 content type of WBXML messages.
pub const CONTENT_TYPE_WBXML: &str = "application/vnd.syncml.dm+wbxml";
/// The SyncML (DS-style) XML type that real DM clients also send.
pub const CONTENT_TYPE_SYNCML_XML: &str = "application/vnd.syncml+xml";
/// The SyncML (DS-style) WBXML type that real DM clients also send.
pub const CONTENT_TYPE_SYNCML_WBXML: &str = "application/vnd.syncml+wbxml";

/// The two wire forms of a SyncML DM message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// XML text.
    Xml,
    /// WBXML (binary XML).
    Wbxml,
}

impl Encoding {
    /// The form a `Content-Type` names: the DM types and the plain SyncML
    /// ones, parameters (`; charset=utf-8`) ignored.
    ///
    /// # Errors
    /// [`Error::ContentType`] for any other type.
    pub fn from_content_type(content_type: &str) -> Result<Encoding, Error> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            CONTENT_TYPE_XML | CONTENT_TYPE_SYNCML_XML => Ok(Encoding::Xml),
            CONTENT_TYPE_WBXML | CONTENT_TYPE_SYNCML_WBXML => Ok(Encoding::Wbxml),
            _ => Err(Error::ContentType {
                found: error::quote(content_type),
            }),
        }
    }

    /// The DM 1.2 content type of this form.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Xml => CONTENT_TYPE_XML,
            Encoding::Wbxml => CONTENT_TYPE_WBXML,
        }
    }
}

/// Parses a message in the form its `Content-Type` names.
///
/// # Errors
/// [`Error::ContentType`], or the parse errors of [`xml::parse`] and
/// [`wbxml::parse`].
pub fn decode(body: &[u8], content_type: &str) -> Result<SyncMl, Error> {
    match Encoding::from_content_type(content_type)? {
        Encoding::Xml => xml::parse(body),
        Encoding::Wbxml => wbxml::parse(body),
    }
}

/// Writes a message in the given form.
pub fn encode(msg: &SyncMl, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Xml => xml::write(msg).into_bytes(),
        Encoding::Wbxml => wbxml::write(msg),
    }
}
