//! Turns SLI windows into pages and tickets: SLO/policy/route/receiver config, the evaluator,
//! alert lifecycle, mute, grouping, the durable outbox, notifiers and cron reports.
//!
//! So far it owns its config sections and their validation into domain types; the evaluator and
//! the notification path arrive with the alerting issue.

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
pub mod schedule;
pub(crate) mod seconds;
pub mod store;
