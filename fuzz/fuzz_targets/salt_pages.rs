//! Salt Security envelopes: a sequence of answers through the gaps page loop and both
//! inventory walks (`walk_salt_pages`: parse_envelope, read_offset, GapListing, map_gap).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scansync::finding::Location;
use scansync::vendors::saltsecurity::walk_salt_pages;
use scansync_fuzz::{contains, responses};

const HOST: &str = "payments.example.com";

fuzz_target!(|data: &[u8]| {
    let answers = responses(data, "http://salt/v1/apigovern/posture/gaps", 64);
    let walk = walk_salt_pages(HOST, &answers);
    if let Ok(pages) = &walk.pages {
        assert!(pages.len() <= answers.len(), "read more pages than answers");
        let mut last = None;
        for ((offset, page), resp) in pages.iter().zip(&answers) {
            assert!(last < Some(*offset), "offset {offset} did not advance");
            last = Some(*offset);
            assert!(
                page.len() * 2 <= resp.body.len(),
                "more gaps than the body holds"
            );
            for f in page {
                assert!(
                    contains(&resp.body, f.raw.as_bytes()),
                    "raw is not the body's text"
                );
                if let Location::Api { host, .. } = &f.location {
                    assert!(
                        host.is_empty() || host.eq_ignore_ascii_case(HOST),
                        "a gap of another host ({host}) was kept"
                    );
                }
            }
        }
        if let Some((first, _)) = pages.first() {
            assert_eq!(*first, 0, "the walk starts at offset 0");
        }
    }
    // The walk that stops at the bound host reads a prefix of the pages the full walk reads.
    if let (Ok(all), Ok(to_bound)) = (&walk.all_hosts, &walk.hosts_to_bound) {
        assert!(
            to_bound.is_subset(all),
            "stopping early found hosts the full walk did not"
        );
    }
});
