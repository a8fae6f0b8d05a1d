//! HTTPS for the listener: a rustls server config from the PEM files `[server]` names.
//! Config validation calls [`check_files`] so that a bad certificate is an exit-78 error
//! with its field and line, not a failure at start-up.

use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Which of the two files a problem is with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

/// Reads both files and builds the config, discarding it: the check validation runs.
pub fn check_files(cert: &Path, key: &Path) -> Result<(), (TlsFile, String)> {
    server_config(cert, key).map(|_| ())
}

/// The server config: TLS 1.2 and 1.3 with rustls' safe defaults (ring provider, the one
/// reqwest already brings), HTTP/1.1 by ALPN.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, (TlsFile, String)> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            (
                TlsFile::Cert,
                format!(
                    "cannot read a PEM certificate chain from {}: {e}",
                    cert.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err((
            TlsFile::Cert,
            format!(
                "{} holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
                cert.display()
            ),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        (
            TlsFile::Key,
            format!("cannot read a PEM private key from {}: {e}", key.display()),
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| (TlsFile::Cert, format!("TLS setup failed: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, private_key)
    .map_err(|e| {
        (
            TlsFile::Key,
            format!(
                "{} does not fit the certificate in {}: {e}",
                key.display(),
                cert.display()
            ),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM bundle (a private CA for an outgoing connection); an error in
/// words when the file cannot be read or holds none.
pub fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read PEM certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn the_test_certificate_and_key_make_a_config() {
        assert!(check_files(&fixture("server.pem"), &fixture("server.key")).is_ok());
    }

    #[test]
    fn swapped_missing_or_mismatched_files_name_the_file_at_fault() {
        let (which, msg) = check_files(&fixture("server.key"), &fixture("server.key")).unwrap_err();
        assert_eq!(which, TlsFile::Cert, "{msg}");
        let (which, _) = check_files(&fixture("server.pem"), &fixture("missing.key")).unwrap_err();
        assert_eq!(which, TlsFile::Key);
        let (which, _) = check_files(&fixture("missing.pem"), &fixture("server.key")).unwrap_err();
        assert_eq!(which, TlsFile::Cert);
        // The CA's certificate with the server's key: a key that does not fit.
        let (which, msg) = check_files(&fixture("ca.pem"), &fixture("server.key")).unwrap_err();
        assert_eq!(which, TlsFile::Key, "{msg}");
    }
}
