//! SARIF 2.1.0, the format GitHub code scanning, Azure DevOps and most SAST dashboards read.
//!
//! # Shape
//! One run per vendor (`tool.driver` is the vendor's scanner; scansync, which read and mapped
//! the findings, is the run's one `tool.extensions` entry). The vendors' hosted APIs report
//! no engine version, so the driver's `version` reads `X.Y.Z (scansync)`: it names the
//! mapping that produced the run, which is what changes when the output changes (and it
//! starts with a number, as the SARIF validator asks of versions).
//!
//! Rules: one per vendor rule id, else per CWE, else one `unknown` rule. Each carries the
//! first finding's title, description and remediation, a `helpUri` (the CWE page, else the
//! vendor's page for the finding), `security`/CWE/OWASP tags and the `security-severity`
//! number GitHub buckets into critical/high/medium/low (the worst severity seen for the rule).
//!
//! Results: `level` from severity (critical/high → error, medium → warning, low/info → note);
//! `partialFingerprints."scansync/v1"` is scansync's fingerprint, so a re-upload updates the
//! same alert; `baselineState` follows the lifecycle with the previous complete sync as the
//! baseline: new → `new`, open → `unchanged`, reopened → `new` (it was absent — fixed — in
//! the baseline, and `updated` would claim it was there), fixed → `absent`; false positive and
//! accepted → `unchanged` plus an `external` suppression with status `accepted`, which GitHub
//! shows as a dismissed alert.
//!
//! # Where an API finding is
//! An API finding has no file. It is described twice, because each SARIF construct serves a
//! different reader:
//! - `locations[].logicalLocations[]` with `fullyQualifiedName` `GET host/path`, `name` the
//!   path and `kind` `function` (an API operation is a callable unit; SARIF's other kinds are
//!   for code constructs and documents). This is the location proper: every viewer lists a
//!   result's locations, and it is a plain string, so templated paths (`/v1/accounts/{id}`)
//!   need no URI escaping.
//! - `webRequest` with `method`, `target` (the path, as in an HTTP request line) and a `Host`
//!   header: the structured form DAST-aware tools read. scansync does not know the scheme, so
//!   it does not invent a full URL.
//!
//! GitHub code scanning only displays results that have a physical location, so API
//! findings are carried in the file (for other consumers and for the record) but do not
//! appear as GitHub alerts.
//!
//! # Bounded memory
//! Rows arrive ordered by severity, not by vendor, and each run's results must be contiguous.
//! Each vendor's results are therefore streamed to an anonymous temporary file (in `$TMPDIR`,
//! about the size of the output) and copied into the document at [`SarifWriter::finish`];
//! only the rule tables stay in memory. One pass over one query also means one consistent
//! snapshot of the store, which a query per vendor would not give.

use super::{line_range, ExportError};
use crate::finding::{Location, Severity};
use crate::store::{FindingRow, FindingState};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Seek, Write};

/// The published schema for SARIF 2.1.0 (what GitHub and the Microsoft validator expect).
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The key under `partialFingerprints`; versioned like the fingerprint recipe itself.
pub const FINGERPRINT_KEY: &str = "scansync/v1";

/// Display names and home pages of the vendors scansync knows. The store keeps the registry
/// name (`codethreat`); people and GitHub's UI want the product's name.
fn vendor_tool(vendor: &str) -> (String, Option<&'static str>) {
    match vendor {
        "codethreat" => ("CodeThreat".into(), Some("https://codethreat.com")),
        "saltsecurity" => ("Salt Security".into(), Some("https://salt.security")),
        other => (other.to_string(), None),
    }
}

/// SARIF `level` for a severity.
pub fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub's `security-severity` (a number in a string): ≥ 9 critical, 7–8.9 high, 4–6.9
/// medium, below 4 low. Each value sits inside its bucket, away from the edges.
pub fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// SARIF `baselineState` for a lifecycle state (see the module docs for why).
pub fn baseline_state(state: FindingState) -> &'static str {
    match state {
        FindingState::New | FindingState::Reopened => "new",
        FindingState::Open
        | FindingState::Missing
        | FindingState::FalsePositive
        | FindingState::Accepted => "unchanged",
        FindingState::Fixed => "absent",
    }
}

