//! scansync: keeps a local, deduplicated SQLite record of security findings pulled from
//! scanner vendors (CodeThreat SAST, Salt Security API security).
//!
//! Data flows one way: [`config`] → scheduler ([`daemon`]) → connector ([`vendors`], over
//! [`http`]) → normalized [`finding`] → [`store`]. [`sync`] is the one place where connectors
//! and the store meet; the CLI ([`cli`]), the daemon and its optional listener ([`server`],
//! webhook-triggered scans, health, metrics) all go through it. A run's end also writes its
//! [`webhooks`] notifications to the store's outbox, which a delivery task sends.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod display;
pub mod export;
pub mod finding;
pub mod glob;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod sign;
pub mod sim;
pub mod store;
pub mod sync;
pub mod tls;
pub mod vendors;
pub mod webhooks;
