//! `cairn daemon`: runs the jobs' schedules itself, for containers and hosts
//! without systemd. A job is due when its schedule has a time after its
//! last start (kept in the state folder by every run) that is not in the
//! future, so a run missed while the daemon was stopped happens as soon as
//! it starts again, once. Jobs run one at a time, each under its lock, so
//! no job ever runs twice at once (a manual `job run` holding the lock
//! makes the daemon skip that time). A job's drill runs on its own
//! schedule the same way, and on every tick each job with a `max-age` is
//! checked for freshness (a notification per change). Every event is one
//! JSON line. The
//! first SIGINT or SIGTERM lets a running job finish and then stops; when
//! idle it stops at once.

use std::time::Duration;

use crossbeam_channel::{Receiver, select};
use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::json;

use crate::config::Config;
use crate::run::{RunOptions, last_start, run_job};

/// Longest sleep between looks at the clock (it may be changed under us).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A request to stop, from a signal.
#[derive(Debug, Clone, Copy)]
pub struct Stop;

/// What the daemon runs on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task<'a> {
    /// A job's run.
    Job(&'a str),
    /// A job's restore drill.
    Drill(&'a str),
}

/// Runs until `stop` says so; `log` gets one JSON object per event.
pub fn run(config: &Config, opts: &RunOptions, stop: &Receiver<Stop>, log: &mut dyn FnMut(serde_json::Value)) {
    let tz = TimeZone::system();
    let started = Timestamp::now();
    let local = |t: Timestamp| tz.to_datetime(t);
    let mut tasks: Vec<(Task<'_>, &crate::schedule::Schedule)> = Vec::new();
    for (n, j) in &config.job {
        if let Some(s) = &j.get_ref().schedule {
            tasks.push((Task::Job(n), s));
        }
        if let Some(s) = j.get_ref().drill.as_ref().and_then(|d| d.schedule.as_ref()) {
            tasks.push((Task::Drill(n), s));
        }
    }
    let names = |drills: bool| -> Vec<&str> {
        tasks
            .iter()
            .filter_map(|(t, _)| match (t, drills) {
                (Task::Job(n), false) | (Task::Drill(n), true) => Some(*n),
                _ => None,
            })
            .collect()
    };
    log(json!({ "event": "started", "jobs": names(false), "drills": names(true) }));
    let history = cairn_monitor::History::open(&opts.state_dir).ok();
    // When a task last started: a job from its last-start file, a drill from
    // the run history; never here, the daemon's own start.
    let last = |t: Task<'_>| -> Option<Timestamp> {
        match t {
            Task::Job(n) => last_start(&opts.state_dir, n),
            Task::Drill(n) => history
                .as_ref()
                .and_then(|h| h.last(n, cairn_monitor::RunKind::Drill, false).ok().flatten())
                .map(|r| r.started),
        }
    };
    let next = |t: Task<'_>, s: &crate::schedule::Schedule| -> Option<DateTime> {
        s.next_after(local(last(t).unwrap_or(started)))
    };
    loop {
        let now = local(Timestamp::now());
        for (task, schedule) in &tasks {
            if next(*task, schedule).is_none_or(|t| t > now) {
                continue;
            }
            let (name, what) = match task {
                Task::Job(n) => (*n, "run"),
                Task::Drill(n) => (*n, "drill"),
            };
            log(json!({ "event": what, "job": name, "schedule": schedule.to_string() }));
            let (tx, done) = crossbeam_channel::bounded(1);
            let result = std::thread::scope(|s| {
                s.spawn(|| {
                    let r = match task {
                        Task::Job(n) => run_job(config, n, opts).map(|r| (r.snapshot.map(|s| s.to_hex()), r.warnings)),
                        Task::Drill(n) => crate::drill::drill(config, n, opts).map(|r| (r.snapshot, 0)),
                    };
                    let _ = tx.send(r);
                });
                let mut stopping = false;
                loop {
                    select! {
                        recv(done) -> r => return (r.ok(), stopping),
                        recv(stop) -> _ => {
                            if !stopping {
                                stopping = true;
                                log(json!({ "event": "stopping", "waiting_for": name }));
                            }
                        }
                    }
                }
            });
            match result {
                (Some(Ok((snapshot, warnings))), _) => log(json!({
                    "event": "finished", "job": name, "task": what, "snapshot": snapshot, "warnings": warnings,
                })),
                (Some(Err(crate::JobError::Running(_))), _) => {
                    log(json!({ "event": "skipped", "job": name, "reason": "already running" }))
                }
                (Some(Err(e)), _) => {
                    log(json!({ "event": "failed", "job": name, "task": what, "error": e.to_string() }))
                }
                (None, _) => {
                    log(json!({ "event": "failed", "job": name, "error": "the job's thread ended without a result" }))
                }
            }
            if result.1 {
                log(json!({ "event": "stopped" }));
                return;
            }
            if let Task::Job(name) = task
                && last_start(&opts.state_dir, name).is_none_or(|t| local(t) < now)
            {
                // The run did not start (another held the lock before it
                // could record itself): this time is taken, not retried.
                let _ = std::fs::write(
                    opts.state_dir.join("jobs").join(format!("{name}.last")),
                    format!("{}\n", Timestamp::now()),
                );
            }
        }
        // Freshness against each job's RPO: told once per change.
        for (name, job) in &config.job {
            if job.get_ref().max_age.is_some() {
                crate::watch::Watch::open(config, name, opts).check_freshness(Timestamp::now());
            }
        }
        let now = local(Timestamp::now());
        // Wake for the next scheduled task, or when a fresh job's newest
        // good snapshot passes its max-age, whichever comes first.
        let stale_at = config.job.iter().filter_map(|(n, j)| {
            let rpo = jiff::SignedDuration::try_from(j.get_ref().max_age?).ok()?;
            let good = history.as_ref()?.last(n, cairn_monitor::RunKind::Backup, true).ok()??;
            let at = local(good.started.checked_add(rpo).ok()?.checked_add(jiff::SignedDuration::from_secs(1)).ok()?);
            (at > now).then_some(at)
        });
        let wake = tasks.iter().filter_map(|(t, s)| next(*t, s)).chain(stale_at).min();
        let sleep = wake
            .and_then(|w| now.until(w).ok())
            .and_then(|span| Duration::try_from(span).ok())
            .map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP));
        select! {
            recv(stop) -> _ => {
                log(json!({ "event": "stopped" }));
                return;
            }
            default(sleep) => {}
        }
    }
}
