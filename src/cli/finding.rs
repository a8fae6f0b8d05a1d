//! `scansync finding ID|FINGERPRINT`: one finding in full and its history, the page an
//! operator reads before triaging it (and after, to see who did what and why).

use super::runs::{open_store, OutputFormat};
use super::{table, Global};
use crate::config::StoreLocation;
use crate::display::clean;
use crate::store::{FindingDetail, FindingEvent};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The finding: its id (the ID column of `findings`), its fingerprint, or at least 8
    /// hex digits of it
    #[arg(value_name = "ID|FINGERPRINT")]
    pub key: String,
    /// The scan, when the fingerprint is in several
    #[arg(long, value_name = "NAME")]
    pub scan: Option<String>,
    /// table, or json (one object with the finding's fields, its triage and its history)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Read this store instead of the config's [store]: a SQLite file, or a postgres:// url
    /// (password from $PGPASSWORD)
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub store: Option<StoreLocation>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let store = open_store(global, args.store.as_ref())?;
    let id = store.resolve_finding(&args.key, args.scan.as_deref())?;
    let detail = store
        .finding_detail(id)?
        .ok_or_else(|| anyhow::anyhow!("finding {id} disappeared while it was read"))?;
    let text = match args.format {
        OutputFormat::Json => format!("{}\n", detail_json(&detail)),
        OutputFormat::Table => detail_text(&detail),
    };
    let mut out = std::io::stdout().lock();
    super::findings::ignore_broken_pipe(out.write_all(text.as_bytes()).and_then(|()| out.flush()))?;
    Ok(0)
}

/// The JSON of `finding --format json`: the export's full finding object (`raw` included),
/// a `triage` object and the `history`, oldest first.
pub fn detail_json(d: &FindingDetail) -> Value {
    let r = &d.row;
    let mut m = crate::export::finding_json(r, true, true);
    let f = &r.finding;
    m.insert("vendor_id".into(), json!(f.vendor_id));
    m.insert("vendor_status".into(), json!(f.vendor_status));
    let t = &r.triage;
    m.insert(
        "triage".into(),
        json!({
            "state": t.state.map(|s| s.as_str()),
            "source": t.source.map(|s| s.as_str()),
            "reason": t.reason,
            "by": t.by,
            "until": t.until,
            "at": t.at,
            "rule": t.rule,
            "reopen_on_severity_increase": t.reopen_on_severity_increase,
        }),
    );
    m.insert(
        "history".into(),
        Value::Array(d.events.iter().map(event_json).collect()),
    );
    Value::Object(m)
}

fn event_json(e: &FindingEvent) -> Value {
    json!({
        "at": e.at,
        "run_id": e.run_id,
        "kind": e.kind,
        "old": e.old_value,
        "new": e.new_value,
        "by": e.by,
        "reason": e.reason,
        "until": e.until,
        "rule": e.rule,
    })
}

