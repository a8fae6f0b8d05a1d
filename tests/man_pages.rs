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

/// A [`CONFIG_KEYS`] path in the checker's notation ([`Config::known_keys`]): `NAME` and
/// `[]` (a name the user picks, an entry of an array of tables) are both `*`.
fn checker_path(documented: &str) -> String {
    documented.replace(".NAME.", ".*.").replace("[]", ".*")
}

#[test]
fn the_config_page_documents_exactly_the_keys_the_checker_accepts() {
    let accepted: BTreeSet<String> = Config::known_keys().into_iter().collect();
    let documented: BTreeSet<String> = CONFIG_KEYS.iter().map(|k| checker_path(k.path)).collect();
    let undocumented: Vec<_> = accepted.difference(&documented).collect();
    let refused: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        undocumented.is_empty() && refused.is_empty(),
        "keys the checker accepts but src/cli/config_reference.rs lacks: {undocumented:?}; \
         keys it documents that the checker does not know: {refused:?}"
    );
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
