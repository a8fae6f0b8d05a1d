//! The man pages and shell completions cover the whole command line and the whole config:
//! every visible subcommand has its page, every flag is on its command's page and in the
//! bash, zsh and fish completions, and `scansync.toml(5)` documents exactly the keys the
//! config checker accepts: the checker is asked for its keys (the "unknown key; expected one
//! of …" error it gives for a key it does not know), so a key it learns without the page
//! learning it fails here, and so does a key the page names that the checker refuses.

use clap::CommandFactory;
use scansync::cli::config_reference::CONFIG_KEYS;
use scansync::cli::Cli;
use scansync::config::Config;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_scansync");

/// A visible command of the tree: its page's name (`scansync-store-prune`), its words
/// (`store prune`) and its visible long flags, the global ones included.
struct Cmd {
    page: String,
    words: Vec<String>,
    longs: Vec<String>,
    positionals: Vec<String>,
}

fn commands() -> Vec<Cmd> {
    fn walk(cmd: &clap::Command, words: Vec<String>, out: &mut Vec<Cmd>) {
        let page = std::iter::once("scansync".to_string())
            .chain(words.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let visible = cmd.get_arguments().filter(|a| !a.is_hide_set());
        let (mut longs, mut positionals) = (Vec::new(), Vec::new());
        for arg in visible {
            match arg.get_long() {
                Some(long) => longs.push(long.to_string()),
                None if arg.is_positional() => positionals.push(
                    arg.get_value_names()
                        .and_then(|names| names.first())
                        .map_or_else(|| arg.get_id().to_string(), |n| n.to_string()),
                ),
                None => {}
            }
        }
        out.push(Cmd {
            page,
            words: words.clone(),
            longs,
            positionals,
        });
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut w = words.clone();
            w.push(sub.get_name().to_string());
            walk(sub, w, out);
        }
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, Vec::new(), &mut out);
    out
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run scansync");
    assert!(
        out.status.success(),
        "scansync {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// How roff writes a long flag: `--dry-run` is `\-\-dry\-run`.
fn roff_flag(long: &str) -> String {
    format!("--{long}").replace('-', "\\-")
}

#[test]
fn every_subcommand_has_a_man_page_naming_each_of_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let listed = run(&["man", "--out", dir.path().to_str().unwrap()]);
    let commands = commands();
    // The new commands of this release, so a tree walk that found nothing cannot pass.
    for must in [
        "scansync-store-prune",
        "scansync-check-config",
        "scansync-triage",
        "scansync-finding",
        "scansync-completions",
        "scansync-man",
    ] {
        assert!(
            commands.iter().any(|c| c.page == must),
            "{must} is not in the command tree"
        );
    }
    for cmd in &commands {
        let file = dir.path().join(format!("{}.1", cmd.page));
        let page = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("no man page {}: {e}", file.display()));
        assert!(
            listed.contains(file.to_str().unwrap()),
            "`scansync man` did not list {}",
            file.display()
        );
        for long in &cmd.longs {
            assert!(
                page.contains(&roff_flag(long)),
                "{}.1 does not name --{long}",
                cmd.page
            );
        }
        for positional in &cmd.positionals {
            assert!(
                page.to_uppercase()
                    .contains(&positional.to_uppercase().replace('-', "\\-")),
                "{}.1 does not name its argument {positional}",
                cmd.page
            );
        }
    }
    assert!(
        page_count(dir.path(), ".1") == commands.len(),
        "expected exactly one page per visible command ({})",
        commands.len()
    );
    assert!(dir.path().join("scansync.toml.5").is_file());
    let store_prune = std::fs::read_to_string(dir.path().join("scansync-store-prune.1")).unwrap();
    assert!(
        store_prune.contains(&roff_flag("dry-run")) && store_prune.contains(&roff_flag("store"))
    );
}

fn page_count(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(suffix)
        })
        .count()
}

#[test]
fn completions_offer_every_subcommand_and_flag() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for cmd in &commands {
            if let Some(word) = cmd.words.last() {
                assert!(
                    script.contains(word.as_str()),
                    "the {shell} completions lack the subcommand {}",
                    cmd.words.join(" ")
                );
            }
            for long in &cmd.longs {
                let form = match shell {
                    "fish" => format!("-l {long}"),
                    _ => format!("--{long}"),
                };
                assert!(
                    script.contains(&form),
                    "the {shell} completions lack --{long} of `{}`",
                    cmd.page
                );
            }
        }
    }
}

