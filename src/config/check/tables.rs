use super::*;

impl Checker<'_> {
    pub(super) fn suppress_rule(
        &mut self,
        path: &str,
        index: usize,
        v: &Val<'_>,
        scans: &[String],
    ) -> Option<SuppressRule> {
        let table = self.table(path, v, "a table ([[suppress]])")?;
        let span = v.span();
        let t = self.enter(path, table, &span, SUPPRESS_KEYS);
        let name = match t.get("name") {
            Some(_) => self.required_string(t, "name", "a name for the rule's triage events"),
            None => Some(format!("suppress[{index}]")),
        };
        let scan_names = self.string_list(t, "scans");
        if let Some(DeValue::Array(items)) = t.get("scans").map(|v| v.get_ref()) {
            for (i, item) in items.iter().enumerate() {
                let DeValue::String(scan) = item.get_ref() else {
                    continue;
                };
                if !scans.iter().any(|s| s.as_str() == scan.as_ref()) {
                    let known = if scans.is_empty() {
                        "none is defined".to_string()
                    } else {
                        format!("defined: {}", scans.join(", "))
                    };
                    self.error(
                        &format!("{}[{i}]", t.field("scans")),
                        Some(&item.span()),
                        format!("no scan named \"{scan}\" ({known})"),
                    );
                }
            }
        }
        let matcher = |checker: &mut Self, key: &str| -> Option<String> {
            let value = checker.string(t, key)?;
            if value.trim().is_empty() {
                let blame = t.get(key).map(|v| v.span());
                checker.error(
                    &t.field(key),
                    blame.as_ref(),
                    "must not be empty (leave the key out to match any)",
                );
                return None;
            }
            Some(value)
        };
        let rule = matcher(self, "rule");
        let glob = matcher(self, "path");
        let title = matcher(self, "title");
        if ["rule", "path", "title"].iter().all(|k| t.get(k).is_none()) {
            self.error(
                path,
                Some(t.span),
                "matches every finding of its scans; give at least one of rule, path or title",
            );
        }
        if let (Some(pattern), Some(v)) = (&glob, t.get("path")) {
            if pattern.starts_with('!') {
                self.error(
                    &t.field("path"),
                    Some(&v.span()),
                    format!(
                        "\"{pattern}\" starts with \"!\": negated patterns are not supported; \
                         write the paths to suppress"
                    ),
                );
            }
        }
        let state = match t.get("state") {
            None => {
                self.error(
                    &t.field("state"),
                    Some(t.span),
                    "is required (false_positive or accepted)",
                );
                None
            }
            Some(v) => match self.string(t, "state")?.as_str() {
                "false_positive" => Some(SuppressState::FalsePositive),
                "accepted" => Some(SuppressState::Accepted),
                other => {
                    self.error(
                        &t.field("state"),
                        Some(&v.span()),
                        format!(
                            "\"{other}\" is not a triage state; use false_positive or accepted"
                        ),
                    );
                    None
                }
            },
        };
        let reason = self.required_string(
            t,
            "reason",
            "why these findings need no action; it is shown with each of them",
        );
        let until = t.get("until").and_then(|v| {
            let word = self.string(t, "until")?;
            match chrono::NaiveDate::parse_from_str(&word, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    self.error(
                        &t.field("until"),
                        Some(&v.span()),
                        format!("\"{word}\" is not a date; write it as YYYY-MM-DD"),
                    );
                    None
                }
            }
        });
        Some(SuppressRule {
            name: name?,
            scans: scan_names,
            rule,
            path: glob,
            title,
            state: state?,
            reason: reason?,
            until,
        })
    }

    pub(super) fn webhook(
        &mut self,
        path: &str,
        v: &Val<'_>,
        scans: &[String],
    ) -> Option<WebhookConfig> {
        let table = self.table(path, v, "a table ([webhooks.NAME])")?;
        let span = v.span();
        let t = self.enter(path, table, &span, WEBHOOK_KEYS);
        let url = match t.get("url") {
            Some(_) => self.url(t, "url", "https://siem.example.com/hooks/scansync"),
            None => {
                self.error(
                    &t.field("url"),
                    Some(t.span),
                    "is required (the http(s) URL notifications are POSTed to)",
                );
                None
            }
        };
        let events = match t.get("events") {
            None => default_webhook_events(),
            Some(ev) => {
                // Reports a value that is not a list of strings.
                self.string_list(t, "events");
                let items: Vec<&Val<'_>> = match ev.get_ref() {
                    DeValue::Array(items) => items.iter().collect(),
                    _ => Vec::new(),
                };
                if matches!(ev.get_ref(), DeValue::Array(a) if a.is_empty()) {
                    self.error(
                        &t.field("events"),
                        Some(&ev.span()),
                        "is empty, so nothing would ever be sent; list at least one of findings.new, findings.fixed, findings.reopened, run.failed (or remove the webhook)",
                    );
                }
                let mut events = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    let DeValue::String(word) = item.get_ref() else {
                        continue;
                    };
                    match word.parse::<EventType>() {
                        Ok(e) if !events.contains(&e) => events.push(e),
                        Ok(_) => {}
                        Err(msg) => self.error(
                            &format!("{}[{index}]", t.field("events")),
                            Some(&item.span()),
                            msg,
                        ),
                    }
                }
                events
            }
        };
        let min_severity = t.get("min_severity").and_then(|v| {
            let s = self.string(t, "min_severity")?;
            match s.parse::<Severity>() {
                Ok(sev) => Some(sev),
                Err(e) => {
                    self.error(&t.field("min_severity"), Some(&v.span()), e);
                    None
                }
            }
        });
        let scan_names = self.string_list(t, "scans");
        if let Some(DeValue::Array(items)) = t.get("scans").map(|v| v.get_ref()) {
            for (index, item) in items.iter().enumerate() {
                let DeValue::String(name) = item.get_ref() else {
                    continue;
                };
                if !scans.iter().any(|s| s.as_str() == name.as_ref()) {
                    let known = if scans.is_empty() {
                        "none is defined".to_string()
                    } else {
                        format!("defined: {}", scans.join(", "))
                    };
                    self.error(
                        &format!("{}[{index}]", t.field("scans")),
                        Some(&item.span()),
                        format!("no scan named \"{name}\" ({known})"),
                    );
                }
            }
        }
        let mut w = WebhookConfig {
            url: url.unwrap_or_default(),
            secret_file: self.string(t, "secret_file").map(PathBuf::from),
            secret_env: self.string(t, "secret_env"),
            events,
            min_severity,
            scans: scan_names,
            timeout: self
                .duration(t, "timeout", false)
                .unwrap_or_else(default_webhook_timeout),
            resolved_secret: None,
        };
        self.webhook_secret(t, &mut w);
        Some(w)
    }

    /// Checks that exactly one secret source is given, reads the secret and checks that it
    /// makes a signing key. No message ever contains the secret.
    pub(super) fn webhook_secret(&mut self, t: Tbl<'_, '_>, w: &mut WebhookConfig) {
        let Some((key, path, secret)) = self.secret_source(
            t,
            "no signing secret given; set exactly one of secret_file or secret_env",
        ) else {
            return;
        };
        match crate::sign::SigningKey::from_secret(&secret) {
            Ok(k) => {
                let key_len = k.len();
                if key_len < crate::sign::RECOMMENDED_KEY_BYTES {
                    self.warn(
                        &t.field(key),
                        &t.span_of(key),
                        format!(
                            "the signing key is {key_len} bytes; Standard Webhooks asks for at least {} random bytes (e.g. `echo \"whsec_$(openssl rand -base64 32)\"`)",
                            crate::sign::RECOMMENDED_KEY_BYTES
                        ),
                    );
                }
                if path.is_some() {
                    w.secret_file = path;
                }
                w.resolved_secret = Some(secret);
            }
            Err(e) => {
                let blame = t.get(key).map(|v| v.span());
                self.error(&t.field(key), blame.as_ref(), format!("the secret {e}"));
            }
        }
    }

    /// Reads the secret of a table that takes exactly one of `secret_file` / `secret_env`
    /// (an outgoing webhook, a scan's incoming one): the key it came from, the file actually
    /// read, and the secret. Every problem is reported; `missing` says what to do when
    /// neither key is set.
    pub(super) fn secret_source(
        &mut self,
        t: Tbl<'_, '_>,
        missing: &str,
    ) -> Option<(&'static str, Option<PathBuf>, Secret)> {
        self.secret_from(t, SECRET_KEYS, "secret", missing)
    }

    /// [`Checker::secret_source`] for any set of keys: `keys` are the file key, the
    /// environment key and optionally a systemd credential's (`password_file`,
    /// `password_env`, `password_credential`); `what` names the secret in messages.
    pub(super) fn secret_from(
        &mut self,
        t: Tbl<'_, '_>,
        keys: &'static [&'static str],
        what: &str,
        missing: &str,
    ) -> Option<(&'static str, Option<PathBuf>, Secret)> {
        let mut given: Vec<&'static str> = keys
            .iter()
            .copied()
            .filter(|k| t.get(k).is_some())
            .collect();
        given.sort_by_key(|k| t.span_of(k).start);
        match given.as_slice() {
            [] => {
                self.error(t.path, Some(t.span), missing);
                return None;
            }
            [_] => {}
            [_, second, ..] => {
                self.error(
                    &t.field(second),
                    Some(&t.span_of(second)),
                    format!(
                        "{what} given twice ({}); keep exactly one",
                        given.join(" and ")
                    ),
                );
                return None;
            }
        }
        let key = given[0];
        let raw = self.string(t, key)?;
        let read = if key == keys[0] {
            self.secret_from_file(t, key, what, Path::new(&raw))
                .map(|(path, secret)| (Some(path), secret))
        } else if key == keys[1] {
            secret_from_env(&raw, what, keys[0]).map(|secret| (None, secret))
        } else {
            token_from_credential(&raw).map(|secret| (None, secret))
        };
        match read {
            Ok((path, secret)) => Some((key, path, secret)),
            Err(msg) => {
                let span = t.get(key).map(|v| v.span());
                self.unreadable_secret(&t.field(key), span.as_ref(), msg);
                None
            }
        }
    }

    pub(super) fn store(&mut self, v: &Val<'_>) -> Option<StoreConfig> {
        let table = self.table("store", v, "a table ([store])")?;
        let span = v.span();
        let t = self.enter("store", table, &span, STORE_KEYS);
        let retention = match t.get("retention") {
            Some(v) => self.retention(&t.field("retention"), v),
            None => Retention::default(),
        };
        let location = match (t.get("path"), t.get("url")) {
            (Some(_), Some(_)) => {
                self.error(
                    &t.field("url"),
                    Some(&t.span_of("url")),
                    "path and url both given; keep exactly one (path: a SQLite file, url: \
                     a PostgreSQL database)",
                );
                None
            }
            (_, Some(_)) => self.postgres_store(t).map(StoreLocation::Postgres),
            _ => {
                let path = self.required_string(
                    t,
                    "path",
                    "the SQLite file, e.g. \"/var/lib/scansync/scansync.db\", or url for \
                     PostgreSQL",
                );
                for key in PG_ONLY_KEYS {
                    if t.get(key).is_some() {
                        self.error(
                            &t.field(key),
                            Some(&t.span_of(key)),
                            "is for a PostgreSQL store (url); a SQLite store (path) has no \
                             password or TLS",
                        );
                    }
                }
                path.map(|p| StoreLocation::Sqlite(self.base_dir.join(p)))
            }
        };
        Some(StoreConfig {
            location: location?,
            retention,
        })
    }

    /// `[store] url` with its password and TLS settings.
    fn postgres_store(&mut self, t: Tbl<'_, '_>) -> Option<PgTarget> {
        const EXAMPLE: &str = "postgres://scansync@db.example:5432/scansync?sslmode=verify-full";
        let url = self.required_string(t, "url", EXAMPLE)?;
        let blame = t.span_of("url");
        if !is_postgres_url(&url) {
            self.error(
                &t.field("url"),
                Some(&blame),
                format!("is not a PostgreSQL url (e.g. \"{EXAMPLE}\")"),
            );
            return None;
        }
        if url_has_password(&url) {
            // Not echoed: the url holds a password.
            self.error(
                &t.field("url"),
                Some(&blame),
                "holds a password; take it out of the url and give password_file, \
                 password_env or password_credential",
            );
            return None;
        }
        if let Err(e) = pg_driver_config(&url) {
            self.error(&t.field("url"), Some(&blame), e);
            return None;
        }
        let given = PG_PASSWORD_KEYS.iter().any(|k| t.get(k).is_some());
        let password = if given {
            Some(self.secret_from(t, PG_PASSWORD_KEYS, "password", "")?.2)
        } else {
            None
        };
        let ca_file = match t.get("ca_file") {
            Some(_) => {
                let path = self.path(t, "ca_file")?;
                if let Err(e) = crate::tls::ca_certificates(&path) {
                    self.error(&t.field("ca_file"), Some(&t.span_of("ca_file")), e);
                    return None;
                }
                Some(path)
            }
            None => None,
        };
        Some(PgTarget {
            url,
            password,
            ca_file,
            schema: None,
        })
    }

    pub(super) fn retention(&mut self, path: &str, v: &Val<'_>) -> Retention {
        let mut r = Retention::default();
        let Some(table) = self.table(
            path,
            v,
            "a table (retention = { runs = \"180d\", events = \"180d\", ... })",
        ) else {
            return r;
        };
        let span = v.span();
        let t = self.enter(path, table, &span, RETENTION_KEYS);
        for (key, slot) in [
            ("runs", &mut r.runs),
            ("events", &mut r.events),
            ("notifications", &mut r.notifications),
            ("webhook_deliveries", &mut r.webhook_deliveries),
            ("branch_scopes", &mut r.branch_scopes),
        ] {
            if let Some(d) = self.duration(t, key, false) {
                *slot = d;
            }
        }
        r
    }

    pub(super) fn daemon(&mut self, v: &Val<'_>) -> DaemonConfig {
        let mut d = DaemonConfig::default();
        let Some(table) = self.table("daemon", v, "a table ([daemon])") else {
            return d;
        };
        let span = v.span();
        let t = self.enter("daemon", table, &span, DAEMON_KEYS);
        if let Some(n) = self.count(t, "concurrency", 1) {
            d.concurrency = n;
        }
        if let Some(n) = self.count(t, "per_instance_concurrency", 1) {
            d.per_instance_concurrency = n;
        }
        if let Some(x) = self.duration(t, "shutdown_timeout", true) {
            d.shutdown_timeout = x;
        }
        if let Some(x) = self.duration(t, "jitter", true) {
            d.jitter = x;
        }
        if let Some(x) = self.duration(t, "poll_interval", false) {
            d.poll_interval = x;
        }
        if let Some(name) = self.string(t, "node_name") {
            let fits = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if fits {
                d.node_name = Some(name);
            } else {
                self.error(
                    &t.field("node_name"),
                    Some(&t.span_of("node_name")),
                    "must be 1 to 64 letters, digits, '-', '_' or '.' (it names this daemon \
                     in /metrics and /readyz)",
                );
            }
        }
        if let Some(x) = self.share(t, "fix_guard") {
            d.fix_guard = x;
        }
        d
    }

    pub(super) fn server(&mut self, v: &Val<'_>) -> Option<ServerConfig> {
        let table = self.table("server", v, "a table ([server])")?;
        let span = v.span();
        let t = self.enter("server", table, &span, SERVER_KEYS);
        let listen = self
            .required_string(t, "listen", "the address to listen on, e.g. \"127.0.0.1:8787\"")
            .and_then(|s| match s.trim().parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    let span = t.get("listen").map(|v| v.span());
                    self.error(
                        &t.field("listen"),
                        span.as_ref(),
                        format!(
                            "\"{s}\" is not an IP address and port; write e.g. \"127.0.0.1:8787\", \"0.0.0.0:8787\" or \"[::1]:8787\" (host names are not resolved)"
                        ),
                    );
                    None
                }
            });
        let cert = self.path(t, "tls_cert_file");
        let key = self.path(t, "tls_key_file");
        let behind_proxy = self.boolean(t, "behind_proxy").unwrap_or(false);
        match (&cert, &key) {
            (Some(cert), Some(key)) => {
                if let Err((which, e)) = crate::tls::check_files(cert, key) {
                    let field = if which == crate::tls::TlsFile::Cert {
                        "tls_cert_file"
                    } else {
                        "tls_key_file"
                    };
                    let span = t.get(field).map(|v| v.span());
                    self.error(&t.field(field), span.as_ref(), e);
                }
                self.warn_if_readable_by_others(t, "tls_key_file", key);
            }
            (Some(_), None) | (None, Some(_)) => {
                let (given, missing) = if cert.is_some() {
                    ("tls_cert_file", "tls_key_file")
                } else {
                    ("tls_key_file", "tls_cert_file")
                };
                self.error(
                    &t.field(missing),
                    Some(&t.span_of(given)),
                    format!("is required when {given} is set: give both (HTTPS) or neither"),
                );
            }
            (None, None) => {}
        }
        let metrics_token_file = t.get("metrics_token_file").and_then(|v| {
            let raw = self.string(t, "metrics_token_file")?;
            match self.secret_from_file(t, "metrics_token_file", "metrics token", Path::new(&raw)) {
                Ok((path, secret)) => Some((path, secret)),
                Err(e) => {
                    self.unreadable_secret(&t.field("metrics_token_file"), Some(&v.span()), e);
                    None
                }
            }
        });
        let listen = listen?;
        if !listen.ip().is_loopback() && cert.is_none() && !behind_proxy {
            self.warn(
                &t.field("listen"),
                &t.span_of("listen"),
                format!(
                    "{listen} is reachable from other machines over plain HTTP: webhook payloads and the metrics token travel unencrypted; set tls_cert_file and tls_key_file, or behind_proxy = true when a TLS-terminating proxy is in front"
                ),
            );
        }
        if !listen.ip().is_loopback() && !behind_proxy && t.get("metrics_token_file").is_none() {
            // /metrics names every scan and counts its findings by severity: not for
            // whoever can reach the port.
            self.error(
                &t.field("metrics_token_file"),
                Some(&t.span_of("listen")),
                format!(
                    "is required when listen ({listen}) is reachable from other machines: /metrics names the scans and counts their findings; write a token to a file (`scansync webhook-secret > FILE`) and name it here, or set behind_proxy = true when a proxy in front guards the listener"
                ),
            );
        }
        let max_connections = self
            .count(t, "max_connections", 1)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let (metrics_token_file, metrics_token) = match metrics_token_file {
            Some((path, secret)) => (Some(path), Some(secret)),
            None => (None, None),
        };
        Some(ServerConfig {
            listen,
            tls_cert_file: cert,
            tls_key_file: key,
            behind_proxy,
            metrics_token_file,
            metrics_token,
            max_connections,
        })
    }
}
