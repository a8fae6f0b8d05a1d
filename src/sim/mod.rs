//! The vendor simulator: serves the ../shared/vendors contracts on loopback.
//!
//! DAEMON BRANCH STUB — take the sim branch's version of this file at merge.

use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    pub projects: usize,
    pub findings_per_project: usize,
    pub churn: f64,
    pub scan_seconds: f64,
}

pub struct Simulator {}

impl Simulator {
    pub async fn start(_opts: SimOptions) -> anyhow::Result<Simulator> {
        todo!("sim helper")
    }
    pub fn write_config(&self, _path: &Path, _store_path: &Path) -> anyhow::Result<()> {
        todo!("sim helper")
    }
    pub fn advance(&self) {
        todo!("sim helper")
    }
    pub fn codethreat_url(&self) -> String {
        todo!("sim helper")
    }
}
