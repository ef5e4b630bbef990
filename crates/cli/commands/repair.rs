//! `cairn repair index`: rebuild the index from the pack headers
//! (`Repository::rebuild_index`).
//! `cairn repair snapshots`: rewrite snapshots around lost data
//! (cairn_check::repair_snapshots).
//! `cairn repair packs`: salvage damaged packs (cairn_check::repair_packs).

use anyhow::{Result, bail};
use cairn_check::Original;
use cairn_format::PackId;
use cairn_repo::select;

use crate::cli::{Global, RepairAction};

pub fn run(g: &Global, action: &RepairAction) -> Result<i32> {
    match action {
        RepairAction::Index => index(g),
        RepairAction::Packs { packs: names, dry_run } => packs(g, names, *dry_run),
        RepairAction::Snapshots { snapshots, forget, dry_run } => repair_snapshots(g, snapshots, *forget, *dry_run),
    }
}

fn repair_snapshots(g: &Global, specs: &[String], forget: bool, dry_run: bool) -> Result<i32> {
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let chosen = select::choose(&all, specs, &Default::default())?;
    let repo = repo.load_index_for_backup(&super::backup::hostname())?;
    let original = if forget { Original::Forget } else { Original::Keep };
    let report = cairn_check::repair_snapshots(&repo, &chosen, original, dry_run)?;
    if g.json {
        let v: Vec<_> = report
            .iter()
            .map(|r| serde_json::json!({ "snapshot": r.snapshot, "repaired": r.repaired, "lost": r.lost }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !g.quiet {
        for r in &report {
            let verb = if dry_run { "would repair" } else { "repaired" };
            let new = r.repaired.map(|n| format!(" as {}", n.short())).unwrap_or_default();
            println!("snapshot {}: {verb}{new}; data lost for {} path(s):", r.snapshot.short(), r.lost.len());
            for p in &r.lost {
                println!("  {p}");
            }
        }
        println!("{} of {} snapshot(s) needed repair", report.len(), chosen.len());
    }
    Ok(0)
}

fn packs(g: &Global, names: &[String], dry_run: bool) -> Result<i32> {
    let repo = super::open(g)?;
    // No prune may delete or repack packs while they are salvaged.
    let _guard = cairn_prune::start_maintenance(&repo, &super::backup::hostname())?;
    let repo = repo.load_index()?;
    let files = repo.repo().live_index_files()?;
    let mut only = Vec::new();
    for name in names {
        let name = name.to_ascii_lowercase();
        let mut found: Vec<PackId> = files
            .iter()
            .flat_map(|(_, f)| &f.packs)
            .map(|p| p.id)
            .filter(|id| id.to_hex().starts_with(&name))
            .collect();
        found.dedup();
        match found.as_slice() {
            [id] => only.push(*id),
            [] => bail!("no indexed pack starts with {name:?} (`cairn check` names damaged packs)"),
            _ => bail!("pack id prefix {name:?} is ambiguous: give more of it"),
        }
    }
    let plan = cairn_check::plan_pack_repair(&repo, &files, &only)?;
    let outcome = if dry_run { None } else { Some(cairn_check::repair_packs(&repo, &files, &plan)?) };
    if g.json {
        let damaged: Vec<_> = plan
            .damaged
            .iter()
            .map(|d| {
                let lost: Vec<_> =
                    d.lost.iter().map(|(id, why)| serde_json::json!({ "blob": id, "reason": why })).collect();
                serde_json::json!({ "pack": d.id, "kind": d.kind.name(), "salvage": d.salvage.len(), "lost": lost })
            })
            .collect();
        let mut v = serde_json::json!({ "packs_read": plan.packs_read, "damaged": damaged, "dry_run": dry_run });
        if let Some(o) = &outcome {
            v["salvaged"] = o.salvaged.into();
            v["lost"] = serde_json::json!(o.lost);
            v["index"] = serde_json::json!(o.index);
            v["deleted"] = serde_json::json!(o.deleted);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if g.quiet {
        return Ok(0);
    }
    for d in &plan.damaged {
        println!(
            "{} pack {}: {} blob(s) to salvage, {} damaged:",
            d.kind.name(),
            d.id.short(),
            d.salvage.len(),
            d.lost.len()
        );
        for (id, why) in &d.lost {
            println!("  blob {}: {why}", id.short());
        }
    }
    match outcome {
        _ if plan.damaged.is_empty() => println!("{} pack(s) read, none damaged: nothing to repair", plan.packs_read),
        None => println!("{} damaged pack(s) of {} (dry run: nothing changed)", plan.damaged.len(), plan.packs_read),
        Some(o) => {
            println!(
                "{} blob(s) salvaged, {} lost, {} damaged pack(s) deleted; the index was rewritten",
                o.salvaged,
                o.lost.len(),
                o.deleted.len()
            );
            if !o.lost.is_empty() {
                println!(
                    "next: back up the same sources again (their unchanged content is stored anew), then \
                     `cairn check` and, for snapshots whose files are gone from the source, `cairn repair snapshots`"
                );
            }
        }
    }
    Ok(0)
}

fn index(g: &Global) -> Result<i32> {
    let repo = super::open(g)?;
    // No prune may delete packs while the index is rebuilt from them.
    let _guard = cairn_prune::start_maintenance(&repo, &super::backup::hostname())?;
    let r = repo.rebuild_index()?;
    for (kind, id, e) in &r.damaged {
        eprintln!("warning: {} pack {} left out: {e}", kind.name(), id.short());
    }
    let damaged: Vec<_> = r.damaged.iter().map(|(_, id, _)| id).collect();
    if g.json {
        let v = serde_json::json!({
            "index": r.index, "packs": r.packs, "blobs": r.blobs, "replaced": r.replaced.len(), "damaged_packs": damaged,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !g.quiet {
        println!(
            "index rebuilt from {} pack headers ({} blobs) as {}; {} old index file(s) replaced",
            r.packs,
            r.blobs,
            r.index.short(),
            r.replaced.len()
        );
        if !damaged.is_empty() {
            println!(
                "{} pack(s) with unreadable headers left out: run `cairn check` to see what they affect",
                damaged.len()
            );
        }
    }
    Ok(if damaged.is_empty() { 0 } else { 1 })
}
