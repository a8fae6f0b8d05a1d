//! `scansync completions SHELL`: the shell's completion script, generated from the clap
//! definitions that parse the command line, so it always knows every subcommand and flag.
//! The Debian package ships the bash, zsh and fish ones.

use super::Global;
use clap::CommandFactory;
use std::io::Write;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to write the completion script for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script on stdout, such as
/// `scansync completions bash > /etc/bash_completion.d/scansync`. Needs no config file.
pub async fn run(_global: &Global, args: Args) -> anyhow::Result<u8> {
    let script = script(args.shell);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| anyhow::anyhow!("cannot write the completion script to stdout: {e}"))?;
    Ok(0)
}

/// The completion script for `shell`. Built in memory: clap_complete panics on a failed
/// write, and a closed pipe (`| head`) should be an error message instead.
pub fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "scansync", &mut script);
    script
}
