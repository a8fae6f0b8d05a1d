//! A webhook request, as the listener's handler reads it once the body is in: the
//! platform's signature check (`server::verify_signature`), then the event, the pushed refs
//! and the delivery id (`server::platform`), then the branch patterns (`glob`).
//!
//! Input: one flag byte (platform = byte % 3; bit 2 set: the harness signs the body with
//! the secret as the platform would), then `header lines NUL secret NUL body`. A check
//! written independently here must agree with the product's on every request: no forged
//! signature accepted, no genuine one refused.
#![no_main]

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use scansync::config::Platform;
use scansync::server::platform::{self, Change};
use scansync::server::{glob, verify_signature};
use scansync::sign::SigningKey;
use scansync_fuzz::headers;
use sha2::Sha256;

/// The listener's clock, fixed so that a run is repeatable.
const NOW: i64 = 1_764_590_400;

fn hmac_sha256(secret: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn text<'h>(h: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// What the platform's documentation says a genuine request carries.
fn genuine(platform: Platform, h: &http::HeaderMap, secret: &str, body: &[u8]) -> bool {
    let hex_sig = |name| {
        text(h, name)
            .and_then(|v| v.trim().strip_prefix("sha256="))
            .and_then(|hex_sig| hex::decode(hex_sig).ok())
            .is_some_and(|sig| sig == hmac_sha256(secret.as_bytes(), body))
    };
    match platform {
        Platform::Github => hex_sig("X-Hub-Signature-256"),
        Platform::Bitbucket => hex_sig("X-Hub-Signature"),
        Platform::Gitlab => match text(h, "webhook-signature") {
            None => text(h, "X-Gitlab-Token") == Some(secret),
            Some(signatures) => {
                let (Some(id), Some(ts)) = (text(h, "webhook-id"), text(h, "webhook-timestamp"))
                else {
                    return false;
                };
                let fresh = ts
                    .trim()
                    .parse::<i64>()
                    .is_ok_and(|sent| NOW.abs_diff(sent) <= 300);
                let mac = SigningKey::for_verifying(secret).mac(id, ts, body);
                fresh
                    && signatures.split_whitespace().any(|c| {
                        c.strip_prefix("v1,")
                            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                            .is_some_and(|given| given == mac)
                    })
            }
        },
    }
}

/// Signs the request as the platform would, when what it sends can be a header of visible
/// ASCII (the listener reads headers as such: a GitLab token with other characters is never
/// accepted, and this harness does not claim it would be).
fn sign(platform: Platform, h: &mut http::HeaderMap, secret: &str, body: &[u8]) -> bool {
    let set =
        |h: &mut http::HeaderMap, name: &'static str, value: String| match HeaderValue::from_str(
            &value,
        ) {
            Ok(v) if v.to_str().is_ok() => {
                h.insert(name, v);
                true
            }
            _ => false,
        };
    let hex_sig = || {
        format!(
            "sha256={}",
            hex::encode(hmac_sha256(secret.as_bytes(), body))
        )
    };
    match platform {
        Platform::Github => set(h, "x-hub-signature-256", hex_sig()),
        Platform::Bitbucket => set(h, "x-hub-signature", hex_sig()),
        Platform::Gitlab if h.contains_key("webhook-signature") => {
            let id = text(h, "webhook-id").unwrap_or("msg_fuzz").to_string();
            set(h, "webhook-id", id.clone())
                && set(h, "webhook-timestamp", NOW.to_string())
                && set(
                    h,
                    "webhook-signature",
                    SigningKey::for_verifying(secret).sign(&id, NOW, body),
                )
        }
        Platform::Gitlab => set(h, "x-gitlab-token", secret.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let platform = Platform::ALL[usize::from(flags % 3)];
    let mut parts = rest.splitn(3, |&b| b == 0);
    let (head, secret, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    // Secrets come from a config file or an environment variable: text.
    let Ok(secret) = std::str::from_utf8(secret) else {
        return;
    };
    let mut h = headers(head);
    let signed = flags & 4 != 0 && sign(platform, &mut h, secret, body);

    let verdict = verify_signature(platform, &h, secret, body, NOW);
    assert_eq!(
        verdict.is_ok(),
        genuine(platform, &h, secret, body),
        "{platform:?}: the product's check and the reference disagree: {verdict:?}"
    );
    if signed {
        assert!(
            verdict.is_ok(),
            "a genuinely signed request was refused: {verdict:?}"
        );
    }

    // The parsers run only on signed requests in production; here on every body, since a
    // sender holding the secret is a stranger too.
    let _ = platform::event(platform, &h);
    if let Some(id) = platform::delivery_id(platform, &h) {
        assert!(
            !id.is_empty() && id.chars().count() <= 200,
            "delivery id unbounded"
        );
    }
    if let Ok(changes) = platform::changes(platform, body) {
        assert!(changes.len() <= body.len(), "more refs than bytes");
        let patterns = [
            "main".to_string(),
            "release/*".to_string(),
            "**".to_string(),
        ];
        for change in changes {
            if let Change::Branch(b) = change {
                glob::matches_any(&patterns, &b);
            }
        }
    }
});
