//! The Mender device API (the subset mender-client 3.4 uses), the
//! documents and checks only; the HTTP side is `http::mender`. What the
//! client does on the wire, observed, is in `server/CLIENTS.md`.
//!
//! ```text
//! POST /api/devices/v1/authentication/auth_requests          signed identity → token
//! PUT  /api/devices/v1/inventory/device/attributes           inventory (also PATCH)
//! POST /api/devices/v2/deployments/device/deployments/next   the update (v1 POST and GET too)
//! PUT  /api/devices/v1/deployments/device/deployments/{id}/status
//! PUT  /api/devices/v1/deployments/device/deployments/{id}/log
//! GET  /api/devices/v1/deployments/download/{update}/{file}  the artifact (Range; no token)
//! ```

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

/// Why a Mender document or request was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Mender {document}: {what}")]
pub struct MenderError {
    /// Which document.
    pub document: &'static str,
    /// What was expected.
    pub what: String,
}

fn bad(document: &'static str, what: impl Into<String>) -> MenderError {
    MenderError {
        document,
        what: what.into(),
    }
}

/// A device's authentication request, checked against its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The identity data as canonical JSON (keys sorted), the registry's
    /// key for the device.
    pub identity: String,
    /// The public key (PEM) the request is signed with.
    pub pubkey: String,
}

/// Smallest RSA key taken (mender-client makes 3072-bit ones).
const MIN_RSA_BITS: usize = 2048;

impl AuthRequest {
    /// Parses `body` and checks `signature` (the `X-MEN-Signature` header,
    /// base64) over its exact bytes with the key it carries: RSA PKCS#1
    /// v1.5 with SHA-256, or Ed25519 over the body itself.
    ///
    /// # Errors
    /// [`MenderError`] for a body that is not the expected JSON, an
    /// identity that is not a JSON object, a key of another kind or under
    /// 2048 bits, or a signature that does not verify.
    pub fn verify(body: &[u8], signature: &str) -> Result<AuthRequest, MenderError> {
        let doc = "auth request";
        let v: Value = serde_json::from_slice(body).map_err(|e| bad(doc, format!("JSON ({e})")))?;
        let id_data = v["id_data"]
            .as_str()
            .ok_or_else(|| bad(doc, "id_data, a string of JSON"))?;
        let pubkey = v["pubkey"]
            .as_str()
            .ok_or_else(|| bad(doc, "pubkey, a PEM public key"))?;
        let identity = canonical_identity(id_data)?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| bad(doc, "X-MEN-Signature in base64"))?;
        verify_signature(pubkey, body, &sig)?;
        Ok(AuthRequest {
            identity,
            pubkey: pubkey.to_string(),
        })
    }
}

/// `id_data` as canonical JSON: an object with its keys sorted, values
/// strings or lists of strings as the client sends them.
///
/// # Errors
/// [`MenderError`] when it is not a non-empty JSON object.
pub fn canonical_identity(id_data: &str) -> Result<String, MenderError> {
    let doc = "identity";
    let map: BTreeMap<String, Value> =
        serde_json::from_str(id_data).map_err(|e| bad(doc, format!("a JSON object ({e})")))?;
    if map.is_empty() {
        return Err(bad(doc, "at least one attribute"));
    }
    serde_json::to_string(&map).map_err(|e| bad(doc, e.to_string()))
}

fn verify_signature(pubkey: &str, body: &[u8], sig: &[u8]) -> Result<(), MenderError> {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    use rsa::traits::PublicKeyParts;
    let doc = "auth request";
    if let Ok(key) = rsa::RsaPublicKey::from_public_key_pem(pubkey) {
        if key.size() * 8 < MIN_RSA_BITS {
            return Err(bad(
                doc,
                format!("an RSA key of at least {MIN_RSA_BITS} bits"),
            ));
        }
        let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key);
        let sig =
            rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| bad(doc, "an RSA signature"))?;
        return verifier.verify(body, &sig).map_err(|_| {
            bad(
                doc,
                "X-MEN-Signature: RSA PKCS#1 v1.5 SHA-256 over the body, by the key it carries",
            )
        });
    }
    if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(pubkey) {
        let sig = ed25519_dalek::Signature::from_slice(sig)
            .map_err(|_| bad(doc, "an Ed25519 signature of 64 bytes"))?;
        return key.verify_strict(body, &sig).map_err(|_| {
            bad(
                doc,
                "X-MEN-Signature: Ed25519 over the body, by the key it carries",
            )
        });
    }
    Err(bad(
        doc,
        "pubkey: an RSA or Ed25519 public key in PEM (\"BEGIN PUBLIC KEY\")",
    ))
}

/// What a status report says (`{"status": …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fetching the artifact.
    Downloading,
    /// Installing it.
    Installing,
    /// Rebooting into it.
    Rebooting,
    /// Running it, committed.
    Success,
    /// Failed (a log follows).
    Failure,
    /// The device already runs this artifact.
    AlreadyInstalled,
    /// Paused by an update control map.
    Pause,
}

