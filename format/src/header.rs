//! The fixed package header: magic, version, lengths, key id and signature.

use crate::bytes::{Reader, Writer};
use crate::error::{Error, Result};
use crate::manifest::{MAX_MANIFEST_LEN, MIN_MANIFEST_LEN};

/// First eight bytes of every package. 0x89 and 0x1A catch 7-bit and text
/// transfers, CR LF catches line-ending conversion (the PNG trick).
pub const MAGIC: [u8; 8] = *b"\x89FOTA\r\n\x1a";

/// The format version of hash-chained packages ([`OpAuth::Chain`]). Version
/// 2 has the compact framing (varint manifest and op heads); the
/// fixed-record version 1 was a draft withdrawn before any release.
pub const FORMAT_VERSION: u16 = 2;

/// The format version of packages whose signature covers their ops
/// ([`OpAuth::Signature`]): version 2's framing without op hashes.
pub const FORMAT_VERSION_SIGNED_OPS: u16 = 3;

/// How a package authenticates its ops, which its format version says
/// (SPEC §6): a header field at a fixed offset, so an applier knows what
/// the signature covers before it reads anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpAuth {
    /// Version 2: a hash chain. The manifest carries op 0's sha256 and each
    /// op but the last its successor's, so an applier checks every op as it
    /// streams it, keeping 32 bytes of state; the package need not be
    /// stored first.
    Chain,
    /// Version 3: the signature also covers the sha256 of the whole op
    /// section, and no op hash is on the wire (32 bytes fewer per op: the
    /// manifest's chain head and each op's link). An applier reads the op section
    /// once to check it before it writes anything, and again to apply it.
    /// A/B packages only: their target slot is checked whole before it is
    /// used, so bytes changed between the two reads cannot get further.
    Signature,
}

impl OpAuth {
    /// The format version that carries this authentication.
    pub const fn version(self) -> u16 {
        match self {
            OpAuth::Chain => FORMAT_VERSION,
            OpAuth::Signature => FORMAT_VERSION_SIGNED_OPS,
        }
    }

    /// The authentication of a format version this crate implements.
    pub fn of_version(version: u16) -> Option<OpAuth> {
        match version {
            FORMAT_VERSION => Some(OpAuth::Chain),
            FORMAT_VERSION_SIGNED_OPS => Some(OpAuth::Signature),
            _ => None,
        }
    }
}

/// Length of the signed part of the header (magic to `ops_len`).
pub const SIGNED_HEADER_LEN: usize = 24;

/// Total header length: signed part, key id and signature.
pub const HEADER_LEN: usize = SIGNED_HEADER_LEN + 8 + 64;

/// The package header. Its first [`SIGNED_HEADER_LEN`] bytes are covered by
/// the signature together with the manifest; the key id is only a hint for
/// choosing among trusted keys, so altering it can only make the check fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How the ops are authenticated: the format version.
    pub op_auth: OpAuth,
    /// Length of the manifest that follows the header (from
    /// [`MIN_MANIFEST_LEN`] to [`MAX_MANIFEST_LEN`]).
    pub manifest_len: u32,
    /// Total length of the op section that follows the manifest.
    pub ops_len: u64,
    /// First eight bytes of sha256 of the signing public key.
    pub key_id: [u8; 8],
    /// Ed25519ph signature, see [`crate::sign`].
    pub signature: [u8; 64],
}

impl Header {
    /// Parses the header from the first [`HEADER_LEN`] bytes of a package.
    ///
    /// # Errors
    /// `Truncated`, `BadMagic`, `UnsupportedVersion`, `BadLength` (a header
    /// length other than 96 or a manifest length out of bounds).
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        let mut r = Reader::new(bytes, 0);
        let magic: [u8; 8] = r.array("magic")?;
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = r.u16("format version")?;
        let op_auth = OpAuth::of_version(version).ok_or(Error::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION_SIGNED_OPS,
        })?;
        let header_len = r.u16("header length")?;
        if usize::from(header_len) != HEADER_LEN {
            return Err(Error::BadLength {
                offset: 10,
                what: "header length",
                expected: HEADER_LEN as u64,
                found: header_len.into(),
            });
        }
        let manifest_len = r.u32("manifest length")?;
        let bound = match manifest_len as usize {
            n if n < MIN_MANIFEST_LEN => Some((
                MIN_MANIFEST_LEN,
                "manifest length (at least the shortest manifest)",
            )),
            n if n > MAX_MANIFEST_LEN => Some((
                MAX_MANIFEST_LEN,
                "manifest length (at most the longest manifest)",
            )),
            _ => None,
        };
        if let Some((bound, what)) = bound {
            return Err(Error::BadLength {
                offset: 12,
                what,
                expected: bound as u64,
                found: manifest_len.into(),
            });
        }
        let ops_len = r.u64("op section length")?;
        let key_id = r.array("key id")?;
        let signature = r.array("signature")?;
        Ok(Header {
            op_auth,
            manifest_len,
            ops_len,
            key_id,
            signature,
        })
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = Writer::new(&mut out);
        w.bytes(&MAGIC);
        w.u16(self.op_auth.version());
        w.u16(HEADER_LEN as u16);
        w.u32(self.manifest_len);
        w.u64(self.ops_len);
        w.bytes(&self.key_id);
        w.bytes(&self.signature);
        debug_assert_eq!(w.written(), HEADER_LEN);
        out
    }

    /// Offset of the op section from the start of the package.
    pub fn ops_offset(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.manifest_len)
    }

    /// Total package length this header announces.
    pub fn package_len(&self) -> Option<u64> {
        self.ops_offset().checked_add(self.ops_len)
    }
}
