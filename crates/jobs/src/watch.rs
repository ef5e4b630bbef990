//! What a job's runs leave behind for the people who watch them: a row in
//! the run history per run and per step (check, prune, copy), the
//! notifications the job's channels want (start, failure, warning,
//! success, slow, growth, low space, damage, stale and fresh again), and
//! the metrics file. None of it changes a run's outcome: a history that
//! cannot be written or a channel that cannot be reached is one warning
//! line on stderr.

use cairn_monitor::history::{History, Outcome, Run, RunKind};
use cairn_monitor::notify::{self, Channel, Event, Message};
use jiff::Timestamp;

use crate::config::{Config, JobConfig};
use crate::run::RunOptions;

/// The alert kept in the history while a job is stale.
const STALE: &str = "stale";

/// Watching one job (or, with no job, the whole config).
pub struct Watch<'a> {
    config: &'a Config,
    job: &'a str,
    history: Option<History>,
    host: String,
    metrics_state: std::path::PathBuf,
}

fn warn(what: impl std::fmt::Display) {
    eprintln!("cairn: warning: {what}");
}

impl<'a> Watch<'a> {
    /// Opens the history of `opts.state_dir` for job `job`.
    pub fn open(config: &'a Config, job: &'a str, opts: &RunOptions) -> Watch<'a> {
        let history = History::open(&opts.state_dir).map_err(warn).ok();
        Watch { config, job, history, host: opts.hostname.clone(), metrics_state: opts.state_dir.clone() }
    }

    /// The history, if it could be opened.
    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    fn job_config(&self) -> Option<&JobConfig> {
        self.config.job.get(self.job).map(|j| j.get_ref())
    }

    /// The channels this job tells: those it names, or all.
    fn channels(&self) -> Vec<(&'a String, &'a Channel)> {
        let named = self.config.job.get(self.job).and_then(|j| j.get_ref().notify.as_ref());
        self.config
            .notify
            .iter()
            .filter(|(n, _)| named.is_none_or(|names| names.get_ref().contains(n)))
            .map(|(n, c)| (n, c.get_ref()))
            .collect()
    }

    /// Tells the job's channels that wanted `event`; failures are warnings.
    pub fn tell(&self, event: Event, title: String, body: String) {
        let msg =
            Message { event, job: self.job.to_string(), title, body, time: Timestamp::now(), host: self.host.clone() };
        for e in notify::send_all(self.channels(), &msg) {
            warn(e);
        }
    }

    /// Records `run` in the history.
    pub fn record(&self, run: &Run) {
        if let Some(h) = &self.history
            && let Err(e) = h.record(run)
        {
            warn(e);
        }
    }

    /// Rewrites the metrics file, if the config names one.
    pub fn write_metrics(&self) {
        let (Some(path), Some(h)) = (&self.config.metrics.textfile, &self.history) else { return };
        match crate::status::metrics_text(self.config, h, Timestamp::now()) {
            Ok(text) => {
                if let Err(e) = cairn_monitor::metrics::write_atomically(path, &text) {
                    warn(format!("writing the metrics file {}: {e}", path.display()));
                }
            }
            Err(e) => warn(e),
        }
        let _ = &self.metrics_state;
    }

    /// Raises `stale` when the job's newest good snapshot is older than its
    /// RPO, and `fresh` when it no longer is; each once per change, not
    /// once per look.
    pub fn check_freshness(&self, now: Timestamp) {
        let Some(h) = &self.history else { return };
        if self.job_config().is_none_or(|j| j.max_age.is_none()) {
            return;
        }
        let status = match crate::status::job_status(self.config, h, self.job, now) {
            Ok(s) => s,
            Err(e) => return warn(e),
        };
        let change = h.set_alert(self.job, STALE, status.stale.then_some(now));
        match change {
            Ok(true) if status.stale => {
                let problem = status.problems.iter().find(|p| p.starts_with("stale")).cloned().unwrap_or_default();
                self.tell(Event::Stale, format!("job {} is stale", self.job), problem);
            }
            Ok(true) => {
                let snapshot = status.last_good.as_ref().and_then(|r| r.snapshot.clone()).unwrap_or_default();
                self.tell(
                    Event::Fresh,
                    format!("job {} is fresh again", self.job),
                    format!("a good snapshot again: {snapshot}"),
                );
            }
            Ok(false) => {}
            Err(e) => warn(e),
        }
    }

    /// After a run: records it and its steps, tells what there is to tell
    /// and rewrites the metrics.
    pub fn finish(&self, run: &Run, steps: &[Run], raised: &[(Event, String)], warnings: &[String]) {
        for s in steps {
            self.record(s);
        }
        self.record(run);
        let took = run.duration();
        let figures = format!(
            "snapshot {}, {} files, {} read, {} added, {} warnings, {:.1}s",
            run.snapshot.as_deref().map_or("none", |s| &s[..s.len().min(8)]),
            run.files,
            run.bytes_read,
            run.bytes_added,
            run.warnings,
            took.as_secs_f64()
        );
        let job = self.job;
        match run.outcome {
            Outcome::Failure | Outcome::Interrupted => self.tell(
                Event::Failure,
                format!("job {job} failed: {}", run.error.as_deref().unwrap_or("no error recorded")),
                format!("{}\n{figures}", run.error.as_deref().unwrap_or_default()),
            ),
            Outcome::Warning => self.tell(
                Event::Warning,
                format!("job {job}: {} file(s) could not be read", run.warnings),
                format!("{figures}\n{}", warnings.join("\n")),
            ),
            Outcome::Success => self.tell(Event::Success, format!("job {job} succeeded"), figures.clone()),
        }
        for (event, text) in raised {
            self.tell(*event, format!("job {job}: {text}"), figures.clone());
        }
        if let Some(j) = self.job_config() {
            if let Some(slow) = j.slow
                && took > slow
            {
                self.tell(
                    Event::Slow,
                    format!("job {job} took {:.0}s, over its limit of {}s", took.as_secs_f64(), slow.as_secs()),
                    figures.clone(),
                );
            }
            if let (Some(growth), Some(h), true) = (j.growth, &self.history, run.is_good()) {
                let mut recent = h.recent_added(job, 7).unwrap_or_default();
                recent.sort_unstable();
                if let Some(&median) = recent.get(recent.len() / 2)
                    && median > 0
                    && run.bytes_added as f64 > median as f64 * (1.0 + growth.0 / 100.0)
                {
                    self.tell(
                        Event::Growth,
                        format!(
                            "job {job} added {} bytes, {:.0}% over the median of its recent runs ({median})",
                            run.bytes_added,
                            (run.bytes_added as f64 / median as f64 - 1.0) * 100.0
                        ),
                        figures.clone(),
                    );
                }
            }
        }
        self.check_freshness(Timestamp::now());
        self.write_metrics();
    }
}

/// A step of a run, timed: `f`'s result decides its outcome.
pub fn step<T>(
    steps: &mut Vec<Run>,
    job: &str,
    kind: RunKind,
    repository: &str,
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let started = Timestamp::now();
    let result = f();
    let mut run = Run::new(job, kind, started, if result.is_ok() { Outcome::Success } else { Outcome::Failure });
    run.repository = Some(repository.to_string());
    if let Err(e) = &result {
        run.error = Some(e.clone());
    }
    steps.push(run);
    result
}

/// The free share of the file system holding `path`, in percent.
pub fn free_percent(path: &std::path::Path) -> Option<f64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let total = s.blocks() as f64;
    (total > 0.0).then(|| s.blocks_available() as f64 / total * 100.0)
}
