//! The JSON body of a notification, in the Standard Webhooks shape `{type, timestamp, data}`.
//!
//! ```json
//! {"type": "findings.new", "timestamp": "2026-03-01T12:00:00.000Z",
//!  "data": {"scan": "web", "vendor": "codethreat", "instance": "ct", "bind_to": "shop",
//!           "branch": "main", "run_id": 7, "state": "succeeded", "error": null,
//!           "started_at": "…", "finished_at": "…",
//!           "counts": {"seen": 10, "new": 2, "open": 8, "reopened": 0, "fixed": 1, "pages": 1},
//!           "findings": [ …at most 100, worst first… ], "more": 0}}
//! ```
//!
//! - `timestamp` is when the run finished (the event), not when this attempt was sent (that
//!   is the `webhook-timestamp` header).
//! - `counts` are the whole run's counters; `findings` are the findings of this event type
//!   that pass the webhook's filters, each the object `scansync findings --format json`
//!   prints, worst severity first; `more` says how many matching findings did not fit.
//! - `run.failed` carries the run's `state` (`failed` or `timed_out`) and `error`, with an
//!   empty `findings` list.
//!
//! Composed once, inside the transaction that ends the run, and stored as text: every
//! retry sends the same bytes.

use crate::config::EventType;
use crate::store::MAX_FINDINGS;
use crate::store::{FindingRow, RunRow};
use serde_json::{json, Value};

/// [`compose`] as the text the store writes to the outbox (a `store::NotificationBody`).
pub fn body(
    event: EventType,
    run: &RunRow,
    at: &str,
    findings: &[FindingRow],
    total: u64,
) -> String {
    compose(event, run, at, findings, total).to_string()
}

/// The body of a notification about `run`. `findings` are the matching findings, worst
/// first (only the first [`MAX_FINDINGS`] are used); `total` is how many matched in all.
pub fn compose(
    event: EventType,
    run: &RunRow,
    at: &str,
    findings: &[FindingRow],
    total: u64,
) -> Value {
    let listed: Vec<Value> = findings
        .iter()
        .take(MAX_FINDINGS)
        .map(|row| Value::Object(crate::export::finding_json(row, false, false)))
        .collect();
    let more = total.max(findings.len() as u64) - listed.len() as u64;
    json!({
        "type": event.as_str(),
        "timestamp": at,
        "data": {
            "scan": run.scan,
            "vendor": run.vendor,
            "instance": run.instance,
            "bind_to": run.bind_to,
            "branch": run.branch,
            "run_id": run.id,
            "state": run.state.as_str(),
            "error": run.error,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "counts": run.counts,
            "findings": listed,
            "more": more,
        }
    })
}

