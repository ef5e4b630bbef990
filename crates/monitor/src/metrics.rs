//! Prometheus metrics of the jobs and repositories: rendered as text (the
//! exposition format node_exporter's textfile collector and a scraper of
//! `cairn daemon`'s `/metrics` read) and written atomically, so that a
//! collector never reads half a file. Names follow Prometheus'
//! conventions: the `cairn_` prefix, base units, `_seconds`, `_bytes`,
//! `_total`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::history::{Outcome, Run, RunKind};

/// What is known of one job.
#[derive(Debug, Clone, Default)]
pub struct JobState {
    /// Its name.
    pub job: String,
    /// Its newest backup run.
    pub last: Option<Run>,
    /// Its newest backup run that wrote a snapshot.
    pub last_good: Option<Run>,
    /// Its RPO (`max-age`), seconds.
    pub rpo: Option<f64>,
    /// Runs so far by kind and outcome.
    pub counts: Vec<(RunKind, Outcome, u64)>,
    /// Its newest drill.
    pub last_drill: Option<Run>,
    /// Its RTO target, seconds.
    pub rto: Option<f64>,
}

/// What is known of one repository (from the newest run that used it).
#[derive(Debug, Clone, Default)]
pub struct RepositoryState {
    /// Its name in the config.
    pub name: String,
    /// Snapshots in it.
    pub snapshots: u64,
    /// Bytes of its packs.
    pub size_bytes: u64,
    /// When these figures were taken.
    pub at: Option<Timestamp>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    job: String,
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepositoryLabel {
    repository: String,
}

type G = Gauge<f64, AtomicU64>;

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// The metrics as Prometheus text; ages are counted to `now`.
pub fn render(jobs: &[JobState], repositories: &[RepositoryState], now: Timestamp) -> String {
    let mut reg = Registry::with_prefix("cairn");
    let mut job_gauge = |name: &str, help: &str| {
        let f = Family::<JobLabel, G>::default();
        reg.register(name, help, f.clone());
        f
    };
    let last_success =
        job_gauge("job_last_run_success", "Whether the job's newest run wrote a snapshot (1) or not (0)");
    let last_time = job_gauge("job_last_run_timestamp_seconds", "When the job's newest run ended");
    let last_duration = job_gauge("job_last_run_duration_seconds", "How long the job's newest run took");
    let last_exit = job_gauge("job_last_run_exit_code", "The exit code of the job's newest run");
    let last_read = job_gauge("job_last_run_read_bytes", "Bytes the job's newest run read from its sources");
    let last_added = job_gauge("job_last_run_added_bytes", "Bytes the job's newest run added to its repository");
    let last_files = job_gauge("job_last_run_files", "Files in the snapshot of the job's newest run");
    let good_time = job_gauge("job_last_success_timestamp_seconds", "When the job's newest good snapshot was taken");
    let good_age = job_gauge("job_newest_snapshot_age_seconds", "Age of the job's newest good snapshot");
    let rpo = job_gauge("job_rpo_seconds", "The job's recovery point objective (max-age)");
    let fresh = job_gauge("job_fresh", "Whether the newest good snapshot is within the RPO (1) or not (0)");
    let drill_success = job_gauge("job_drill_last_success", "Whether the job's newest drill passed");
    let drill_rto = job_gauge("job_drill_last_rto_seconds", "How long the job's newest drill took to restore");
    let drill_time = job_gauge("job_drill_last_timestamp_seconds", "When the job's newest drill ended");
    let rto = job_gauge("job_rto_target_seconds", "The job's recovery time objective");
    let runs = Family::<RunLabels, G>::default();
    reg.register("runs", "Runs recorded in the history, by job, kind and outcome", runs.clone());
    let repo_snapshots = Family::<RepositoryLabel, G>::default();
    reg.register("repository_snapshots", "Snapshots in the repository", repo_snapshots.clone());
    let repo_size = Family::<RepositoryLabel, G>::default();
    reg.register("repository_size_bytes", "Bytes of the repository's packs", repo_size.clone());

    for j in jobs {
        let l = JobLabel { job: j.job.clone() };
        if let Some(r) = &j.last {
            last_success.get_or_create(&l).set(if r.is_good() { 1.0 } else { 0.0 });
            last_time.get_or_create(&l).set(seconds(r.ended));
            last_duration.get_or_create(&l).set(r.duration().as_secs_f64());
            last_exit.get_or_create(&l).set(f64::from(r.exit_code));
            last_read.get_or_create(&l).set(r.bytes_read as f64);
            last_added.get_or_create(&l).set(r.bytes_added as f64);
            last_files.get_or_create(&l).set(r.files as f64);
        }
        if let Some(g) = &j.last_good {
            good_time.get_or_create(&l).set(seconds(g.started));
            good_age.get_or_create(&l).set((seconds(now) - seconds(g.started)).max(0.0));
        }
        if let Some(s) = j.rpo {
            rpo.get_or_create(&l).set(s);
            let age = j.last_good.as_ref().map(|g| seconds(now) - seconds(g.started));
            fresh.get_or_create(&l).set(if age.is_some_and(|a| a <= s) { 1.0 } else { 0.0 });
        }
        if let Some(d) = &j.last_drill {
            drill_success.get_or_create(&l).set(if d.is_good() { 1.0 } else { 0.0 });
            drill_rto.get_or_create(&l).set(d.duration().as_secs_f64());
            drill_time.get_or_create(&l).set(seconds(d.ended));
        }
        if let Some(s) = j.rto {
            rto.get_or_create(&l).set(s);
        }
        for (kind, outcome, n) in &j.counts {
            let labels = RunLabels { job: j.job.clone(), kind: kind.as_str().into(), outcome: outcome.as_str().into() };
            runs.get_or_create(&labels).set(*n as f64);
        }
    }
    for r in repositories {
        let l = RepositoryLabel { repository: r.name.clone() };
        repo_snapshots.get_or_create(&l).set(r.snapshots as f64);
        repo_size.get_or_create(&l).set(r.size_bytes as f64);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// Writes `text` to `path` through a temporary file beside it and a
/// rename, so that a reader sees the old file or the new one, whole.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".cairn-metrics-").tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // Readable by the collector (node_exporter runs as its own user).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Serves `render()` at `GET /metrics` on `addr` from a thread of its
/// own, for as long as the process lives. Binding is checked here, so a
/// taken port is an error at start, not a silent absence.
pub fn serve(
    addr: std::net::SocketAddr,
    render: impl Fn() -> String + Send + Sync + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let render = std::sync::Arc::new(render);
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let render = render.clone();
                    async move {
                        // The history is SQLite on disk: read off the async thread.
                        let text = tokio::task::spawn_blocking(move || render()).await.unwrap_or_default();
                        ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], text)
                    }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    })?;
    Ok(bound)
}
