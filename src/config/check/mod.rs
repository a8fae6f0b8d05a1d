use super::*;

mod scans;
mod tables;

// ---------------------------------------------------------------------------------------
// Validation: walks the parsed document table by table and key by key, so that one bad
// value never hides another, and every message carries its field path and line.

type Val<'i> = Spanned<DeValue<'i>>;

/// The largest count a config may give (`concurrency`, `max_connections`): far above any
/// real need, far below what would overflow the limits built from it.
const MAX_COUNT: usize = 1_000_000;

const TOP_KEYS: &[&str] = &[
    "store",
    "daemon",
    "instances",
    "scans",
    "webhooks",
    "server",
    "suppress",
];
const SUPPRESS_KEYS: &[&str] = &[
    "name", "scans", "rule", "path", "title", "state", "reason", "until",
];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "tls_cert_file",
    "tls_key_file",
    "behind_proxy",
    "metrics_token_file",
    "max_connections",
];
const SCAN_HOOK_KEYS: &[&str] = &["platform", "secret_file", "secret_env", "branches"];
/// Shorter webhook secrets are accepted but warned about (`scansync webhook-secret` makes 43
/// characters).
const MIN_WEBHOOK_SECRET_LEN: usize = 16;
const STORE_KEYS: &[&str] = &[
    "path",
    "url",
    "password_file",
    "password_env",
    "password_credential",
    "ca_file",
    "retention",
];
/// `[store]` keys that only a PostgreSQL store reads.
const PG_ONLY_KEYS: &[&str] = &[
    "password_file",
    "password_env",
    "password_credential",
    "ca_file",
];
/// Where a PostgreSQL store's password comes from: file, environment, systemd credential.
const PG_PASSWORD_KEYS: &[&str] = &["password_file", "password_env", "password_credential"];
const DAEMON_KEYS: &[&str] = &[
    "concurrency",
    "per_instance_concurrency",
    "shutdown_timeout",
    "jitter",
    "poll_interval",
    "fix_guard",
    "node_name",
];
const INSTANCE_KEYS: &[&str] = &[
    "vendor",
    "url",
    "region",
    "organization",
    "token_file",
    "token_env",
    "credential",
    "token",
    "insecure",
    "ca_file",
    "proxy",
    "timeout",
];
const TOKEN_KEYS: &[&str] = &["token_file", "token_env", "credential", "token"];
const SCAN_KEYS: &[&str] = &[
    "name",
    "instance",
    "bind_to",
    "branch",
    "environment",
    "tags",
    "metadata",
    "min_severity",
    "fix_guard",
    "enabled",
    "schedule",
    "timeout",
    "webhook",
];
const SCHEDULE_KEYS: &[&str] = &["at", "cron", "timezone", "every"];
const WEBHOOK_KEYS: &[&str] = &[
    "url",
    "secret_file",
    "secret_env",
    "events",
    "min_severity",
    "scans",
    "timeout",
];
const SECRET_KEYS: &[&str] = &["secret_file", "secret_env"];

/// Every table of the file with the keys it may hold, its path written with `*` for a name
/// the user picks: the one list of keys there is ([`known_keys`]), checked by
/// `tests::every_listed_key_is_read` against what the walk reads.
pub(super) const TABLES: &[(&str, &[&str])] = &[
    ("", TOP_KEYS),
    ("store", STORE_KEYS),
    ("store.retention", RETENTION_KEYS),
    ("daemon", DAEMON_KEYS),
    ("server", SERVER_KEYS),
    ("instances.*", INSTANCE_KEYS),
    ("scans.*", SCAN_KEYS),
    ("scans.*.schedule", SCHEDULE_KEYS),
    ("scans.*.webhook", SCAN_HOOK_KEYS),
    ("webhooks.*", WEBHOOK_KEYS),
    ("suppress.*", SUPPRESS_KEYS),
];

/// Every key the file may hold, as dotted paths (`store.retention.runs`, `instances.*.url`):
/// for documentation that must name them all (the man page of the config file).
pub(super) fn known_keys() -> Vec<String> {
    TABLES
        .iter()
        .flat_map(|(table, keys)| {
            keys.iter().map(move |k| {
                if table.is_empty() {
                    k.to_string()
                } else {
                    format!("{table}.{k}")
                }
            })
        })
        .collect()
}

