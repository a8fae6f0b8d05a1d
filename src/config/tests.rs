use super::*;
use chrono::TimeZone;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn durations_accept_each_unit_and_combinations() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
}

#[test]
fn durations_reject_missing_units_negatives_and_junk() {
    for bad in [
        "",
        "90",
        "-5m",
        "6 hours",
        "1w",
        "h",
        "1.5h",
        "99999999999999999999d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
    }
    assert!(parse_duration("90").unwrap_err().contains("lacks a unit"));
}

#[test]
fn durations_refuse_repeated_or_rising_units_and_explain_fractions() {
    assert_eq!(
        parse_duration("30s30s"),
        Err("\"30s30s\" gives \"s\" twice; give each unit once, e.g. \"1h30m\"".into())
    );
    assert_eq!(
        parse_duration("1m1h"),
        Err(
            "\"1m1h\" has \"h\" after the smaller unit \"m\"; write the units from \
             largest to smallest, e.g. \"1h30m\""
                .into()
        )
    );
    assert_eq!(
        parse_duration("1.5h"),
        Err(
            "\"1.5h\": fractions are not accepted; write the parts in smaller units, \
             e.g. \"1h30m\" for 1.5h or \"1m30s\" for 1.5m"
                .into()
        )
    );
    assert_eq!(parse_duration("2d3h4m5s"), Ok(Duration::from_secs(183_845)));
    assert_eq!(parse_duration("1h5s"), Ok(Duration::from_secs(3605)));
}

#[test]
fn format_duration_inverts_parse_duration() {
    for s in ["30s", "15m", "6h", "1d", "1h30m", "2d3h4m5s"] {
        assert_eq!(format_duration(parse_duration(s).unwrap()), s);
    }
}

#[test]
fn next_after_for_now_at_and_every() {
    let now = utc("2026-11-23T10:00:00Z");
    assert_eq!(Schedule::Now.next_after(now), Some(now));
    let at = DateTime::parse_from_rfc3339("2026-12-01T02:00:00+03:00").unwrap();
    assert_eq!(
        Schedule::At(at).next_after(now),
        Some(utc("2026-11-30T23:00:00Z"))
    );
    assert_eq!(
        Schedule::At(at).next_after(utc("2026-12-02T00:00:00Z")),
        None
    );
    assert_eq!(
        Schedule::Every(Duration::from_secs(6 * 3600)).next_after(now),
        Some(utc("2026-11-23T16:00:00Z"))
    );
}

#[test]
fn cron_next_after_keeps_local_wall_clock_across_dst() {
    let daily_9am = Schedule::Cron {
        expr: "0 0 9 * * *".to_string(),
        timezone: chrono_tz::America::New_York,
    };
    // 2026-03-08: New York moves from EST (UTC-5) to EDT (UTC-4).
    assert_eq!(
        daily_9am.next_after(utc("2026-03-07T15:00:00Z")),
        Some(utc("2026-03-08T13:00:00Z"))
    );
    assert_eq!(
        daily_9am.next_after(utc("2026-03-06T15:00:00Z")),
        Some(utc("2026-03-07T14:00:00Z"))
    );
    let istanbul = Schedule::Cron {
        expr: "0 0 2 * * *".to_string(),
        timezone: chrono_tz::Europe::Istanbul,
    };
    assert_eq!(
        istanbul.next_after(utc("2026-11-23T10:00:00Z")),
        Some(utc("2026-11-23T23:00:00Z"))
    );
}

#[test]
fn cron_requires_seconds_and_ands_day_of_month_with_day_of_week() {
    assert!(parse_cron("0 2 * * *").is_err());
    assert!(parse_cron("0 0 2 * * *").is_ok());
    assert!(parse_cron("0 0 2 * * * 2027").is_ok());
    // First Monday of the month: day 1-7 AND Monday.
    let first_monday = Schedule::Cron {
        expr: "0 0 9 1-7 * MON".to_string(),
        timezone: chrono_tz::UTC,
    };
    assert_eq!(
        first_monday.next_after(utc("2026-11-23T00:00:00Z")),
        Some(Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap())
    );
}

