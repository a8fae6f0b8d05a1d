//! `scansync projects INSTANCE`: what a scan can bind to on one instance — CodeThreat
//! projects, Salt Security API assets (hosts from its inventory) — like the "Bind to" list of
//! a scanner UI and `kdt list projects`, so `bind_to` is copied, not guessed.
//!
//! Failures exit with the codes of `test-connection` (2 token, 3 organization, 4 URL, 5 TLS,
//! 6 network), since they are the same failures of the same instance.

use super::runs::OutputFormat;
use super::test_connection::{exit_code, named_instance, EXIT_OK, EXIT_OTHER};
use super::{table, Global};
use crate::config::Config;
use crate::vendors::{self, Target};
use serde_json::json;
use std::io::Write;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
CodeThreat lists projects with GET /api/projects?page=&pageSize=, a proposal not yet seen in a
CodeThreat client (see the connector's contract constants); Salt Security lists the hosts of
its API endpoint inventory.

Exit codes: 0 listed, 1 other error (unknown instance, an HTTP error after retries),
2 token rejected, 3 organization not found or not permitted, 4 wrong URL, 5 TLS failure,
6 network or timeout, 78 config error.")]
pub struct Args {
    /// The instance to list: its name in the config (as `test-connection` shows it)
    pub instance: String,
    /// table, or json (JSON Lines: one target per line)
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let path = Config::resolve_path(global.config.as_deref());
    let config = Config::load(&path, crate::vendors::REGISTRY)?;
    let (name, instance) = named_instance(&config, &path, &args.instance)?;
    let vendor = instance.vendor.as_str();
    let connector = match vendors::connect(name, instance) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: instance \"{name}\" ({vendor}): {e}");
            return Ok(EXIT_OTHER);
        }
    };
    let targets = match connector.list_targets().await {
        Ok(t) => t,
        Err(e) => {
            let shown = crate::display::clean(&e.to_string()).into_owned();
            eprintln!("error: cannot list what instance \"{name}\" ({vendor}) offers: {shown}");
            return Ok(exit_code(&e));
        }
    };
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        OutputFormat::Json => targets.iter().try_for_each(|t| {
            writeln!(
                out,
                "{}",
                json!({
                    "instance": name,
                    "vendor": vendor,
                    "name": t.name,
                    "kind": t.kind,
                    "url": t.url,
                })
            )
        }),
        OutputFormat::Table => write_table(&mut out, &targets),
    };
    super::findings::ignore_broken_pipe(written.and_then(|()| out.flush()))?;
    if targets.is_empty() {
        eprintln!("instance \"{name}\" ({vendor}) lists nothing a scan could bind to");
    }
    Ok(EXIT_OK)
}

fn write_table(out: &mut impl Write, targets: &[Target]) -> std::io::Result<()> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|t| vec![t.name.clone(), dash(&t.kind), dash(&t.url)])
        .collect();
    table::write(out, &["NAME", "KIND", "URL"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_a_dash_for_what_the_vendor_does_not_say() {
        let targets = vec![
            Target {
                name: "payments".into(),
                kind: Some("github".into()),
                url: Some("https://ct/projects/project-details/payments".into()),
            },
            Target {
                name: "api.example.com".into(),
                kind: None,
                url: None,
            },
        ];
        let mut out = Vec::new();
        write_table(&mut out, &targets).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME             KIND    URL\n\
             payments         github  https://ct/projects/project-details/payments\n\
             api.example.com  -       -\n"
        );
    }
}
