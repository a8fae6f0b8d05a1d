//! CodeThreat SAST. The contract: ../shared/vendors/codethreat.md.

use super::VendorSpec;

pub const SPEC: VendorSpec = VendorSpec {
    name: "codethreat",
    validate: |_| todo!("vendor helper"),
    build: |_, _| todo!("vendor helper"),
};
