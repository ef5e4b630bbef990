//! Running a job: its before-hooks; one backup of all its sources (folders,
//! database dumps and commands, streamed) into its first repository, or no
//! snapshot at all if any source fails; that repository's retention; a
//! copy into each other repository and its retention; then the after- or
//! on-failure hooks and the finally-hooks. Two runs of one job never
//! overlap: each holds a lock on a file of the job's own, which the kernel
//! releases when the process dies.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_backup::children::Grouping;
use cairn_backup::{BackupOptions, Excludes, ParentChoice, Sources, Stream, StreamFrom, Writes};
use cairn_check::ReadData;
use cairn_forget::GroupBy;
use cairn_format::SnapshotId;
use cairn_repo::Repository;

use crate::JobError;
use cairn_monitor::notify::Event;
use cairn_monitor::{Outcome, RunKind};

use crate::config::{Config, DatabaseKind, DatabaseSource, JobConfig, RepositoryConfig};
use crate::watch::{self, Watch};

/// How jobs run on this machine.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Host name recorded in snapshots (and for parents and retention).
    pub hostname: String,
    /// Where the jobs' lock files live.
    pub state_dir: PathBuf,
    /// Where remote repositories keep their metadata caches.
    pub cache_dir: Option<PathBuf>,
}

/// What a job run did.
#[derive(Debug, Default)]
pub struct RunReport {
    /// The snapshot written into the first repository.
    pub snapshot: Option<SnapshotId>,
    /// Files that could not be read (the snapshot holds the rest).
    pub warnings: u64,
    /// Snapshots removed by retention, per repository.
    pub forgotten: Vec<(String, usize)>,
    /// Repositories the snapshot was copied into.
    pub copied: Vec<String>,
    /// The check after the job: which data it read, and packs read.
    pub checked: Option<(String, u64)>,
    /// Repositories pruned (their prune schedule was due): packs marked
    /// unused and bytes deleted.
    pub pruned: Vec<(String, usize, u64)>,
}

/// The snapshot file where a database's dump goes.
pub fn database_path(name: &str) -> PathBuf {
    PathBuf::from("/databases").join(format!("{name}.sql"))
}

/// The snapshot file where the globals (roles, tablespaces) of a
/// PostgreSQL database's cluster go, beside its dump.
pub fn globals_path(name: &str) -> PathBuf {
    PathBuf::from("/databases").join(format!("{name}{GLOBALS_SUFFIX}.sql"))
}

/// What `db list` and `db restore` add to a source's name for its globals.
pub const GLOBALS_SUFFIX: &str = ".globals";

/// How a `pg_dumpall` dump (whole cluster or globals only) ends.
const PG_CLUSTER_TRAILER: &[u8] = b"-- PostgreSQL database cluster dump complete";

/// The command dumping the roles and tablespaces of `db`'s cluster.
pub fn globals_command(db: &DatabaseSource) -> Dump {
    let mut argv = vec![OsString::from("pg_dumpall"), "--globals-only".into()];
    argv.extend(pg_connection(db).into_iter().map(OsString::from));
    Dump { argv, trailer: PG_CLUSTER_TRAILER }
}

/// The snapshot file where a command's output goes.
pub fn command_path(name: &str) -> PathBuf {
    PathBuf::from("/commands").join(name)
}

/// How a database source is dumped.
#[derive(Debug, Clone)]
pub struct Dump {
    /// The command writing SQL text to stdout.
    pub argv: Vec<OsString>,
    /// What a complete dump's end holds.
    pub trailer: &'static [u8],
}

