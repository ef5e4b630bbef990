//! `cairn backup`: paths, --stdin or --stdin-from-command into a snapshot.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use cairn_backup::{BackupOptions, Deltas, Excludes, ParentChoice, Sources, Stream, StreamFrom, Writes};

use crate::cli::{BackupArgs, Global};
use crate::errors::{EXIT_INCOMPLETE, EXIT_OK};
use crate::output::bytes;
use crate::progress;

/// How often `--json` prints a status line.
const STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

fn excludes(g: &Global, a: &BackupArgs) -> Result<Excludes> {
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading exclude file {}", f.display()))?;
        patterns.extend(text.lines().map(str::to_string));
    }
    let mut e = Excludes::with_case(&patterns, &a.iexcludes)?;
    e.if_present = a.exclude_if_present.clone();
    e.one_file_system = a.one_file_system;
    e.caches = a.exclude_caches;
    e.larger_than = a.exclude_larger_than;
    // The repository (when local) and the cache are never their own backup's source.
    let local_repo = match g.repo.as_deref().map(cairn_backend::Location::parse) {
        Some(Ok(cairn_backend::Location::Local(p))) => Some(PathBuf::from(p)),
        _ => None,
    };
    for p in local_repo.into_iter().chain(super::cache_root(g)) {
        // Both as named and as resolved: the walk may meet either.
        e.skip.extend(std::fs::canonicalize(&p).ok());
        e.skip.extend(cairn_backup::absolute_sources(&[p]).unwrap_or_default());
    }
    Ok(e)
}

/// The paths listed in a --files-from file: one per line, as written
/// (spaces kept; only the line break is removed), blank lines and `#`
/// comments skipped. Relative paths are relative to the current folder, as
/// on the command line.
fn files_from(file: &std::path::Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let text = std::fs::read(file).with_context(|| format!("reading --files-from {}", file.display()))?;
    Ok(text
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l)))
        .collect())
}

