//! Is a webhook request really from the platform? Checked on the raw body before anything
//! parses it, and in constant time, so neither a forged payload nor response timing teaches
//! an attacker anything about the secret.
//!
//! Reasons returned on failure are for the log: they never contain the secret, the expected
//! signature or the one received.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::sign::SigningKey;

type HmacSha256 = Hmac<Sha256>;

/// How far a Standard Webhooks `webhook-timestamp` may be from our clock: the spec's
/// recommendation. A captured request replayed later than this is refused even when its
/// delivery id has been forgotten.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// `<prefix><hex HMAC-SHA256 of body>` in `header` (GitHub `X-Hub-Signature-256`, Bitbucket
/// `X-Hub-Signature`, both with prefix `sha256=`).
pub fn hex_hmac(
    header_name: &str,
    header: Option<&str>,
    secret: &[u8],
    body: &[u8],
) -> Result<(), String> {
    let value = header
        .ok_or_else(|| format!("no {header_name} header (is the secret set on the webhook?)"))?;
    let hex_sig = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or_else(|| format!("{header_name} is not of the form sha256=<hex>"))?;
    let sig = hex::decode(hex_sig)
        .map_err(|_| format!("{header_name} is not of the form sha256=<hex>"))?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| {
        format!("{header_name} does not match the body (wrong secret, or the body was changed)")
    })
}

/// GitLab's `X-Gitlab-Token`: the secret itself. Compared as SHA-256 digests so that even
/// the secret's length does not show in the timing.
pub fn gitlab_token(header: Option<&str>, secret: &str) -> Result<(), String> {
    let given = header.ok_or("no X-Gitlab-Token header and no webhook-signature (is the secret token set on the webhook?)")?;
    if equal_secrets(given, secret) {
        Ok(())
    } else {
        Err("X-Gitlab-Token does not match the secret".to_string())
    }
}

/// Constant-time equality of two secrets of any length.
pub fn equal_secrets(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// The headers of a Standard Webhooks signature (GitLab's signing token).
#[derive(Debug, Clone, Copy)]
pub struct StandardSignature<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: &'a str,
}

/// Standard Webhooks: `webhook-signature` holds one or more space-separated `v1,<base64>`
/// HMAC-SHA256 signatures of `"{webhook-id}.{webhook-timestamp}.{body}"`; any one matching
/// is enough (senders list several while rotating secrets). `now` is Unix seconds.
pub fn standard_webhooks(
    sig: StandardSignature<'_>,
    secret: &str,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let id = sig.id.ok_or("webhook-signature without webhook-id")?;
    let timestamp = sig
        .timestamp
        .ok_or("webhook-signature without webhook-timestamp")?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "webhook-timestamp is not Unix seconds".to_string())?;
    // abs_diff: hostile timestamps near i64::MIN must not overflow a subtraction.
    if now.abs_diff(sent) > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
        return Err(format!(
            "webhook-timestamp is {}s away from this machine's clock (at most {TIMESTAMP_TOLERANCE_SECS}s allowed): a replay, or a clock to fix",
            now.abs_diff(sent)
        ));
    }
    let expected = SigningKey::for_verifying(secret).mac(id, timestamp, body);
    let mut any = false;
    for candidate in sig.signature.split_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            continue;
        };
        // Every candidate is compared, so the answer's timing does not say which matched.
        any |= bool::from(given.ct_eq(expected.as_slice()));
    }
    if any {
        Ok(())
    } else {
        Err(
            "webhook-signature does not match (wrong signing token, or the body was changed)"
                .to_string(),
        )
    }
}