/// What the walk asked of each key list in this thread (tests only).
#[cfg(test)]
mod keys_read {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    thread_local! {
        static READ: RefCell<BTreeSet<(String, String)>> = const { RefCell::new(BTreeSet::new()) };
    }

    /// A list is known by its keys (constants have no fixed address to go by).
    pub(super) fn note(keys: &[&str], key: &str) {
        READ.with(|r| r.borrow_mut().insert((keys.join(","), key.to_string())));
    }

    pub(super) fn was_read(keys: &[&str], key: &str) -> bool {
        READ.with(|r| r.borrow().contains(&(keys.join(","), key.to_string())))
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, span: &Range<usize>) -> usize {
    let end = span.start.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// One table of the document, with the path that names it in messages.
#[derive(Clone, Copy)]
struct Tbl<'a, 'i> {
    path: &'a str,
    table: &'a DeTable<'i>,
    span: &'a Range<usize>,
    /// The keys this table may hold (one of [`TABLES`]): what [`Checker::unknown_keys`]
    /// accepts, and all that [`Tbl::get`] may ask for.
    keys: &'static [&'static str],
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        debug_assert!(
            self.keys.contains(&key),
            "the checker reads {}.{key}, which its key list does not have",
            self.path
        );
        #[cfg(test)]
        keys_read::note(self.keys, key);
        self.table.get(key)
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The span to blame for `key`: its value when present, else the table itself.
    fn span_of(&self, key: &str) -> Range<usize> {
        self.table
            .get_key_value(key)
            .map(|(k, _)| k.span())
            .unwrap_or_else(|| self.span.clone())
    }
}

/// Parses and checks config text: see [`Config::from_toml_with`].
pub(super) fn check(
    text: &str,
    origin: &Path,
    secrets: Secrets,
    vendors: &[&dyn VendorRules],
) -> Result<Loaded, ConfigErrors> {
    let (config, warnings) = walk(text, origin, secrets, vendors, |c, doc| c.config(doc))?;
    Ok(Loaded { config, warnings })
}

/// The `[store]` table alone, checked as the whole file's would be: see
/// [`Config::store_only`].
pub(super) fn store_only(text: &str, origin: &Path) -> Result<StoreConfig, ConfigErrors> {
    let (store, _) = walk(text, origin, Secrets::MayBeAbsent, &[], |c, doc| {
        c.store_section(doc.get_ref().get("store"))
    })?;
    // No store means an error was recorded, so `walk` has returned it already.
    store.ok_or_else(|| ConfigErrors::one("store: the [store] section is required".into()))
}

/// Parses `text` and hands the document to `check`; the errors it finds, in line order, or
/// what it built and the warnings.
fn walk<T>(
    text: &str,
    origin: &Path,
    secrets: Secrets,
    vendors: &[&dyn VendorRules],
    check: impl FnOnce(&mut Checker<'_>, &Spanned<DeTable<'_>>) -> T,
) -> Result<(T, Vec<String>), ConfigErrors> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let errors = syntax
            .iter()
            .map(|e| {
                let line = e
                    .span()
                    .map(|s| format!(" (line {})", line_of(text, &s)))
                    .unwrap_or_default();
                format!(
                    "{}: not valid TOML: {}{line}",
                    origin.display(),
                    e.message().trim_end()
                )
            })
            .collect();
        return Err(ConfigErrors { errors });
    }
    let base_dir = origin.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut checker = Checker {
        text,
        base_dir,
        errors: Vec::new(),
        warnings: Vec::new(),
        secrets,
        vendors,
    };
    let built = check(&mut checker, &doc);
    if checker.errors.is_empty() {
        Ok((built, checker.warnings))
    } else {
        // Line order reads like the file; errors without a line (missing sections) last.
        checker
            .errors
            .sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
        Err(ConfigErrors {
            errors: checker.errors.into_iter().map(|(_, m)| m).collect(),
        })
    }
}

struct Checker<'t> {
    text: &'t str,
    base_dir: PathBuf,
    errors: Vec<(Option<usize>, String)>,
    warnings: Vec<String>,
    secrets: Secrets,
    /// The vendors scansync knows (see [`VendorRules`]).
    vendors: &'t [&'t dyn VendorRules],
}

