//! The one place that builds HTTP clients: TLS, CA, proxy, timeouts, retries, redaction.

use crate::config::InstanceConfig;

/// What the HTTP layer reports; connectors turn it into a [`crate::vendors::VendorError`].
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid HTTP client settings: {0}")]
    Setup(String),
}

/// A client bound to one instance's base URL (path prefix included), with its token header
/// redaction, timeouts and retry policy.
#[derive(Clone)]
pub struct HttpClient {}

impl HttpClient {
    pub fn for_instance(_instance: &InstanceConfig) -> Result<HttpClient, HttpError> {
        todo!("vendor helper")
    }
}
