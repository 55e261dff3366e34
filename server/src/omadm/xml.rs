//! SyncML DM messages as XML (`application/vnd.syncml.dm+xml`; real
//! clients also send `application/vnd.syncml+xml`).
//!
//! Reading goes bytes → [`Element`] tree → [`SyncMl`]; writing goes back the
//! same way. Namespace prefixes are dropped when read (`<m:Type>` is
//! `Type`), and attributes (the `xmlns` declarations) are ignored: SyncML
//! has no others. Meta information elements are written with
//! `xmlns="syncml:metinf"`, as the DM specification's examples and
//! libwbxml's `wbxml2xml` write them.
//!
//! Parsing never panics and refuses, with the byte offset: malformed XML,
//! text mixed with elements, nesting deeper than [`MAX_DEPTH`], anything
//! after the root element, and every structural error of the message model.

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::element::{Element, MAX_DEPTH};
use super::error::Error;
use super::message::{SyncMl, METINF_NS, SYNCML_NS};

/// Parses a SyncML DM message from XML bytes.
///
/// # Errors
/// [`Error::Xml`] for malformed XML, otherwise the structural errors of
/// [`SyncMl::from_element`]; each names its byte offset.
pub fn parse(bytes: &[u8]) -> Result<SyncMl, Error> {
    SyncMl::from_element(&parse_element(bytes)?)
}

/// Writes a message as XML (UTF-8, with an XML declaration, one element a
/// line, indented).
pub fn write(msg: &SyncMl) -> String {
    write_element(&msg.to_element())
}

fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

fn xml_error(reader: &Reader<&[u8]>, e: impl std::fmt::Display) -> Error {
    Error::Xml {
        offset: usize::try_from(reader.error_position()).unwrap_or(usize::MAX),
        message: e.to_string(),
    }
}

/// The local part of a possibly prefixed name.
fn local_name(raw: &[u8]) -> String {
    let local = match raw.iter().rposition(|&b| b == b':') {
        Some(i) => raw.get(i.saturating_add(1)..).unwrap_or_default(),
        None => raw,
    };
    String::from_utf8_lossy(local).into_owned()
}

/// Adds text to the innermost open element; between elements only white
/// space may stand, and it is dropped.
fn push_text(stack: &mut [Element], text: &str, offset: usize) -> Result<(), Error> {
    match stack.last_mut() {
        Some(el) => {
            if el.children.is_empty() {
                el.text.get_or_insert_with(String::new).push_str(text);
                Ok(())
            } else if text.trim().is_empty() {
                Ok(())
            } else {
                Err(Error::MixedContent {
                    offset,
                    element: el.name.clone(),
                })
            }
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(Error::Unexpected {
            offset,
            found: "#text".to_string(),
            parent: "the document".to_string(),
        }),
    }
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(stack: &mut [Element], root: &mut Option<Element>, el: Element) -> Result<(), Error> {
    match stack.last_mut() {
        Some(parent) => {
            match parent.text.take() {
                Some(t) if !t.trim().is_empty() => {
                    return Err(Error::MixedContent {
                        offset: el.offset,
                        element: parent.name.clone(),
                    })
                }
                _ => {}
            }
            parent.children.push(el);
            Ok(())
        }
        None => {
            *root = Some(el);
            Ok(())
        }
    }
}

/// Parses XML bytes into an element tree (no SyncML checks yet).
///
/// # Errors
/// [`Error::Xml`], [`Error::MixedContent`], [`Error::TooDeep`],
/// [`Error::Unexpected`] (a second root, or text outside the root) or
/// [`Error::Truncated`].
pub fn parse_element(bytes: &[u8]) -> Result<Element, Error> {
    let mut reader = Reader::from_reader(bytes);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let offset = position(&reader);
        let event = reader.read_event().map_err(|e| xml_error(&reader, e))?;
        match event {
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Start(ref s) | Event::Empty(ref s) => {
                let name = local_name(s.name().as_ref());
                if let Some(r) = &root {
                    return Err(Error::Unexpected {
                        offset,
                        found: name,
                        parent: format!("the end of the document (after <{}>)", r.name),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep {
                        offset,
                        limit: MAX_DEPTH,
                    });
                }
                // Attributes must at least be well-formed.
                for a in s.attributes() {
                    a.map_err(|e| xml_error(&reader, e))?;
                }
                let el = Element {
                    name,
                    children: Vec::new(),
                    text: None,
                    offset,
                };
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, el)?;
                } else {
                    stack.push(el);
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| xml_error(&reader, e))?;
                push_text(&mut stack, &text, offset)?;
            }
            Event::CData(t) => {
                let text = std::str::from_utf8(t.as_ref()).map_err(|e| Error::Xml {
                    offset,
                    message: e.to_string(),
                })?;
                push_text(&mut stack, text, offset)?;
            }
            Event::End(_) => match stack.pop() {
                Some(el) => close(&mut stack, &mut root, el)?,
                None => {
                    return Err(Error::Xml {
                        offset,
                        message: "end tag without a start tag".to_string(),
                    })
                }
            },
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(Error::Truncated {
            offset: position(&reader),
            open: open.name.clone(),
        });
    }
    root.ok_or_else(|| Error::Truncated {
        offset: position(&reader),
        open: "the document (no root element)".to_string(),
    })
}

/// Writes an element tree as an XML document. The root gets the SyncML 1.2
/// namespace when it is `SyncML`; children of `Meta` get the MetInf one.
pub fn write_element(root: &Element) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let ns = (root.name == "SyncML").then_some(SYNCML_NS);
    write_node(&mut out, root, 0, ns);
    out
}

fn write_node(out: &mut String, el: &Element, depth: usize, ns: Option<&str>) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    out.push('<');
    out.push_str(&el.name);
    if let Some(ns) = ns {
        out.push_str(" xmlns=\"");
        out.push_str(ns);
        out.push('"');
    }
    if el.children.is_empty() {
        match &el.text {
            None => out.push_str("/>\n"),
            Some(t) => {
                out.push('>');
                out.push_str(&escape(t.as_str()));
                out.push_str("</");
                out.push_str(&el.name);
                out.push_str(">\n");
            }
        }
        return;
    }
    out.push_str(">\n");
    let child_ns = (el.name == "Meta").then_some(METINF_NS);
    for c in &el.children {
        write_node(out, c, depth.saturating_add(1), child_ns);
    }
    for _ in 0..depth {
        out.push_str("  ");
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push_str(">\n");
}
