//! `scansync check-config`

use super::Global;
use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub async fn run(global: &Global, _args: Args) -> anyhow::Result<u8> {
    let path = Config::resolve_path(global.config.as_deref());
    let _config = Config::load(&path)?;
    todo!("config helper: print summary")
}
