use super::*;

impl Checker<'_> {
    pub(super) fn instance(&mut self, path: &str, v: &Val<'_>) -> Option<InstanceConfig> {
        let table = self.table(path, v, "a table ([instances.NAME])")?;
        let span = v.span();
        let t = self.enter(path, table, &span, INSTANCE_KEYS);
        let vendor = self.required_string(t, "vendor", "one of codethreat, saltsecurity");
        let url = self.url(t, "url", "https://cloud.codethreat.com");
        if let Some(u) = url.as_deref().and_then(|u| reqwest::Url::parse(u).ok()) {
            let host = u.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if u.scheme() == "http" && !loopback {
                self.warn(
                    &t.field("url"),
                    &t.span_of("url"),
                    format!("{u} is plain HTTP: the API token travels in clear text to it; use https:// unless a trusted tunnel carries it"),
                );
            }
        }
        let mut i = InstanceConfig {
            vendor: vendor.clone().unwrap_or_default(),
            url,
            region: self.string(t, "region"),
            organization: self.string(t, "organization"),
            token_file: self.string(t, "token_file").map(PathBuf::from),
            token_env: self.string(t, "token_env"),
            credential: self.string(t, "credential"),
            token: None,
            insecure: self.boolean(t, "insecure").unwrap_or(false),
            ca_file: self.path(t, "ca_file"),
            proxy: self.url(t, "proxy", "http://proxy.internal:3128"),
            timeout: self.duration(t, "timeout", false),
            resolved_token: None,
        };
        // The inline token is read without echoing it in any message, even a type error.
        if let Some(tv) = t.get("token") {
            match tv.get_ref() {
                DeValue::String(s) => i.token = Some(s.to_string()),
                other => self.error(
                    &t.field("token"),
                    Some(&tv.span()),
                    format!("must be a string, not {}", article(other.type_str())),
                ),
            }
        }
        if let Some(vendor) = vendor {
            match self.vendor(&vendor) {
                Some(rules) => {
                    for message in rules.check(&i) {
                        let (field, rest) = message.split_once(':').unwrap_or(("", &message));
                        let field = field.trim();
                        let blame = t
                            .get(field)
                            .map(|v| v.span())
                            .unwrap_or_else(|| span.clone());
                        self.error(&t.field(field), Some(&blame), rest.trim());
                    }
                }
                None => {
                    let known: Vec<&str> = self.vendors.iter().map(|v| v.name()).collect();
                    let span = t.get("vendor").map(|v| v.span());
                    self.error(
                        &t.field("vendor"),
                        span.as_ref(),
                        format!(
                            "unknown vendor \"{vendor}\"; known vendors: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if i.insecure {
            self.warn(
                &t.field("insecure"),
                &t.span_of("insecure"),
                "TLS certificate verification is OFF for this instance: anyone on the network path can read the token; use ca_file for a private CA instead",
            );
        }
        if let Some(ca) = &i.ca_file {
            if let Err(e) = std::fs::metadata(ca) {
                let span = t.get("ca_file").map(|v| v.span());
                self.error(
                    &t.field("ca_file"),
                    span.as_ref(),
                    format!("cannot read {}: {e}", ca.display()),
                );
            }
        }
        self.token(t, &mut i);
        Some(i)
    }

    /// Checks that exactly one token source is given and reads the token from it.
    pub(super) fn token(&mut self, t: Tbl<'_, '_>, i: &mut InstanceConfig) {
        // In file order, so "given twice" blames the later line.
        let mut given: Vec<&str> = TOKEN_KEYS
            .iter()
            .copied()
            .filter(|k| t.get(k).is_some())
            .collect();
        given.sort_by_key(|k| t.span_of(k).start);
        match given.as_slice() {
            [] => {
                self.error(
                    t.path,
                    Some(t.span),
                    "no token given; set exactly one of token_file, token_env, credential or token",
                );
                return;
            }
            [_] => {}
            [_, second, ..] => {
                self.error(
                    &t.field(second),
                    Some(&t.span_of(second)),
                    format!(
                        "token given twice ({}); keep exactly one token source",
                        given.join(" and ")
                    ),
                );
                return;
            }
        }
        let (key, read) = if let Some(file) = i.token_file.clone() {
            ("token_file", self.token_from_file(t, &file, i))
        } else if let Some(var) = i.token_env.clone() {
            ("token_env", token_from_env(&var))
        } else if let Some(name) = i.credential.clone() {
            ("credential", token_from_credential(&name))
        } else if let Some(token) = i.token.clone() {
            self.warn(
                &t.field("token"),
                &t.span_of("token"),
                "inline token in the config file; prefer token_file, token_env or credential so the file can be shared and backed up safely",
            );
            (
                "token",
                non_empty(token, "is empty").map_err(SecretProblem::from),
            )
        } else {
            // A source of the wrong type was already reported.
            return;
        };
        match read {
            Ok(secret) => i.resolved_token = Some(secret),
            Err(msg) => {
                let span = t.get(key).map(|v| v.span());
                self.unreadable_secret(&t.field(key), span.as_ref(), msg)
            }
        }
    }

    pub(super) fn token_from_file(
        &mut self,
        t: Tbl<'_, '_>,
        file: &Path,
        i: &mut InstanceConfig,
    ) -> Result<Secret, SecretProblem> {
        let (path, secret) = self.secret_from_file(t, "token_file", "token", file)?;
        i.token_file = Some(path);
        Ok(secret)
    }

    /// Reads a secret (`what`: "token", "secret") from the file `key` names: `%d/` is the
    /// systemd credentials folder, relative paths start at the config file's folder, and a
    /// file readable by group or others is warned about. Returns the path actually read.
    pub(super) fn secret_from_file(
        &mut self,
        t: Tbl<'_, '_>,
        key: &str,
        what: &str,
        file: &Path,
    ) -> Result<(PathBuf, Secret), SecretProblem> {
        let raw = file.to_string_lossy().into_owned();
        // The credential a `%d/NAME` names, when read outside systemd from the packaged unit's
        // folder: its read error says so.
        let mut packaged = None;
        let path = match raw.strip_prefix("%d/") {
            Some(rest) => match credential_path(rest) {
                CredentialPath::Systemd(path) => path,
                CredentialPath::Packaged(path) => {
                    packaged = Some(rest);
                    path
                }
                CredentialPath::Unset => {
                    return Err(SecretProblem::unavailable(format!(
                        "\"{raw}\" needs $CREDENTIALS_DIRECTORY, which is unset; systemd sets it for units with LoadCredential= (the packaged unit's are scansync_FILE, for each file FILE of {PACKAGED_CREDENTIALS}), otherwise give a plain path"
                    )))
                }
            },
            None => self.base_dir.join(&raw),
        };
        let text = read_secret_file(&path).map_err(|e| {
            SecretProblem::unavailable(match packaged {
                Some(name) => format!(
                    "cannot read {what} file {}: {e}; {}",
                    path.display(),
                    packaged_hint(name)
                ),
                None => format!("cannot read {what} file {}: {e}", path.display()),
            })
        })?;
        self.warn_if_readable_by_others(t, key, &path);
        let secret = non_empty(text, &format!("{what} file {} is empty", path.display()))?;
        Ok((path, secret))
    }

    pub(super) fn scan(
        &mut self,
        path: &str,
        v: &Val<'_>,
        instances: &[String],
        valid: &BTreeMap<String, InstanceConfig>,
    ) -> Option<ScanConfig> {
        let table = self.table(path, v, "a table ([[scans]])")?;
        let span = v.span();
        let t = self.enter(path, table, &span, SCAN_KEYS);
        let name = self.required_string(t, "name", "a unique name for this scan");
        if let Some(n) = name.as_deref().filter(|n| n.contains('@')) {
            // A scan's runs on another branch are stored as NAME@BRANCH: a configured name
            // with an @ could be another scan's branch scope and share its findings.
            let span = t.get("name").map(|v| v.span());
            self.error(
                &t.field("name"),
                span.as_ref(),
                format!("\"{n}\" has an @, which scansync keeps for a scan's runs on another branch (NAME@BRANCH); use another character, e.g. \"{}\"", n.replace('@', "-")),
            );
        }
        let instance = self.required_string(t, "instance", "the name of an [instances.NAME] table");
        if let Some(inst) = &instance {
            if !instances.contains(inst) {
                let known: Vec<&str> = instances.iter().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none is defined".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                let span = t.get("instance").map(|v| v.span());
                self.error(
                    &t.field("instance"),
                    span.as_ref(),
                    format!("no instance named \"{inst}\" ({known}); add an [instances.{inst}] table or fix the name"),
                );
            }
        }
        let bind_to = self.required_string(t, "bind_to", "the vendor project or API asset to read");
        let tags = self.string_list(t, "tags");
        let metadata = self.string_map(t, "metadata");
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
        let schedule = match t.get("schedule") {
            Some(v) => self.schedule(&t.field("schedule"), v),
            None => {
                self.error(
                    &t.field("schedule"),
                    Some(t.span),
                    "is required: \"now\", { at = \"...\" }, { cron = \"...\" } or { every = \"...\" }",
                );
                None
            }
        };
        let vendor = instance
            .as_ref()
            .and_then(|i| valid.get(i))
            .map(|i| i.vendor.clone());
        if let (Some(vendor), Some(hook)) = (&vendor, t.get("webhook")) {
            if self.vendor(vendor).is_some_and(|v| !v.starts_scans()) {
                self.error(
                    &t.field("webhook"),
                    Some(&hook.span()),
                    format!("{vendor} starts no scans (scansync reads its findings as they are), so a push has nothing to start; remove the webhook table, or bind the scan to an instance that scans code"),
                );
            }
        }
        Some(ScanConfig {
            name: name.unwrap_or_default(),
            instance: instance.unwrap_or_default(),
            bind_to: bind_to.unwrap_or_default(),
            branch: self.string(t, "branch"),
            environment: self.string(t, "environment"),
            tags,
            metadata,
            min_severity,
            fix_guard: self.share(t, "fix_guard"),
            enabled: self.boolean(t, "enabled").unwrap_or(true),
            schedule: schedule.unwrap_or(Schedule::Now),
            timeout: self
                .duration(t, "timeout", false)
                .unwrap_or_else(default_scan_timeout),
            webhook: t
                .get("webhook")
                .and_then(|v| self.scan_hook(&t.field("webhook"), v)),
        })
    }

    pub(super) fn scan_hook(&mut self, path: &str, v: &Val<'_>) -> Option<ScanHookConfig> {
        let table = self.table(
            path,
            v,
            "a table ({ platform = \"github\", secret_env = \"...\", branches = [\"main\"] })",
        )?;
        let span = v.span();
        let t = self.enter(path, table, &span, SCAN_HOOK_KEYS);
        let names: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
        let platform = self
            .required_string(t, "platform", &names.join(", "))
            .and_then(|p| match Platform::ALL.iter().find(|k| k.as_str() == p) {
                Some(k) => Some(*k),
                None => {
                    let hint = match closest(&p, &names) {
                        Some(k) => format!("did you mean \"{k}\"?"),
                        None => format!("use one of {}", names.join(", ")),
                    };
                    let span = t.get("platform").map(|v| v.span());
                    self.error(
                        &t.field("platform"),
                        span.as_ref(),
                        format!("\"{p}\" is not a webhook platform; {hint}"),
                    );
                    None
                }
            });
        let branches = match t.get("branches") {
            None => {
                self.error(
                    &t.field("branches"),
                    Some(t.span),
                    "is required: the branches whose pushes start this scan, e.g. [\"main\", \"release/*\"] ([\"**\"] for every branch)",
                );
                None
            }
            Some(bv) => {
                let list = self.string_list(t, "branches");
                if matches!(bv.get_ref(), DeValue::Array(items) if items.is_empty()) {
                    self.error(
                        &t.field("branches"),
                        Some(&bv.span()),
                        "is empty, so no push would ever start the scan; list at least one branch (glob), e.g. [\"main\"]",
                    );
                }
                if let Some(bad) = list.iter().position(|b| b.trim().is_empty()) {
                    self.error(
                        &format!("{}[{bad}]", t.field("branches")),
                        Some(&bv.span()),
                        "must not be empty",
                    );
                }
                for (i, pattern) in list.iter().enumerate() {
                    if let Some(why) = branch_glob_problem(pattern) {
                        self.error(
                            &format!("{}[{i}]", t.field("branches")),
                            Some(&bv.span()),
                            why,
                        );
                    }
                }
                Some(list)
            }
        };
        let secret = self.scan_hook_secret(t);
        Some(ScanHookConfig {
            platform: platform?,
            secret_file: secret.as_ref().and_then(|(p, _)| p.clone()),
            // Read (and type-checked) by webhook_secret; only its name is kept here.
            secret_env: match t.get("secret_env").map(|v| v.get_ref()) {
                Some(DeValue::String(name)) => Some(name.to_string()),
                _ => None,
            },
            branches: branches?,
            secret: secret.map(|(_, s)| s),
        })
    }

    /// Exactly one of `secret_file` and `secret_env`, read. The path is returned for files.
    pub(super) fn scan_hook_secret(&mut self, t: Tbl<'_, '_>) -> Option<(Option<PathBuf>, Secret)> {
        let (key, path, secret) = self.secret_source(
            t,
            "no secret given; set secret_file or secret_env (make one with `scansync webhook-secret`)",
        )?;
        if secret.expose().len() < MIN_WEBHOOK_SECRET_LEN {
            self.warn(
                &t.field(key),
                &t.span_of(key),
                format!(
                    "the webhook secret is shorter than {MIN_WEBHOOK_SECRET_LEN} characters and easy to guess; make a new one with `scansync webhook-secret`"
                ),
            );
        }
        Some((path, secret))
    }

    pub(super) fn schedule(&mut self, path: &str, v: &Val<'_>) -> Option<Schedule> {
        let table = match v.get_ref() {
            DeValue::String(word) if word == "now" => return Some(Schedule::Now),
            DeValue::String(word) => {
                self.error(path, Some(&v.span()), unknown_schedule_word(word));
                return None;
            }
            DeValue::Table(table) => table,
            _ => {
                self.wrong_type(
                    path,
                    v,
                    "\"now\" or a table ({ at }, { cron, timezone }, { every })",
                );
                return None;
            }
        };
        let span = v.span();
        let t = self.enter(path, table, &span, SCHEDULE_KEYS);
        // `at` may be a quoted string or a bare TOML date-time.
        let at = match t.get("at").map(|v| v.get_ref()) {
            Some(DeValue::Datetime(dt)) => Some(dt.to_string()),
            _ => self.string(t, "at"),
        };
        let cron = self.string(t, "cron");
        let timezone = self.string(t, "timezone");
        let every = self.string(t, "every");
        let before = self.errors.len();
        let given = |k: &str, s: &Option<String>| t.get(k).is_none() || s.is_some();
        if !(given("at", &at)
            && given("cron", &cron)
            && given("timezone", &timezone)
            && given("every", &every))
        {
            // A key of the wrong type was reported; do not add "give exactly one" noise.
            return None;
        }
        match Schedule::from_parts(
            at.as_deref(),
            cron.as_deref(),
            timezone.as_deref(),
            every.as_deref(),
        ) {
            Ok(s) => Some(s),
            Err(errors) => {
                for (key, msg) in errors {
                    if key.is_empty() {
                        self.error(path, Some(&span), msg);
                    } else {
                        let blame = t.get(key).map(|v| v.span()).unwrap_or_else(|| span.clone());
                        self.error(&t.field(key), Some(&blame), msg);
                    }
                }
                debug_assert!(self.errors.len() > before);
                None
            }
        }
    }
}
