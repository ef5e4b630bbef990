//! `cairn restore`: a snapshot (or `SNAPSHOT:PATH`) into a target folder.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use cairn_restore::{Action, Found, ItemKind, Matcher, Overwrite, Plan, RestoreOptions, Select};

use crate::cli::{Global, RestoreArgs};
use crate::errors::{EXIT_ERROR, EXIT_OK};
use crate::output::bytes;
use crate::progress;

/// Lists what the restore would do to each path, under the same
/// `--overwrite` rules; writes nothing. A closed pipe (`| head`) ends it
/// quietly through main.
fn found_kind(f: Found) -> &'static str {
    match f {
        Found::Dir => "dir",
        Found::File { .. } => "file",
        Found::Symlink => "symlink",
        Found::Other | Found::Nothing => "other",
    }
}

fn dry_run(g: &Global, plan: &Plan, target: &Path, overwrite: Overwrite) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    let extras = &plan.delete;
    for x in extras {
        let path = target.join(&x.rel);
        if g.json {
            let v = serde_json::json!({ "path": path, "kind": found_kind(x.found), "action": "delete" });
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "would delete {} ({})", path.display(), found_kind(x.found))?;
        }
    }
    let actions = cairn_restore::preview(plan, target, overwrite);
    for (item, action) in plan.items.iter().zip(&actions) {
        let what = match &item.kind {
            ItemKind::Dir => "dir".to_string(),
            ItemKind::File => format!("file {}", item.node.size),
            ItemKind::HardLink(first) => format!("hardlink to {}", plan.items[*first].target.display()),
            ItemKind::Special => format!("{:?}", item.node.kind).to_lowercase(),
        };
        let why = match action {
            Action::Fail(why) => why.as_str(),
            _ => "",
        };
        if g.json {
            let v = serde_json::json!({
                "path": item.target, "snapshot_path": item.snapshot_path, "kind": what,
                "action": action.verb(), "reason": why,
            });
            writeln!(out, "{v}")?;
        } else if why.is_empty() {
            writeln!(out, "would {} {} ({what})", action.verb(), item.target.display())?;
        } else {
            writeln!(out, "would fail {} ({what}): {why}", item.target.display())?;
        }
    }
    if !g.json && !g.quiet {
        let count = |verb: &str| actions.iter().filter(|a| a.verb() == verb).count();
        writeln!(
            out,
            "{} items, {} of file content: {} to create, {} to replace, {} kept, {} would fail{} (dry run: nothing written)",
            plan.items.len(),
            bytes(plan.total_bytes()),
            count("create"),
            count("replace"),
            count("keep"),
            count("fail"),
            if extras.is_empty() { String::new() } else { format!(", {} to delete", extras.len()) },
        )?;
    }
    Ok(EXIT_OK)
}

pub fn run(g: &Global, a: &RestoreArgs) -> Result<i32> {
    let (spec, path) = super::split_spec(&a.snapshot);
    let include = Matcher::from_lists(&a.includes, &a.iincludes)?;
    let exclude = Matcher::from_lists(&a.excludes, &a.iexcludes)?;
    let repo = super::open(g)?;
    let (id, snap) = super::find_snapshot(&repo, spec, &a.filter)?;
    let repo = repo.load_index()?;
    let select = Select { path, include: &include, exclude: &exclude, strip_components: a.strip_components };
    let mut plan = cairn_restore::plan(&repo, &snap.tree, &select, &a.target)?;
    // Planned before anything is written, so the list is of what was there.
    if a.delete {
        plan.delete = cairn_restore::extras(&plan, &a.target, &select)?;
    }
    let opts = RestoreOptions { overwrite: a.overwrite, verify: a.verify };
    if a.dry_run {
        return dry_run(g, &plan, &a.target, opts.overwrite);
    }
    let bar = progress::bar(progress::enabled(g.quiet, g.json), "restore");
    if let Some(pb) = &bar {
        pb.set_length(plan.total_bytes());
    }
    let started = std::time::Instant::now();
    let s = cairn_restore::restore(&repo, &plan, &a.target, &opts, &progress::RestoreProgress { bar: bar.clone() })?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "snapshot_id": id, "files": s.files, "dirs": s.dirs, "others": s.others,
                "bytes": s.bytes, "skipped": s.skipped, "verified": s.verified, "deleted": s.deleted,
                "errors": s.errors,
                "duration_seconds": started.elapsed().as_secs_f64(),
            })
        );
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} dirs, {} other, {} in {:.1}s{}{}{}",
            id.short(),
            a.target.display(),
            s.files,
            s.dirs,
            s.others,
            bytes(s.bytes),
            started.elapsed().as_secs_f64(),
            if s.skipped > 0 {
                format!("; {} existing entries kept (see --overwrite)", s.skipped)
            } else {
                String::new()
            },
            if a.verify { format!("; {} files verified", s.verified) } else { String::new() },
            if a.delete { format!("; {} extra entries deleted", s.deleted) } else { String::new() },
        );
    }
    if s.errors > 0 {
        eprintln!("cairn: error: {} path(s) could not be restored or deleted (see the warnings above)", s.errors);
        return Ok(EXIT_ERROR);
    }
    Ok(EXIT_OK)
}