#[test]
fn from_toml_resolves_the_token_without_its_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "abc123\n").unwrap();
    let text = format!(
        "[store]\npath = \"db.sqlite\"\n[instances.s]\nvendor = \"saltsecurity\"\nregion = \"eu\"\ntoken_file = \"{}\"\n",
        token.display()
    );
    let loaded =
        Config::from_toml(&text, &dir.path().join("c.toml"), crate::vendors::REGISTRY).unwrap();
    let instance = &loaded.config.instances["s"];
    assert_eq!(instance.resolved_token.as_ref().unwrap().expose(), "abc123");
    assert_eq!(
        loaded.config.store.location,
        StoreLocation::Sqlite(dir.path().join("db.sqlite"))
    );
}

fn suppress_config(rules: &str) -> Result<Loaded, ConfigErrors> {
    let text = format!(
        "[store]\npath = \"db.sqlite\"\n[instances.s]\nvendor = \"saltsecurity\"\n\
         region = \"eu\"\ntoken = \"t\"\n[[scans]]\nname = \"api\"\ninstance = \"s\"\n\
         bind_to = \"a\"\nschedule = \"now\"\n{rules}"
    );
    Config::from_toml(
        &text,
        Path::new("/etc/scansync/c.toml"),
        crate::vendors::REGISTRY,
    )
}

#[test]
fn suppress_rules_are_read_in_order_with_a_default_name() {
    let loaded = suppress_config(
        "[[suppress]]\nname = \"tests\"\npath = \"**/test/**\"\nstate = \"false_positive\"\n\
         reason = \"fixtures\"\n[[suppress]]\nscans = [\"api\"]\nrule = \"BOLA\"\n\
         state = \"accepted\"\nreason = \"gateway checks\"\nuntil = \"2027-01-31\"\n",
    )
    .unwrap();
    let rules = &loaded.config.suppress;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].name, "tests");
    assert_eq!(rules[1].name, "suppress[1]");
    assert_eq!(rules[1].state, SuppressState::Accepted);
    assert_eq!(rules[1].until_word().as_deref(), Some("2027-01-31"));
    assert!(rules[1].covers_scan("api") && rules[1].covers_scan("api@feature/x"));
    assert!(!rules[1].covers_scan("api2"));
    assert!(rules[1].active_at("2027-01-30T23:59:59.999Z"));
    assert!(!rules[1].active_at("2027-01-31T00:00:00.000Z"));
}

#[test]
fn suppress_errors_name_their_field() {
    let errors = suppress_config(
        "[[suppress]]\npath = \"tests/**\"\nstate = \"false_positive\"\nreason = \"x\"\n\
         [[suppress]]\nstate = \"ignored\"\nreason = \"\"\nscans = [\"nope\"]\n\
         until = \"soon\"\ncolour = 1\n",
    )
    .unwrap_err()
    .errors
    .join("\n");
    for want in [
        "suppress[1]: matches every finding",
        "suppress[1].state: \"ignored\" is not a triage state",
        "suppress[1].reason: must not be empty",
        "suppress[1].scans[0]: no scan named \"nope\"",
        "suppress[1].until: \"soon\" is not a date",
        "suppress[1].colour: unknown key",
    ] {
        assert!(errors.contains(want), "{want} in:\n{errors}");
    }
    assert!(!errors.contains("suppress[0]"), "{errors}");
    let errors = suppress_config("[[suppress]]\ntitle = \"x\"\nstate = \"accepted\"\n")
        .unwrap_err()
        .errors
        .join("\n");
    assert!(
        errors.contains("suppress[0].reason: is required"),
        "{errors}"
    );
}