/// `Authorization: Bearer <token>` equal to `token`, in constant time.
pub fn bearer(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| {
        let (scheme, rest) = h.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }) else {
        return false;
    };
    equal_secrets(given, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed outside this code, with OpenSSL:
    //   printf '%s' '{"ref":"refs/heads/main"}' | openssl dgst -sha256 -hmac 'It'"'"'s a Secret to Everybody'
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;
    const BODY_HMAC: &str = "6a42699496d8c4fb346af1c930df527931a321e28ada69dbc5ee82f438517fd2";

    #[test]
    fn a_hex_hmac_computed_elsewhere_is_accepted() {
        let header = format!("sha256={BODY_HMAC}");
        assert_eq!(
            hex_hmac(
                "X-Hub-Signature-256",
                Some(&header),
                SECRET.as_bytes(),
                BODY
            ),
            Ok(())
        );
        // Upper-case hex is the same signature.
        let upper = format!("sha256={}", BODY_HMAC.to_uppercase());
        assert!(hex_hmac("X-Hub-Signature", Some(&upper), SECRET.as_bytes(), BODY).is_ok());
    }

    #[test]
    fn github_documents_this_signature_for_hello_world() {
        // The example in GitHub's "Validating webhook deliveries" page.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(hex_hmac(
            "X-Hub-Signature-256",
            Some(header),
            SECRET.as_bytes(),
            b"Hello, World!"
        )
        .is_ok());
    }

    #[test]
    fn a_changed_body_a_wrong_secret_or_a_bad_header_is_refused() {
        let header = format!("sha256={BODY_HMAC}");
        let mut changed = BODY.to_vec();
        changed[3] ^= 1;
        assert!(hex_hmac("X", Some(&header), SECRET.as_bytes(), &changed).is_err());
        assert!(hex_hmac("X", Some(&header), b"another secret", BODY).is_err());
        assert!(hex_hmac("X", None, SECRET.as_bytes(), BODY).is_err());
        assert!(hex_hmac("X", Some(BODY_HMAC), SECRET.as_bytes(), BODY).is_err());
        assert!(hex_hmac("X", Some("sha1=abcd"), SECRET.as_bytes(), BODY).is_err());
        assert!(hex_hmac("X", Some("sha256=zz"), SECRET.as_bytes(), BODY).is_err());
        assert!(hex_hmac("X", Some("sha256="), SECRET.as_bytes(), BODY).is_err());
    }

    #[test]
    fn failure_reasons_never_contain_the_secret_or_signatures() {
        let header = format!("sha256={BODY_HMAC}");
        let sent = "sent-token-7f3a";
        let reasons = [
            hex_hmac("X", Some(&header), sent.as_bytes(), BODY).unwrap_err(),
            gitlab_token(Some(sent), SECRET).unwrap_err(),
        ];
        for r in reasons {
            assert!(
                !r.contains(SECRET) && !r.contains(BODY_HMAC) && !r.contains(sent),
                "{r}"
            );
        }
    }

    #[test]
    fn gitlab_token_must_equal_the_secret() {
        assert!(gitlab_token(Some(SECRET), SECRET).is_ok());
        assert!(gitlab_token(Some("It's a Secret to Everybod"), SECRET).is_err());
        assert!(gitlab_token(Some(""), SECRET).is_err());
        assert!(gitlab_token(None, SECRET).is_err());
    }

    // Standard Webhooks: key = base64 "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" (the spec's example
    // secret), signed content "msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}".
    // Expected signature: the Standard Webhooks reference libraries' test vector, which
    // OpenSSL reproduces (`openssl dgst -sha256 -mac HMAC -macopt hexkey:<key> -binary`).
    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: &str = "1614265330";
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn sw(signature: &str) -> StandardSignature<'_> {
        StandardSignature {
            id: Some(SW_ID),
            timestamp: Some(SW_TS),
            signature,
        }
    }

    #[test]
    fn hostile_timestamps_at_the_ends_of_i64_are_refused_without_overflow() {
        for ts in [i64::MIN.to_string(), i64::MAX.to_string()] {
            let sig = StandardSignature {
                id: Some(SW_ID),
                timestamp: Some(&ts),
                signature: SW_SIG,
            };
            for now in [i64::MIN, 0, i64::MAX] {
                let e = standard_webhooks(sig, SW_SECRET, SW_BODY, now);
                if now.abs_diff(ts.parse().unwrap()) > 300 {
                    assert!(e.unwrap_err().contains("away from this machine's clock"));
                }
            }
        }
    }

    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        let now = 1_614_265_330;
        assert_eq!(
            standard_webhooks(sw(SW_SIG), SW_SECRET, SW_BODY, now),
            Ok(())
        );
        // Among several signatures (secret rotation), one match is enough.
        let several = format!("v1,bm90IGl0 {SW_SIG} v2,whatever");
        assert!(standard_webhooks(sw(&several), SW_SECRET, SW_BODY, now).is_ok());
    }

    #[test]
    fn standard_webhooks_refuses_changes_old_timestamps_and_missing_headers() {
        let now = 1_614_265_330;
        assert!(standard_webhooks(sw(SW_SIG), SW_SECRET, br#"{"test": 2432232315}"#, now).is_err());
        assert!(standard_webhooks(sw(SW_SIG), "whsec_bm90IHRoZSBrZXk=", SW_BODY, now).is_err());
        let late = now + TIMESTAMP_TOLERANCE_SECS + 1;
        let err = standard_webhooks(sw(SW_SIG), SW_SECRET, SW_BODY, late).unwrap_err();
        assert!(err.contains("clock"), "{err}");
        let mut no_id = sw(SW_SIG);
        no_id.id = None;
        assert!(standard_webhooks(no_id, SW_SECRET, SW_BODY, now).is_err());
        let mut no_ts = sw(SW_SIG);
        no_ts.timestamp = None;
        assert!(standard_webhooks(no_ts, SW_SECRET, SW_BODY, now).is_err());
        // A different id is a different signed message.
        let mut other_id = sw(SW_SIG);
        other_id.id = Some("msg_other");
        assert!(standard_webhooks(other_id, SW_SECRET, SW_BODY, now).is_err());
    }

    #[test]
    fn bearer_tokens_compare_whole_and_case_insensitive_scheme() {
        assert!(bearer(Some("Bearer s3cret"), "s3cret"));
        assert!(bearer(Some("bearer s3cret"), "s3cret"));
        assert!(!bearer(Some("Bearer s3cre"), "s3cret"));
        assert!(!bearer(Some("Basic s3cret"), "s3cret"));
        assert!(!bearer(Some("s3cret"), "s3cret"));
        assert!(!bearer(None, "s3cret"));
    }
}