/// The dump command of a database source, writing SQL text to stdout:
/// plain text, not a compressed archive format (`pg_dump -Fc` compresses
/// with zlib, which defeats deduplication between days).
pub fn dump_command(db: &DatabaseSource) -> Result<Dump, String> {
    let need = |v: &Option<String>, what: &str| {
        v.clone().ok_or_else(|| format!("database {}: give `{what}` for a {:?} source", db.name, db.kind))
    };
    let (mut argv, trailer): (Vec<String>, &'static [u8]) = match db.kind {
        DatabaseKind::Postgresql if db.is_cluster() => {
            // Every database, with the roles and tablespaces.
            let mut a = vec!["pg_dumpall".into()];
            a.extend(pg_connection(db));
            (a, PG_CLUSTER_TRAILER)
        }
        DatabaseKind::Postgresql => {
            let mut a = vec!["pg_dump".into(), "--format=plain".into()];
            a.extend(pg_connection(db));
            a.push(format!("--dbname={}", need(&db.database, "database")?));
            (a, b"-- PostgreSQL database dump complete")
        }
        DatabaseKind::Mysql | DatabaseKind::Mariadb => {
            let prog =
                if db.kind == DatabaseKind::Mariadb && on_path("mariadb-dump") { "mariadb-dump" } else { "mysqldump" };
            let mut a = vec![prog.into(), "--single-transaction".into(), "--routines".into(), "--events".into()];
            a.extend(my_connection(db));
            // One database without CREATE DATABASE and USE, so that it
            // loads into any database (`db restore --into`).
            a.push(need(&db.database, "database")?);
            (a, b"-- Dump completed")
        }
        DatabaseKind::Sqlite => {
            let path =
                db.path.as_ref().ok_or_else(|| format!("database {}: give `path` for a sqlite source", db.name))?;
            // sqlite3 would create a missing file; a missing database is an error.
            if !path.is_file() {
                return Err(format!("database {}: {} is not a file", db.name, path.display()));
            }
            // `.dump` reads in one transaction: a consistent copy while
            // writers go on, never the file copied under them. It waits up
            // to a minute for a writer's lock; past that it writes an error
            // into its output and exits 0, which the trailer catches.
            let argv = vec![
                "sqlite3".into(),
                "-readonly".into(),
                "-bail".into(),
                "-cmd".into(),
                ".timeout 60000".into(),
                path.to_string_lossy().into_owned(),
                ".dump".into(),
            ];
            (argv, b"\nCOMMIT;\n")
        }
    };
    Ok(Dump { argv: argv.drain(..).map(OsString::from).collect(), trailer })
}

/// The PostgreSQL client options reaching `db`'s server (never a password
/// prompt: authentication through ~/.pgpass or the socket's peer).
pub fn pg_connection(db: &DatabaseSource) -> Vec<String> {
    let mut a = vec!["--no-password".to_string()];
    if let Some(h) = &db.host {
        a.push(format!("--host={h}"));
    }
    if let Some(p) = db.port {
        a.push(format!("--port={p}"));
    }
    if let Some(u) = &db.user {
        a.push(format!("--username={u}"));
    }
    a
}

/// The MySQL/MariaDB client options reaching `db`'s server: a host that is
/// a path is its socket.
pub fn my_connection(db: &DatabaseSource) -> Vec<String> {
    let mut a = Vec::new();
    match &db.host {
        Some(h) if h.starts_with('/') => a.push(format!("--socket={h}")),
        Some(h) => a.push(format!("--host={h}")),
        None => {}
    }
    if let Some(p) = db.port {
        a.push(format!("--port={p}"));
    }
    if let Some(u) = &db.user {
        a.push(format!("--user={u}"));
    }
    a
}

/// Whether `prog` is a program on the PATH.
pub fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// The sources of `job`: its folders, and a stream per database and command.
pub fn sources(job: &JobConfig) -> Result<Sources, String> {
    let mut streams = Vec::new();
    for db in &job.database {
        let dump = dump_command(db)?;
        streams.push(Stream {
            path: database_path(&db.name),
            from: StreamFrom::Command(dump.argv),
            trailer: Some(dump.trailer.to_vec()),
        });
        if db.dumps_globals() {
            let globals = globals_command(db);
            streams.push(Stream {
                path: globals_path(&db.name),
                from: StreamFrom::Command(globals.argv),
                trailer: Some(globals.trailer.to_vec()),
            });
        }
    }
    for c in &job.command {
        if c.run.is_empty() {
            return Err(format!("command {}: `run` is empty", c.name));
        }
        streams.push(Stream {
            path: command_path(&c.name),
            from: StreamFrom::Command(c.run.iter().map(OsString::from).collect()),
            trailer: None,
        });
    }
    let paths = cairn_backup::absolute_sources(&job.paths).map_err(|e| format!("finding the current folder: {e}"))?;
    Ok(Sources { paths, streams })
}