#[test]
fn a_rule_matches_rule_path_and_title_together() {
    use crate::finding::{Finding, Location};
    let rule = SuppressRule {
        name: "r".into(),
        scans: Vec::new(),
        rule: Some("js/xss".into()),
        path: Some("**/test/**".into()),
        title: Some("XSS".into()),
        state: SuppressState::FalsePositive,
        reason: "x".into(),
        until: None,
    };
    let mut f = Finding {
        vendor_id: None,
        title: "Reflected xss in page".into(),
        severity: Severity::High,
        vendor_status: None,
        cwe: None,
        owasp: None,
        rule_id: Some("js/xss".into()),
        location: Location::Code {
            path: "web/test/page.js".into(),
            start_line: None,
            end_line: None,
        },
        description: None,
        remediation: None,
        vendor_url: None,
        vendor_first_seen: None,
        vendor_last_seen: None,
        raw: String::new(),
        verdict: None,
    };
    assert!(rule.matches(&f));
    f.rule_id = Some("js/sqli".into());
    assert!(!rule.matches(&f));
    f.rule_id = Some("js/xss".into());
    f.location = Location::Code {
        path: "web/page.js".into(),
        start_line: None,
        end_line: None,
    };
    assert!(!rule.matches(&f));
}

#[test]
fn a_secret_file_is_read_only_up_to_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "x".repeat(70 * 1024)).unwrap();
    let text = format!(
        "[store]\npath = \"db.sqlite\"\n[instances.s]\nvendor = \"saltsecurity\"\nregion = \"eu\"\ntoken_file = \"{}\"\n",
        token.display()
    );
    let errors = Config::from_toml(&text, &dir.path().join("c.toml"), crate::vendors::REGISTRY)
        .unwrap_err()
        .to_string();
    assert!(errors.contains("larger than 64 KiB"), "{errors}");
    assert!(errors.contains("instances.s.token_file"), "{errors}");
}

fn store_config(store: &str) -> Result<Loaded, ConfigErrors> {
    let text = format!(
        "[store]\n{store}\n[instances.s]\nvendor = \"saltsecurity\"\n\
         region = \"eu\"\ntoken = \"t\"\n[[scans]]\nname = \"api\"\ninstance = \"s\"\n\
         bind_to = \"a\"\nschedule = \"now\"\n"
    );
    Config::from_toml(
        &text,
        Path::new("/etc/scansync/c.toml"),
        crate::vendors::REGISTRY,
    )
}

fn store_errors(store: &str) -> String {
    store_config(store).unwrap_err().errors.join("\n")
}

#[test]
fn a_postgresql_store_takes_a_url_and_a_password_from_outside_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem");
    let loaded = store_config(&format!(
        "url = \"postgres://scan@db.example:5432/s?sslmode=verify-full\"\npassword_file = \"{}\"\n\
         ca_file = \"{}\"",
        pw.display(),
        ca.display()
    ))
    .unwrap();
    let StoreLocation::Postgres(target) = &loaded.config.store.location else {
        panic!("{:?}", loaded.config.store.location)
    };
    assert_eq!(
        target.url,
        "postgres://scan@db.example:5432/s?sslmode=verify-full"
    );
    assert_eq!(target.password.as_ref().map(|p| p.expose()), Some("s3cret"));
    assert_eq!(target.ca_file.as_deref(), Some(ca.as_path()));
    assert!(store_errors(&format!(
        "url = \"postgres://scan@db/s\"\nca_file = \"{}\"",
        pw.display()
    ))
    .contains("store.ca_file: "));
    assert!(!format!("{:?}", loaded.config).contains("s3cret"));
    // Without a password key: the server's own rules (trust, peer, a .pgpass) apply.
    let loaded = store_config("url = \"postgresql://scan@db/s\"").unwrap();
    assert!(
        matches!(&loaded.config.store.location, StoreLocation::Postgres(t) if t.password.is_none())
    );
}

#[test]
fn store_errors_name_their_field_and_never_echo_a_password() {
    for (store, want) in [
        (
            "path = \"a.db\"\nurl = \"postgres://u@h/d\"",
            "store.url: path and url both given",
        ),
        (
            "url = \"mysql://u@h/d\"",
            "store.url: is not a PostgreSQL url",
        ),
        (
            "url = \"postgres://u:hunter2@h/d\"",
            "store.url: holds a password",
        ),
        (
            "path = \"a.db\"\npassword_env = \"PG\"",
            "store.password_env: is for a PostgreSQL store",
        ),
        (
            "path = \"a.db\"\nca_file = \"ca.pem\"",
            "store.ca_file: is for a PostgreSQL store",
        ),
        (
            "url = \"postgres://u@h/d\"\npassword_env = \"A\"\npassword_credential = \"b\"",
            "store.password_credential: password given twice",
        ),
        (
            "url = \"postgres://u@h/d\"\npassword_env = \"not a name\"",
            "store.password_env:",
        ),
        ("", "store.path: is required"),
    ] {
        let errors = store_errors(store);
        assert!(errors.contains(want), "{want} in:\n{errors}");
        assert!(!errors.contains("hunter2"), "{errors}");
    }
}