/// A file path as a relative URI reference: backslashes become slashes, leading `./` and `/`
/// are dropped (SARIF consumers resolve against the repository root), and every byte outside
/// RFC 3986's path characters is percent-encoded — including `:`, which in a first segment
/// would read as a scheme (`C:/src` → `C%3A/src`). `None` when nothing is left.
pub fn relative_uri(path: &str) -> Option<String> {
    let mut p = path.replace('\\', "/");
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest.to_string();
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest.to_string();
        } else {
            break;
        }
    }
    if p.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@/".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Some(out)
}

/// The number in `CWE-89` / `cwe-89` / `89`.
fn cwe_number(cwe: &str) -> Option<u32> {
    let t = cwe.trim();
    let digits = t
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("cwe-"))
        .map_or(t, |_| &t[4..]);
    digits.parse().ok()
}

/// A vendor-given URL, only if it is an absolute http(s) URL (validators reject anything
/// else in `helpUri` and `hostedViewerUri`).
fn web_url(url: Option<&str>) -> Option<String> {
    let u = reqwest::Url::parse(url?.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

struct Rule {
    id: String,
    title: String,
    description: Option<String>,
    remediation: Option<String>,
    help_uri: Option<String>,
    cwe: Option<u32>,
    owasp: BTreeSet<String>,
    worst: Severity,
}

impl Rule {
    fn to_json(&self) -> Value {
        let mut tags = vec!["security".to_string()];
        if let Some(n) = self.cwe {
            tags.push(format!("external/cwe/cwe-{n}"));
        }
        tags.extend(self.owasp.iter().map(|o| format!("owasp:{o}")));
        let mut r = Map::new();
        r.insert("id".into(), self.id.clone().into());
        r.insert("shortDescription".into(), json!({ "text": self.title }));
        if let Some(d) = &self.description {
            r.insert("fullDescription".into(), json!({ "text": d }));
        }
        if let Some(h) = &self.remediation {
            r.insert("help".into(), json!({ "text": h }));
        }
        if let Some(u) = &self.help_uri {
            r.insert("helpUri".into(), u.clone().into());
        }
        r.insert(
            "defaultConfiguration".into(),
            json!({ "level": level(self.worst) }),
        );
        r.insert(
            "properties".into(),
            json!({ "tags": tags, "security-severity": security_severity(self.worst) }),
        );
        Value::Object(r)
    }
}

/// One vendor's run while rows stream in.
struct RunSpill {
    results: BufWriter<File>,
    count: u64,
    rules: Vec<Rule>,
    rule_index: HashMap<String, usize>,
}

impl RunSpill {
    fn new() -> Result<RunSpill, ExportError> {
        let file = tempfile::tempfile().map_err(|e| {
            ExportError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot create a temporary file for the SARIF export in $TMPDIR: {e}"),
            ))
        })?;
        Ok(RunSpill {
            results: BufWriter::new(file),
            count: 0,
            rules: Vec::new(),
            rule_index: HashMap::new(),
        })
    }

    /// The rule for this finding, created on first sight; returns its index in `rules`.
    fn rule_for(&mut self, row: &FindingRow) -> usize {
        let f = &row.finding;
        let id = f
            .rule_id
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| f.cwe.clone().filter(|s| !s.trim().is_empty()))
            .unwrap_or_else(|| "unknown".into());
        let cwe = f.cwe.as_deref().and_then(cwe_number);
        let owasp_tag = f
            .owasp
            .as_deref()
            .and_then(|o| o.split_whitespace().next())
            .map(str::to_string);
        let index = match self.rule_index.get(&id) {
            Some(&i) => i,
            None => {
                let help_uri = cwe
                    .map(|n| format!("https://cwe.mitre.org/data/definitions/{n}.html"))
                    .or_else(|| web_url(f.vendor_url.as_deref()));
                self.rules.push(Rule {
                    id: id.clone(),
                    title: f.title.clone(),
                    description: f.description.clone().filter(|s| !s.is_empty()),
                    remediation: f.remediation.clone().filter(|s| !s.is_empty()),
                    help_uri,
                    cwe,
                    owasp: BTreeSet::new(),
                    worst: f.severity,
                });
                self.rule_index.insert(id, self.rules.len() - 1);
                self.rules.len() - 1
            }
        };
        let rule = &mut self.rules[index];
        rule.worst = rule.worst.max(f.severity);
        if rule.cwe.is_none() {
            rule.cwe = cwe;
        }
        if let Some(tag) = owasp_tag {
            rule.owasp.insert(tag);
        }
        index
    }
}

