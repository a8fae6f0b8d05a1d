//! CodeThreat's small answers: a scan status answer (`read_status`: parse_json, map_status)
//! and the `x-ct-pager` header (`decode_pager`), each from the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scansync::vendors::codethreat::{decode_pager, read_status};
use scansync::vendors::ScanStatus;
use scansync_fuzz::responses;

fuzz_target!(|data: &[u8]| {
    for resp in responses(data, "http://ct/api/scan/status/s1", 1) {
        if let Ok(ScanStatus::Running { progress: Some(p) }) = read_status(&resp) {
            assert!(p <= 100, "progress {p} past 100");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(pager) = decode_pager(text) {
            assert!(
                pager.pages == 0 || !pager.id.is_empty(),
                "pages without an id"
            );
        }
    }
});
