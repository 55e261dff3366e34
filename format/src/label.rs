//! Fixed-width text fields: device class and version strings.

use core::fmt;

/// Bytes in every text field of the manifest.
pub const LABEL_LEN: usize = 32;

/// A short UTF-8 text stored NUL-padded in [`LABEL_LEN`] bytes.
///
/// Fixed width in memory lets a device keep labels in a stack buffer; on the
/// wire a label is its length and text (SPEC §2.2). 32 bytes holds any
/// reasonable device class or version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Label([u8; LABEL_LEN]);

/// Why a string cannot become a [`Label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// Longer than [`LABEL_LEN`] bytes of UTF-8.
    #[error("text is {len} bytes long, at most {LABEL_LEN} fit")]
    TooLong {
        /// Length of the text in bytes.
        len: usize,
    },
    /// Contains a NUL byte, which is the padding.
    #[error("text contains a NUL byte")]
    ContainsNul,
}

impl Label {
    /// The empty label (all NUL): "unspecified".
    pub const EMPTY: Label = Label([0; LABEL_LEN]);

    /// Makes a label from text of at most [`LABEL_LEN`] bytes without NUL.
    ///
    /// # Errors
    /// [`LabelError`] when the text does not fit or contains NUL.
    pub fn new(text: &str) -> Result<Self, LabelError> {
        let bytes = text.as_bytes();
        if bytes.len() > LABEL_LEN {
            return Err(LabelError::TooLong { len: bytes.len() });
        }
        if bytes.contains(&0) {
            return Err(LabelError::ContainsNul);
        }
        let mut out = [0u8; LABEL_LEN];
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = *b;
        }
        Ok(Label(out))
    }

    /// Checks raw field bytes: UTF-8 followed only by NUL padding.
    /// Returns `None` when the bytes are not a valid label.
    pub fn from_bytes(bytes: [u8; LABEL_LEN]) -> Option<Self> {
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(LABEL_LEN);
        let (text, pad) = bytes.split_at(len);
        if pad.iter().any(|&b| b != 0) || core::str::from_utf8(text).is_err() {
            return None;
        }
        Some(Label(bytes))
    }

    /// The raw field bytes, NUL-padded.
    pub fn as_bytes(&self) -> &[u8; LABEL_LEN] {
        &self.0
    }

    /// The text without padding.
    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(LABEL_LEN);
        // Labels are built only by `new` (from a &str) or `from_bytes`
        // (which checks UTF-8), so this never falls back.
        core::str::from_utf8(self.0.get(..len).unwrap_or(&[])).unwrap_or("")
    }

    /// True for the empty label.
    pub fn is_empty(&self) -> bool {
        self.0[0] == 0
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
