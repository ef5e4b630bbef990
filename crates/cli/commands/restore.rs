//! `cairn restore`: a snapshot (or `SNAPSHOT:PATH`) into a target folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cairn_backup::{BackupOptions, Excludes, ParentChoice, Sources, Writes};
use cairn_format::BlobId;
use cairn_format::SnapshotId;
use cairn_jobs::db::PRE_RESTORE_TAG;
use cairn_repo::IndexedRepository;
use cairn_repo::Repository;
use cairn_restore::{
    Action, Extra, Found, Item, ItemKind, Matcher, Overwrite, Planned, Preview, RestoreOptions, Select,
};

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

/// What is restored: the snapshot's tree and the part of it.
struct Source<'a> {
    repo: &'a IndexedRepository,
    tree: BlobId,
    select: Select<'a>,
}

impl Source<'_> {
    /// Hands each planned item to `each`, as the plan goes.
    fn each_item(&self, each: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let mut failed = None;
        let planned = cairn_restore::plan(self.repo, &self.tree, &self.select, &mut |p| {
            if let Planned::Item(item) = p
                && let Err(e) = each(item)
            {
                failed = Some(e);
                return Err(cairn_restore::RestoreError::Stopped);
            }
            Ok(())
        });
        match failed {
            Some(e) => Err(e),
            None => planned.map(drop).map_err(Into::into),
        }
    }
}

fn dry_run(g: &Global, source: &Source, extras: &[Extra], target: &Path, overwrite: Overwrite) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    for x in extras {
        let path = target.join(&x.rel);
        if g.json {
            let v = serde_json::json!({ "path": path, "kind": found_kind(x.found), "action": "delete" });
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "would delete {} ({})", path.display(), found_kind(x.found))?;
        }
    }
    let preview = Preview::new(target, overwrite);
    let (mut items, mut content) = (0u64, 0u64);
    let mut counts: std::collections::HashMap<&'static str, u64> = Default::default();
    source.each_item(&mut |item| {
        let action = preview.action(&item);
        items += 1;
        *counts.entry(action.verb()).or_default() += 1;
        let what = match &item.kind {
            ItemKind::Dir => "dir".to_string(),
            ItemKind::File => {
                content += item.node.size;
                format!("file {}", item.node.size)
            }
            ItemKind::HardLink(first) => format!("hardlink to {}", target.join(first).display()),
            ItemKind::Special => format!("{:?}", item.node.kind).to_lowercase(),
        };
        let why = match &action {
            Action::Fail(why) => why.as_str(),
            _ => "",
        };
        let path = target.join(&item.rel);
        if g.json {
            let v = serde_json::json!({
                "path": path, "snapshot_path": item.snapshot_path, "kind": what,
                "action": action.verb(), "reason": why,
            });
            writeln!(out, "{v}")?;
        } else if why.is_empty() {
            writeln!(out, "would {} {} ({what})", action.verb(), path.display())?;
        } else {
            writeln!(out, "would fail {} ({what}): {why}", path.display())?;
        }
        Ok(())
    })?;
    if !g.json && !g.quiet {
        let count = |verb: &str| counts.get(verb).copied().unwrap_or(0);
        writeln!(
            out,
            "{items} items, {} of file content: {} to create, {} to replace, {} kept, {} would fail{} (dry run: nothing written)",
            bytes(content),
            count("create"),
            count("replace"),
            count("keep"),
            count("fail"),
            if extras.is_empty() { String::new() } else { format!(", {} to delete", extras.len()) },
        )?;
    }
    Ok(EXIT_OK)
}

/// Refuses a `--delete` that would delete the (local) repository being
/// read, or a folder holding it: restoring a snapshot taken before the
/// repository existed into a folder above it would otherwise do exactly
/// that, and take every snapshot with it.
fn spare_the_repository(extras: &[Extra], target: &Path, repo: &Repository) -> Result<()> {
    if repo.is_remote() {
        return Ok(());
    }
    let Ok(repo_dir) = std::fs::canonicalize(repo.location()) else { return Ok(()) };
    for x in extras {
        let path = target.join(&x.rel);
        // The folder above resolved, the name itself not: deleting a
        // symlink removes the link, never what it points to.
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else { continue };
        let Ok(parent) = std::fs::canonicalize(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })
        else {
            continue;
        };
        let resolved = parent.join(name);
        if repo_dir.starts_with(&resolved) {
            bail!(
                "--delete would delete {}, which holds the repository being restored from ({}); restore into another folder, or leave out --delete",
                path.display(),
                repo_dir.display()
            );
        }
    }
    Ok(())
}

