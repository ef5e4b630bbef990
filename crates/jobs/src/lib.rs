//! Scheduled jobs, above the engine: what to back up, into which
//! repositories, and when, as an operator writes it in one config file.
//!
//! - [`config`]: the config file, decoded and checked; every mistake is
//!   one line naming file, line and key.
//! - [`repository`]: opening a repository the config names.
//! - [`run`]: running a job (hooks, one atomic snapshot of folders,
//!   database dumps and commands, retention, copies).
//!
//! - [`schedule`]: when a job runs; [`units`]: systemd units and crontab
//!   lines for it; [`daemon`]: running the schedules without systemd.
//! - [`db`]: the databases in a job's snapshots, and loading one back.
//! - [`watch`]: what runs leave for those who watch them (history rows,
//!   notifications, metrics); [`status`]: whether each job is well;
//!   [`drill`]: a timed restore that proves a job's newest snapshot.

pub mod config;
pub mod daemon;
pub mod db;
pub mod drill;
pub mod repository;
pub mod run;
pub mod schedule;
pub mod status;
pub mod units;
pub mod watch;

pub use config::{Config, ConfigError};
pub use run::{RunOptions, RunReport, run_job};

/// A job that could not run, or failed; one line each.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The config names no such job.
    #[error("no job named {0:?} in the config: `cairn config check` lists them")]
    NoSuchJob(String),
    /// Another run of the job holds its lock.
    #[error("job {0} is already running (another cairn holds its lock); this run did nothing")]
    Running(String),
    /// The state folder (locks) cannot be used.
    #[error("cannot use the state folder: {0}")]
    State(String),
    /// A repository could not be opened.
    #[error("repository {name}: {message}")]
    Repository {
        /// Its name in the config.
        name: String,
        /// Why.
        message: String,
    },
    /// A hook failed.
    #[error("job {job}: {when} hook {command:?} failed ({failure})")]
    Hook {
        /// The job.
        job: String,
        /// before, after, on-failure or finally.
        when: String,
        /// The command.
        command: String,
        /// How it ended.
        failure: String,
    },
    /// The backup, the retention or a copy failed.
    #[error("job {job}: {message}")]
    Failed {
        /// The job.
        job: String,
        /// What failed.
        message: String,
    },
}
