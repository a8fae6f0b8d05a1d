//! `scansync check-config` against the real binary: the example passes, and each bad config
//! in the corpus below exits 78 with its own message, naming the field path (and line).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOKEN_VAR: &str = "SCANSYNC_TEST_TOKEN";
const TOKEN_VALUE: &str = "tok-4f9a1c-SECRET";

/// Lines 1-2.
const STORE: &str = "[store]\npath = \"scansync.db\"\n";
/// Lines 3-8: a blank line, then `[instances.ct]` on line 4.
const CT: &str = "\n[instances.ct]\nvendor = \"codethreat\"\nurl = \"https://ct.example\"\norganization = \"acme\"\ntoken_env = \"SCANSYNC_TEST_TOKEN\"\n";

/// A scan table whose `extra` starts on line 14 when it follows STORE and CT.
fn scan(name: &str, extra: &str) -> String {
    format!("\n[[scans]]\nname = \"{name}\"\ninstance = \"ct\"\nbind_to = \"proj\"\n{extra}\n")
}

/// A `[webhooks.siem]` table starting on line 10 after STORE and CT; `extra` starts on line 13.
fn webhook(extra: &str) -> String {
    format!("{STORE}{CT}\n[webhooks.siem]\nurl = \"https://siem.example/hooks\"\nsecret_env = \"SCANSYNC_TEST_TOKEN\"\n{extra}\n")
}

fn ok_scan(name: &str) -> String {
    scan(name, "schedule = \"now\"")
}

fn salt(extra: &str) -> String {
    format!("{STORE}\n[instances.salt]\nvendor = \"saltsecurity\"\ntoken_env = \"SCANSYNC_TEST_TOKEN\"\n{extra}\n")
}

fn check(dir: &Path, text: &str, envs: &[(&str, &str)]) -> Output {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    check_file(&path, envs)
}

fn check_file(path: &Path, envs: &[(&str, &str)]) -> Output {
    check_file_with(path, envs, &[])
}

/// `check-config --strict`: a secret it cannot read is an error, as for `run`.
fn check_strict(dir: &Path, text: &str) -> Output {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    check_file_with(&path, &[], &["--strict"])
}

