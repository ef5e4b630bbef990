//! `cairn repair index`: rebuild the index from the pack headers
//! (`Repository::rebuild_index`).
//! `cairn repair snapshots`: rewrite snapshots around lost data.
//! `cairn repair packs`: salvage damaged packs (cairn_check::repair_packs).

use std::collections::{HashMap, HashSet};

use anyhow::{Result, bail};
use cairn_format::index::{IndexFile, IndexPack};
use cairn_format::tree::{NodeKind, Tree};
use cairn_format::{BlobId, BlobKind, PackId};
use cairn_repo::{IndexedRepository, MAX_DELTA_DEPTH, PackWriter, select};

use crate::cli::{Global, RepairAction};

pub fn run(g: &Global, action: &RepairAction) -> Result<i32> {
    match action {
        RepairAction::Index => index(g),
        RepairAction::Packs { packs: names, dry_run } => packs(g, names, *dry_run),
        RepairAction::Snapshots { snapshots, forget, dry_run } => repair_snapshots(g, snapshots, *forget, *dry_run),
    }
}

/// Rebuilds trees without what is lost, writing new tree blobs into packs.
struct Mender<'a> {
    repo: &'a IndexedRepository,
    writer: PackWriter,
    packs: Vec<IndexPack>,
    /// New id of each tree, and the lost paths below it (relative).
    memo: HashMap<BlobId, (BlobId, Vec<String>)>,
    /// Tree blobs written in this run, not yet in any index.
    written: HashSet<BlobId>,
    dry_run: bool,
}

impl Mender<'_> {
    /// Whether a data blob can be read: it and its delta chain are indexed.
    fn readable(&self, id: &BlobId) -> bool {
        let mut at = *id;
        for _ in 0..=MAX_DELTA_DEPTH {
            match self.repo.index().get(&at) {
                None => return false,
                Some(l) => match l.base {
                    Some(b) => at = b,
                    None => return true,
                },
            }
        }
        false
    }

    fn tree(&mut self, id: BlobId) -> Result<(BlobId, Vec<String>)> {
        if let Some(m) = self.memo.get(&id) {
            return Ok(m.clone());
        }
        let tree = self.repo.load_tree(&id)?;
        let mut lost = Vec::new();
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for mut n in tree.nodes {
            let name = format!("/{}", n.name.display());
            if let Some(sub) = n.subtree {
                let readable = self.repo.index().contains(&sub) && self.repo.load_tree(&sub).is_ok();
                if readable {
                    let (new, below) = self.tree(sub)?;
                    n.subtree = Some(new);
                    lost.extend(below.into_iter().map(|p| format!("{name}{p}")));
                } else {
                    n.subtree = Some(self.store(Tree { nodes: Vec::new() })?);
                    lost.push(format!("{name}/"));
                }
            }
            if n.kind == NodeKind::File && n.content.iter().any(|b| !self.readable(b)) {
                n.content.retain(|b| self.readable(b));
                n.size =
                    n.content.iter().filter_map(|b| self.repo.index().get(b)).map(|l| u64::from(l.raw_length)).sum();
                lost.push(name);
            }
            nodes.push(n);
        }
        let new = if lost.is_empty() { id } else { self.store(Tree { nodes })? };
        self.memo.insert(id, (new, lost.clone()));
        Ok((new, lost))
    }

    fn store(&mut self, mut tree: Tree) -> Result<BlobId> {
        let bytes = tree.encode();
        let id = self.repo.repo().blob_id(&bytes);
        if self.dry_run || self.repo.index().contains(&id) || !self.written.insert(id) {
            return Ok(id);
        }
        if self.writer.add(self.repo.seal_blob(BlobKind::Tree, id, &bytes)?)? {
            self.flush()?;
        }
        Ok(id)
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(p) = self.writer.finish(self.repo.repo().keyring())? {
            self.packs.push(self.repo.repo().save_pack(p)?.0);
        }
        Ok(())
    }
}

fn repair_snapshots(g: &Global, specs: &[String], forget: bool, dry_run: bool) -> Result<i32> {
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let chosen = select::choose(&all, specs, &Default::default())?;
    let repo = repo.load_index_for_backup(&super::backup::hostname())?;
    let pack_size = repo.repo().config().pack_size as usize;
    let mut m = Mender {
        repo: &repo,
        writer: PackWriter::new(BlobKind::Tree, pack_size),
        packs: Vec::new(),
        memo: HashMap::new(),
        written: HashSet::new(),
        dry_run,
    };
    let mut fixes = Vec::new();
    for (id, snap) in &chosen {
        if !repo.index().contains(&snap.tree) || repo.load_tree(&snap.tree).is_err() {
            fixes.push((*id, snap.clone(), m.store(Tree { nodes: Vec::new() })?, vec!["/".to_string()]));
            continue;
        }
        let (root, lost) = m.tree(snap.tree)?;
        if !lost.is_empty() {
            fixes.push((*id, snap.clone(), root, lost));
        }
    }
    m.flush()?;
    if !dry_run && !m.packs.is_empty() {
        repo.repo().save_index(&IndexFile { supersedes: Vec::new(), packs: std::mem::take(&mut m.packs) })?;
    }
    let mut report = Vec::new();
    for (id, snap, root, lost) in fixes {
        let mut new = snap.clone();
        new.tree = root;
        new.original = Some(snap.original.unwrap_or(id));
        new.repaired = lost.clone();
        if !new.tags.iter().any(|t| t == "repaired") {
            new.tags.push("repaired".into());
        }
        let new_id = if dry_run {
            None
        } else {
            repo.ensure_run_alive()?;
            let n = repo.repo().save_snapshot(&new)?;
            if forget {
                repo.repo().delete_snapshot(&id)?;
            }
            Some(n)
        };
        report.push((id, new_id, lost));
    }
    if g.json {
        let v: Vec<_> = report
            .iter()
            .map(|(old, new, lost)| serde_json::json!({ "snapshot": old, "repaired": new, "lost": lost }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !g.quiet {
        for (old, new, lost) in &report {
            let verb = if dry_run { "would repair" } else { "repaired" };
            let new = new.map(|n| format!(" as {}", n.short())).unwrap_or_default();
            println!("snapshot {}: {verb}{new}; data lost for {} path(s):", old.short(), lost.len());
            for p in lost {
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
