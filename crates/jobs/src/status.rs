//! Whether each job is well, from the run history alone (no repository is
//! opened, no password needed): its newest run, the age of its newest good
//! snapshot against its RPO (`max-age`), its newest drill against its RTO.
//! `cairn status` prints it and exits non-zero when something is wrong, so
//! it serves as a Nagios or cron check; [`crate::watch`] turns changes of
//! freshness into one notification each.

use std::time::Duration;

use cairn_monitor::history::{History, HistoryError, Run, RunKind};
use jiff::Timestamp;
use serde::Serialize;

use crate::config::Config;

/// How one job stands.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// The job.
    pub job: String,
    /// Its newest backup run.
    pub last: Option<Run>,
    /// Its newest run that wrote a snapshot.
    pub last_good: Option<Run>,
    /// How old that snapshot is, seconds.
    pub age_seconds: Option<f64>,
    /// The RPO, seconds.
    pub rpo_seconds: Option<f64>,
    /// Whether the newest good snapshot is older than the RPO (or there is
    /// none while an RPO is set).
    pub stale: bool,
    /// Its newest drill.
    pub last_drill: Option<Run>,
    /// The RTO target, seconds.
    pub rto_seconds: Option<f64>,
    /// What is wrong, one line each; empty when all is well.
    pub problems: Vec<String>,
}

impl JobStatus {
    /// Whether nothing is wrong.
    pub fn is_well(&self) -> bool {
        self.problems.is_empty()
    }
}

fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The status of job `name` now.
pub fn job_status(config: &Config, history: &History, name: &str, now: Timestamp) -> Result<JobStatus, HistoryError> {
    let job = config.job[name].get_ref();
    let last = history.last(name, RunKind::Backup, false)?;
    let last_good = history.last(name, RunKind::Backup, true)?;
    let last_drill = history.last(name, RunKind::Drill, false)?;
    let age = last_good.as_ref().map(|g| Duration::try_from(now.duration_since(g.started)).unwrap_or_default());
    let rpo = job.max_age;
    let rto = job.drill.as_ref().and_then(|d| d.rto);
    let stale = rpo.is_some_and(|rpo| age.is_none_or(|a| a > rpo));
    let mut problems = Vec::new();
    if let Some(l) = &last
        && !l.is_good()
    {
        problems.push(format!(
            "its last run ({} ago) failed: {}",
            ago(Duration::try_from(now.duration_since(l.ended)).unwrap_or_default()),
            l.error.as_deref().unwrap_or("no error recorded")
        ));
    }
    if stale {
        let rpo = rpo.map(ago).unwrap_or_default();
        problems.push(match age {
            Some(a) => format!("stale: its newest good snapshot is {} old, over its max-age of {rpo}", ago(a)),
            None => format!("stale: no good snapshot recorded yet (max-age {rpo})"),
        });
    }
    if let Some(d) = &last_drill {
        if !d.is_good() {
            problems.push(format!("its last drill failed: {}", d.error.as_deref().unwrap_or("no error recorded")));
        } else if let Some(rto) = rto
            && d.duration() > rto
        {
            problems.push(format!("its last drill took {}, over its RTO of {}", ago(d.duration()), ago(rto)));
        }
    }
    Ok(JobStatus {
        job: name.to_string(),
        last,
        last_good,
        age_seconds: age.map(|a| a.as_secs_f64()),
        rpo_seconds: rpo.map(|r| r.as_secs_f64()),
        stale,
        last_drill,
        rto_seconds: rto.map(|r| r.as_secs_f64()),
        problems,
    })
}

/// What the metrics say of job `name`.
pub fn job_metrics(
    config: &Config,
    history: &History,
    name: &str,
) -> Result<cairn_monitor::metrics::JobState, HistoryError> {
    let job = config.job[name].get_ref();
    Ok(cairn_monitor::metrics::JobState {
        job: name.to_string(),
        last: history.last(name, RunKind::Backup, false)?,
        last_good: history.last(name, RunKind::Backup, true)?,
        rpo: job.max_age.map(|d| d.as_secs_f64()),
        counts: history.counts(name)?,
        last_drill: history.last(name, RunKind::Drill, false)?,
        rto: job.drill.as_ref().and_then(|d| d.rto).map(|d| d.as_secs_f64()),
    })
}

/// The metrics of every job and repository, as Prometheus text.
pub fn metrics_text(config: &Config, history: &History, now: Timestamp) -> Result<String, HistoryError> {
    let jobs = config.job.keys().map(|n| job_metrics(config, history, n)).collect::<Result<Vec<_>, _>>()?;
    let known: Vec<_> =
        history.repositories()?.into_iter().filter(|r| config.repository.contains_key(&r.name)).collect();
    Ok(cairn_monitor::metrics::render(&jobs, &known, now))
}
