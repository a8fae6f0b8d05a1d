//! `scansync triage ID|FINGERPRINT... --state false_positive|accepted|open --reason TEXT`: a
//! person's verdict on findings, kept through re-syncs (see [`crate::store::Store::triage`]).

use super::Global;
use crate::config::StoreLocation;
use crate::store::{FindingState, Schema, Store, TriageRequest};
use chrono::NaiveDate;

/// The states a person may give.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum TriageState {
    /// Not a real problem
    FalsePositive,
    /// A real problem whose risk is accepted (optionally until a date)
    Accepted,
    /// Remove a triage: the finding counts as open again
    Open,
}

impl TriageState {
    fn finding_state(self) -> FindingState {
        match self {
            TriageState::FalsePositive => FindingState::FalsePositive,
            TriageState::Accepted => FindingState::Accepted,
            TriageState::Open => FindingState::Open,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Findings: ids (the ID column of `findings`), fingerprints, or at least 8 hex digits
    /// of one
    #[arg(value_name = "ID|FINGERPRINT", required = true)]
    pub keys: Vec<String>,
    /// false_positive, accepted, or open (removes a triage)
    #[arg(long, value_enum)]
    pub state: TriageState,
    /// Why: shown by `finding`, in exports, webhooks and SARIF suppressions
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// For accepted: the acceptance ends on this day (YYYY-MM-DD, UTC); the finding is open
    /// again at its scan's first run from then on
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<NaiveDate>,
    /// Who decided [default: $SUDO_USER, else $USER, else $LOGNAME]
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// For accepted: a higher severity at the vendor ends the acceptance
    #[arg(long)]
    pub reopen_on_severity_increase: bool,
    /// The scan, when a fingerprint is in several
    #[arg(long, value_name = "NAME")]
    pub scan: Option<String>,
    /// Write this SQLite file instead of the config's [store] path
    #[arg(long, value_name = "FILE|URL", value_parser = super::StoreArg)]
    pub store: Option<StoreLocation>,
}

fn parse_date(word: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(word, "%Y-%m-%d")
        .map_err(|_| format!("\"{word}\" is not a date; write it as YYYY-MM-DD"))
}

/// The person running the command: `sudo` keeps the real one in `SUDO_USER`; else `USER` or
/// `LOGNAME`; where neither is set (a service, a container, cron) the account of this
/// process's user id in `/etc/passwd`, else `uid N`, so a triage always says who.
fn current_user() -> String {
    if let Some(name) = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
    {
        return name;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_string))
        });
    let Some(uid) = uid else {
        return "unknown".to_string();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    account_of(&passwd, &uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The account name of `uid` in `/etc/passwd` text (`name:x:uid:gid:…`).
fn account_of(passwd: &str, uid: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_string())
    })
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let state = args.state.finding_state();
    if state != FindingState::Accepted && (args.until.is_some() || args.reopen_on_severity_increase)
    {
        anyhow::bail!("--until and --reopen-on-severity-increase go with --state accepted only");
    }
    if args.reason.trim().is_empty() {
        anyhow::bail!("--reason must say why (it is shown with the finding from now on)");
    }
    let by = match args.by.as_deref().map(str::trim) {
        Some("") => {
            anyhow::bail!("--by must name who triages (leave it out for the user running scansync)")
        }
        Some(name) => name.to_string(),
        None => current_user(),
    };
    let today = chrono::Utc::now().date_naive();
    if let Some(until) = args.until.filter(|u| *u <= today) {
        eprintln!(
            "warning: {until} is not in the future: the acceptance ends at the next run of \
             the scan that lists the finding, which becomes open again"
        );
    }
    let location = match &args.store {
        Some(p) => p.clone(),
        None => super::runs::store_location_from_config(&crate::config::Config::resolve_path(
            global.config.as_deref(),
        ))?,
    };
    let request = TriageRequest {
        state,
        reason: Some(args.reason.clone()),
        by: Some(by.clone()),
        until: args.until,
        reopen_on_severity_increase: args.reopen_on_severity_increase,
    };
    let keys = args.keys.clone();
    let scan = args.scan.clone();
    // SQLite blocks; keep it off the async workers.
    let lines = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        // The store as it is: only the daemon, `sync` and `scan` create or migrate one.
        let mut store = Store::open_for_writing(&location, Schema::Existing)?;
        // Every key is resolved before anything is written: a typo triages nothing.
        let ids = keys
            .iter()
            .map(|k| store.resolve_finding(k, scan.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        let before = ids
            .iter()
            .map(|id| {
                store
                    .finding_by_id(*id)?
                    .ok_or_else(|| anyhow::anyhow!("finding {id} disappeared"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // One transaction: all of them, or (a refusal for one) none.
        let after = store.triage_all(&ids, &request)?;
        Ok(before
            .iter()
            .zip(after)
            .map(|(b, a)| outcome_line(b, a, &request))
            .collect())
    })
    .await??;
    for line in lines {
        println!("{line}");
    }
    Ok(0)
}

/// What happened to one finding, in one line.
fn outcome_line(
    before: &crate::store::FindingRow,
    after: FindingState,
    req: &TriageRequest,
) -> String {
    let name = format!(
        "finding {} ({}, {})",
        before.id,
        before.scan,
        &before.fingerprint[..before.fingerprint.len().min(12)]
    );
    let mut line = if before.state == after {
        format!("{name}: stays {after}")
    } else {
        format!("{name}: {} -> {after}", before.state)
    };
    if matches!(after, FindingState::Fixed | FindingState::Missing) && req.state.is_local() {
        line.push_str(&format!(
            " (the vendor no longer lists it; it returns as {} if it comes back)",
            req.state
        ));
    }
    if let Some(until) = req.until {
        line.push_str(&format!(", until {until}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_is_found_by_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\ndana:x:1000:1000::/home/dana:/bin/sh\n";
        assert_eq!(account_of(passwd, "1000").as_deref(), Some("dana"));
        assert_eq!(account_of(passwd, "0").as_deref(), Some("root"));
        assert_eq!(account_of(passwd, "7"), None);
    }

    #[test]
    fn dates_are_days() {
        assert_eq!(
            parse_date("2027-01-31").unwrap(),
            NaiveDate::from_ymd_opt(2027, 1, 31).unwrap()
        );
        assert!(parse_date("31.01.2027").unwrap_err().contains("YYYY-MM-DD"));
        assert!(parse_date("2027-02-30").is_err());
    }
}
