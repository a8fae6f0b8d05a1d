//! `scansync run`: the daemon, with signals wired in.

use super::Global;
use crate::config::Config;
use crate::daemon;

#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs until SIGTERM/SIGINT; SIGHUP reloads the config. Exit 0 after a clean stop, 78 when
/// the config does not validate.
pub async fn run(global: &Global, _args: Args) -> anyhow::Result<u8> {
    let path = Config::resolve_path(global.config.as_deref());
    let (handle, control) = daemon::channel();
    let signals = daemon::forward_signals(handle)?;
    let outcome = daemon::run(&path, control).await;
    signals.close();
    outcome.map(|()| 0)
}
