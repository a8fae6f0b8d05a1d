//! The Standard Webhooks signature (<https://www.standardwebhooks.com>, symmetric scheme).
//!
//! Each request carries `webhook-id`, `webhook-timestamp` (unix seconds of this attempt) and
//! `webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`. The id
//! and the body stay the same across retries; the timestamp (and so the signature) is that
//! of each attempt, which is what lets receivers refuse replays of old requests.
//!
//! # The key
//! - A secret written `whsec_<base64>` (the spec's serialization, and what the Standard
//!   Webhooks libraries expect) is base64-decoded: the key is the decoded bytes.
//! - Any other secret is used as it is: the key is the secret's UTF-8 bytes, so a receiver
//!   can check with `openssl dgst -sha256 -hmac "$secret"`. (The reference libraries would
//!   base64-decode such a secret instead; with them, use a `whsec_` secret, or hand them the
//!   raw bytes.)
//!
//! The key only ever lives in a [`SigningKey`], whose `Debug` prints `[redacted]`.

use crate::secret::Secret;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The prefix of a secret in the spec's serialization.
pub const WHSEC_PREFIX: &str = "whsec_";
/// The spec asks for at least 24 random bytes; shorter keys are accepted with a warning.
pub const RECOMMENDED_KEY_BYTES: usize = 24;

/// The HMAC key of one webhook.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// The key for a configured secret (see the module docs). The error never contains the
    /// secret.
    pub fn from_secret(secret: &Secret) -> Result<SigningKey, String> {
        let text = secret.expose();
        let key = match text.strip_prefix(WHSEC_PREFIX) {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| {
                    "starts with whsec_ but the rest is not valid base64; a whsec_ secret is \
                     whsec_ followed by the base64 of random bytes (e.g. \
                     `echo \"whsec_$(openssl rand -base64 32)\"`)"
                        .to_string()
                })?,
            None => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err("is empty".to_string());
        }
        Ok(SigningKey(key))
    }

    /// How many bytes the key has (for the "shorter than recommended" warning).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key of a secret as a receiver takes it: like [`SigningKey::from_secret`], except
    /// that a `whsec_` secret whose rest does not decode is used as plain text (the sender
    /// decides what it signed with; refusing here would only hide the mismatch).
    pub fn for_verifying(secret: &str) -> SigningKey {
        SigningKey::from_secret(&Secret::new(secret))
            .unwrap_or_else(|_| SigningKey(secret.as_bytes().to_vec()))
    }

    /// HMAC-SHA256 over `"{msg_id}.{timestamp}.{body}"`: what a signature carries, for the
    /// signer and for the listener's check of GitLab's signing tokens alike.
    pub fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 over "id.timestamp.body">`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, &timestamp.to_string(), body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of the Standard Webhooks reference libraries' own signing test.
    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let key = SigningKey::from_secret(&Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"))
            .unwrap();
        assert_eq!(
            key.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    /// A plain secret is used as its UTF-8 bytes; the expected value comes from
    /// `printf 'msg_1.1700000000.{"a":1}' | openssl dgst -sha256 -hmac Jefe -binary | base64`,
    /// the receiver recipe of the README.
    #[test]
    fn a_plain_secret_is_used_as_its_bytes() {
        let key = SigningKey::from_secret(&Secret::new("Jefe")).unwrap();
        assert_eq!(
            key.sign("msg_1", 1700000000, b"{\"a\":1}"),
            "v1,d0RJKx1I1gWj34NuiszgvZNnbDFFnv95Rn8tyEgvdd8="
        );
        assert_eq!(key.len(), 4);
    }

    #[test]
    fn a_broken_whsec_secret_is_refused_without_echoing_it() {
        let err = SigningKey::from_secret(&Secret::new("whsec_not*base64!")).unwrap_err();
        assert!(err.contains("not valid base64"), "{err}");
        assert!(!err.contains("not*base64"), "{err}");
        assert!(SigningKey::from_secret(&Secret::new("whsec_")).is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = SigningKey::from_secret(&Secret::new("hunter2-hunter2")).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
    }
}