/// The tag every snapshot of job `name` carries, so retention and parents
/// look at the job's own snapshots.
pub fn job_tag(name: &str) -> String {
    format!("job:{name}")
}

/// A job's backup progress: only its warnings (sources that could not be
/// read), each one line on stderr as `cairn backup` writes them, the first
/// few kept for the notification.
#[derive(Default)]
struct Warnings {
    kept: std::sync::Mutex<Vec<String>>,
}

/// Warnings a notification quotes; the rest are counted.
const WARNINGS_QUOTED: usize = 10;

impl cairn_backup::Progress for Warnings {
    fn warning(&self, msg: &str) {
        eprintln!("cairn: warning: {msg}");
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < WARNINGS_QUOTED {
            kept.push(msg.to_string());
        }
    }
}

/// What a run did besides its result, for the history and notifications.
#[derive(Default)]
struct Trail {
    /// Its steps (check, prune, copy), timed.
    steps: Vec<cairn_monitor::Run>,
    /// Events raised on the way (damage, low space).
    raised: Vec<(Event, String)>,
    /// The backup's figures.
    summary: Option<cairn_format::snapshot::Summary>,
    /// The figures of the repositories it used.
    repositories: Vec<cairn_monitor::metrics::RepositoryState>,
    /// The first sources that could not be read.
    warnings: Vec<String>,
}

/// Runs job `name` of `config`, recording it in the run history and
/// telling its notification channels (see [`crate::watch`]).
pub fn run_job(config: &Config, name: &str, opts: &RunOptions) -> Result<RunReport, JobError> {
    let job = config.job.get(name).ok_or_else(|| JobError::NoSuchJob(name.to_string()))?.get_ref();
    let _lock = lock(&opts.state_dir, name)?;
    let started = jiff::Timestamp::now();
    record_start(&opts.state_dir, name, started)?;
    let watch = Watch::open(config, name, opts);
    watch.tell(Event::Start, format!("job {name} started"), String::new());
    let failed = |message: String| JobError::Failed { job: name.to_string(), message };
    let limit = job.hooks.timeout.unwrap_or(HOOK_TIMEOUT);
    let mut trail = Trail::default();
    let result =
        hooks(name, "before", &job.hooks.before, limit).and_then(|()| back_up(config, name, job, opts, &mut trail));
    let after = match &result {
        Ok(_) => hooks(name, "after", &job.hooks.after, limit),
        Err(_) => hooks(name, "on-failure", &job.hooks.on_failure, limit),
    };
    let finally = hooks(name, "finally", &job.hooks.finally, limit);
    let result = result.and_then(|report| after.and(finally).map(|()| report).map_err(|e| failed(e.to_string())));

    let outcome = match &result {
        Ok(r) if r.warnings > 0 => Outcome::Warning,
        Ok(_) => Outcome::Success,
        Err(_) if cairn_backend::interrupt::interrupted() => Outcome::Interrupted,
        Err(_) => Outcome::Failure,
    };
    let mut run = cairn_monitor::Run::new(name, RunKind::Backup, started, outcome);
    run.repository = Some(job.repositories.get_ref()[0].clone());
    if let Some(s) = &trail.summary {
        run.files = s.files_new + s.files_changed + s.files_unchanged;
        (run.bytes_read, run.bytes_added, run.warnings) = (s.bytes_read, s.bytes_added, s.errors);
    }
    match &result {
        Ok(r) => run.snapshot = r.snapshot.map(|s| s.to_hex()),
        Err(e) => run.error = Some(e.to_string()),
    }
    if let Some(h) = watch.history() {
        for r in &trail.repositories {
            if let Err(e) = h.record_repository(r) {
                eprintln!("cairn: warning: {e}");
            }
        }
    }
    watch.finish(&run, &trail.steps, &trail.raised, &trail.warnings);
    result
}