impl Status {
    /// Parses a status body.
    ///
    /// # Errors
    /// [`MenderError`] for a body without a known `status`.
    pub fn parse(body: &[u8]) -> Result<Status, MenderError> {
        let doc = "status";
        let v: Value = serde_json::from_slice(body).map_err(|e| bad(doc, format!("JSON ({e})")))?;
        Ok(match v["status"].as_str() {
            Some("downloading") => Status::Downloading,
            Some("installing") => Status::Installing,
            Some("rebooting") => Status::Rebooting,
            Some("success") => Status::Success,
            Some("failure") => Status::Failure,
            Some("already-installed") => Status::AlreadyInstalled,
            Some(s) if s.starts_with("pause") => Status::Pause,
            _ => return Err(bad(
                doc,
                "status downloading, installing, rebooting, success, failure or already-installed",
            )),
        })
    }

    /// The Mender name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Downloading => "downloading",
            Status::Installing => "installing",
            Status::Rebooting => "rebooting",
            Status::Success => "success",
            Status::Failure => "failure",
            Status::AlreadyInstalled => "already-installed",
            Status::Pause => "pause",
        }
    }
}

/// A device's inventory: attribute names and values (lists joined by ", ").
///
/// # Errors
/// [`MenderError`] for a body that is not a list of `{name, value}`.
pub fn parse_inventory(body: &[u8]) -> Result<BTreeMap<String, String>, MenderError> {
    let doc = "inventory";
    let v: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| bad(doc, format!("a JSON list of {{name, value}} ({e})")))?;
    v.iter()
        .map(|a| {
            let name = a["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad(doc, "a name in every attribute"))?;
            let value = match &a["value"] {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            Ok((name.to_string(), value))
        })
        .collect()
}

/// The error messages of a deployment log (`{"messages": [{level, message, …}]}`).
///
/// # Errors
/// [`MenderError`] for a body without a `messages` list.
pub fn log_errors(body: &[u8]) -> Result<Vec<String>, MenderError> {
    let doc = "deployment log";
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(doc, format!("JSON ({e})")))?;
    let messages = v["messages"]
        .as_array()
        .ok_or_else(|| bad(doc, "a messages list"))?;
    Ok(messages
        .iter()
        .filter(|m| m["level"] == "error")
        .filter_map(|m| m["message"].as_str())
        .map(|m| m.chars().take(1024).collect())
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_canonical() {
        let a = canonical_identity(r#"{"serial":"SN-1","mac":"02:00:00:00:00:01"}"#).unwrap();
        let b = canonical_identity(r#"{"mac":"02:00:00:00:00:01","serial":"SN-1"}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, r#"{"mac":"02:00:00:00:00:01","serial":"SN-1"}"#);
        assert!(canonical_identity("{}").is_err());
        assert!(canonical_identity("[1]").is_err());
    }

    #[test]
    fn ed25519_requests_verify_and_changed_ones_do_not() {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let body = serde_json::to_vec(&serde_json::json!({
            "id_data": "{\"mac\":\"02:00:00:00:00:01\"}", "tenant_token": "", "pubkey": pem,
        }))
        .unwrap();
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(&body).to_bytes());
        let r = AuthRequest::verify(&body, &sig).unwrap();
        assert_eq!(r.identity, r#"{"mac":"02:00:00:00:00:01"}"#);
        let mut changed = body.clone();
        changed[12] ^= 1;
        assert!(AuthRequest::verify(&changed, &sig).is_err());
        assert!(AuthRequest::verify(&body, "not base64!")
            .unwrap_err()
            .what
            .contains("base64"));
    }

    #[test]
    fn documents_of_the_client() {
        assert_eq!(
            Status::parse(b"{\"status\":\"installing\"}\n").unwrap(),
            Status::Installing
        );
        assert!(Status::parse(b"{\"status\":\"exploded\"}").is_err());
        let inv = parse_inventory(
            br#"[{"name":"artifact_name","value":"1.0.0"},{"name":"ip","value":["a","b"]}]"#,
        )
        .unwrap();
        assert_eq!(
            (inv["artifact_name"].as_str(), inv["ip"].as_str()),
            ("1.0.0", "a, b")
        );
        assert!(parse_inventory(br#"[{"value":"x"}]"#).is_err());
        let errors = log_errors(br#"{"messages":[{"level":"info","message":"a"},{"level":"error","message":"fota flash: source image sha256 differs"}]}"#).unwrap();
        assert_eq!(errors, ["fota flash: source image sha256 differs"]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = AuthRequest::verify(&body, "AAAA");
            let _ = Status::parse(&body);
            let _ = parse_inventory(&body);
            let _ = log_errors(&body);
        }
    }
}