impl Checker<'_> {
    fn error(&mut self, path: &str, span: Option<&Range<usize>>, msg: impl fmt::Display) {
        match span {
            Some(span) => {
                let line = line_of(self.text, span);
                self.errors
                    .push((Some(line), format!("{path}: {msg} (line {line})")));
            }
            None => self.errors.push((None, format!("{path}: {msg}"))),
        }
    }

    /// A secret that cannot be read here and now: an error, except for `check-config`
    /// (see [`Secrets::MayBeAbsent`]), where it is a warning.
    fn unreadable_secret(&mut self, path: &str, span: Option<&Range<usize>>, msg: SecretProblem) {
        match (self.secrets, span) {
            (Secrets::MayBeAbsent, Some(span)) if msg.unavailable => self.warn(
                path,
                span,
                format!("{msg} (not an error for check-config; `run`, `sync` and `scan` refuse to start without it)"),
            ),
            _ => self.error(path, span, msg),
        }
    }

    fn warn(&mut self, path: &str, span: &Range<usize>, msg: impl fmt::Display) {
        let line = line_of(self.text, span);
        self.warnings.push(format!("{path}: {msg} (line {line})"));
    }

    /// `table` (found at `path`, spanning `span`) as the walk reads it, with `keys` its
    /// known keys; every other key in it is reported at once.
    fn enter<'a, 'i>(
        &mut self,
        path: &'a str,
        table: &'a DeTable<'i>,
        span: &'a Range<usize>,
        keys: &'static [&'static str],
    ) -> Tbl<'a, 'i> {
        let t = Tbl {
            path,
            table,
            span,
            keys,
        };
        self.unknown_keys(t);
        t
    }

    fn unknown_keys(&mut self, t: Tbl<'_, '_>) {
        let known = t.keys;
        for (key, _) in t.table.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = match closest(name, known) {
                Some(k) => format!("did you mean \"{k}\"?"),
                None => format!("expected one of {}", known.join(", ")),
            };
            self.error(
                &t.field(name),
                Some(&key.span()),
                format!("unknown key; {hint}"),
            );
        }
    }

    fn wrong_type(&mut self, path: &str, v: &Val<'_>, expected: &str) {
        let found = v.get_ref().type_str();
        self.error(
            path,
            Some(&v.span()),
            format!("must be {expected}, not {}", article(found)),
        );
    }

    fn string(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<String> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(&t.field(key), v, "a string");
                None
            }
        }
    }

    /// A required, non-empty string.
    fn required_string(&mut self, t: Tbl<'_, '_>, key: &str, what: &str) -> Option<String> {
        match t.get(key) {
            None => {
                self.error(&t.field(key), Some(t.span), format!("is required ({what})"));
                None
            }
            Some(v) => {
                let s = self.string(t, key)?;
                if s.trim().is_empty() {
                    self.error(
                        &t.field(key),
                        Some(&v.span()),
                        format!("must not be empty ({what})"),
                    );
                    return None;
                }
                Some(s)
            }
        }
    }

    fn boolean(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<bool> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(&t.field(key), v, "true or false");
                None
            }
        }
    }

    /// A share: a number from 0 (exclusive) to 1 (inclusive), such as `0.5`.
    fn share(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<f64> {
        let v = t.get(key)?;
        let expected = "a share between 0 and 1, such as 0.5 (1.0 turns the guard off)";
        let x = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
            _ => None,
        };
        match x {
            Some(x) if x > 0.0 && x <= 1.0 => Some(x),
            Some(x) => {
                self.error(
                    &t.field(key),
                    Some(&v.span()),
                    format!("{x} is out of range; must be {expected}"),
                );
                None
            }
            None => {
                self.wrong_type(&t.field(key), v, expected);
                None
            }
        }
    }

    /// A whole number of at least `min`.
    /// A count of things held at once (runs, connections): at least `min`, at most
    /// [`MAX_COUNT`] (a semaphore of more permits than tokio allows would panic at start).
    fn count(&mut self, t: Tbl<'_, '_>, key: &str, min: u64) -> Option<usize> {
        let v = t.get(key)?;
        let expected = format!("a whole number of at least {min}");
        match v.get_ref() {
            DeValue::Integer(i) => {
                let n = i128::from_str_radix(i.as_str(), i.radix()).ok();
                match n.and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n > MAX_COUNT => {
                        self.error(
                            &t.field(key),
                            Some(&v.span()),
                            format!("{i} is too large; must be at most {MAX_COUNT}"),
                        );
                        None
                    }
                    Some(n) if n as u64 >= min => Some(n),
                    _ => {
                        self.error(
                            &t.field(key),
                            Some(&v.span()),
                            format!("{i} is too small; must be {expected}"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(&t.field(key), v, &expected);
                None
            }
        }
    }

    fn duration(&mut self, t: Tbl<'_, '_>, key: &str, allow_zero: bool) -> Option<Duration> {
        let v = t.get(key)?;
        let s = self.string(t, key)?;
        match parse_duration(&s) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(
                    &t.field(key),
                    Some(&v.span()),
                    format!("\"{s}\" must be more than zero"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(&t.field(key), Some(&v.span()), e);
                None
            }
        }
    }

    /// A path; relative ones are taken from the config file's folder.
    fn path(&mut self, t: Tbl<'_, '_>, key: &str) -> Option<PathBuf> {
        let s = self.string(t, key)?;
        Some(self.base_dir.join(s))
    }

    fn url(&mut self, t: Tbl<'_, '_>, key: &str, example: &str) -> Option<String> {
        let v = t.get(key)?;
        let s = self.string(t, key)?;
        match reqwest::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(s),
            _ => {
                self.error(
                    &t.field(key),
                    Some(&v.span()),
                    format!("\"{s}\" is not an http(s) URL (e.g. \"{example}\")"),
                );
                None
            }
        }
    }

    fn vendor(&self, name: &str) -> Option<&dyn VendorRules> {
        self.vendors.iter().copied().find(|v| v.name() == name)
    }

    fn table<'a, 'i>(&mut self, path: &str, v: &'a Val<'i>, what: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(path, v, what);
                None
            }
        }
    }

    /// `[store]`, which every config must have.
    fn store_section(&mut self, v: Option<&Val<'_>>) -> Option<StoreConfig> {
        match v {
            Some(v) => self.store(v),
            None => {
                self.error(
                    "store",
                    None,
                    "the [store] section is required; add [store] with path = \"/var/lib/scansync/scansync.db\"",
                );
                None
            }
        }
    }

    fn config(&mut self, doc: &Spanned<DeTable<'_>>) -> Config {
        let span = doc.span();
        let top = Tbl {
            path: "config",
            table: doc.get_ref(),
            span: &span,
            keys: TOP_KEYS,
        };
        for (key, _) in top.table.iter() {
            let name: &str = key.get_ref();
            if !TOP_KEYS.contains(&name) {
                let hint = match closest(name, TOP_KEYS) {
                    Some(k) => format!("did you mean [{k}]?"),
                    None => format!("expected {}", TOP_KEYS.join(", ")),
                };
                self.error(
                    name,
                    Some(&key.span()),
                    format!("unknown top-level key; {hint}"),
                );
            }
        }
        let store = self.store_section(top.get("store"));
        let daemon = top
            .get("daemon")
            .map(|v| self.daemon(v))
            .unwrap_or_default();
        let mut instances = BTreeMap::new();
        if let Some(v) = top.get("instances") {
            if let Some(table) = self.table("instances", v, "a table of [instances.NAME] tables") {
                for (name, value) in table.iter() {
                    let path = format!("instances.{}", name.get_ref());
                    if let Some(instance) = self.instance(&path, value) {
                        instances.insert(name.get_ref().to_string(), instance);
                    }
                }
            }
        }
        let mut scans = Vec::new();
        if let Some(v) = top.get("scans") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    let mut names: BTreeMap<String, (usize, Range<usize>)> = BTreeMap::new();
                    // Instances that failed their own checks still count as defined here, so
                    // a scan naming one is not reported a second time.
                    let defined: Vec<String> = match top.get("instances").map(|v| v.get_ref()) {
                        Some(DeValue::Table(t)) => {
                            t.iter().map(|(k, _)| k.get_ref().to_string()).collect()
                        }
                        _ => Vec::new(),
                    };
                    for (index, item) in items.iter().enumerate() {
                        let path = format!("scans[{index}]");
                        if let Some(scan) = self.scan(&path, item, &defined, &instances) {
                            self.unique_name(&path, item, &scan.name, index, &mut names);
                            scans.push(scan);
                        }
                    }
                }
                _ => self.wrong_type("scans", v, "a list of [[scans]] tables"),
            }
        }
        let mut webhooks = BTreeMap::new();
        if let Some(v) = top.get("webhooks") {
            if let Some(table) = self.table("webhooks", v, "a table of [webhooks.NAME] tables") {
                // Scans that failed their own checks still count as defined here, so a
                // webhook naming one is not reported a second time.
                let defined: Vec<String> = match top.get("scans").map(|v| v.get_ref()) {
                    Some(DeValue::Array(items)) => items
                        .iter()
                        .filter_map(|item| match item.get_ref() {
                            DeValue::Table(t) => match t.get("name").map(|n| n.get_ref()) {
                                Some(DeValue::String(name)) => Some(name.to_string()),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for (name, value) in table.iter() {
                    let path = format!("webhooks.{}", name.get_ref());
                    if let Some(webhook) = self.webhook(&path, value, &defined) {
                        webhooks.insert(name.get_ref().to_string(), webhook);
                    }
                }
            }
        }
        let server = top.get("server").and_then(|v| self.server(v));
        let mut suppress = Vec::new();
        if let Some(v) = top.get("suppress") {
            match v.get_ref() {
                DeValue::Array(items) => {
                    let defined: Vec<String> = scans.iter().map(|s| s.name.clone()).collect();
                    let mut names: BTreeMap<String, usize> = BTreeMap::new();
                    for (index, item) in items.iter().enumerate() {
                        let path = format!("suppress[{index}]");
                        if let Some(rule) = self.suppress_rule(&path, index, item, &defined) {
                            if let Some(first) = names.get(&rule.name) {
                                self.error(
                                    &format!("{path}.name"),
                                    Some(&item.span()),
                                    format!(
                                        "\"{}\" is already the name of suppress[{first}]; \
                                         rule names must be unique",
                                        rule.name
                                    ),
                                );
                            } else {
                                names.insert(rule.name.clone(), index);
                            }
                            suppress.push(rule);
                        }
                    }
                }
                _ => self.wrong_type("suppress", v, "a list of [[suppress]] tables"),
            }
        }
        Config {
            store: store.unwrap_or(StoreConfig {
                location: StoreLocation::Sqlite(PathBuf::new()),
                retention: Retention::default(),
            }),
            daemon,
            instances,
            scans,
            webhooks,
            server,
            suppress,
        }
    }

    fn unique_name(
        &mut self,
        path: &str,
        item: &Val<'_>,
        name: &str,
        index: usize,
        names: &mut BTreeMap<String, (usize, Range<usize>)>,
    ) {
        if name.is_empty() {
            return;
        }
        let span = match item.get_ref() {
            DeValue::Table(t) => t
                .get_key_value("name")
                .map(|(_, v)| v.span())
                .unwrap_or_else(|| item.span()),
            _ => item.span(),
        };
        if let Some((first, first_span)) = names.get(name) {
            let first_line = line_of(self.text, first_span);
            self.error(
                &format!("{path}.name"),
                Some(&span),
                format!("\"{name}\" is already the name of scans[{first}], on line {first_line}; scan names must be unique"),
            );
        } else {
            names.insert(name.to_string(), (index, span));
        }
    }

    /// Warns (naming `key`) when `path` is readable by group or others.
    fn warn_if_readable_by_others(&mut self, t: Tbl<'_, '_>, key: &str, path: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    self.warn(
                        &t.field(key),
                        &t.span_of(key),
                        format!(
                            "{} is readable by group or others (mode {mode:04o}); run chmod 600 on it",
                            path.display()
                        ),
                    );
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (t, key, path);
    }

    fn string_list(&mut self, t: Tbl<'_, '_>, key: &str) -> Vec<String> {
        let Some(v) = t.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(&t.field(key), v, "a list of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                _ => self.wrong_type(&format!("{}[{index}]", t.field(key)), item, "a string"),
            }
        }
        out
    }

    fn string_map(&mut self, t: Tbl<'_, '_>, key: &str) -> BTreeMap<String, String> {
        let Some(v) = t.get(key) else {
            return BTreeMap::new();
        };
        let DeValue::Table(table) = v.get_ref() else {
            self.wrong_type(&t.field(key), v, "a table of strings");
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (k, item) in table.iter() {
            match item.get_ref() {
                DeValue::String(s) => {
                    out.insert(k.get_ref().to_string(), s.to_string());
                }
                _ => self.wrong_type(
                    &format!("{}.{}", t.field(key), k.get_ref()),
                    item,
                    "a string",
                ),
            }
        }
        out
    }
}

/// Why a `webhook.branches` glob would not do what it looks like, if it would not. Our
/// dialect (`crate::glob`: `*`, `**`, `?`, the rest literal) is GitHub's minus two of its
/// words: a `[...]` class and a leading `!` (negation) would be literal characters here, and
/// git refuses `[` in branch names, so such a pattern never matches.
fn branch_glob_problem(pattern: &str) -> Option<String> {
    if pattern.starts_with('!') {
        return Some(format!(
            "\"{pattern}\" starts with \"!\": negated patterns are not supported (it would \
             match only a branch literally named so); list the branches to include instead"
        ));
    }
    if pattern.contains('[') || pattern.contains(']') {
        return Some(format!(
            "\"{pattern}\" has a [...] character class, which is not supported (it would be \
             matched literally, and git does not allow \"[\" in branch names); use \"?\" or \"*\", \
             or list the branches"
        ));
    }
    None
}

fn article(type_name: &str) -> String {
    match type_name {
        "integer" | "array" => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a typo.
fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_suggests_only_close_keys() {
        assert_eq!(closest("organisation", INSTANCE_KEYS), Some("organization"));
        assert_eq!(closest("zzz", INSTANCE_KEYS), None);
    }

    /// The key lists and the walk are one description: a config with every table holding
    /// every key it may hold has each listed key read (a key listed but never read would be
    /// accepted and ignored), and `Tbl::get` refuses, in tests, to read a key its list lacks.
    #[test]
    fn every_listed_key_is_read() {
        let text = r#"
[store]
path = "s.db"
retention = { runs = "180d", events = "180d", notifications = "30d", webhook_deliveries = "24h", branch_scopes = "30d" }

[daemon]
concurrency = 4
per_instance_concurrency = 2
shutdown_timeout = "30s"
jitter = "10s"
poll_interval = "5s"
fix_guard = 0.5

[server]
listen = "127.0.0.1:9464"
behind_proxy = false
max_connections = 64

[instances.ct]
vendor = "codethreat"
url = "https://codethreat.example.com"
organization = "acme"
token_env = "SCANSYNC_TEST_UNSET_TOKEN"
insecure = false
proxy = "http://proxy.example.com:3128"
timeout = "60s"

[instances.salt]
vendor = "saltsecurity"
region = "eu"
token_env = "SCANSYNC_TEST_UNSET_TOKEN"

[[scans]]
name = "web"
instance = "ct"
bind_to = "web"
branch = "main"
environment = "prod"
tags = ["a"]
metadata = { team = "x" }
min_severity = "low"
fix_guard = 0.5
enabled = true
schedule = { cron = "0 0 2 * * *", timezone = "UTC" }
timeout = "2h"
webhook = { platform = "github", secret_env = "SCANSYNC_TEST_UNSET_SECRET", branches = ["main"] }

[[scans]]
name = "api"
instance = "salt"
bind_to = "api"
schedule = { every = "6h" }

[[scans]]
name = "once"
instance = "ct"
bind_to = "once"
schedule = { at = "2026-12-01T02:00:00Z" }

[webhooks.ops]
url = "https://hooks.example.com/x"
secret_env = "SCANSYNC_TEST_UNSET_SECRET"
events = ["findings.new"]
min_severity = "high"
scans = ["web"]
timeout = "10s"

[[suppress]]
name = "tests"
scans = ["web"]
rule = "R1"
path = "test/**"
title = "x"
state = "accepted"
reason = "test code"
until = "2099-01-01"
"#;
        let result = Config::from_toml_with(
            text,
            Path::new("/nonexistent-dir/c.toml"),
            Secrets::MayBeAbsent,
            crate::vendors::REGISTRY,
        );
        if let Err(e) = &result {
            panic!("the every-key config must load: {e}");
        }
        let mut never_read = Vec::new();
        for (table, keys) in TABLES {
            for key in *keys {
                if !keys_read::was_read(keys, key) {
                    never_read.push(format!("{table}.{key}"));
                }
            }
        }
        assert!(
            never_read.is_empty(),
            "listed but never read (accepted and ignored): {never_read:?}"
        );
    }

    #[test]
    fn known_keys_name_every_table_with_its_keys() {
        let keys = Config::known_keys();
        for k in [
            "store.retention.runs",
            "instances.*.url",
            "scans.*.schedule.every",
            "suppress.*.reason",
            "server.max_connections",
            "webhooks.*.events",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }
}
