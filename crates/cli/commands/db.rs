//! `cairn db list|restore`: the databases in jobs' snapshots (crates/jobs
//! does the work; this prints and sets the exit code).

use anyhow::{Context, Result};
use cairn_jobs::config::{default_path, default_state_dir};
use cairn_jobs::db::{RestoreRequest, list, restore};
use cairn_jobs::{Config, RunOptions};

use crate::cli::{DbAction, DbArgs, Global};
use crate::output::bytes;

pub fn run(g: &Global, a: &DbArgs) -> Result<i32> {
    let root = nix::unistd::geteuid().is_root();
    let path = default_path(g.config.as_deref(), root).context("no config file: give --config FILE")?;
    let config = Config::load(&path)?;
    let opts = RunOptions {
        hostname: super::backup::hostname(),
        state_dir: default_state_dir(root).unwrap_or_default(),
        cache_dir: if g.no_cache { None } else { super::cache_root(g) },
    };
    match &a.action {
        DbAction::List { job, snapshot } => {
            let jobs: Vec<&String> = match job {
                Some(j) => vec![j],
                None => config.job.iter().filter(|(_, j)| !j.get_ref().database.is_empty()).map(|(n, _)| n).collect(),
            };
            for j in jobs {
                let (id, dbs) = list(&config, j, snapshot, &opts)?;
                for (name, size) in dbs {
                    println!("{name}\tjob {j}\tsnapshot {}\t{}", id.short(), bytes(size));
                }
            }
            Ok(0)
        }
        DbAction::Restore { name, snapshot, at, into, create, replace, dry_run } => {
            let req = RestoreRequest {
                name: name.clone(),
                snapshot: snapshot.clone(),
                at: at.as_deref().map(|t| super::parse_time(t, true)).transpose()?,
                into: into.clone(),
                create: *create,
                replace: *replace,
                dry_run: *dry_run,
            };
            let r = restore(&config, &req, &opts)?;
            if *dry_run {
                for c in &r.commands {
                    println!("{c}");
                }
                return Ok(0);
            }
            if !g.quiet {
                let from = r.from.map(|s| s.short()).unwrap_or_default();
                match r.saved {
                    Some(s) => println!(
                        "{name}: restored from snapshot {from} ({}); what it held is in snapshot {} (tag pre-restore)",
                        bytes(r.bytes),
                        s.short()
                    ),
                    None => println!("{name}: restored from snapshot {from} ({})", bytes(r.bytes)),
                }
            }
            Ok(0)
        }
    }
}