#[test]
fn bash_loads_the_bash_completions() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("scansync.bash");
    std::fs::write(&script, run(&["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && complete -p scansync")
        .arg("bash")
        .arg(&script)
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("scansync"),
        "bash could not load the completions: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where the checker looks up keys: a key path prefix in [`CONFIG_KEYS`] notation and a
/// config that puts an unknown key `zzprobe` in that table.
const PROBES: &[(&str, &str)] = &[
    ("", "zzprobe = 1\n"),
    ("store", "[store]\npath = \"s.db\"\nzzprobe = 1\n"),
    (
        "store.retention",
        "[store]\npath = \"s.db\"\nretention = { zzprobe = \"1d\" }\n",
    ),
    ("daemon", "[daemon]\nzzprobe = 1\n"),
    (
        "server",
        "[server]\nlisten = \"127.0.0.1:0\"\nzzprobe = 1\n",
    ),
    (
        "instances.NAME",
        "[instances.a]\nvendor = \"codethreat\"\nzzprobe = 1\n",
    ),
    ("scans[]", "[[scans]]\nname = \"s\"\nzzprobe = 1\n"),
    (
        "scans[].schedule",
        "[[scans]]\nname = \"s\"\nschedule = { zzprobe = 1 }\n",
    ),
    (
        "scans[].webhook",
        "[[scans]]\nname = \"s\"\nwebhook = { zzprobe = 1 }\n",
    ),
    ("webhooks.NAME", "[webhooks.w]\nzzprobe = 1\n"),
    ("suppress[]", "[[suppress]]\nzzprobe = 1\n"),
];

/// The keys the checker accepts in the table `probe` puts `zzprobe` into, read from its
/// error ("…zzprobe: unknown key; expected one of a, b, c (line 3)").
fn accepted_keys(prefix: &str, probe: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let errors = match Config::from_toml(probe, &dir.path().join("config.toml")) {
        Ok(_) => panic!("the checker accepted the unknown key in {prefix:?}:\n{probe}"),
        Err(e) => e.errors,
    };
    let line = errors
        .iter()
        .find(|e| e.contains("zzprobe") && e.contains("unknown"))
        .unwrap_or_else(|| {
            panic!("no unknown-key error for zzprobe in {prefix:?}; errors: {errors:#?}")
        });
    let list = line
        .split_once("expected one of ")
        .or_else(|| line.split_once("expected "))
        .unwrap_or_else(|| {
            panic!("the unknown-key error no longer lists the accepted keys: {line}")
        })
        .1;
    let list = list.rsplit_once(" (line").map_or(list, |(l, _)| l);
    list.split(", ").map(|k| k.trim().to_string()).collect()
}

/// The keys of [`CONFIG_KEYS`] directly under `prefix` ("" = the top level).
fn documented_keys(prefix: &str) -> BTreeSet<String> {
    CONFIG_KEYS
        .iter()
        .filter_map(|k| {
            let rest = if prefix.is_empty() {
                Some(k.path)
            } else {
                k.path.strip_prefix(prefix)?.strip_prefix('.')
            }?;
            (!rest.contains('.') && !rest.contains('[')).then(|| rest.to_string())
        })
        .collect()
}

#[test]
fn the_config_page_documents_exactly_the_keys_the_checker_accepts() {
    for (prefix, probe) in PROBES {
        let accepted = accepted_keys(prefix, probe);
        let documented = documented_keys(prefix);
        let undocumented: Vec<_> = accepted.difference(&documented).collect();
        let refused: Vec<_> = documented.difference(&accepted).collect();
        assert!(
            undocumented.is_empty() && refused.is_empty(),
            "table {prefix:?}: keys the checker accepts but src/cli/config_reference.rs lacks: \
             {undocumented:?}; keys it documents that the checker refuses: {refused:?}"
        );
    }
    // Every documented key sits in a table probed above, so none escapes the comparison.
    for k in CONFIG_KEYS {
        let parent = match k.path.rsplit_once('.') {
            Some((parent, _)) => parent,
            None => "",
        };
        assert!(
            PROBES.iter().any(|(prefix, _)| *prefix == parent),
            "{} is in a table this test does not probe; add its table to PROBES",
            k.path
        );
    }
}

#[test]
fn the_config_page_and_the_example_name_every_key() {
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--out", dir.path().to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.path().join("scansync.toml.5")).unwrap();
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"))
            .unwrap();
    for k in CONFIG_KEYS {
        assert!(
            page.contains(&format!("\\fB{}\\fR", k.path)),
            "scansync.toml.5 lacks {}",
            k.path
        );
        let path = k.path.replace("[]", "");
        let last = path.rsplit('.').next().unwrap_or(&path);
        let named = example.match_indices(last).any(|(i, _)| {
            let before = example[..i].chars().next_back();
            let after = example[i + last.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            !word(before) && !word(after)
        });
        assert!(
            named,
            "config.example.toml does not show the key {} (add it, commented if need be)",
            k.path
        );
    }
}