/// The body of `scansync webhook test NAME`.
pub fn ping(webhook: &str, at: &str) -> Value {
    json!({
        "type": EventType::Ping.as_str(),
        "timestamp": at,
        "data": {
            "webhook": webhook,
            "message": "test notification from `scansync webhook test`",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, Location, Severity};
    use crate::store::{FindingState, RunCounts, RunState};

    fn run() -> RunRow {
        RunRow {
            id: 42,
            scan: "web".into(),
            instance: "ct".into(),
            vendor: "codethreat".into(),
            bind_to: "shop".into(),
            branch: Some("main".into()),
            trigger: "schedule".into(),
            state: RunState::Succeeded,
            vendor_scan_id: None,
            started_at: "2026-03-01T12:00:00.000Z".into(),
            finished_at: Some("2026-03-01T12:05:00.000Z".into()),
            counts: RunCounts {
                seen: 250,
                new: 250,
                ..RunCounts::default()
            },
            error: None,
        }
    }

    fn row(n: usize) -> FindingRow {
        FindingRow {
            id: n as i64,
            fingerprint: format!("fp{n:04}"),
            scan: "web".into(),
            instance: "ct".into(),
            vendor: "codethreat".into(),
            bind_to: "shop".into(),
            state: FindingState::New,
            finding: Finding {
                vendor_id: None,
                title: format!("Problem {n}"),
                severity: Severity::High,
                vendor_status: None,
                cwe: None,
                owasp: None,
                rule_id: None,
                location: Location::Code {
                    path: "src/a.rs".into(),
                    start_line: Some(3),
                    end_line: None,
                },
                description: Some("a long description that is not sent".into()),
                remediation: None,
                vendor_url: None,
                vendor_first_seen: None,
                vendor_last_seen: None,
                raw: "{\"secret_field\":1}".into(),
                verdict: None,
            },
            first_seen: "2026-03-01T12:04:00.000Z".into(),
            last_seen: "2026-03-01T12:04:00.000Z".into(),
            times_seen: 1,
            triage: Default::default(),
        }
    }

    #[test]
    fn lists_at_most_100_findings_and_counts_the_rest_in_more() {
        let rows: Vec<FindingRow> = (0..250).map(row).collect();
        let body = compose(EventType::FindingsNew, &run(), "T", &rows, 250);
        let listed = body["data"]["findings"].as_array().unwrap();
        assert_eq!(listed.len(), 100);
        assert_eq!(body["data"]["more"], 150);
        assert_eq!(listed[0]["fingerprint"], "fp0000");
        assert_eq!(listed[99]["fingerprint"], "fp0099");
    }

    #[test]
    fn a_caller_that_fetched_only_the_first_100_still_gets_the_right_more() {
        let rows: Vec<FindingRow> = (0..100).map(row).collect();
        let body = compose(EventType::FindingsNew, &run(), "T", &rows, 1000);
        assert_eq!(body["data"]["findings"].as_array().unwrap().len(), 100);
        assert_eq!(body["data"]["more"], 900);
    }

    #[test]
    fn few_findings_are_all_listed_with_more_zero() {
        let rows: Vec<FindingRow> = (0..3).map(row).collect();
        let body = compose(EventType::FindingsFixed, &run(), "T", &rows, 3);
        assert_eq!(body["data"]["findings"].as_array().unwrap().len(), 3);
        assert_eq!(body["data"]["more"], 0);
    }

    #[test]
    fn carries_type_timestamp_and_the_run_in_data() {
        let body = compose(
            EventType::FindingsNew,
            &run(),
            "2026-03-01T12:05:00.000Z",
            &[row(1)],
            1,
        );
        assert_eq!(body["type"], "findings.new");
        assert_eq!(body["timestamp"], "2026-03-01T12:05:00.000Z");
        let data = &body["data"];
        for (key, want) in [
            ("scan", json!("web")),
            ("vendor", json!("codethreat")),
            ("instance", json!("ct")),
            ("run_id", json!(42)),
            ("state", json!("succeeded")),
        ] {
            assert_eq!(data[key], want, "{key}");
        }
        assert_eq!(data["counts"]["new"], 250);
        let finding = &data["findings"][0];
        assert_eq!(finding["severity"], "high");
        assert_eq!(finding["location"], "src/a.rs:3");
        // A summary, not the whole record: no description, no vendor payload.
        assert!(finding.get("description").is_none());
        assert!(finding.get("raw").is_none());
        // The triage travels with it (null when there is none).
        for key in ["triage_reason", "triage_by", "triage_until"] {
            assert_eq!(finding.get(key), Some(&Value::Null), "{key}");
        }
    }

    #[test]
    fn run_failed_carries_state_and_error_and_no_findings() {
        let mut failed = run();
        failed.state = RunState::TimedOut;
        failed.error = Some("the run exceeded the scan's timeout of 7200s".into());
        let body = compose(EventType::RunFailed, &failed, "T", &[], 0);
        assert_eq!(body["type"], "run.failed");
        assert_eq!(body["data"]["state"], "timed_out");
        assert_eq!(
            body["data"]["error"],
            "the run exceeded the scan's timeout of 7200s"
        );
        assert_eq!(body["data"]["findings"], json!([]));
        assert_eq!(body["data"]["more"], 0);
    }

    #[test]
    fn ping_names_the_webhook() {
        let body = ping("siem", "T");
        assert_eq!(body["type"], "ping");
        assert_eq!(body["data"]["webhook"], "siem");
    }
}
