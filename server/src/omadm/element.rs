//! A plain element tree: what the XML and WBXML codecs read and write.
//!
//! SyncML has neither attributes (the `xmlns` declarations aside) nor mixed
//! content, so an element is a name and either text or child elements. Both
//! codecs produce this tree, and one mapping (`message`) turns it into the
//! typed message, so XML and WBXML agree by construction.

/// The deepest nesting either codec accepts. A SyncML DM message nests
/// seven levels (SyncML, SyncBody, Status, Chal, Meta, NextNonce, text);
/// the limit leaves room and keeps recursion on the tree bounded.
pub const MAX_DEPTH: usize = 32;

/// One element: local name (namespace prefix dropped), text or children,
/// and the byte offset of its start in the input (0 when built in code).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The local name, e.g. `LocURI`.
    pub name: String,
    /// Child elements, in document order.
    pub children: Vec<Element>,
    /// The element's text (`None` when it has none, as in `<Final/>`).
    pub text: Option<String>,
    /// Byte offset of the start tag or tag token in the input.
    pub offset: usize,
}

impl Element {
    /// An element with no content.
    pub fn new(name: &str) -> Element {
        Element {
            name: name.to_string(),
            ..Element::default()
        }
    }

    /// An element holding `text`.
    pub fn with_text(name: &str, text: &str) -> Element {
        Element {
            name: name.to_string(),
            text: Some(text.to_string()),
            ..Element::default()
        }
    }

    /// Appends a child and returns `self`, for building trees in code.
    pub fn child(mut self, child: Element) -> Element {
        self.children.push(child);
        self
    }

    /// Appends a child when there is one.
    pub fn opt_child(mut self, child: Option<Element>) -> Element {
        if let Some(child) = child {
            self.children.push(child);
        }
        self
    }

    /// The element's text, or the empty string.
    pub fn text(&self) -> &str {
        self.text.as_deref().unwrap_or("")
    }
}
