//! A PostgreSQL database made fresh for one test (`SCANSYNC_TEST_POSTGRES` names the server
//! and a login that may create databases), with the test's own queries on it.

/// A database made for one test, dropped afterwards.
pub struct Database {
    admin: String,
    pub name: String,
    /// Without the password, as a config holds it.
    pub url: String,
    pub password: String,
}

impl Database {
    pub fn fresh(prefix: &str) -> Option<Database> {
        Database::fresh_with(prefix, "")
    }

    /// [`Database::fresh`] with `options` after `CREATE DATABASE name`.
    pub fn fresh_with(prefix: &str, options: &str) -> Option<Database> {
        let Ok(admin) = std::env::var("SCANSYNC_TEST_POSTGRES") else {
            super::tool_missing(
                &format!("{prefix}: a test on PostgreSQL"),
                "SCANSYNC_TEST_POSTGRES is not set (a postgres:// url of a server where its \
                 user may create databases)",
            );
            return None;
        };
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut url = reqwest::Url::parse(&admin).expect("SCANSYNC_TEST_POSTGRES is a url");
        let password = url.password().unwrap_or_default().to_owned();
        url.set_password(None).unwrap();
        url.set_path(&format!("/{name}"));
        let db = Database {
            admin,
            name,
            url: url.to_string(),
            password,
        };
        db.admin_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.admin_sql(&format!("CREATE DATABASE {} {options}", db.name));
        Some(db)
    }

    pub fn admin_sql(&self, sql: &str) {
        let (admin, sql) = (self.admin.clone(), sql.to_owned());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            c.batch_execute(&sql).unwrap();
        })
        .join()
        .unwrap();
    }

    /// The test database's url with its password (the test's own connections).
    pub fn url_with_password(&self) -> String {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.set_password(Some(&self.password)).unwrap();
        url.to_string()
    }

    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (url, sql) = (self.url_with_password(), sql.to_owned());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let messages = match c.simple_query(&sql) {
                Ok(m) => m,
                Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {
                    Vec::new()
                }
                Err(e) => panic!("{sql}: {e}"),
            };
            messages
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .collect()
        })
        .join()
        .unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.rows(sql)
            .first()
            .and_then(|r| r[0].as_deref())
            .map_or(0, |n| n.parse().unwrap())
    }

    /// The store there, opened in this process.
    pub fn location(&self) -> scansync::config::StoreLocation {
        scansync::config::StoreLocation::Postgres(scansync::config::PgTarget {
            url: self.url.clone(),
            password: Some(scansync::secret::Secret::new(self.password.clone())),
            ca_file: None,
            schema: None,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let admin = self.admin.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ = c.batch_execute(&sql);
            }
        })
        .join();
    }
}

/// The variable the tests' scansync processes read the database password from
/// (`password_env`), so that it is on no command line.
pub const PASSWORD_VAR: &str = "SCANSYNC_TEST_PG_PASSWORD";

/// The simulator's config with the store at `url` (password from [`PASSWORD_VAR`]) and
/// `scans` as its `[[scans]]`.
pub fn sim_config(
    sim: &scansync::sim::Simulator,
    dir: &std::path::Path,
    url: &str,
    scans: &str,
) -> String {
    let path = dir.join("base.toml");
    sim.write_config(&path, &dir.join("unused.db")).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    let (before, after) = head.split_once("[store]\n").expect("a [store] table");
    let rest = after.split_once('\n').map_or("", |(_, rest)| rest);
    format!("{before}[store]\nurl = \"{url}\"\npassword_env = \"{PASSWORD_VAR}\"\n{rest}{scans}")
}

/// `n` CodeThreat scans `s01`… of the simulator's `project-1`… on `schedule`.
pub fn ct_scans(n: usize, schedule: &str) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "[[scans]]\nname = \"s{i:02}\"\ninstance = \"sim-codethreat\"\n\
                 bind_to = \"project-{i}\"\nbranch = \"main\"\nschedule = {schedule}\n\n"
            )
        })
        .collect()
}

/// One `scansync run` on a config of its own (`base_config` with `[daemon] node_name`), its
/// stderr in `NAME.log` beside it, killed when dropped.
pub struct Node {
    pub name: String,
    pub child: std::process::Child,
    log: std::path::PathBuf,
}

impl Node {
    /// `lease_ttl`: `Some` shortens the lease (`SCANSYNC_LEASE_TTL_MS`); under load a
    /// heartbeat may then miss it and the node lose its scans.
    pub fn start(
        dir: &std::path::Path,
        name: &str,
        base_config: &str,
        password: &str,
        lease_ttl: Option<std::time::Duration>,
    ) -> Node {
        use std::process::{Command, Stdio};
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            base_config.replacen(
                "[daemon]\n",
                &format!("[daemon]\nnode_name = \"{name}\"\n"),
                1,
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_scansync"));
        if let Some(ttl) = lease_ttl {
            command.env("SCANSYNC_LEASE_TTL_MS", ttl.as_millis().to_string());
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env(PASSWORD_VAR, password)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("scansync starts");
        Node {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 25 lines of its log, under its name.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        format!("--- {} (last lines)\n{tail}", self.name)
    }

    /// Sends `kill -SIG` to it.
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.name);
    }

    /// SIGTERM, then the exit; the log on failure.
    pub async fn stop(mut self) {
        self.signal("TERM");
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited {status}:\n{}",
                    self.name,
                    self.log()
                );
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "{} did not stop:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