fn back_up(
    config: &Config,
    name: &str,
    job: &JobConfig,
    opts: &RunOptions,
    trail: &mut Trail,
) -> Result<RunReport, JobError> {
    let failed = |message: String| JobError::Failed { job: name.to_string(), message };
    let repos = job.repositories.get_ref();
    let first_name = &repos[0];
    let first_cfg = config.repository[first_name].get_ref();
    // Unlocked once; each step below takes its own handle.
    let repo = crate::repository::open(first_name, first_cfg, opts.cache_dir.clone())?;
    let mut excludes = Excludes::new(&job.exclude).map_err(|e| failed(e.to_string()))?;
    if let Ok(cairn_backend::Location::Local(p)) = cairn_backend::Location::parse(&first_cfg.location) {
        // The repository is never its own backup's source.
        excludes.skip.extend(std::fs::canonicalize(&p).ok());
        excludes.skip.extend(cairn_backup::absolute_sources(&[PathBuf::from(p)]).unwrap_or_default());
    }
    let mut tags = job.tags.clone();
    tags.push(job_tag(name));
    let backup = BackupOptions {
        sources: sources(job).map_err(failed)?,
        excludes,
        tags,
        hostname: opts.hostname.clone(),
        parent: ParentChoice::Auto,
        force: false,
        time: None,
        workers: None,
        writes: Writes::Store,
        deltas: Default::default(),
    };
    let indexed = repo.clone().load_index_for_backup(&opts.hostname).map_err(|e| failed(e.to_string()))?;
    let progress = Arc::new(Warnings::default());
    let out = cairn_backup::backup(indexed, &backup, progress.clone()).map_err(|e| failed(e.to_string()))?;
    trail.summary = out.snapshot.summary.clone();
    trail.warnings = std::mem::take(&mut *progress.kept.lock().unwrap_or_else(|p| p.into_inner()));
    let mut report = RunReport {
        snapshot: Some(out.id),
        warnings: out.snapshot.summary.as_ref().map_or(0, |s| s.errors),
        ..Default::default()
    };
    report.forgotten.push((first_name.clone(), retention(&repo, first_cfg, name, opts).map_err(failed)?));
    report.pruned.extend(prune_step(trail, name, &repo, first_name, first_cfg, opts).map_err(failed)?);
    // Before the check: damage found there does not hide a full disk.
    note_repository(trail, first_name, first_cfg, &repo);
    if let Some(read) = job.check.as_ref().and_then(|c| c.read_data_subset) {
        let read = rotate(read, &opts.state_dir, name);
        let mut damage = None;
        let checked = watch::step(&mut trail.steps, name, RunKind::Check, first_name, || {
            let found =
                cairn_check::check(repo.clone(), read, &()).map_err(|e| format!("checking {first_name}: {e}"))?;
            if let Some(p) = found.problems.first() {
                let said = format!(
                    "the check after the backup found {} problem(s) in repository {first_name}, first {}: {}; run `cairn check --read-data` on it",
                    found.problems.len(),
                    p.object,
                    p.message
                );
                damage = Some(said.clone());
                return Err(said);
            }
            Ok(found.packs_read)
        });
        if let Some(said) = damage {
            trail.raised.push((Event::Damage, said));
        }
        report.checked = Some((describe_read(read), checked.map_err(failed)?));
    }
    let src = repo.load_index().map_err(|e| failed(e.to_string()))?;
    for other in &repos[1..] {
        let cfg = config.repository[other].get_ref();
        let dst = crate::repository::open(other, cfg, opts.cache_dir.clone())?;
        watch::step(&mut trail.steps, name, RunKind::Copy, other, || {
            let dst_indexed = dst.clone().load_index_for_backup(&opts.hostname).map_err(|e| e.to_string())?;
            cairn_backup::copy(&src, dst_indexed, &[(out.id, out.snapshot.clone())])
                .map_err(|e| format!("copying into repository {other}: {e}"))?;
            Ok(())
        })
        .map_err(failed)?;
        report.copied.push(other.clone());
        report.forgotten.push((other.clone(), retention(&dst, cfg, name, opts).map_err(failed)?));
        report.pruned.extend(prune_step(trail, name, &dst, other, cfg, opts).map_err(failed)?);
        note_repository(trail, other, cfg, &dst);
    }
    Ok(report)
}

