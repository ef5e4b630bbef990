//! Knowing that backups are good, below the jobs that make them:
//!
//! - [`history`]: every run of a job, check, prune, copy and drill, kept in
//!   an SQLite database in the state folder, failures that wrote nothing
//!   included.
//! - [`notify`]: telling people (webhook, email, ntfy, healthchecks-style
//!   pings), with retries; a message that cannot be delivered is reported
//!   and never changes a run's outcome.
//! - [`metrics`]: the Prometheus text a scraper or node_exporter's textfile
//!   collector reads.
//!
//! What counts as stale, slow or grown is the jobs' policy (cairn-jobs);
//! this crate records, renders and delivers.

pub mod history;
pub mod metrics;
pub mod notify;

pub use history::{History, HistoryError, Outcome, Run, RunKind};
