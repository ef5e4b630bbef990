//! One module per command; shared helpers for opening the repository and
//! choosing snapshots.

mod backup;
mod cache;
mod cat;
mod check;
mod config;
mod copy;
mod daemon;
mod db;
mod diff;
mod dump;
mod find;
mod forget;
mod generate;
mod init;
mod job;
mod key;
mod ls;
mod monitor;
mod mount;
mod prune;
mod repair;
mod restore;
mod schedule;
mod serve;
mod snapshots;
mod stats;
mod tag;

use anyhow::{Context, Result, bail};
use cairn_backend::Backend;
use cairn_format::SnapshotId;
use cairn_format::snapshot::Snapshot;
use cairn_repo::{Repository, select};

use crate::cli::{Cli, Command, FilterArgs, Global};

/// Runs the command; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(g, &a),
        Command::Backup(a) => backup::run(g, &a),
        Command::Snapshots(a) => snapshots::run(g, &a),
        Command::Ls(a) => ls::run(g, &a),
        Command::Dump(a) => dump::run(g, &a),
        Command::Mount(a) => mount::run(g, &a),
        Command::Serve(a) => serve::run(g, &a),
        Command::Restore(a) => restore::run(g, &a),
        Command::Check(a) => check::run(g, &a),
        Command::Forget(a) => forget::run(g, &a),
        Command::Tag(a) => tag::run(g, &a),
        Command::Prune(a) => prune::run(g, &a.opts, a.dry_run),
        Command::Key(a) => key::run(g, &a.action),
        Command::Copy(a) => copy::run(g, &a),
        Command::Repair(a) => repair::run(g, &a.action),
        Command::Diff(a) => diff::run(g, &a),
        Command::Find(a) => find::run(g, &a),
        Command::Stats(a) => stats::run(g, &a),
        Command::Cat(a) => cat::run(g, &a),
        Command::Cache(a) => cache::run(g, &a),
        Command::Generate(a) => generate::run(&a),
        Command::Config(a) => config::run(g, &a),
        Command::Job(a) => job::run(g, &a),
        Command::Schedule(a) => schedule::run(g, &a),
        Command::Daemon(a) => daemon::run(g, &a),
        Command::Db(a) => db::run(g, &a),
        Command::History(a) => monitor::history(g, &a),
        Command::Status(a) => monitor::status(g, &a),
        Command::Notify(a) => monitor::notify(g, &a),
        Command::Drill(a) => monitor::drill(g, &a),
    }
}

/// Whether a command may create the repository's folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// `init`: the folder is made if missing.
    Allowed,
    /// Every other command: a folder without a repository is an error, and
    /// nothing is created there.
    Never,
}

/// The backend at -r / CAIRN_REPOSITORY, which must hold a repository.
pub fn backend(g: &Global) -> Result<Backend> {
    backend_for(g, Create::Never)
}

/// The backend at -r / CAIRN_REPOSITORY.
pub fn backend_for(g: &Global, create: Create) -> Result<Backend> {
    let Some(loc) = g.repo.as_deref().filter(|s| !s.is_empty()) else {
        bail!("no repository given: use -r/--repo or set CAIRN_REPOSITORY");
    };
    let hot = open_backend(g, loc, &g.options, create)?;
    Ok(match g.cold_repo.as_deref().filter(|s| !s.is_empty()) {
        // The cold location holds data packs only: nothing there says "repository".
        Some(cold) => hot.with_cold(open_backend(g, cold, &g.cold_options, Create::Allowed)?),
        None => hot,
    })
}

/// The backend at `loc` with the global limits and the given `-o` options.
pub fn open_backend(g: &Global, loc: &str, service: &[(String, String)], create: Create) -> Result<Backend> {
    let options = cairn_backend::Options {
        service: service.to_vec(),
        limit_upload: g.limit_upload.map(|k| k * 1024),
        limit_download: g.limit_download.map(|k| k * 1024),
        log_requests: g.verbose >= 2,
        cache_dir: if g.no_cache { None } else { cache_root(g) },
        cache_max_bytes: 0,
        must_exist: create == Create::Never,
    };
    Backend::open_with(loc, &options).with_context(|| format!("opening repository {loc}"))
}

/// The folder holding the caches: --cache-dir, CAIRN_CACHE_DIR,
/// $XDG_CACHE_HOME/cairn or ~/.cache/cairn; None if there is no home.
pub fn cache_root(g: &Global) -> Option<std::path::PathBuf> {
    if let Some(d) = &g.cache_dir {
        return Some(d.clone());
    }
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))).map(|d| d.join("cairn"))
}

/// Opens and unlocks the repository (asks for the password only if one exists there).
pub fn open(g: &Global) -> Result<Repository> {
    let backend = backend(g)?;
    Repository::ensure_exists(&backend)?;
    let pw = crate::password::password(g, false)?;
    Ok(Repository::open(backend, &pw)?)
}

/// Parses a user-given time: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or
/// `YYYY-MM-DD` (the end of that day), in the local zone unless given.
pub fn parse_time(s: &str, end_of_day: bool) -> Result<jiff::Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let tz = jiff::tz::TimeZone::system();
    // A bare date first: jiff also reads `2026-11-17` as a DateTime (its
    // midnight), which made `--at 2026-11-17` the start of that day.
    let date = s.parse::<jiff::civil::Date>().ok().filter(|d| d.to_string() == s);
    if date.is_none()
        && let Ok(dt) = s.parse::<jiff::civil::DateTime>()
    {
        return Ok(dt.to_zoned_datetime(tz)?.timestamp());
    }
    if let Some(d) = date {
        let start = d.to_zoned_datetime(tz.clone())?;
        return Ok(if end_of_day {
            start.tomorrow()?.timestamp() - jiff::SignedDuration::from_nanos(1)
        } else {
            start.timestamp()
        });
    }
    bail!("cannot read time {s:?}: use 2026-11-17, '2026-11-17 02:00' or RFC 3339 (2026-11-17T02:00:00Z)")
}

/// The filter from command-line options.
pub fn filter(f: &FilterArgs) -> Result<select::Filter> {
    Ok(select::Filter {
        hosts: f.hosts.clone(),
        tags: f.tags.clone(),
        paths: f.paths.clone(),
        at: f.at.as_deref().map(|s| parse_time(s, true)).transpose()?,
    })
}

/// Splits `SNAPSHOT:PATH`.
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((s, p)) => (s, Some(p)),
        None => (spec, None),
    }
}

/// Resolves a snapshot selector under filters.
pub fn find_snapshot(repo: &Repository, spec: &str, f: &FilterArgs) -> Result<(SnapshotId, Snapshot)> {
    let all = repo.snapshots()?;
    Ok(select::select(&all, spec, &filter(f)?)?)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn a_bare_date_is_the_end_of_that_day_where_asked() {
        let t = |s: &str, end: bool| parse_time(s, end).map(|t| jiff::tz::TimeZone::system().to_datetime(t));
        let day_end = t("2026-11-21", true).map(|d| (d.date().to_string(), d.hour(), d.minute(), d.second()));
        assert_eq!(day_end.ok(), Some(("2026-11-21".to_string(), 23, 59, 59)));
        let start = t("2026-11-21", false).map(|d| (d.hour(), d.minute()));
        assert_eq!(start.ok(), Some((0, 0)));
        let given = t("2026-11-21 02:00", true).map(|d| (d.hour(), d.minute()));
        assert_eq!(given.ok(), Some((2, 0)));
    }
}
