//! DELETE AT MERGE (with its `mod` line in lib.rs): signatures the daemon branch codes
//! against, implemented for real on the store and config branches. Duplicate-definition
//! errors after the merge point here.

use crate::config::Schedule;
use crate::store::{FindingFilter, FindingRow, RunRow, Store, StoreError};
use chrono::{DateTime, Utc};

impl Store {
    pub fn recover_unfinished(&mut self) -> Result<Vec<RunRow>, StoreError> {
        todo!("store helper")
    }
    pub fn runs(&self, _scan: Option<&str>, _limit: usize) -> Result<Vec<RunRow>, StoreError> {
        todo!("store helper")
    }
    pub fn last_run(&self, _scan: &str) -> Result<Option<RunRow>, StoreError> {
        todo!("store helper")
    }
    pub fn for_each_finding<E: From<StoreError>>(
        &self,
        _filter: &FindingFilter,
        _f: impl FnMut(FindingRow) -> Result<(), E>,
    ) -> Result<(), E> {
        todo!("store helper")
    }
}

impl Schedule {
    pub fn next_after(&self, _now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        todo!("config helper")
    }
}
