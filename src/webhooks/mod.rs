//! Outgoing webhook notifications: what is sent, how it is signed, and the task that delivers
//! it.
//!
//! # Durability
//! A notification is a row of the store's `webhook_outbox` table, written by
//! [`crate::store::Store::finish_run`] in the same transaction that ends the run: once a run
//! is recorded as finished, its notifications exist too, whatever happens to the process
//! next. Delivery is a separate step ([`delivery`]) that reads the outbox, so a crash or a
//! SIGKILL at any point leaves a notification either delivered (and marked so) or still in
//! the outbox, to be sent again after the restart. That is at-least-once delivery: the same
//! notification may arrive twice (say the process died after the receiver answered but
//! before the row was marked), always with the same `webhook-id`, which receivers use to
//! drop duplicates.
//!
//! # Layout
//! - [`payload`]: the JSON body of each notification (pure, unit-tested), which the store
//!   writes through [`payload::compose`] when a run ends;
//! - [`crate::sign`]: the Standard Webhooks signature;
//! - the event words and routes ([`crate::config::EventType`], [`crate::config::Route`]) are
//!   config: what each `[webhooks.NAME]` wants;
//! - [`delivery`]: the HTTP attempt, the retry schedule, the background task and the
//!   one-shot pass of `sync` / `scan`.

pub mod delivery;
pub mod payload;
pub use delivery::{
    deliver_before_exit, run_delivery_task, send_ping, Delivery, Outbox, PingOutcome,
};
