//! Salt Security API security. The contract: ../shared/vendors/saltsecurity.md.

use super::VendorSpec;

pub const SPEC: VendorSpec = VendorSpec {
    name: "saltsecurity",
    validate: |_| todo!("vendor helper"),
    build: |_, _| todo!("vendor helper"),
};
