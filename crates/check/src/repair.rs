//! Salvaging damaged packs (`cairn repair packs`): every blob of a damaged
//! pack that still reads and verifies is copied into a new pack; the index
//! is rewritten without the damaged packs, and without every blob whose
//! delta chain ran through a lost one; then the damaged packs are deleted.
//! What was lost is no longer in the index, so the next backup of the same
//! source stores that content again (before, it reused the damaged blob and
//! every later snapshot was as broken as the first). Plan, then execute.

use std::collections::HashSet;

use cairn_format::index::{IndexFile, IndexPack};
use cairn_format::{BlobId, BlobKind, IndexId, PackId};
use cairn_repo::{BlobLocation, IndexedRepository, RepoError};

/// A pack with blobs that do not read back.
#[derive(Debug, Clone)]
pub struct DamagedPack {
    /// The pack.
    pub id: PackId,
    /// Data or tree.
    pub kind: BlobKind,
    /// Blobs that read and verify: copied to a new pack.
    pub salvage: Vec<BlobId>,
    /// Blobs that do not, each with why.
    pub lost: Vec<(BlobId, String)>,
}

/// What a repair of packs will do.
#[derive(Debug, Clone, Default)]
pub struct PackRepairPlan {
    /// Packs read.
    pub packs_read: usize,
    /// The damaged ones.
    pub damaged: Vec<DamagedPack>,
}

/// What it did.
#[derive(Debug, Clone, Default)]
pub struct PackRepairOutcome {
    /// Blobs copied out of damaged packs.
    pub salvaged: usize,
    /// Blobs no longer in the repository: unreadable ones, and blobs coded
    /// as deltas against them.
    pub lost: Vec<BlobId>,
    /// The index file that replaced all others.
    pub index: Option<IndexId>,
    /// Damaged pack files deleted.
    pub deleted: Vec<PackId>,
}

/// Where the index places each blob of `p`.
fn locations(p: &IndexPack) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
    let pack_end = p.blobs.iter().map(|b| b.offset + b.length).max().unwrap_or(0);
    p.blobs.iter().map(move |b| {
        let loc = BlobLocation {
            pack: p.id,
            kind: p.kind,
            offset: b.offset,
            length: b.length,
            raw_length: b.raw_length,
            pack_end,
            base: b.base,
        };
        (b.id, loc)
    })
}

/// Reads every blob of the packs the index `files` list (only those in
/// `only`, when given) and names the damaged packs.
pub fn plan_pack_repair(
    repo: &IndexedRepository,
    files: &[(IndexId, IndexFile)],
    only: &[PackId],
) -> Result<PackRepairPlan, RepoError> {
    let mut plan = PackRepairPlan::default();
    let mut seen = HashSet::new();
    for p in files.iter().flat_map(|(_, f)| &f.packs) {
        if (!only.is_empty() && !only.contains(&p.id)) || !seen.insert(p.id) {
            continue;
        }
        plan.packs_read += 1;
        let mut pack = DamagedPack { id: p.id, kind: p.kind, salvage: Vec::new(), lost: Vec::new() };
        for (id, loc) in locations(p) {
            match repo.read_blob_at(&id, &loc) {
                Ok(_) => pack.salvage.push(id),
                // The storage not answering is not damage: stop.
                Err(e @ RepoError::Backend(_)) if !is_missing(&e) => return Err(e),
                Err(e) => pack.lost.push((id, e.to_string())),
            }
        }
        if !pack.lost.is_empty() {
            plan.damaged.push(pack);
        }
    }
    Ok(plan)
}

fn is_missing(e: &RepoError) -> bool {
    matches!(e, RepoError::Backend(b) if b.is_not_found())
}

/// Executes `plan`: salvages, writes one index replacing all of `files`,
/// deletes the damaged packs. The caller holds the maintenance marker, so
/// no prune deletes packs meanwhile.
pub fn repair_packs(
    repo: &IndexedRepository,
    files: &[(IndexId, IndexFile)],
    plan: &PackRepairPlan,
) -> Result<PackRepairOutcome, RepoError> {
    let mut outcome = PackRepairOutcome::default();
    if plan.damaged.is_empty() {
        return Ok(outcome);
    }
    let damaged: HashSet<PackId> = plan.damaged.iter().map(|d| d.id).collect();
    // 1. Salvage, reading each blob again from its damaged pack.
    let mut new_packs = Vec::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let mut writer = repo.repo().pack_writer(kind);
        for d in plan.damaged.iter().filter(|d| d.kind == kind) {
            let Some(p) = files.iter().flat_map(|(_, f)| &f.packs).find(|p| p.id == d.id) else { continue };
            for (b, (id, loc)) in p.blobs.iter().zip(locations(p)).filter(|(_, (id, _))| d.salvage.contains(id)) {
                let plain = repo.read_blob_at(&id, &loc)?;
                // Stored whole now (its base may be what was damaged); its
                // sketch still serves later backups.
                let mut sealed = repo.seal_blob(kind, id, &plain)?;
                sealed.sketch = b.sketch;
                if writer.add(sealed)?
                    && let Some(pack) = writer.finish()?
                {
                    new_packs.push(repo.repo().save_pack(pack)?.0);
                }
                outcome.salvaged += 1;
            }
        }
        if let Some(pack) = writer.finish()? {
            new_packs.push(repo.repo().save_pack(pack)?.0);
        }
    }
    // 2. The index without the damaged packs, and without blobs whose delta
    //    base is gone (repeated: a chain loses one link per round).
    let mut packs: Vec<IndexPack> =
        files.iter().flat_map(|(_, f)| f.packs.iter()).filter(|p| !damaged.contains(&p.id)).cloned().collect();
    packs.extend(new_packs);
    let mut present: HashSet<BlobId> = packs.iter().flat_map(|p| p.blobs.iter().map(|b| b.id)).collect();
    loop {
        let mut dropped = false;
        for p in &mut packs {
            p.blobs.retain(|b| {
                let keep = b.base.is_none_or(|base| present.contains(&base));
                dropped |= !keep;
                keep
            });
        }
        let now: HashSet<BlobId> = packs.iter().flat_map(|p| p.blobs.iter().map(|b| b.id)).collect();
        if !dropped {
            break;
        }
        present = now;
    }
    let before: HashSet<BlobId> =
        files.iter().flat_map(|(_, f)| &f.packs).flat_map(|p| p.blobs.iter().map(|b| b.id)).collect();
    outcome.lost = before.difference(&present).copied().collect();
    outcome.lost.sort();
    let old: Vec<IndexId> = files.iter().map(|(id, _)| *id).collect();
    let new = repo.repo().save_index(&IndexFile { supersedes: old.clone(), packs })?;
    outcome.index = Some(new);
    for id in old.iter().filter(|id| **id != new) {
        repo.repo().delete_index(id)?;
    }
    // 3. The damaged packs, now that no index names them.
    for d in &plan.damaged {
        repo.repo().delete_pack(d.kind, &d.id)?;
        outcome.deleted.push(d.id);
    }
    Ok(outcome)
}
