//! Scheduled jobs, above the engine: what to back up, into which
//! repositories, and when, as an operator writes it in one config file.
//!
//! - [`config`]: the config file, decoded and checked; every mistake is
//!   one line naming file, line and key.
//!
//! Running jobs (database sources, hooks, retention, copies), schedules and
//! the daemon build on this (issue 17); they are not here yet.

pub mod config;

pub use config::{Config, ConfigError};