fn check_file_with(path: &Path, envs: &[(&str, &str)], flags: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scansync"));
    cmd.args(["check-config"])
        .args(flags)
        .arg("--config")
        .arg(path)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("SCANSYNC_CONFIG")
        .env_remove("RUST_LOG")
        .env(TOKEN_VAR, TOKEN_VALUE);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Case {
    name: &'static str,
    config: String,
    expect: &'static str,
}

fn case(name: &'static str, config: String, expect: &'static str) -> Case {
    Case {
        name,
        config,
        expect,
    }
}

fn corpus() -> Vec<Case> {
    let base = format!("{STORE}{CT}");
    vec![
        case("missing store", format!("{CT}{}", ok_scan("a")), "error: store: the [store] section is required"),
        case(
            "unknown top-level key",
            format!("{base}\n[deamon]\nconcurrency = 2\n"),
            "error: deamon: unknown top-level key; did you mean [daemon]? (line 10)",
        ),
        case(
            "unknown key in an instance",
            format!("{base}tokn_file = \"x\"\n"),
            "error: instances.ct.tokn_file: unknown key; did you mean \"token_file\"? (line 9)",
        ),
        case(
            "unknown key in a scan",
            format!("{base}{}", scan("a", "schedule = \"now\"\nbranche = \"main\"")),
            "error: scans[0].branche: unknown key; did you mean \"branch\"? (line 15)",
        ),
        case(
            "unknown vendor",
            format!("{STORE}\n[instances.x]\nvendor = \"snyk\"\ntoken_env = \"SCANSYNC_TEST_TOKEN\"\n"),
            "error: instances.x.vendor: unknown vendor \"snyk\"; known vendors: codethreat, saltsecurity (line 5)",
        ),
        case(
            "codethreat without organization",
            format!("{STORE}\n[instances.ct]\nvendor = \"codethreat\"\nurl = \"https://ct.example\"\ntoken_env = \"SCANSYNC_TEST_TOKEN\"\n"),
            "error: instances.ct.organization: is required for codethreat",
        ),
        case(
            "codethreat without url",
            format!("{STORE}\n[instances.ct]\nvendor = \"codethreat\"\norganization = \"acme\"\ntoken_env = \"SCANSYNC_TEST_TOKEN\"\n"),
            "error: instances.ct.url: is required for codethreat",
        ),
        case(
            "region on codethreat",
            format!("{base}region = \"us\"\n"),
            "error: instances.ct.region: is a saltsecurity setting; codethreat takes url instead (line 9)",
        ),
        case(
            "organization on saltsecurity",
            salt("region = \"us\"\norganization = \"acme\""),
            "error: instances.salt.organization: is a codethreat setting",
        ),
        case(
            "saltsecurity with a bad region",
            salt("region = \"mars\""),
            "error: instances.salt.region: \"mars\" is not a Salt Security region (\"us\" or \"eu\") (line 7)",
        ),
        case(
            "saltsecurity with region and url",
            salt("region = \"eu\"\nurl = \"https://salt.example\""),
            "error: instances.salt.region: give either region or url for saltsecurity, not both",
        ),
        case(
            "no token",
            format!("{STORE}\n[instances.ct]\nvendor = \"codethreat\"\nurl = \"https://ct.example\"\norganization = \"acme\"\n"),
            "error: instances.ct: no token given; set exactly one of token_file, token_env, credential or token (line 4)",
        ),
        case(
            "two tokens",
            format!("{base}token_file = \"/run/token\"\n"),
            "error: instances.ct.token_file: token given twice (token_env and token_file); keep exactly one token source (line 9)",
        ),
        case(
            "token_file missing",
            salt("region = \"us\"").replace("token_env = \"SCANSYNC_TEST_TOKEN\"", "token_file = \"/nonexistent/scansync/token\""),
            "error: instances.salt.token_file: cannot read token file /nonexistent/scansync/token",
        ),
        case(
            "token_env unset",
            salt("region = \"us\"").replace(TOKEN_VAR, "SCANSYNC_TEST_UNSET_VAR"),
            "error: instances.salt.token_env: environment variable SCANSYNC_TEST_UNSET_VAR is unset or empty",
        ),
        case(
            "credential without CREDENTIALS_DIRECTORY",
            salt("region = \"us\"").replace("token_env = \"SCANSYNC_TEST_TOKEN\"", "credential = \"salt-token\""),
            "error: instances.salt.credential: credential \"salt-token\" needs $CREDENTIALS_DIRECTORY, which is unset",
        ),
        case(
            "%d token_file without CREDENTIALS_DIRECTORY",
            salt("region = \"us\"").replace("token_env = \"SCANSYNC_TEST_TOKEN\"", "token_file = \"%d/salt-token\""),
            "error: instances.salt.token_file: \"%d/salt-token\" needs $CREDENTIALS_DIRECTORY, which is unset",
        ),
        // The packaged unit's scansync_FILE, outside systemd: read from the unit's source file
        // (absent on a test machine), and the error says where it looked.
        case(
            "packaged credential without CREDENTIALS_DIRECTORY",
            salt("region = \"us\"").replace("token_env = \"SCANSYNC_TEST_TOKEN\"", "credential = \"scansync_no-such-test-token\""),
            "error: instances.salt.credential: cannot read credential scansync_no-such-test-token from /etc/scansync/credentials/no-such-test-token: ",
        ),
        case(
            "packaged %d token_file without CREDENTIALS_DIRECTORY",
            salt("region = \"us\"").replace("token_env = \"SCANSYNC_TEST_TOKEN\"", "token_file = \"%d/scansync_no-such-test-token\""),
            "error: instances.salt.token_file: cannot read token file /etc/scansync/credentials/no-such-test-token: ",
        ),
        case(
            "duplicate scan names",
            format!("{base}{}{}", ok_scan("nightly"), ok_scan("nightly")),
            "error: scans[1].name: \"nightly\" is already the name of scans[0], on line 11; scan names must be unique (line 17)",
        ),
        case(
            "scan naming a missing instance",
            format!("{base}{}", ok_scan("a").replace("instance = \"ct\"", "instance = \"ct-cloud\"")),
            "error: scans[0].instance: no instance named \"ct-cloud\" (defined: ct)",
        ),
        case(
            "scan without bind_to",
            format!("{base}{}", ok_scan("a").replace("bind_to = \"proj\"\n", "")),
            "error: scans[0].bind_to: is required (the vendor project or API asset to read) (line 10)",
        ),
        case(
            "bad at date",
            format!("{base}{}", scan("a", "schedule = { at = \"2026-13-01\" }")),
            "error: scans[0].schedule.at: \"2026-13-01\" is not an RFC 3339 date-time (line 14)",
        ),
        case(
            "bad cron",
            format!("{base}{}", scan("a", "schedule = { cron = \"0 0 25 * * *\" }")),
            "error: scans[0].schedule.cron: \"0 0 25 * * *\" is not a valid cron expression",
        ),
        case(
            "five-field cron",
            format!("{base}{}", scan("a", "schedule = { cron = \"0 2 * * *\" }")),
            "scansync cron has 6 fields, seconds first",
        ),
        case(
            "bad timezone",
            format!("{base}{}", scan("a", "schedule = { cron = \"0 0 2 * * *\", timezone = \"Europe/Istanbull\" }")),
            "error: scans[0].schedule.timezone: \"Europe/Istanbull\" is not an IANA time zone name",
        ),
        case(
            "bad every",
            format!("{base}{}", scan("a", "schedule = { every = \"6 hours\" }")),
            "error: scans[0].schedule.every: \"6 hours\"",
        ),
        case(
            "zero every",
            format!("{base}{}", scan("a", "schedule = { every = \"0m\" }")),
            "error: scans[0].schedule.every: \"0m\" must be more than zero (line 14)",
        ),
        case(
            "unknown schedule word",
            format!("{base}{}", scan("a", "schedule = \"hourly\"")),
            "error: scans[0].schedule: \"hourly\" is not a schedule; use \"now\"",
        ),
        case(
            "two schedule forms at once",
            format!("{base}{}", scan("a", "schedule = { every = \"1h\", cron = \"0 0 * * * *\" }")),
            "error: scans[0].schedule: give exactly one of at, cron or every",
        ),
        case(
            "timezone without cron",
            format!("{base}{}", scan("a", "schedule = { every = \"1h\", timezone = \"UTC\" }")),
            "error: scans[0].schedule.timezone: only applies to cron schedules",
        ),
        case(
            "unknown key in a schedule",
            format!("{base}{}", scan("a", "schedule = { evry = \"1h\" }")),
            "error: scans[0].schedule.evry: unknown key; did you mean \"every\"? (line 14)",
        ),
        case(
            "bad min_severity",
            format!("{base}{}", scan("a", "schedule = \"now\"\nmin_severity = \"severe\"")),
            "error: scans[0].min_severity: \"severe\" is not a severity (one of critical, high, medium, low, info) (line 15)",
        ),
        case(
            "tags of the wrong type",
            format!("{base}{}", scan("a", "schedule = \"now\"\ntags = \"x\"")),
            "error: scans[0].tags: must be a list of strings, not a string (line 15)",
        ),
        case(
            "metadata with a non-string value",
            format!("{base}{}", scan("a", "schedule = \"now\"\nmetadata = { team = \"a\", priority = 1 }")),
            "error: scans[0].metadata.priority: must be a string, not an integer (line 15)",
        ),
        case(
            "daemon concurrency of zero",
            format!("{base}\n[daemon]\nconcurrency = 0\n"),
            "error: daemon.concurrency: 0 is too small; must be a whole number of at least 1 (line 11)",
        ),
        case(
            "bad instance timeout",
            format!("{base}timeout = \"soon\"\n"),
            "error: instances.ct.timeout: \"soon\" is not a duration",
        ),
        case(
            "bad scan timeout",
            format!("{base}{}", scan("a", "schedule = \"now\"\ntimeout = \"90\"")),
            "error: scans[0].timeout: \"90\" lacks a unit",
        ),
        case(
            "url that is not http(s)",
            base.replace("https://ct.example", "ct.example"),
            "error: instances.ct.url: \"ct.example\" is not an http(s) URL",
        ),
        case(
            "insecure that is not a boolean",
            format!("{base}insecure = \"yes\"\n"),
            "error: instances.ct.insecure: must be true or false, not a string (line 9)",
        ),
        case(
            "unknown key in a webhook",
            webhook("evnts = [\"findings.new\"]"),
            "error: webhooks.siem.evnts: unknown key; did you mean \"events\"? (line 13)",
        ),
        case(
            "webhook without url",
            webhook("").replace("url = \"https://siem.example/hooks\"\n", ""),
            "error: webhooks.siem.url: is required (the http(s) URL notifications are POSTed to) (line 10)",
        ),
        case(
            "webhook url that is not http(s)",
            webhook("").replace("https://siem.example/hooks", "ftp://siem.example/hooks"),
            "error: webhooks.siem.url: \"ftp://siem.example/hooks\" is not an http(s) URL",
        ),
        case(
            "webhook without secret",
            webhook("").replace("secret_env = \"SCANSYNC_TEST_TOKEN\"\n", ""),
            "error: webhooks.siem: no signing secret given; set exactly one of secret_file or secret_env (line 10)",
        ),
        case(
            "webhook with two secrets",
            webhook("secret_file = \"/run/hook-secret\""),
            "error: webhooks.siem.secret_file: secret given twice (secret_env and secret_file); keep exactly one (line 13)",
        ),
        case(
            "webhook secret_env unset",
            webhook("").replace(TOKEN_VAR, "SCANSYNC_TEST_UNSET_VAR"),
            "error: webhooks.siem.secret_env: environment variable SCANSYNC_TEST_UNSET_VAR is unset or empty; export it before starting scansync (or use secret_file) (line 12)",
        ),
        case(
            "webhook secret_file missing",
            webhook("").replace("secret_env = \"SCANSYNC_TEST_TOKEN\"", "secret_file = \"/nonexistent/scansync/hook-secret\""),
            "error: webhooks.siem.secret_file: cannot read secret file /nonexistent/scansync/hook-secret",
        ),
        case(
            "webhook %d secret_file without CREDENTIALS_DIRECTORY",
            webhook("").replace("secret_env = \"SCANSYNC_TEST_TOKEN\"", "secret_file = \"%d/hook-secret\""),
            "error: webhooks.siem.secret_file: \"%d/hook-secret\" needs $CREDENTIALS_DIRECTORY, which is unset",
        ),
        case(
            "webhook with an unknown event",
            webhook("events = [\"findings.new\", \"findings.created\"]"),
            "error: webhooks.siem.events[1]: \"findings.created\" is not a webhook event (one of findings.new, findings.fixed, findings.reopened, run.failed) (line 13)",
        ),
        case(
            "webhook with no events",
            webhook("events = []"),
            "error: webhooks.siem.events: is empty, so nothing would ever be sent",
        ),
        case(
            "webhook events that are not a list",
            webhook("events = \"findings.new\""),
            "error: webhooks.siem.events: must be a list of strings, not a string (line 13)",
        ),
        case(
            "webhook with a bad min_severity",
            webhook("min_severity = \"severe\""),
            "error: webhooks.siem.min_severity: \"severe\" is not a severity (one of critical, high, medium, low, info) (line 13)",
        ),
        case(
            "webhook naming a missing scan",
            webhook("scans = [\"nightly\"]"),
            "error: webhooks.siem.scans[0]: no scan named \"nightly\" (none is defined) (line 13)",
        ),
        case(
            "webhook naming a scan that is not defined among others",
            format!("{}{}", webhook("scans = [\"a\", \"b\"]"), ok_scan("a")),
            "error: webhooks.siem.scans[1]: no scan named \"b\" (defined: a) (line 13)",
        ),
        case(
            "webhook with a bad timeout",
            webhook("timeout = \"10\""),
            "error: webhooks.siem.timeout: \"10\" lacks a unit",
        ),
        case(
            "webhooks that is not a table",
            format!("webhooks = 1\n{STORE}{CT}"),
            "error: webhooks: must be a table of [webhooks.NAME] tables, not an integer (line 1)",
        ),
        case(
            "unknown key in server",
            format!("{base}\n[server]\nlisten = \"127.0.0.1:8787\"\nlisen = \"x\"\n"),
            "error: server.lisen: unknown key; did you mean \"listen\"? (line 12)",
        ),
        case(
            "server listen that is not an IP and port",
            format!("{base}\n[server]\nlisten = \"localhost:8787\"\n"),
            "error: server.listen: \"localhost:8787\" is not an IP address and port; write e.g. \"127.0.0.1:8787\"",
        ),
        case(
            "server without listen",
            format!("{base}\n[server]\nbehind_proxy = true\n"),
            "error: server.listen: is required (the address to listen on, e.g. \"127.0.0.1:8787\") (line 10)",
        ),
        case(
            "tls_cert_file without tls_key_file",
            format!("{base}\n[server]\nlisten = \"127.0.0.1:8787\"\ntls_cert_file = \"cert.pem\"\n"),
            "error: server.tls_key_file: is required when tls_cert_file is set: give both (HTTPS) or neither (line 12)",
        ),
        case(
            "tls files that cannot be read",
            format!("{base}\n[server]\nlisten = \"127.0.0.1:8787\"\ntls_cert_file = \"/nonexistent/cert.pem\"\ntls_key_file = \"/nonexistent/key.pem\"\n"),
            "error: server.tls_cert_file: cannot read a PEM certificate chain from /nonexistent/cert.pem",
        ),
        case(
            "behind_proxy that is not a boolean",
            format!("{base}\n[server]\nlisten = \"127.0.0.1:8787\"\nbehind_proxy = \"yes\"\n"),
            "error: server.behind_proxy: must be true or false, not a string (line 12)",
        ),
        case(
            "metrics_token_file that cannot be read",
            format!("{base}\n[server]\nlisten = \"127.0.0.1:8787\"\nmetrics_token_file = \"/nonexistent/metrics-token\"\n"),
            "error: server.metrics_token_file: cannot read metrics token file /nonexistent/metrics-token",
        ),
        case(
            "webhook with a misspelt platform",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"githb\", secret_env = \"SCANSYNC_TEST_TOKEN\", branches = [\"main\"] }")),
            "error: scans[0].webhook.platform: \"githb\" is not a webhook platform; did you mean \"github\"? (line 15)",
        ),
        case(
            "webhook without a secret",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"gitlab\", branches = [\"main\"] }")),
            "error: scans[0].webhook: no secret given; set secret_file or secret_env (make one with `scansync webhook-secret`) (line 15)",
        ),
        case(
            "webhook with two secrets",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"gitlab\", secret_env = \"SCANSYNC_TEST_TOKEN\", secret_file = \"s\", branches = [\"main\"] }")),
            "error: scans[0].webhook.secret_file: secret given twice (secret_env and secret_file); keep exactly one (line 15)",
        ),
        case(
            "webhook secret_env unset",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"bitbucket\", secret_env = \"SCANSYNC_TEST_UNSET_VAR\", branches = [\"main\"] }")),
            "error: scans[0].webhook.secret_env: environment variable SCANSYNC_TEST_UNSET_VAR is unset or empty; export it before starting scansync (or use secret_file)",
        ),
        case(
            "webhook secret_file missing",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"github\", secret_file = \"/nonexistent/hook-secret\", branches = [\"main\"] }")),
            "error: scans[0].webhook.secret_file: cannot read secret file /nonexistent/hook-secret",
        ),
        case(
            "webhook without branches",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"github\", secret_env = \"SCANSYNC_TEST_TOKEN\" }")),
            "error: scans[0].webhook.branches: is required: the branches whose pushes start this scan",
        ),
        case(
            "webhook with no branches",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"github\", secret_env = \"SCANSYNC_TEST_TOKEN\", branches = [] }")),
            "error: scans[0].webhook.branches: is empty, so no push would ever start the scan",
        ),
        case(
            "unknown key in a webhook",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"github\", secret_env = \"SCANSYNC_TEST_TOKEN\", branch = [\"main\"] }")),
            "error: scans[0].webhook.branch: unknown key; did you mean \"branches\"? (line 15)",
        ),
        case(
            "webhook that is not a table",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = \"github\"")),
            "error: scans[0].webhook: must be a table",
        ),
        case(
            "a duration with a unit twice",
            format!("{base}{}", scan("a", "schedule = { every = \"30s30s\" }")),
            "error: scans[0].schedule.every: \"30s30s\" gives \"s\" twice; give each unit once",
        ),
        case(
            "a duration with a larger unit after a smaller one",
            format!("{base}{}", scan("a", "schedule = { every = \"1m1h\" }")),
            "error: scans[0].schedule.every: \"1m1h\" has \"h\" after the smaller unit \"m\"",
        ),
        case(
            "a duration with a fraction",
            format!("{base}{}", scan("a", "schedule = { every = \"1.5h\" }")),
            "error: scans[0].schedule.every: \"1.5h\": fractions are not accepted; write the parts in smaller units, e.g. \"1h30m\"",
        ),
        case(
            "a branch glob with a character class",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"github\", secret_env = \"SCANSYNC_TEST_TOKEN\", branches = [\"main\", \"release/v[0-9]\"] }")),
            "error: scans[0].webhook.branches[1]: \"release/v[0-9]\" has a [...] character class, which is not supported",
        ),
        case(
            "a negated branch glob",
            format!("{base}{}", scan("a", "schedule = \"now\"\nwebhook = { platform = \"github\", secret_env = \"SCANSYNC_TEST_TOKEN\", branches = [\"!main\"] }")),
            "error: scans[0].webhook.branches[0]: \"!main\" starts with \"!\": negated patterns are not supported",
        ),
        case(
            "not TOML at all",
            format!("{base}[[scans]\n"),
            "not valid TOML",
        ),
    ]
}