#[test]
fn node_name_is_a_plain_word_defaulting_to_the_host_name() {
    let ok = |name: &str| {
        store_config(&format!(
            "path = \"a.db\"\n[daemon]\nnode_name = \"{name}\""
        ))
        .map(|l| l.config.daemon.node_name)
    };
    assert_eq!(
        ok("scan-node_1.eu").unwrap().as_deref(),
        Some("scan-node_1.eu")
    );
    for bad in ["", "two words", "a\\\"b", &"x".repeat(65)] {
        let errors = ok(bad).unwrap_err().errors.join("\n");
        assert!(
            errors.contains("daemon.node_name: must be 1 to 64"),
            "{bad}: {errors}"
        );
    }
    assert_eq!(
        store_config("path = \"a.db\"")
            .unwrap()
            .config
            .daemon
            .node_name,
        None
    );
}

#[test]
fn a_password_in_a_url_is_hidden_wherever_it_is_shown() {
    assert_eq!(
        hide_password("postgres://scan:s3cret@db.example:5432/x?sslmode=require"),
        "postgres://scan:***@db.example:5432/x?sslmode=require"
    );
    assert_eq!(
        hide_password("postgres://scan@db/x"),
        "postgres://scan@db/x"
    );
    assert!(url_has_password("postgres://a:b@h/d"));
    assert!(!url_has_password("postgres://a@h/d?password_hint=x:y"));
    // The driver ends the login at the first `@`, whatever comes before it.
    assert!(url_has_password("postgres://a:Sl4sh/pw@h/d"));
    assert_eq!(
        hide_password("postgres://a:Sl4sh/pw?x@h/d?sslmode=disable"),
        "postgres://a:***@h/d?sslmode=disable"
    );
    // And reads a password from the query too.
    assert!(url_has_password(
        "postgres://a@h/d?sslmode=disable&password=s3cret"
    ));
    assert_eq!(
        hide_password("postgres://a@h/d?password=s3cret&sslmode=disable"),
        "postgres://a@h/d?password=***&sslmode=disable"
    );
    assert!(matches!(
        StoreLocation::from_cli("postgres://a:b@h/d"),
        Err(e) if !e.contains('b') || e.contains("PGPASSWORD")
    ));
}

#[test]
fn sslmode_means_verified_tls_unless_disabled_and_never_a_clear_text_fallback() {
    let mode = |url: &str| pg_driver_config(url).map(|(tls, _)| tls);
    assert_eq!(
        mode("postgres://u@h/db"),
        Ok(PgTls::Verified),
        "the default"
    );
    for m in ["require", "verify-ca", "verify-full"] {
        assert_eq!(
            mode(&format!("postgres://u@h/db?sslmode={m}")),
            Ok(PgTls::Verified)
        );
    }
    assert_eq!(
        mode("postgres://u@h/db?sslmode=disable"),
        Ok(PgTls::Disable)
    );
    for refused in ["prefer", "allow", "verify_full"] {
        let e = mode(&format!("postgres://u@h/db?sslmode={refused}")).unwrap_err();
        assert!(e.contains(refused), "{e}");
    }
    assert!(mode("postgres://u@h/db?sslrootcert=/x").is_err());
    assert!(mode("postgres://u@h:5432/db?sslmode=disable&port=abc").is_err());
    let (_, config) =
        pg_driver_config("postgres://u@h:5433/db?sslmode=verify-full&connect_timeout=3").unwrap();
    assert_eq!(config.get_user(), Some("u"));
    assert_eq!(config.get_dbname(), Some("db"));
    assert_eq!(config.get_ports(), &[5433]);
    assert_eq!(config.get_ssl_mode(), postgres::config::SslMode::Require);
    assert_eq!(
        config.get_connect_timeout(),
        Some(&std::time::Duration::from_secs(3))
    );
}
