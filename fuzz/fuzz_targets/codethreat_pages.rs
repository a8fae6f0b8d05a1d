//! CodeThreat issues listing: a sequence of answers (first body with its `x-ct-pager`
//! header, then the further pages) through the connector's page loop
//! (`walk_issue_pages`: parse_issues, map_issue, page_digest, decode_pager, IssueListing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scansync::vendors::codethreat::walk_issue_pages;
use scansync_fuzz::{contains, responses};

fuzz_target!(|data: &[u8]| {
    let answers = responses(data, "http://ct/api/scanlog/issues", 64);
    let Ok((pages, _whole)) = walk_issue_pages(&answers) else {
        return;
    };
    assert!(pages.len() <= answers.len(), "read more pages than answers");
    for (page, resp) in pages.iter().zip(&answers) {
        // Every issue is a JSON value of at least two bytes of its body, kept verbatim.
        assert!(
            page.len() * 2 <= resp.body.len(),
            "more issues than the body holds"
        );
        for f in page {
            assert!(
                contains(&resp.body, f.raw.as_bytes()),
                "raw is not the body's text"
            );
            assert!(!f.title.is_empty(), "a finding without a title");
        }
    }
});
