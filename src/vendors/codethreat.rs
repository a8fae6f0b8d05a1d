//! CodeThreat SAST. The contract: ../shared/vendors/codethreat.md.

use super::VendorSpec;
use crate::config::InstanceConfig;

pub const SPEC: VendorSpec = VendorSpec {
    name: "codethreat",
    validate,
    build: |_, _| todo!("vendor helper"),
};

/// CodeThreat has no regional default (cloud or self-hosted), and every request names the
/// organization, so both are required; `region` belongs to Salt Security.
fn validate(i: &InstanceConfig) -> Vec<String> {
    let mut errors = Vec::new();
    if i.url.is_none() {
        errors.push(
            "url: is required for codethreat (e.g. \"https://cloud.codethreat.com\")".to_string(),
        );
    }
    if i.organization
        .as_deref()
        .is_none_or(|o| o.trim().is_empty())
    {
        errors.push(
            "organization: is required for codethreat (the organization name, exactly as CodeThreat shows it)"
                .to_string(),
        );
    }
    if i.region.is_some() {
        errors.push("region: is a saltsecurity setting; codethreat takes url instead".to_string());
    }
    errors
}