/// The SARIF result object for one row.
fn result_json(row: &FindingRow, rule: &Rule, rule_index: usize) -> Value {
    let f = &row.finding;
    let mut r = Map::new();
    r.insert("ruleId".into(), rule.id.clone().into());
    r.insert("ruleIndex".into(), rule_index.into());
    r.insert("level".into(), level(f.severity).into());
    r.insert("message".into(), json!({ "text": f.title }));
    match &f.location {
        Location::Code { path, .. } => {
            if let Some(uri) = relative_uri(path) {
                let mut physical = json!({ "artifactLocation": { "uri": uri } });
                if let Some((start, end)) = line_range(&f.location) {
                    let mut region = json!({ "startLine": start });
                    if let Some(e) = end {
                        region["endLine"] = e.into();
                    }
                    physical["region"] = region;
                }
                r.insert(
                    "locations".into(),
                    json!([{ "physicalLocation": physical }]),
                );
            }
        }
        Location::Api { method, path, host } => {
            let method = method.to_ascii_uppercase();
            r.insert(
                "locations".into(),
                json!([{ "logicalLocations": [{
                    "fullyQualifiedName": format!("{method} {host}{path}"),
                    "name": path,
                    "kind": "function",
                }] }]),
            );
            r.insert(
                "webRequest".into(),
                json!({ "method": method, "target": path, "headers": { "Host": host } }),
            );
        }
        Location::Unknown => {}
    }
    r.insert(
        "partialFingerprints".into(),
        json!({ FINGERPRINT_KEY: row.fingerprint }),
    );
    r.insert("baselineState".into(), baseline_state(row.state).into());
    if let Some(suppression) = suppression(row) {
        r.insert("suppressions".into(), json!([suppression]));
    }
    if let Some(u) = web_url(f.vendor_url.as_deref()) {
        r.insert("hostedViewerUri".into(), u.into());
    }
    r.insert(
        "properties".into(),
        json!({ "scansync": {
            "state": super::state_word(row.state),
            "severity": f.severity.as_str(),
            "scan": row.scan,
            "instance": row.instance,
            "bindTo": row.bind_to,
            "firstSeen": row.first_seen,
            "lastSeen": row.last_seen,
            "timesSeen": row.times_seen,
            "vendorUrl": f.vendor_url,
            "triageReason": row.triage.reason,
            "triageBy": row.triage.who(),
            "triageUntil": row.triage.until,
        } }),
    );
    Value::Object(r)
}

/// The SARIF suppression of a triaged finding: `external` (decided outside the source, here
/// or at the vendor), `accepted`, with the triage's reason as `justification` and who and
/// until when in its properties. GitHub code scanning shows such a result as dismissed.
fn suppression(row: &FindingRow) -> Option<Value> {
    let default = match row.state {
        FindingState::FalsePositive => "marked a false positive in scansync",
        FindingState::Accepted => "risk accepted in scansync",
        _ => return None,
    };
    let t = &row.triage;
    let mut justification = t.reason.clone().unwrap_or_else(|| default.to_string());
    if let Some(until) = &t.until {
        justification.push_str(&format!(" (until {until})"));
    }
    let mut s = json!({ "kind": "external", "status": "accepted", "justification": justification });
    let mut properties = Map::new();
    if let Some(who) = t.who() {
        properties.insert("by".into(), who.into());
    }
    if let Some(until) = &t.until {
        properties.insert("until".into(), until.clone().into());
    }
    if let Some(rule) = &t.rule {
        properties.insert("rule".into(), rule.clone().into());
    }
    if !properties.is_empty() {
        s["properties"] = Value::Object(properties);
    }
    Some(s)
}

/// The SARIF export (see the module docs).
pub struct SarifWriter<W: Write> {
    out: W,
    runs: BTreeMap<String, RunSpill>,
}

