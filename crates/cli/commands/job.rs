//! `cairn job run`: runs jobs of the config file now (crates/jobs runs
//! them; this prints one line per job and sets the exit code).

use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result};
use cairn_jobs::config::{default_path, default_state_dir};
use cairn_jobs::run::{command_path, database_path, dump_command, globals_command, globals_path};
use cairn_jobs::{Config, RunOptions, run_job};

use crate::cli::{Global, JobAction, JobArgs};
use crate::errors::{EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK};
use crate::output::bytes;

/// The signal that interrupted the run (0: none).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

pub fn run(g: &Global, a: &JobArgs) -> Result<i32> {
    // The first signal stops the backup (or copy, or check) under way, as
    // an interrupt of `cairn backup` does; the job then fails, and its
    // on-failure and finally hooks still run (`systemctl start app-worker`
    // after a `before` that stopped it). The second ends cairn at once.
    crate::signals::watch("job run", |s| {
        INTERRUPTED.store(s as i32, Ordering::SeqCst);
        let removed = crate::signals::stop_work();
        eprintln!(
            "cairn: job run interrupted by {s}: stopping ({removed} unfinished file(s) removed; the repository is intact); its on-failure and finally hooks still run, a second {s} ends cairn at once"
        );
    })?;
    let JobAction::Run { jobs, dry_run, state_dir } = &a.action;
    let root = nix::unistd::geteuid().is_root();
    let path = default_path(g.config.as_deref(), root).context("no config file: give --config FILE")?;
    let config = Config::load(&path)?;
    let names: Vec<String> = if jobs.is_empty() { config.job.keys().cloned().collect() } else { jobs.clone() };
    for n in &names {
        if !config.job.contains_key(n) {
            anyhow::bail!("no job named {n:?} in {}", path.display());
        }
    }
    if *dry_run {
        let mut problems = 0;
        for n in &names {
            problems += describe(&config, n)?;
        }
        return Ok(if problems == 0 { EXIT_OK } else { EXIT_ERROR });
    }
    let opts = RunOptions {
        hostname: super::backup::hostname(),
        state_dir: state_dir
            .clone()
            .or_else(|| default_state_dir(root))
            .context("no state folder: give --state-dir")?,
        cache_dir: if g.no_cache { None } else { super::cache_root(g) },
    };
    let mut code = EXIT_OK;
    for n in &names {
        if INTERRUPTED.load(Ordering::SeqCst) != 0 {
            break;
        }
        match run_job(&config, n, &opts) {
            Ok(r) => {
                let id = r.snapshot.map(|s| s.short()).unwrap_or_default();
                let forgotten: Vec<String> = r.forgotten.iter().map(|(repo, k)| format!("{repo} -{k}")).collect();
                let pruned: String = r
                    .pruned
                    .iter()
                    .map(|(repo, unused, deleted)| {
                        format!("; pruned {repo} ({unused} packs unused, {} deleted)", bytes(*deleted))
                    })
                    .collect();
                if !g.quiet {
                    println!(
                        "job {n}: snapshot {id}{}{}; retention: {}{}",
                        if r.copied.is_empty() {
                            String::new()
                        } else {
                            format!(", copied to {}", r.copied.join(", "))
                        },
                        if r.warnings > 0 { format!(", {} file(s) unreadable", r.warnings) } else { String::new() },
                        forgotten.join(", "),
                        r.checked
                            .map(|(what, packs)| format!("; checked {what} ({packs} packs read)"))
                            .unwrap_or_default()
                            + &pruned
                    );
                }
                if r.warnings > 0 && code == EXIT_OK {
                    code = EXIT_INCOMPLETE;
                }
            }
            Err(e) if INTERRUPTED.load(Ordering::SeqCst) != 0 => {
                eprintln!("cairn: error: job {n} interrupted; what it was doing failed with: {e}");
            }
            Err(e) => {
                eprintln!("cairn: error: {e}");
                code = EXIT_ERROR;
            }
        }
    }
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => Ok(code),
        s => Ok(128 + s),
    }
}

/// Prints what `job run` would do for job `name`; the number of sources
/// that could not run.
fn describe(config: &Config, name: &str) -> Result<usize> {
    let job = config.job[name].get_ref();
    println!("job {name}: into {}", job.repositories.get_ref().join(", then copied to "));
    for h in &job.hooks.before {
        println!("  before: sh -c {h:?}");
    }
    for p in &job.paths {
        println!("  folder {}", p.display());
    }
    let mut problems = 0;
    for db in &job.database {
        match dump_command(db) {
            Ok(dump) => {
                let shown: Vec<String> = dump.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
                println!("  {} <- {}", database_path(&db.name).display(), shown.join(" "));
                if db.dumps_globals() {
                    let g = globals_command(db);
                    let shown: Vec<String> = g.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
                    println!("  {} <- {}", globals_path(&db.name).display(), shown.join(" "));
                }
            }
            Err(e) => {
                println!("  {} <- cannot run: {e}", database_path(&db.name).display());
                problems += 1;
            }
        }
    }
    for c in &job.command {
        println!("  {} <- {}", command_path(&c.name).display(), c.run.join(" "));
    }
    for (when, hooks) in
        [("after", &job.hooks.after), ("on-failure", &job.hooks.on_failure), ("finally", &job.hooks.finally)]
    {
        for h in hooks {
            println!("  {when}: sh -c {h:?}");
        }
    }
    Ok(problems)
}