/// Sums the sizes below the sources in the background so the bar has a total.
fn scan_total(paths: Vec<PathBuf>, prog: Arc<progress::BackupProgress>) {
    std::thread::spawn(move || {
        let mut total = 0u64;
        let mut stack = paths;
        while let Some(p) = stack.pop() {
            let Ok(md) = p.symlink_metadata() else {
                continue;
            };
            // As the backup itself, never into /proc and its kind (a 128 TiB /proc/kcore).
            if md.is_dir() && !cairn_backup::is_pseudo_fs(&p) {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if md.is_file() {
                total += md.len();
                prog.total_files.fetch_add(1, Ordering::Relaxed);
                prog.total_bytes.store(total, Ordering::Relaxed);
                if let Some(bar) = &prog.bar {
                    bar.set_length(total);
                }
            }
        }
    });
}

/// Where `--stdin-filename NAME` puts the stream: `/NAME`.
fn stream_path(name: &str) -> Result<PathBuf> {
    if !cairn_format::tree::is_valid_name(name.as_bytes()) {
        bail!("invalid --stdin-filename {name:?}: give a file name without '/'");
    }
    Ok(PathBuf::from("/").join(name))
}

pub fn run(g: &Global, a: &BackupArgs) -> Result<i32> {
    let source = if a.stdin_from_command {
        if a.command.is_empty() || !a.paths.is_empty() {
            bail!(
                "--stdin-from-command takes a command after `--` and no paths, e.g. cairn backup --stdin-from-command -- pg_dump mydb"
            );
        }
        Sources::stream(Stream {
            path: stream_path(&a.stdin_filename)?,
            from: StreamFrom::Command(a.command.clone()),
            trailer: None,
        })
    } else if a.stdin {
        if !a.paths.is_empty() || !a.command.is_empty() {
            bail!("--stdin takes no paths");
        }
        // Typed at a prompt without a pipe, it would wait for keystrokes.
        if std::io::stdin().is_terminal() {
            bail!(
                "--stdin reads a stream, and standard input is a terminal: pipe the data in, e.g. pg_dump app | cairn backup --stdin --stdin-filename app.sql"
            );
        }
        Sources::stream(Stream { path: stream_path(&a.stdin_filename)?, from: StreamFrom::Stdin, trailer: None })
    } else {
        if !a.command.is_empty() {
            bail!("a command after `--` needs --stdin-from-command");
        }
        let mut paths: Vec<PathBuf> = a.paths.iter().map(PathBuf::from).collect();
        for f in &a.files_from {
            paths.extend(files_from(f)?);
        }
        if paths.is_empty() {
            if let Some(f) = a.files_from.first() {
                bail!("{} lists no paths: nothing to back up", f.display());
            }
            bail!("nothing to back up: give one or more paths, --files-from, --stdin or --stdin-from-command");
        }
        // `cairn backup "$DIR"` with DIR unset would back up the current folder.
        if paths.iter().any(|p| p.as_os_str().is_empty()) {
            bail!("an empty path was given as a source (an unset variable?); give the folder to back up");
        }
        Sources::paths(cairn_backup::absolute_sources(&paths).context("finding the current directory")?)
    };
    let repo = super::open(g)?;
    let parent = match &a.parent {
        Some(spec) => ParentChoice::Id(super::find_snapshot(&repo, spec, &Default::default())?.0),
        None => ParentChoice::Auto,
    };
    let opts = BackupOptions {
        sources: source.clone(),
        excludes: excludes(g, a)?,
        tags: a.tags.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(str::to_string).collect(),
        hostname: a.host.clone().unwrap_or_else(hostname),
        parent,
        force: a.force,
        time: a.time.as_deref().map(|t| super::parse_time(t, false)).transpose()?,
        workers: None,
        writes: if a.dry_run { Writes::DryRun } else { Writes::Store },
        deltas: if a.no_deltas { Deltas::Off } else { Deltas::Code },
    };
    // Announces the run to concurrent prunes and leaves out packs they have
    // marked for deletion (docs/FORMAT.md, "Deleting packs"). A dry run
    // writes nothing, its run marker included.
    let repo = if a.dry_run {
        // With the sketches: a dry run codes deltas as the backup would.
        repo.load_index_with(cairn_repo::Sketches::Kept)?
    } else {
        repo.load_index_for_backup(&opts.hostname)?
    };
    let bar = progress::bar(progress::enabled(g.quiet, g.json), "backup");
    let prog = Arc::new(progress::BackupProgress { bar: bar.clone(), ..Default::default() });
    let status = g.json && !g.quiet;
    if (bar.is_some() || status) && !source.paths.is_empty() {
        scan_total(source.paths.clone(), prog.clone());
    }
    // With --json, a status line a second while it runs (as restic).
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let lines = status.then(|| {
        let prog = prog.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(STATUS_EVERY) {
                let line = prog.status_line(start.elapsed());
                // A closed pipe ends the lines; the backup goes on.
                if writeln!(std::io::stdout().lock(), "{line}").is_err() {
                    break;
                }
            }
        })
    });
    let out = cairn_backup::backup(repo, &opts, prog);
    drop(stop);
    if let Some(t) = lines {
        let _ = t.join();
    }
    let out = out?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    let s = out.snapshot.summary.clone().unwrap_or_default();
    let secs = s.end.duration_since(s.start).as_secs_f64();
    if g.json {
        let mut v = serde_json::to_value(&s)?;
        v["message_type"] = serde_json::json!("summary");
        if a.dry_run {
            v["dry_run"] = serde_json::json!(true);
        } else {
            v["snapshot_id"] = serde_json::json!(out.id);
        }
        v["duration_seconds"] = serde_json::json!(secs);
        println!("{v}");
    } else if !g.quiet {
        let (saved, added) = if a.dry_run {
            ("dry run, nothing saved".to_string(), "would be added")
        } else {
            (format!("snapshot {} saved", out.id.short()), "added")
        };
        println!(
            "{saved}: files {} new, {} changed, {} unchanged; {} read, {} {added} ({} stored) in {:.1}s",
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            bytes(s.bytes_read),
            bytes(s.bytes_added_raw),
            bytes(s.bytes_added),
            secs
        );
    }
    if s.errors > 0 {
        eprintln!(
            "warning: {} source(s) could not be read; the snapshot holds everything else (exit code 3)",
            s.errors
        );
        return Ok(EXIT_INCOMPLETE);
    }
    Ok(EXIT_OK)
}