#[test]
fn every_bad_config_in_the_corpus_exits_78_with_its_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let out = check_strict(dir.path(), &c.config);
        let (stdout, stderr) = text(&out);
        if out.status.code() != Some(78) || !stderr.contains(c.expect) {
            failures.push(format!(
                "--- {}: exit {:?}\nexpected stderr to contain: {}\nstderr:\n{stderr}stdout:\n{stdout}config:\n{}",
                c.name,
                out.status.code(),
                c.expect,
                c.config
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_good_base_of_the_corpus_passes() {
    // Guards the corpus: each case fails for its own reason, not because the base is bad.
    let dir = tempfile::tempdir().unwrap();
    let out = check(dir.path(), &format!("{STORE}{CT}{}", ok_scan("a")), &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
}

#[test]
fn three_independent_errors_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{STORE}{CT}region = \"us\"\n{}{}",
        scan("a", "schedule = { every = \"0s\" }"),
        scan("b", "schedule = \"now\"\nmin_severity = \"urgent\"")
    );
    let out = check(dir.path(), &config, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    for expected in [
        "error: instances.ct.region:",
        "error: scans[0].schedule.every: \"0s\" must be more than zero",
        "error: scans[1].min_severity: \"urgent\" is not a severity",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        3,
        "{stderr}"
    );
}

#[test]
fn a_token_value_never_appears_in_check_config_output() {
    let dir = tempfile::tempdir().unwrap();
    let inline = CT.replace(
        "token_env = \"SCANSYNC_TEST_TOKEN\"",
        &format!("token = \"{TOKEN_VALUE}\""),
    );
    let from_file_path = dir.path().join("token");
    std::fs::write(&from_file_path, format!("{TOKEN_VALUE}\n")).unwrap();
    let token_file = CT.replace(
        "token_env = \"SCANSYNC_TEST_TOKEN\"",
        &format!("token_file = \"{}\"", from_file_path.display()),
    );
    // Each config with its exact exit code and the line that must say what happened (on
    // stdout for a pass, stderr for an error), so the check cannot pass by printing nothing.
    let configs: [(String, i32, &str); 7] = [
        // Success, with the token inline, in the environment and in a file.
        (
            format!("{STORE}{inline}{}", ok_scan("a")),
            0,
            "  ct  codethreat  https://ct.example  org \"acme\"  token inline",
        ),
        (
            format!("{STORE}{CT}{}", ok_scan("a")),
            0,
            "  ct  codethreat  https://ct.example  org \"acme\"  token from env SCANSYNC_TEST_TOKEN",
        ),
        (
            format!("{STORE}{token_file}{}", ok_scan("a")),
            0,
            "  ct  codethreat  https://ct.example  org \"acme\"  token from file ",
        ),
        // Failures next to the token: another error, a token given twice, a token pasted
        // where a variable name belongs, a token of the wrong type.
        (
            format!("{STORE}{inline}{}", scan("a", "schedule = \"soon\"")),
            78,
            "error: scans[0].schedule: \"soon\" is not a schedule; ",
        ),
        (
            format!("{STORE}{inline}token_env = \"X\"\n"),
            78,
            "error: instances.ct.token_env: token given twice (token and token_env); keep exactly one token source (line 9)",
        ),
        (
            format!("{STORE}{}", CT.replace(TOKEN_VAR, TOKEN_VALUE)),
            78,
            "error: instances.ct.token_env: is not an environment variable name (letters, digits and _); it names the variable that holds the token, not the token itself (line 8)",
        ),
        (
            format!(
                "{STORE}{}",
                CT.replace("token_env = \"SCANSYNC_TEST_TOKEN\"", "token = 12345678")
            ),
            78,
            "error: instances.ct.token: must be a string, not an integer (line 8)",
        ),
    ];
    for (config, code, says) in &configs {
        let out = check(dir.path(), config, &[]);
        let (stdout, stderr) = text(&out);
        assert!(
            !stdout.contains(TOKEN_VALUE)
                && !stderr.contains(TOKEN_VALUE)
                && !stderr.contains("12345678"),
            "token printed for config:\n{config}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert_eq!(out.status.code(), Some(*code), "{config}\n{stderr}");
        let shown = if *code == 0 { &stdout } else { &stderr };
        assert!(
            shown.lines().any(|l| l.starts_with(says)),
            "no line starting {says:?} for config:\n{config}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        if *code == 78 {
            assert_eq!(
                stderr.lines().filter(|l| l.starts_with("error: ")).count(),
                1,
                "{stderr}"
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn a_token_file_readable_by_others_warns_but_passes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("ct-token");
    std::fs::write(&token, format!("{TOKEN_VALUE}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = format!(
        "{STORE}{}{}",
        CT.replace(
            "token_env = \"SCANSYNC_TEST_TOKEN\"",
            "token_file = \"ct-token\""
        ),
        ok_scan("a")
    );
    let out = check(dir.path(), &config, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: instances.ct.token_file: ")
            && stderr.contains(
                "is readable by group or others (mode 0644); run chmod 600 on it (line 8)"
            ),
        "{stderr}"
    );
    assert!(stdout.contains("token from file"), "{stdout}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check(dir.path(), &config, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
}

#[test]
fn tokens_come_from_systemd_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("ct-token"), "a\n").unwrap();
    std::fs::write(creds.join("salt-token"), "b\n").unwrap();
    let config = format!(
        "{STORE}{}\n{}",
        CT.replace(
            "token_env = \"SCANSYNC_TEST_TOKEN\"",
            "credential = \"ct-token\""
        ),
        salt("region = \"eu\"").replace(STORE, "").replace(
            "token_env = \"SCANSYNC_TEST_TOKEN\"",
            "token_file = \"%d/salt-token\""
        )
    );
    let out = check(
        dir.path(),
        &config,
        &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{config}");
    assert!(
        stdout.contains("token from credential ct-token"),
        "{stdout}"
    );
    assert!(stdout.contains("salt-token"), "{stdout}");
}

#[test]
fn inline_token_and_insecure_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{STORE}{}insecure = true\n{}",
        CT.replace("token_env = \"SCANSYNC_TEST_TOKEN\"", "token = \"abc\""),
        ok_scan("a")
    );
    let out = check(dir.path(), &config, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: instances.ct.token: inline token"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: instances.ct.insecure: TLS certificate verification is OFF"),
        "{stderr}"
    );
}

#[test]
fn the_example_config_passes_check_config() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = check_file(
        &example,
        &[
            ("CODETHREAT_TOKEN", "ct-example"),
            ("SALT_TOKEN", "salt-example"),
            (
                "SCANSYNC_WEBHOOK_SECRET",
                "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            ("PAYMENTS_WEBHOOK_SECRET", "example-webhook-secret-4f1c9a"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert!(stdout.contains("instances (2):"), "{stdout}");
    assert!(stdout.contains("scans (4):"), "{stdout}");
    for schedule in [
        "every 6h",
        "cron \"0 0 2 * * *\" Europe/Istanbul",
        "now",
        "at 2030-01-15T03:00:00+03:00",
    ] {
        assert!(
            stdout.contains(schedule),
            "missing {schedule:?} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("next 2030-01-15T00:00:00Z"), "{stdout}");
    assert!(stdout.contains("webhooks (1):"), "{stdout}");
    assert!(
        stdout.contains("findings.new, findings.reopened, run.failed"),
        "{stdout}"
    );
    assert!(stdout.contains("server: http://127.0.0.1:8787"), "{stdout}");
    assert!(
        stdout.contains("webhook github main, release/*"),
        "{stdout}"
    );
}

#[test]
fn a_webhook_secret_never_appears_in_check_config_output() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec_c2NhbnN5bmMtd2ViaG9vay1zZWNyZXQtMTIzNDU2Nzg5MA==";
    let broken = "whsec_not*base64!HOOKSECRET";
    let secret_file = dir.path().join("hook-secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let via_file = webhook("").replace(
        "secret_env = \"SCANSYNC_TEST_TOKEN\"",
        &format!("secret_file = \"{}\"", secret_file.display()),
    );
    let via_env = webhook("").replace(TOKEN_VAR, "SCANSYNC_TEST_HOOK_SECRET");
    let pasted = webhook("").replace(TOKEN_VAR, broken);
    for (config, value, ok, expect) in [
        (&via_file, secret, true, ""),
        (&via_env, secret, true, ""),
        (
            &via_env,
            broken,
            false,
            "error: webhooks.siem.secret_env: the secret starts with whsec_ but the rest is not valid base64",
        ),
        // A secret pasted where the variable name belongs.
        (
            &pasted,
            broken,
            false,
            "error: webhooks.siem.secret_env: is not an environment variable name",
        ),
    ] {
        let out = check(dir.path(), config, &[("SCANSYNC_TEST_HOOK_SECRET", value)]);
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(if ok { 0 } else { 78 }),
            "{stderr}\n{config}"
        );
        assert!(stderr.contains(expect), "{stderr}");
        assert!(
            !stdout.contains(value) && !stderr.contains(value) && !stderr.contains("HOOKSECRET"),
            "secret printed for config:\n{config}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        if ok {
            assert!(stdout.contains("webhooks (1):"), "{stdout}");
            assert!(stdout.contains("https://siem.example/…"), "{stdout}");
        }
    }
    let out = check(
        dir.path(),
        &via_env,
        &[("SCANSYNC_TEST_HOOK_SECRET", broken)],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("error: webhooks.siem.secret_env: the secret starts with whsec_ but the rest is not valid base64"),
        "{stderr}"
    );
}

#[test]
fn a_short_webhook_secret_warns_but_passes() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        dir.path(),
        &webhook("").replace(TOKEN_VAR, "SCANSYNC_TEST_HOOK_SECRET"),
        &[("SCANSYNC_TEST_HOOK_SECRET", "short")],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: webhooks.siem.secret_env: the signing key is 5 bytes; Standard Webhooks asks for at least 24"),
        "{stderr}"
    );
    assert!(stdout.contains("findings.new"), "{stdout}");
}

#[test]
fn a_listener_outside_loopback_needs_a_metrics_token_unless_behind_a_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let server = "\n[server]\nlisten = \"0.0.0.0:8787\"\n";
    let out = check(dir.path(), &format!("{STORE}{CT}{server}"), &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("error: server.metrics_token_file: is required when listen (0.0.0.0:8787) is reachable from other machines")
            && stderr.contains("(line 11)"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("metrics-token"),
        "a-metrics-token-of-some-length\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("metrics-token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let with_token = format!("{server}metrics_token_file = \"metrics-token\"\n");
    let out = check(dir.path(), &format!("{STORE}{CT}{with_token}"), &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: server.listen: 0.0.0.0:8787 is reachable from other machines over plain HTTP"
        ) && stderr.contains("(line 11)"),
        "{stderr}"
    );
    assert!(stdout.contains("server: http://0.0.0.0:8787"), "{stdout}");
    // Behind a proxy that guards it, no token is required (and no warning given).
    let proxied = format!("{STORE}{CT}{server}behind_proxy = true\n");
    let out = check(dir.path(), &proxied, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    let loopback = format!("{STORE}{CT}\n[server]\nlisten = \"[::1]:8787\"\n");
    let out = check(dir.path(), &loopback, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "{stderr}");
}

#[test]
fn webhook_secrets_and_the_metrics_token_never_appear_in_check_config_output() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hook-secret-91c2e7d4aa";
    let short = "short-7a1";
    std::fs::write(dir.path().join("hook-secret"), format!("{secret}\n")).unwrap();
    std::fs::write(
        dir.path().join("metrics-token"),
        format!("{secret}-metrics\n"),
    )
    .unwrap();
    // Each config with the exit it must give and a line it must print: a config that failed
    // for some other reason would not pass as "no secret printed".
    let configs = [
        (
            format!(
                "{STORE}{CT}\n[server]\nlisten = \"127.0.0.1:8787\"\nmetrics_token_file = \"metrics-token\"\n{}",
                scan("a", "schedule = \"now\"\nwebhook = { platform = \"github\", secret_file = \"hook-secret\", branches = [\"main\"] }")
            ),
            0,
            "webhook github main",
        ),
        (
            format!(
                "{STORE}{CT}{}",
                scan("a", "schedule = \"now\"\nwebhook = { platform = \"gitlab\", secret_env = \"HOOK_SECRET\", branches = [\"main\"] }")
            ),
            0,
            "webhook gitlab main",
        ),
        // A pasted secret where the variable name belongs, next to another error.
        (
            format!(
                "{STORE}{CT}{}",
                scan("a", "schedule = \"soon\"\nwebhook = { platform = \"gitlab\", secret_env = \"hook-secret-91c2e7d4aa\", branches = [\"main\"] }")
            ),
            78,
            "error: scans[0].webhook.secret_env: is not an environment variable name",
        ),
        (
            format!(
                "{STORE}{CT}{}",
                scan("a", "schedule = \"now\"\nwebhook = { platform = \"gitlab\", secret_env = \"SHORT_SECRET\", branches = [\"main\"] }")
            ),
            0,
            "warning: scans[0].webhook.secret_env: the webhook secret is shorter than 16 characters",
        ),
    ];
    for (config, code, expect) in &configs {
        let out = check(
            dir.path(),
            config,
            &[("HOOK_SECRET", secret), ("SHORT_SECRET", short)],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(*code), "{stderr}\n{config}");
        assert!(
            stdout.contains(expect) || stderr.contains(expect),
            "{expect}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret) && !stderr.contains(short),
            "secret printed for config:\n{config}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

#[test]
fn config_path_comes_from_scansync_config_when_no_flag_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elsewhere.toml");
    std::fs::write(&path, format!("{STORE}{CT}{}", ok_scan("a"))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .arg("check-config")
        .env("SCANSYNC_CONFIG", &path)
        .env(TOKEN_VAR, TOKEN_VALUE)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("elsewhere.toml: ok"), "{stdout}");
}

#[test]
fn a_passive_vendors_scan_refuses_a_webhook_table() {
    let dir = tempfile::tempdir().unwrap();
    let salt = "\n[instances.salt]\nvendor = \"saltsecurity\"\nurl = \"https://api.salt.example\"\ntoken_env = \"SCANSYNC_TEST_TOKEN\"\n";
    let scan = "\n[[scans]]\nname = \"apis\"\ninstance = \"salt\"\nbind_to = \"asset-1\"\nschedule = \"now\"\nwebhook = { platform = \"github\", secret_env = \"SCANSYNC_TEST_TOKEN\" }\n";
    let out = check(dir.path(), &format!("{STORE}{salt}{scan}"), &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("error: scans[0].webhook: saltsecurity starts no scans"),
        "{stderr}"
    );
}

#[test]
fn a_plain_http_vendor_url_off_this_machine_is_warned_about_and_loopback_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let plain = CT.replace("https://ct.example", "http://ct.example");
    let out = check(dir.path(), &format!("{STORE}{plain}"), &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: instances.ct.url: http://ct.example/ is plain HTTP: the API token travels in clear text"),
        "{stderr}"
    );
    for local in [
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "http://[::1]:9000",
    ] {
        let text_ = CT.replace("https://ct.example", local);
        let out = check(dir.path(), &format!("{STORE}{text_}"), &[]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("plain HTTP"), "{local}: {stderr}");
    }
}

#[test]
fn check_config_on_the_example_with_no_secrets_set_warns_and_strict_refuses() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let example_text = std::fs::read_to_string(&example).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("config.example.toml");
    std::fs::write(&copy, &example_text).unwrap();
    // The variables the example names, unset as in a shell that is not the service's.
    let vars: Vec<String> = example_text
        .lines()
        .filter_map(|l| l.split("_env = \"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect();
    assert!(!vars.is_empty(), "the example names secret variables");
    let run = |strict: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scansync"));
        cmd.args(["check-config", "--config"]).arg(&copy);
        if strict {
            cmd.arg("--strict");
        }
        cmd.env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("RUST_LOG");
        for v in &vars {
            cmd.env_remove(v);
        }
        cmd.output().unwrap()
    };
    let out = run(false);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    for v in &vars {
        assert!(
            stderr.contains(&format!("environment variable {v} is unset or empty"))
                && stderr.contains("not an error for check-config"),
            "{v}: {stderr}"
        );
    }
    let out = run(true);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains("is unset or empty"),
        "{stderr}"
    );
}