impl<W: Write> SarifWriter<W> {
    pub fn new(out: W) -> SarifWriter<W> {
        SarifWriter {
            out,
            runs: BTreeMap::new(),
        }
    }

    pub fn row(&mut self, row: &FindingRow) -> Result<(), ExportError> {
        if !self.runs.contains_key(&row.vendor) {
            self.runs.insert(row.vendor.clone(), RunSpill::new()?);
        }
        let run = self.runs.get_mut(&row.vendor).expect("inserted above");
        let index = run.rule_for(row);
        let result = result_json(row, &run.rules[index], index);
        if run.count > 0 {
            run.results.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut run.results, &result).map_err(std::io::Error::from)?;
        run.count += 1;
        Ok(())
    }

    /// Writes the document: header, then each vendor's run (tool with its rules, then the
    /// spilled results), in vendor-name order so two exports of the same store are identical.
    pub fn finish(mut self) -> Result<W, ExportError> {
        let out = &mut self.out;
        write!(
            out,
            "{{\"$schema\":{},\"version\":\"2.1.0\",\"runs\":[",
            Value::from(SARIF_SCHEMA)
        )?;
        for (i, (vendor, run)) in std::mem::take(&mut self.runs).into_iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            let (name, uri) = vendor_tool(&vendor);
            let mut driver = json!({
                "name": name,
                "version": format!("{} (scansync)", env!("CARGO_PKG_VERSION")),
                "rules": run.rules.iter().map(Rule::to_json).collect::<Vec<_>>(),
            });
            if let Some(u) = uri {
                driver["informationUri"] = u.into();
            }
            let tool = json!({
                "driver": driver,
                "extensions": [{
                    "name": "scansync",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                }],
            });
            out.write_all(b"\n{\"tool\":")?;
            serde_json::to_writer(&mut *out, &tool).map_err(std::io::Error::from)?;
            out.write_all(b",\n\"results\":[\n")?;
            let mut file = run.results.into_inner().map_err(|e| e.into_error())?;
            file.rewind()?;
            std::io::copy(&mut file, out)?;
            out.write_all(b"\n]}")?;
        }
        out.write_all(b"\n]}\n")?;
        out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testrows::code_row;
    use super::*;

    fn export(rows: &[FindingRow]) -> Value {
        let mut w = SarifWriter::new(Vec::new());
        for r in rows {
            w.row(r).unwrap();
        }
        serde_json::from_slice(&w.finish().unwrap()).unwrap()
    }

    #[test]
    fn levels_follow_severity() {
        assert_eq!(level(Severity::Critical), "error");
        assert_eq!(level(Severity::High), "error");
        assert_eq!(level(Severity::Medium), "warning");
        assert_eq!(level(Severity::Low), "note");
        assert_eq!(level(Severity::Info), "note");
    }

    #[test]
    fn security_severity_lands_in_githubs_bucket() {
        let bucket = |s: &str| {
            let n: f32 = s.parse().unwrap();
            match n {
                n if n >= 9.0 => Severity::Critical,
                n if n >= 7.0 => Severity::High,
                n if n >= 4.0 => Severity::Medium,
                _ => Severity::Low,
            }
        };
        for s in [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
        ] {
            assert_eq!(bucket(security_severity(s)), s);
        }
        assert_eq!(bucket(security_severity(Severity::Info)), Severity::Low);
    }

    #[test]
    fn paths_become_relative_uri_references() {
        assert_eq!(relative_uri("./src/a b.rs").unwrap(), "src/a%20b.rs");
        assert_eq!(relative_uri("/app/x.py").unwrap(), "app/x.py");
        assert_eq!(
            relative_uri("C:\\src\\Main.cs").unwrap(),
            "C%3A/src/Main.cs"
        );
        assert_eq!(
            relative_uri("web/[id]/page#1.tsx").unwrap(),
            "web/%5Bid%5D/page%231.tsx"
        );
        assert_eq!(relative_uri("café.rs").unwrap(), "caf%C3%A9.rs");
        assert_eq!(relative_uri("50%.txt").unwrap(), "50%25.txt");
        assert_eq!(relative_uri("./"), None);
    }

