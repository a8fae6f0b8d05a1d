//! `scansync webhook-secret`: a new random secret for a scan's `webhook = { … }`, like the
//! "Generate" button next to a webhook's secret field.

use super::Global;
use base64::Engine as _;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print it as a Standard Webhooks signing token (`whsec_<base64>`), the form GitLab's
    /// "Signing token" field takes
    #[arg(long)]
    pub signing_token: bool,
}

/// Prints 32 bytes from the operating system's random source: URL-safe base64 without
/// padding (43 characters), or `whsec_` and standard base64 with `--signing-token`. Needs
/// no config file.
pub async fn run(_global: &Global, args: Args) -> anyhow::Result<u8> {
    println!("{}", new_secret(args.signing_token)?);
    Ok(0)
}

/// A new secret; see [`run`].
pub fn new_secret(signing_token: bool) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    Ok(if signing_token {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_32_bytes_of_url_safe_base64_and_new_each_time() {
        let a = new_secret(false).unwrap();
        let b = new_secret(false).unwrap();
        assert_eq!(a.len(), 43, "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&a)
                .unwrap()
                .len(),
            32
        );
        assert_ne!(a, b);
    }

    #[test]
    fn a_signing_token_is_whsec_and_standard_base64_of_32_bytes() {
        let t = new_secret(true).unwrap();
        let encoded = t.strip_prefix("whsec_").expect("whsec_ prefix");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap()
                .len(),
            32
        );
    }
}
