//! Signing and verifying the header and manifest (and in format version 3
//! the op section, by its sha256).
//!
//! The signature is Ed25519ph (RFC 8032, SHA-512 prehash) with the context
//! [`SIGNATURE_CONTEXT`], over the signed header bytes followed by the
//! manifest and, in version 3, the sha256 of the op section. The prehash lets a device verify while streaming with a few
//! hundred bytes of state; the context string keeps a signature made for a
//! package from being valid for anything else signed with the same key.

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256, Sha512};

use crate::error::{Error, Result};
use crate::header::SIGNED_HEADER_LEN;

/// Domain-separation context of package signatures. Named for the first
/// draft and kept in version 2: the format version is among the signed
/// bytes, so a signature never verifies across versions.
pub const SIGNATURE_CONTEXT: &[u8] = b"fota-package-v1";

/// The prehash of the signed bytes: signed header, then manifest, then
/// (format version 3, [`crate::OpAuth::Signature`]) the op section's
/// sha256. The version is among the signed header bytes, so a version-2
/// signature never covers an op hash and a version-3 one always does.
pub fn signed_digest(
    signed_header: &[u8; SIGNED_HEADER_LEN],
    manifest: &[u8],
    ops_sha256: Option<&[u8; 32]>,
) -> Sha512 {
    let mut h = Sha512::new();
    h.update(signed_header);
    h.update(manifest);
    if let Some(ops) = ops_sha256 {
        h.update(ops);
    }
    h
}

/// Key id of a public key: the first eight bytes of its sha256.
pub fn key_id(key: &VerifyingKey) -> [u8; 8] {
    let digest = Sha256::digest(key.as_bytes());
    let mut id = [0u8; 8];
    for (o, b) in id.iter_mut().zip(digest.iter()) {
        *o = *b;
    }
    id
}

/// Signs the header and manifest bytes, and the op section's sha256 when
/// given (format version 3).
pub fn sign(
    key: &SigningKey,
    signed_header: &[u8; SIGNED_HEADER_LEN],
    manifest: &[u8],
    ops_sha256: Option<&[u8; 32]>,
) -> [u8; 64] {
    let digest = signed_digest(signed_header, manifest, ops_sha256);
    #[allow(clippy::expect_used)]
    key.sign_prehashed(digest, Some(SIGNATURE_CONTEXT))
        .expect("only a context over 255 bytes fails, and ours is a 15-byte constant")
        .to_bytes()
}

/// The trusted key whose id is `key_id`: an applier can refuse a package
/// of an unknown signer before it reads more than the header.
///
/// # Errors
/// `UnknownKey` when no trusted key has that id.
pub fn trusted_key(trusted: &[VerifyingKey], key_id: [u8; 8]) -> Result<&VerifyingKey> {
    trusted
        .iter()
        .find(|k| self::key_id(k) == key_id)
        .ok_or(Error::UnknownKey { key_id })
}

/// Verifies `signature` with the trusted key whose id is `key_id`, over
/// the bytes [`signed_digest`] takes.
///
/// # Errors
/// `UnknownKey` when no trusted key has that id; `BadSignature` when the
/// signature does not verify (strictly: non-canonical signatures and weak
/// keys are refused).
pub fn verify(
    trusted: &[VerifyingKey],
    key_id_in_package: [u8; 8],
    signature: &[u8; 64],
    signed_header: &[u8; SIGNED_HEADER_LEN],
    manifest: &[u8],
    ops_sha256: Option<&[u8; 32]>,
) -> Result<()> {
    let key = trusted_key(trusted, key_id_in_package)?;
    let sig = Signature::from_bytes(signature);
    key.verify_prehashed_strict(
        signed_digest(signed_header, manifest, ops_sha256),
        Some(SIGNATURE_CONTEXT),
        &sig,
    )
    .map_err(|_| Error::BadSignature)
}