    #[test]
    fn cwe_numbers_parse_in_common_spellings() {
        assert_eq!(cwe_number("CWE-89"), Some(89));
        assert_eq!(cwe_number("cwe-79"), Some(79));
        assert_eq!(cwe_number("22"), Some(22));
        assert_eq!(cwe_number("CWE-"), None);
        assert_eq!(cwe_number("n/a"), None);
    }

    #[test]
    fn findings_of_one_rule_share_it_and_it_takes_the_worst_severity() {
        let a = code_row("SQL injection");
        let mut b = code_row("SQL injection again");
        b.finding.severity = Severity::Critical;
        b.fingerprint = "f".repeat(32);
        let doc = export(&[a, b]);
        let run = &doc["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["properties"]["security-severity"], "9.5");
        assert_eq!(rules[0]["shortDescription"]["text"], "SQL injection");
        assert_eq!(
            rules[0]["properties"]["tags"],
            json!(["security", "external/cwe/cwe-89", "owasp:A03:2021"])
        );
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r["ruleIndex"] == 0));
    }

    #[test]
    fn rule_falls_back_to_cwe_then_unknown() {
        let mut by_cwe = code_row("a");
        by_cwe.finding.rule_id = None;
        let mut nothing = code_row("b");
        nothing.finding.rule_id = None;
        nothing.finding.cwe = None;
        let doc = export(&[by_cwe, nothing]);
        let rules = &doc["runs"][0]["tool"]["driver"]["rules"];
        assert_eq!(rules[0]["id"], "CWE-89");
        assert_eq!(rules[1]["id"], "unknown");
        assert_eq!(
            rules[1]["helpUri"],
            "https://cloud.codethreat.com/issue/66b0c0ffee"
        );
    }

    #[test]
    fn suppressed_states_carry_an_accepted_external_suppression() {
        let mut fp = code_row("a");
        fp.state = FindingState::FalsePositive;
        let doc = export(&[fp]);
        let r = &doc["runs"][0]["results"][0];
        assert_eq!(r["baselineState"], "unchanged");
        assert_eq!(r["suppressions"][0]["kind"], "external");
        assert_eq!(r["suppressions"][0]["status"], "accepted");
        assert_eq!(
            r["suppressions"][0]["justification"],
            "marked a false positive in scansync"
        );
    }

    #[test]
    fn a_triage_reason_is_the_justification_with_who_and_until() {
        let mut accepted = code_row("a");
        accepted.state = FindingState::Accepted;
        accepted.triage = crate::store::Triage {
            state: Some(FindingState::Accepted),
            source: Some(crate::store::TriageSource::Local),
            reason: Some("compensating WAF rule".into()),
            by: Some("ali".into()),
            until: Some("2027-03-01".into()),
            ..Default::default()
        };
        let doc = export(&[accepted]);
        let s = &doc["runs"][0]["results"][0]["suppressions"][0];
        assert_eq!(s["kind"], "external");
        assert_eq!(
            s["justification"],
            "compensating WAF rule (until 2027-03-01)"
        );
        assert_eq!(s["properties"]["by"], "ali");
        assert_eq!(s["properties"]["until"], "2027-03-01");
    }

    #[test]
    fn api_finding_has_a_logical_location_and_a_web_request() {
        let mut api = code_row("BOLA");
        api.vendor = "saltsecurity".into();
        api.finding.location = Location::Api {
            method: "get".into(),
            path: "/v1/accounts/{id}".into(),
            host: "payments.example.com".into(),
        };
        let doc = export(&[api]);
        let run = &doc["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "Salt Security");
        let r = &run["results"][0];
        let logical = &r["locations"][0]["logicalLocations"][0];
        assert_eq!(
            logical["fullyQualifiedName"],
            "GET payments.example.com/v1/accounts/{id}"
        );
        assert_eq!(logical["kind"], "function");
        assert_eq!(r["webRequest"]["method"], "GET");
        assert_eq!(r["webRequest"]["headers"]["Host"], "payments.example.com");
        assert!(r["locations"][0].get("physicalLocation").is_none());
    }

    #[test]
    fn empty_export_is_a_valid_document_with_no_runs() {
        let doc = export(&[]);
        assert_eq!(doc["version"], "2.1.0");
        assert_eq!(doc["runs"], json!([]));
    }
}