/// The repository's prune, when its schedule says it is due, as a step.
fn prune_step(
    trail: &mut Trail,
    job: &str,
    repo: &Repository,
    name: &str,
    cfg: &RepositoryConfig,
    opts: &RunOptions,
) -> Result<Option<(String, usize, u64)>, String> {
    let pruned = watch::step(&mut trail.steps, job, RunKind::Prune, name, || maybe_prune(repo, name, cfg, opts));
    if let Ok(None) = pruned {
        trail.steps.pop(); // not due: nothing ran
    }
    pruned
}

/// Notes a repository's figures for the metrics, and raises `low-space`
/// when a local one's file system has less free space than its `min-free`.
fn note_repository(trail: &mut Trail, name: &str, cfg: &RepositoryConfig, repo: &Repository) {
    trail.repositories.push(cairn_monitor::metrics::RepositoryState {
        name: name.to_string(),
        snapshots: repo.snapshots().map(|s| s.len() as u64).unwrap_or(0),
        size_bytes: repo.pack_totals().map(|t| t.1).unwrap_or(0),
        at: Some(jiff::Timestamp::now()),
    });
    if let (Some(min), Ok(cairn_backend::Location::Local(p))) =
        (cfg.min_free, cairn_backend::Location::parse(&cfg.location))
        && let Some(free) = watch::free_percent(std::path::Path::new(&p))
        && free < min.0
    {
        trail.raised.push((
            Event::LowSpace,
            format!("repository {name} ({p}) has {free:.1}% free space, under its min-free of {}%", min.0),
        ));
    }
}

/// The group a job's check reads this time: `1/7` reads group 1, then 2,
/// ... 7 on the following runs (the count is kept in the state folder),
/// so every pack is read once a cycle. Other subsets are read as given.
fn rotate(read: ReadData, state_dir: &Path, job: &str) -> ReadData {
    let ReadData::Subset(n, m) = read else { return read };
    let file = state_dir.join("jobs").join(format!("{job}.checks"));
    let done: u32 = std::fs::read_to_string(&file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let _ = std::fs::write(&file, format!("{}\n", done.wrapping_add(1)));
    ReadData::Subset((n - 1 + done % m) % m + 1, m)
}

fn describe_read(read: ReadData) -> String {
    match read {
        ReadData::None => "structure".into(),
        ReadData::All => "all data".into(),
        ReadData::Subset(n, m) => format!("{n}/{m} of the data"),
        ReadData::Percent(p) => format!("{p}% of the data"),
    }
}

/// Prunes repository `name` when its prune schedule has a time after its
/// last prune from this machine (never pruned: now); returns packs marked
/// unused and bytes deleted. Prune is safe beside running backups
/// (crates/prune), so other jobs need not wait.
fn maybe_prune(
    repo: &Repository,
    name: &str,
    cfg: &RepositoryConfig,
    opts: &RunOptions,
) -> Result<Option<(String, usize, u64)>, String> {
    let Some(schedule) = &cfg.prune else { return Ok(None) };
    let file = opts.state_dir.join("repositories").join(format!("{name}.pruned"));
    let tz = jiff::tz::TimeZone::system();
    let now = jiff::Timestamp::now();
    let last: Option<jiff::Timestamp> = std::fs::read_to_string(&file).ok().and_then(|s| s.trim().parse().ok());
    if let Some(last) = last
        && schedule.next_after(tz.to_datetime(last)).is_none_or(|t| t > tz.to_datetime(now))
    {
        return Ok(None);
    }
    let popts = cairn_prune::PruneOptions { hostname: opts.hostname.clone(), ..Default::default() };
    let r = cairn_prune::prune(repo.clone(), &popts).map_err(|e| format!("pruning {name}: {e}"))?;
    std::fs::create_dir_all(file.parent().unwrap_or(&opts.state_dir)).map_err(|e| e.to_string())?;
    std::fs::write(&file, format!("{now}\n")).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Some((name.to_string(), r.packs_unused, r.bytes_deleted)))
}

