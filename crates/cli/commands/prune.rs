//! `cairn prune`: free the space of data no snapshot uses, while backups
//! keep running (crates/prune has the protocol).

use anyhow::Result;
use cairn_prune::{PruneOptions, PruneReport, prune};
use cairn_repo::Repository;

use cairn_prune::RepackOptions;

use crate::cli::Global;
use crate::output::bytes;

/// Prunes `repo` with the command-line options.
pub fn prune_repo(repo: Repository, o: &RepackOptions, dry_run: bool) -> Result<PruneReport> {
    let opts = PruneOptions { repack: o.clone(), dry_run, hostname: super::backup::hostname() };
    Ok(prune(repo, &opts)?)
}

pub fn run(g: &Global, o: &RepackOptions, dry_run: bool) -> Result<i32> {
    let r = prune_repo(super::open(g)?, o, dry_run)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(0);
    }
    if g.quiet {
        return Ok(0);
    }
    let would = if dry_run { "would mark" } else { "marked" };
    println!("{} snapshots need {} blobs in {} packs", r.snapshots, r.blobs_used, r.packs);
    println!("{would} {} unused packs ({}) for deletion", r.packs_unused, bytes(r.bytes_unused));
    println!(
        "{} {} packs ({}) after copying {} they still hold",
        if dry_run { "would repack" } else { "repacked" },
        r.packs_repacked,
        bytes(r.bytes_repacked),
        bytes(r.bytes_copied)
    );
    if !dry_run {
        println!("deleted {} packs, {} freed", r.packs_deleted, bytes(r.bytes_deleted));
    }
    if r.packs_reencrypted > 0 {
        println!("re-encrypted {} packs under the current key epoch", r.packs_reencrypted);
    }
    if r.packs_rescued > 0 {
        println!("kept {} marked packs that new snapshots use", r.packs_rescued);
    }
    for w in &r.plans_waiting {
        println!("waiting: {w}; a later prune deletes them");
    }
    for m in &r.stale_markers {
        eprintln!("warning: ignored the stale run marker {m}: its run died or its machine slept");
    }
    if r.staging_removed > 0 {
        println!(
            "{} {} staging files of interrupted writes under tmp/ ({})",
            if dry_run { "would remove" } else { "removed" },
            r.staging_removed,
            bytes(r.staging_bytes)
        );
    }
    if r.packs_unindexed > 0 {
        println!("{} packs no index lists (interrupted or running backups) were left alone", r.packs_unindexed);
    }
    Ok(0)
}