/// The table form: the finding's fields, one per line, then its history.
pub fn detail_text(d: &FindingDetail) -> String {
    let r = &d.row;
    let f = &r.finding;
    let mut fields: Vec<(&str, String)> = vec![
        ("id", r.id.to_string()),
        ("fingerprint", r.fingerprint.clone()),
        (
            "scan",
            format!(
                "{} ({} instance {}, bound to {})",
                r.scan, r.vendor, r.instance, r.bind_to
            ),
        ),
        ("title", f.title.clone()),
        ("severity", f.severity.as_str().to_string()),
        ("state", r.state.as_str().to_string()),
        ("location", f.location.display()),
    ];
    fn optional(fields: &mut Vec<(&'static str, String)>, name: &'static str, v: &Option<String>) {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            fields.push((name, v.clone()));
        }
    }
    optional(&mut fields, "rule", &f.rule_id);
    optional(&mut fields, "cwe", &f.cwe);
    optional(&mut fields, "owasp", &f.owasp);
    optional(&mut fields, "vendor id", &f.vendor_id);
    optional(&mut fields, "vendor status", &f.vendor_status);
    optional(&mut fields, "vendor url", &f.vendor_url);
    fields.push((
        "seen",
        format!(
            "{} times, first {}, last {}",
            r.times_seen, r.first_seen, r.last_seen
        ),
    ));
    if let Some(triage) = triage_line(d) {
        fields.push(("triage", triage));
    }
    optional(&mut fields, "description", &f.description);
    optional(&mut fields, "remediation", &f.remediation);
    let label_width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in &fields {
        let _ = writeln!(out, "{k:<label_width$}  {}", clean(v));
    }
    let _ = writeln!(out, "\nhistory:");
    let rows: Vec<Vec<String>> = d
        .events
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.run_id.map(|r| r.to_string()).unwrap_or_default(),
                e.kind.clone(),
                change(e),
                table::truncate(&event_detail(e), 80),
            ]
        })
        .collect();
    let mut buf = Vec::new();
    let _ = table::write(&mut buf, &["AT", "RUN", "EVENT", "CHANGE", "DETAIL"], &rows);
    out.push_str(&String::from_utf8_lossy(&buf));
    out
}

/// `accepted by dana (since …), until 2027-01-31: "reason"` for the triage the row holds.
fn triage_line(d: &FindingDetail) -> Option<String> {
    let t = &d.row.triage;
    let state = t.state?;
    let mut line = state.as_str().to_string();
    if let Some(who) = t.who() {
        let _ = write!(line, " by {who}");
    }
    if let Some(at) = &t.at {
        let _ = write!(line, " since {at}");
    }
    if let Some(until) = &t.until {
        let _ = write!(line, ", until {until}");
    }
    if t.reopen_on_severity_increase {
        line.push_str(", reopens if the severity rises");
    }
    if let Some(reason) = &t.reason {
        let _ = write!(line, ": \"{reason}\"");
    }
    Some(line)
}

fn change(e: &FindingEvent) -> String {
    match (&e.old_value, &e.new_value) {
        (Some(old), Some(new)) => format!("{old} -> {new}"),
        (None, Some(new)) => new.clone(),
        (Some(old), None) => format!("{old} -> (none)"),
        (None, None) => String::new(),
    }
}

/// What a triage event says besides the change: who, the rule, until when, why.
fn event_detail(e: &FindingEvent) -> String {
    let mut parts = Vec::new();
    match e.kind.as_str() {
        "expired" => parts.push("the triage's end date passed".to_string()),
        "escalated" => parts.push("the severity rose above the one accepted".to_string()),
        "released" => parts.push("no suppression rule matches it any more".to_string()),
        _ => {}
    }
    if let Some(by) = &e.by {
        parts.push(format!("by {by}"));
    }
    if let Some(rule) = &e.rule {
        parts.push(format!("rule {rule}"));
    }
    if let Some(until) = &e.until {
        parts.push(format!("until {until}"));
    }
    if let Some(reason) = &e.reason {
        parts.push(format!("\"{reason}\""));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str) -> FindingEvent {
        FindingEvent {
            run_id: Some(3),
            kind: kind.into(),
            old_value: Some("accepted".into()),
            new_value: Some("open".into()),
            at: "2027-02-01T00:00:00.000Z".into(),
            by: Some("dana".into()),
            reason: Some("WAF rule".into()),
            until: Some("2027-02-01".into()),
            rule: None,
        }
    }

    #[test]
    fn an_expiry_event_says_why_and_whose_triage_ended() {
        let e = event("expired");
        assert_eq!(change(&e), "accepted -> open");
        assert_eq!(
            event_detail(&e),
            "the triage's end date passed, by dana, until 2027-02-01, \"WAF rule\""
        );
    }

    #[test]
    fn a_plain_event_has_no_detail() {
        let e = FindingEvent {
            by: None,
            reason: None,
            until: None,
            ..event("created")
        };
        assert_eq!(event_detail(&e), "");
    }
}