/// Applies the repository's retention to this job's snapshots from this
/// host; returns how many were removed. No policy: nothing is removed.
fn retention(repo: &Repository, cfg: &RepositoryConfig, job: &str, opts: &RunOptions) -> Result<usize, String> {
    let policy = cfg.keep.policy();
    if policy.is_empty() {
        return Ok(0);
    }
    let tag = job_tag(job);
    let mine: Vec<_> = repo
        .snapshots()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|(_, s)| s.hostname == opts.hostname && s.tags.contains(&tag))
        .collect();
    let by = GroupBy { host: true, paths: true, tags: false };
    let groups = cairn_forget::plan(&mine, &policy, by, &jiff::tz::TimeZone::system());
    let mut removed = 0;
    for d in groups.iter().flat_map(|g| &g.snapshots).filter(|d| !d.keep()) {
        repo.delete_snapshot(&d.id).map_err(|e| e.to_string())?;
        removed += 1;
    }
    Ok(removed)
}

/// How long a hook may run unless the config says otherwise.
pub const HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs shell commands one after the other; the first that fails (or runs
/// past `limit`: it and what it started are stopped) stops them. Their
/// output goes where cairn's goes.
fn hooks(job: &str, when: &str, commands: &[String], limit: std::time::Duration) -> Result<(), JobError> {
    for cmd in commands {
        let failure = match run_hook(cmd, limit) {
            Ok(()) => continue,
            Err(f) => f,
        };
        return Err(JobError::Hook { job: job.to_string(), when: when.to_string(), command: cmd.clone(), failure });
    }
    Ok(())
}

/// One hook, in a process group of its own so that a time-out stops the
/// commands it started too.
fn run_hook(cmd: &str, limit: std::time::Duration) -> Result<(), String> {
    let mut command = std::process::Command::new("sh");
    command.arg("-c").arg(cmd).stdin(std::process::Stdio::null());
    // Its own group always (the time-out stops the group); an interrupt of
    // cairn stops it too.
    let (mut child, _tracked) =
        cairn_backup::children::spawn(&mut command, Grouping::Own).map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) if s.success() => return Ok(()),
            Some(s) => return Err(s.to_string()),
            None if start.elapsed() >= limit => {
                let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
                std::thread::sleep(std::time::Duration::from_secs(2));
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("stopped after {}s, its time-out", limit.as_secs()));
            }
            None => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// The file holding when job `job` last started (the daemon's catch-up
/// counts from it).
fn last_start_file(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("jobs").join(format!("{job}.last"))
}

fn record_start(state_dir: &Path, job: &str, at: jiff::Timestamp) -> Result<(), JobError> {
    let file = last_start_file(state_dir, job);
    std::fs::write(&file, format!("{at}\n")).map_err(|e| JobError::State(format!("{}: {e}", file.display())))
}

/// When job `job` last started on this machine, if it ever did.
pub fn last_start(state_dir: &Path, job: &str) -> Option<jiff::Timestamp> {
    std::fs::read_to_string(last_start_file(state_dir, job)).ok()?.trim().parse().ok()
}

/// Holds the job's lock until dropped; fails at once if another run holds it.
fn lock(state_dir: &Path, job: &str) -> Result<nix::fcntl::Flock<std::fs::File>, JobError> {
    let dir = state_dir.join("jobs");
    std::fs::create_dir_all(&dir).map_err(|e| JobError::State(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!("{job}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| JobError::State(format!("{}: {e}", path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| JobError::Running(job.to_string()))
}
