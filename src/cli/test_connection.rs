//! `scansync test-connection [INSTANCE]`: one cheap call per instance, one line each, and an
//! exit code that says which kind of problem the first failure was, for scripts and CI.

use super::Global;
use crate::config::{Config, InstanceConfig};
use crate::vendors::{self, VendorError};
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The instance to test [default: every instance in the config]
    pub instance: Option<String>,
}

/// Every instance answered.
pub const EXIT_OK: u8 = 0;
/// Anything without a code of its own (a 5xx after retries, an unexpected answer).
pub const EXIT_OTHER: u8 = 1;
/// 401/403: the token is wrong, expired or lacks permission.
pub const EXIT_TOKEN: u8 = 2;
/// The organization is unknown or not permitted.
pub const EXIT_ORGANIZATION: u8 = 3;
/// The URL does not reach the vendor's API (404 on its root, an HTML page, DNS failure).
pub const EXIT_URL: u8 = 4;
/// TLS handshake or certificate verification failed.
pub const EXIT_TLS: u8 = 5;
/// Connect failure or timeout.
pub const EXIT_NETWORK: u8 = 6;

/// The exit code for a failed connection test.
pub fn exit_code(err: &VendorError) -> u8 {
    match err {
        VendorError::TokenRejected { .. } => EXIT_TOKEN,
        VendorError::OrganizationRejected { .. } => EXIT_ORGANIZATION,
        VendorError::WrongUrl { .. } => EXIT_URL,
        // A non-JSON answer where the API should be is a URL pointing somewhere else.
        VendorError::Protocol { .. } => EXIT_URL,
        VendorError::Tls { .. } => EXIT_TLS,
        VendorError::Network { .. } => EXIT_NETWORK,
        VendorError::Http { .. }
        | VendorError::TargetNotFound { .. }
        | VendorError::ScanFailed { .. }
        | VendorError::IncompleteListing { .. } => EXIT_OTHER,
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let path = Config::resolve_path(global.config.as_deref());
    let config = Config::load(&path, crate::vendors::REGISTRY)?;
    let selected: Vec<(&String, &InstanceConfig)> = match &args.instance {
        Some(name) => vec![named_instance(&config, &path, name)?],
        None => config.instances.iter().collect(),
    };
    if selected.is_empty() {
        println!("no instances configured in {}", path.display());
        return Ok(EXIT_OK);
    }
    let width = selected.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut first_failure = None;
    // The store first: a daemon that cannot write its findings is not working either.
    let location = config.store.location.clone();
    match tokio::task::spawn_blocking(move || crate::store::Store::probe(&location)).await? {
        Ok(state) => println!(
            "ok   {:width$}  {}: {state}",
            "store", config.store.location
        ),
        Err(e) => {
            println!(
                "FAIL {:width$}  {}",
                "store",
                crate::display::clean(&e.to_string())
            );
            first_failure = Some(EXIT_OTHER);
        }
    }
    for (name, instance) in selected {
        let (line, code) = test_one(name, instance, width).await;
        // The line may quote the vendor's answer: escaped, it cannot drive the terminal.
        println!("{}", crate::display::clean(&line));
        if code != EXIT_OK && first_failure.is_none() {
            first_failure = Some(code);
        }
    }
    Ok(first_failure.unwrap_or(EXIT_OK))
}

/// The instance `name` of the config loaded from `path`, or an error naming the known ones.
pub(crate) fn named_instance<'c>(
    config: &'c Config,
    path: &Path,
    name: &str,
) -> anyhow::Result<(&'c String, &'c InstanceConfig)> {
    config.instances.get_key_value(name).ok_or_else(|| {
        let known: Vec<&str> = config.instances.keys().map(String::as_str).collect();
        anyhow::anyhow!(
            "no instance named \"{name}\" in {} (known: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    })
}

/// Tests one instance: the line to print and its exit code.
async fn test_one(name: &str, instance: &InstanceConfig, width: usize) -> (String, u8) {
    let vendor_name = instance.vendor.as_str();
    let connector = match vendors::connect(name, instance) {
        Ok(c) => c,
        Err(e) => return (format!("FAIL {name:width$}  {vendor_name} {e}"), EXIT_OTHER),
    };
    let url = connector.base_url().to_string();
    match connector.test_connection().await {
        Ok(()) => (format!("ok   {name:width$}  {vendor_name} {url}"), EXIT_OK),
        Err(e) => (
            format!("FAIL {name:width$}  {vendor_name} {url}: {e}"),
            exit_code(&e),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot loopback server answering every request with `status` and a JSON body.
    fn one_shot_server(status: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"error": true, "message": "Unauthorized"}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{addr}/ct")
    }

    #[tokio::test]
    async fn failing_instance_prints_one_fail_line_with_the_cause_and_its_code() {
        let url = one_shot_server("401 Unauthorized");
        let instance = InstanceConfig {
            vendor: "codethreat".into(),
            url: Some(url.clone()),
            organization: Some("acme".into()),
            resolved_token: Some(crate::secret::Secret::new("tok-never-shown")),
            ..Default::default()
        };
        let (line, code) = test_one("ct-cloud", &instance, 8).await;
        assert_eq!(code, EXIT_TOKEN);
        assert!(
            line.starts_with(&format!("FAIL ct-cloud  codethreat {url}: ")),
            "{line}"
        );
        assert!(line.contains("Settings → Access Token"), "{line}");
        assert!(!line.contains("tok-never-shown"), "{line}");
    }

    #[test]
    fn each_failure_kind_has_its_own_exit_code() {
        let url = || "https://x".to_string();
        let cases = [
            (
                VendorError::TokenRejected {
                    vendor: "v",
                    url: url(),
                    status: 401,
                    hint: "h",
                },
                2,
            ),
            (
                VendorError::OrganizationRejected {
                    vendor: "v",
                    url: url(),
                    organization: "o".into(),
                    status: 403,
                },
                3,
            ),
            (
                VendorError::WrongUrl {
                    vendor: "v",
                    url: url(),
                    detail: "d".into(),
                },
                4,
            ),
            (
                VendorError::Tls {
                    url: url(),
                    detail: "d".into(),
                },
                5,
            ),
            (
                VendorError::Network {
                    url: url(),
                    detail: "d".into(),
                },
                6,
            ),
            (
                VendorError::Http {
                    vendor: "v",
                    url: url(),
                    status: 503,
                    message: "m".into(),
                },
                1,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(exit_code(&err), code, "{err}");
        }
    }
}
