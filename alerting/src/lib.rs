//! Turns SLI windows into pages and tickets: SLO/policy/route/receiver config, the evaluator,
//! alert lifecycle, mute, grouping, the durable outbox, notifiers and cron reports.
//!
//! - [`config`] — the config sections, validated into [`config::Alerting`]; [`labels`], [`schedule`].
//! - [`alert`] — the alert model every other module shares.
//! - The decision, pure with the clock passed in: [`alerter`] (lifecycle) → [`mute`] → [`dispatch`];
//!   [`report`] (digests).
//! - [`store`] — the state, history and outbox in the database; [`deliver`] — outbox → [`notify`].
//! - [`runtime`] — the loops that run it all: cycles, reports, leadership, delivery, behind traits
//!   the binary implements (where windows come from, who leads).

pub mod alert;
pub mod alerter;
pub mod config;
pub mod deliver;
pub mod dispatch;
#[doc(hidden)]
pub mod fuzzing;
pub mod labels;
pub mod mute;
pub mod notify;
pub(crate) mod redact;
pub mod report;
pub mod runtime;
pub mod schedule;
pub(crate) mod seconds;
pub mod store;
