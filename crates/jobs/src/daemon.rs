//! `cairn daemon`: runs the jobs' schedules itself, for containers and hosts
//! without systemd. A job is due when its schedule has a time after its
//! last start (kept in the state folder by every run) that is not in the
//! future, so a run missed while the daemon was stopped happens as soon as
//! it starts again, once. Jobs run one at a time, each under its lock, so
//! no job ever runs twice at once (a manual `job run` holding the lock
//! makes the daemon skip that time). Every event is one JSON line. The
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

/// Runs until `stop` says so; `log` gets one JSON object per event.
pub fn run(config: &Config, opts: &RunOptions, stop: &Receiver<Stop>, log: &mut dyn FnMut(serde_json::Value)) {
    let tz = TimeZone::system();
    let started = Timestamp::now();
    let local = |t: Timestamp| tz.to_datetime(t);
    let jobs: Vec<(&String, &crate::schedule::Schedule)> =
        config.job.iter().filter_map(|(n, j)| j.get_ref().schedule.as_ref().map(|s| (n, s))).collect();
    log(json!({ "event": "started", "jobs": jobs.iter().map(|(n, _)| n).collect::<Vec<_>>() }));
    // The next time each job is due: after its last start, or, never
    // started here, after the daemon's own start.
    let next = |name: &str, s: &crate::schedule::Schedule| -> Option<DateTime> {
        s.next_after(local(last_start(&opts.state_dir, name).unwrap_or(started)))
    };
    loop {
        let now = local(Timestamp::now());
        for (name, schedule) in &jobs {
            if next(name, schedule).is_none_or(|t| t > now) {
                continue;
            }
            log(json!({ "event": "run", "job": name, "schedule": schedule.to_string() }));
            let (tx, done) = crossbeam_channel::bounded(1);
            let result = std::thread::scope(|s| {
                s.spawn(|| {
                    let _ = tx.send(run_job(config, name, opts));
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
                (Some(Ok(r)), _) => log(json!({
                    "event": "finished", "job": name,
                    "snapshot": r.snapshot.map(|s| s.to_hex()), "warnings": r.warnings, "copied": r.copied,
                })),
                (Some(Err(crate::JobError::Running(_))), _) => {
                    log(json!({ "event": "skipped", "job": name, "reason": "already running" }))
                }
                (Some(Err(e)), _) => log(json!({ "event": "failed", "job": name, "error": e.to_string() })),
                (None, _) => {
                    log(json!({ "event": "failed", "job": name, "error": "the job's thread ended without a result" }))
                }
            }
            if result.1 {
                log(json!({ "event": "stopped" }));
                return;
            }
            if last_start(&opts.state_dir, name).is_none_or(|t| local(t) < now) {
                // The run did not start (another held the lock before it
                // could record itself): this time is taken, not retried.
                let _ = std::fs::write(
                    opts.state_dir.join("jobs").join(format!("{name}.last")),
                    format!("{}\n", Timestamp::now()),
                );
            }
        }
        let now = local(Timestamp::now());
        let wake = jobs.iter().filter_map(|(n, s)| next(n, s)).min();
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
