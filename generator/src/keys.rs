//! Signing keys on disk: PKCS#8 / SPKI PEM, the form OpenSSL reads and
//! writes (`openssl genpkey -algorithm ed25519` makes a usable key).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{Error, Result};

/// File name of the secret key `keygen` writes.
pub const SECRET_KEY_FILE: &str = "fota.key";
/// File name of the public key `keygen` writes.
pub const PUBLIC_KEY_FILE: &str = "fota.pub";

fn key_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Key {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Makes a new key pair in `dir` (created if missing): `fota.key` with mode
/// 0600 and `fota.pub`. Refuses to overwrite an existing key unless `force`,
/// since losing a signing key strands every device that trusts it.
///
/// # Errors
/// [`Error::Key`] if a key exists, [`Error::Io`] on write failure.
pub fn generate(dir: &Path, force: bool) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let secret_path = dir.join(SECRET_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    if !force {
        for p in [&secret_path, &public_path] {
            if p.exists() {
                return Err(key_error(p, "already exists; pass --force to replace it"));
            }
        }
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let secret_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| key_error(&secret_path, format!("cannot encode: {e}")))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_error(&public_path, format!("cannot encode: {e}")))?;
    write_file(&secret_path, secret_pem.as_bytes(), 0o600)?;
    write_file(&public_path, public_pem.as_bytes(), 0o644)?;
    Ok((secret_path, public_path))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(mode);
        let mut f = opts.open(path).map_err(Error::io(path))?;
        // `mode` applies only on creation; set it again for a replaced file.
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(Error::io(path))?;
        f.write_all(bytes).map_err(Error::io(path))?;
        f.sync_all().map_err(Error::io(path))
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut f = opts.open(path).map_err(Error::io(path))?;
        f.write_all(bytes).map_err(Error::io(path))?;
        f.sync_all().map_err(Error::io(path))
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    String::from_utf8(bytes).map_err(|_| key_error(path, "not a PEM file (not UTF-8 text)"))
}

/// Reads a secret key written by [`generate`] or OpenSSL.
///
/// # Errors
/// [`Error::Io`], or [`Error::Key`] when the file is not an Ed25519 PKCS#8 PEM key.
pub fn read_secret(path: &Path) -> Result<SigningKey> {
    SigningKey::from_pkcs8_pem(&read_text(path)?).map_err(|e| {
        key_error(
            path,
            format!("expected an Ed25519 private key in PKCS#8 PEM (\"BEGIN PRIVATE KEY\"): {e}"),
        )
    })
}

/// Reads a public key written by [`generate`] or OpenSSL.
///
/// # Errors
/// [`Error::Io`], or [`Error::Key`] when the file is not an Ed25519 SPKI PEM key.
pub fn read_public(path: &Path) -> Result<VerifyingKey> {
    VerifyingKey::from_public_key_pem(&read_text(path)?).map_err(|e| {
        key_error(
            path,
            format!("expected an Ed25519 public key in PEM (\"BEGIN PUBLIC KEY\"): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_read_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = generate(dir.path(), false).unwrap();
        let sk = read_secret(&s).unwrap();
        let pk = read_public(&p).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&s).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let err = generate(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        generate(dir.path(), true).unwrap();
        assert_ne!(read_public(&p).unwrap(), pk);
    }

    #[test]
    fn wrong_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = generate(dir.path(), false).unwrap();
        let err = read_public(&s).unwrap_err().to_string();
        assert!(
            err.contains("fota.key") && err.contains("public key"),
            "{err}"
        );
        let err = read_secret(&p).unwrap_err().to_string();
        assert!(
            err.contains("fota.pub") && err.contains("private key"),
            "{err}"
        );
        let junk = dir.path().join("junk");
        std::fs::write(&junk, [0xff, 0xfe]).unwrap();
        assert!(read_secret(&junk)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
    }
}