/// What the restore would replace or delete in `target`, as absolute
/// paths, none below another; an error if nothing can be replaced.
fn replaced_paths(
    source: &Source,
    extras: &[Extra],
    target: &Path,
    overwrite: Overwrite,
    delete: bool,
) -> Result<Vec<PathBuf>> {
    if overwrite == Overwrite::Never && !delete {
        bail!("--save-replaced saves what --overwrite or --delete would replace; give one of them");
    }
    let preview = Preview::new(target, overwrite);
    let mut replaced = Vec::new();
    source.each_item(&mut |item| {
        if preview.action(&item) == Action::Replace {
            replaced.push(target.join(&item.rel));
        }
        Ok(())
    })?;
    replaced.extend(extras.iter().map(|x| target.join(&x.rel)));
    let mut paths = cairn_backup::absolute_sources(&replaced).context("finding the current folder")?;
    paths.sort();
    // Sorted, a path below another comes right after it (or after others below it).
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !kept.last().is_some_and(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    Ok(kept)
}

/// Backs up `paths` as they are now into a snapshot tagged `pre-restore`.
/// Any of them that could not be read fails it: a partial copy would look
/// like a safety net that is not there.
fn save_replaced(repo: &Repository, paths: Vec<PathBuf>) -> Result<SnapshotId> {
    let hostname = super::backup::hostname();
    let opts = BackupOptions {
        sources: Sources { paths, streams: vec![] },
        excludes: Excludes::default(),
        tags: vec![PRE_RESTORE_TAG.to_string()],
        hostname: hostname.clone(),
        parent: ParentChoice::Auto,
        force: false,
        time: None,
        workers: None,
        writes: Writes::Store,
        deltas: Default::default(),
    };
    let indexed = repo.clone().load_index_for_backup(&hostname)?;
    let out = cairn_backup::backup(indexed, &opts, Arc::new(progress::BackupProgress::default()))
        .context("saving what the restore would replace (--save-replaced); nothing was restored")?;
    let unread = out.snapshot.summary.as_ref().map_or(0, |s| s.errors);
    if unread > 0 {
        bail!(
            "saving what the restore would replace: {unread} path(s) could not be read (see the warnings above), so snapshot {} is incomplete; nothing was restored",
            out.id.short()
        );
    }
    Ok(out.id)
}

pub fn run(g: &Global, a: &RestoreArgs) -> Result<i32> {
    let (spec, path) = super::split_spec(&a.snapshot);
    let include = Matcher::from_lists(&a.includes, &a.iincludes)?;
    let exclude = Matcher::from_lists(&a.excludes, &a.iexcludes)?;
    let repo = super::open(g)?;
    let (id, snap) = super::find_snapshot(&repo, spec, &a.filter)?;
    // Kept for --save-replaced's backup, which loads the index its own way.
    let unindexed = repo.clone();
    let repo = repo.load_index()?;
    let select = Select { path, include: &include, exclude: &exclude, strip_components: a.strip_components };
    let source = Source { repo: &repo, tree: snap.tree, select };
    // Found before anything is written, so the list is of what was there.
    let mut extras = Vec::new();
    if a.delete {
        extras = cairn_restore::extras(&repo, &snap.tree, &select, &a.target, &snap.paths)?;
        spare_the_repository(&extras, &a.target, &unindexed)?;
    }
    let replaced =
        if a.save_replaced { replaced_paths(&source, &extras, &a.target, a.overwrite, a.delete)? } else { vec![] };
    if a.dry_run {
        if !replaced.is_empty() && !g.json {
            println!(
                "would first save {} replaced or deleted path(s) in a snapshot tagged {PRE_RESTORE_TAG}",
                replaced.len()
            );
        }
        return dry_run(g, &source, &extras, &a.target, a.overwrite);
    }
    if !replaced.is_empty() {
        let saved = save_replaced(&unindexed, replaced)?;
        if !g.quiet && !g.json {
            println!("saved what the restore replaces in snapshot {} (tag {PRE_RESTORE_TAG})", saved.short());
        }
    }
    let bar = progress::bar(progress::enabled(g.quiet, g.json), "restore");
    if let Some(pb) = &bar {
        // One walk of the trees ahead, only for the bar: the restore
        // itself plans as it writes.
        pb.set_length(cairn_restore::total_bytes(&repo, &snap.tree, &select)?);
    }
    let started = std::time::Instant::now();
    let opts = RestoreOptions { overwrite: a.overwrite, verify: a.verify, delete: extras };
    let s = cairn_restore::restore(
        &repo,
        &snap.tree,
        &select,
        &a.target,
        &opts,
        &progress::RestoreProgress { bar: bar.clone() },
    )?;
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
