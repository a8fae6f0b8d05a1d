//! Salt Security API security. The contract: ../shared/vendors/saltsecurity.md.

use super::VendorSpec;
use crate::config::InstanceConfig;

pub const SPEC: VendorSpec = VendorSpec {
    name: "saltsecurity",
    validate,
    build: |_, _| todo!("vendor helper"),
};

/// Salt Security tenants live in a region (or behind an explicit URL); there is no
/// organization header in its API.
fn validate(i: &InstanceConfig) -> Vec<String> {
    let mut errors = Vec::new();
    match (&i.region, &i.url) {
        (Some(_), Some(_)) => {
            errors.push("region: give either region or url for saltsecurity, not both".to_string())
        }
        (None, None) => errors.push(
            "region: saltsecurity needs region = \"us\" or \"eu\" (or an explicit url)".to_string(),
        ),
        (Some(r), None) if r != "us" && r != "eu" => errors.push(format!(
            "region: \"{r}\" is not a Salt Security region (\"us\" or \"eu\")"
        )),
        _ => {}
    }
    if i.organization.is_some() {
        errors.push(
            "organization: is a codethreat setting; saltsecurity has no organization".to_string(),
        );
    }
    errors
}
