//! Prune: frees the space of data no snapshot uses, while backups keep
//! running (docs/FORMAT.md, "Deleting packs"). No exclusive lock.
//!
//! 1. **Mark.** Find every blob a snapshot needs (trees, file content, the
//!    bases of delta blobs, and the bases of any delta left in a pack that
//!    stays, needed or not). Packs holding none of them are marked; packs
//!    whose unused share exceeds `max_unused` have their needed blobs copied
//!    into new packs (and indexed) first, then are marked too. The marks go
//!    into a deletion plan. From then on, backups leave marked packs out of
//!    their index, so nothing new can come to depend on them.
//! 2. **Delete.** A plan is carried out (by this run or a later one) only
//!    when every backup still running has seen it (its run marker lists the
//!    plan): a backup that loaded its index before the plan existed might
//!    refer to a marked pack. Needed blobs are recomputed from the snapshots
//!    present at that moment; a marked pack holding one that exists nowhere
//!    else is spared. Then: a new index file without the packs (superseding
//!    the old ones), the old index files, the packs, the plan are deleted,
//!    in that order, so a crash at any point leaves a repository `check`
//!    accepts and the next prune finishes the job.
//!
//! ```
//! use cairn_backend::Backend;
//! use cairn_prune::{prune, PruneOptions};
//! use cairn_repo::{InitOptions, Repository};
//! let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let report = prune(repo, &PruneOptions::default()).unwrap();
//! assert_eq!(report.packs_deleted, 0);
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_format::index::{IndexBlob, IndexFile, IndexPack};
use cairn_format::lifecycle::{DeletionPlan, MarkedPack, RunKind, RunMarker};
use cairn_format::snapshot::Snapshot;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_format::{BlobId, BlobKind, FORMAT_VERSION, IndexId, PackId, PlanId, SnapshotId};
use cairn_repo::lifecycle::is_live;
use cairn_repo::{BlobSet, Index, IndexedRepository, PackWriter, RepoError, Repository, RunGuard, SealedBlob, Verify};
use cairn_view::walk::{Step, Visitor, walk};
use serde::Serialize;

/// What can stop a prune.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Another prune is running.
    #[error(
        "another prune is running (host {host}, pid {pid}, started {started}); wait for it, or if it died, \
         for its marker to go stale"
    )]
    Busy {
        /// Its host.
        host: String,
        /// Its process id.
        pid: u32,
        /// When it started.
        started: jiff::Timestamp,
    },
    /// A pack the index lists, holding needed data, is gone.
    #[error("{0} is missing but snapshots need data in it; nothing was deleted: run `cairn check` first")]
    MissingPack(String),
    /// Reading or writing the repository failed; nothing unsafe was done.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// How much to reclaim.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Which packs to rewrite.
    pub repack: RepackOptions,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
    /// Host name for the run marker and the plan.
    pub hostname: String,
}

/// Which packs a prune rewrites, as a user gives it (`--max-unused 5%`).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RepackOptions {
    /// Repack packs whose unused share is above this.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "5%", value_parser = cairn_repo::units::parse_share, value_name = "SHARE")
    )]
    pub max_unused: f64,
    /// Copy at most this much still-used data per run when repacking.
    #[cfg_attr(feature = "clap", arg(long, value_parser = cairn_repo::units::parse_size, value_name = "SIZE"))]
    pub max_repack_size: Option<u64>,
    /// Rewrite packs sealed under an older key epoch (after `key rotate`)
    /// under the current one; the old packs go like unused ones.
    #[cfg_attr(feature = "clap", arg(long))]
    pub reencrypt: bool,
}

impl Default for RepackOptions {
    fn default() -> Self {
        RepackOptions { max_unused: 0.05, max_repack_size: None, reencrypt: false }
    }
}

/// What a prune found and did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PruneReport {
    /// Snapshots whose data is kept.
    pub snapshots: usize,
    /// Blobs they need (trees, content, delta bases).
    pub blobs_used: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Packs marked because no snapshot needs anything in them.
    pub packs_unused: usize,
    /// Their size.
    pub bytes_unused: u64,
    /// Packs whose needed blobs were copied out before marking.
    pub packs_repacked: usize,
    /// Their size.
    pub bytes_repacked: u64,
    /// Bytes of needed blobs copied into new packs.
    pub bytes_copied: u64,
    /// Packs rewritten under the current key epoch (`reencrypt`).
    pub packs_reencrypted: usize,
    /// Deletion plans carried out.
    pub plans_done: usize,
    /// Packs deleted.
    pub packs_deleted: usize,
    /// Bytes freed.
    pub bytes_deleted: u64,
    /// Marked packs kept because a snapshot written meanwhile needs them.
    pub packs_rescued: usize,
    /// Plans left for a later prune, and why.
    pub plans_waiting: Vec<String>,
    /// Run markers ignored because they went stale (their run died).
    pub stale_markers: Vec<String>,
    /// Packs no index lists (from interrupted backups, or backups still
    /// running); left alone.
    pub packs_unindexed: usize,
    /// Staging files under `tmp/` left by interrupted writes, removed.
    pub staging_removed: usize,
    /// Their size.
    pub staging_bytes: u64,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// One pack as the live index files describe it.
struct PackInfo {
    kind: BlobKind,
    blobs: Vec<IndexBlob>,
}

impl PackInfo {
    /// Bytes of the blobs whose home is this pack (`id`): what repacking it copies.
    fn kept_bytes(&self, id: &PackId, home: &HashMap<BlobId, PackId>) -> u64 {
        self.blobs.iter().filter(|b| home.get(&b.id) == Some(id)).map(|b| u64::from(b.length)).sum()
    }

    /// Bytes of all its blobs.
    fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| u64::from(b.length)).sum()
    }
}

/// The packs of `files`, each once, their blob lists moved out of the
/// files: holding both took a second copy of every index entry (with its
/// sketch), about a quarter of prune's memory (545 -> 413 bytes a blob).
fn packs_of(files: Vec<(IndexId, IndexFile)>) -> BTreeMap<PackId, PackInfo> {
    let mut packs = BTreeMap::new();
    for (_, f) in files {
        for p in f.packs {
            packs.entry(p.id).or_insert(PackInfo { kind: p.kind, blobs: p.blobs });
        }
    }
    packs
}

/// Marks what the walk meets as used: every subtree and content blob and,
/// down each delta chain, the bases. A tree already marked is not walked
/// again (Skip), so each distinct tree is read once.
struct Used<'a> {
    repo: &'a IndexedRepository,
    used: &'a mut BlobSet,
}

impl Visitor for Used<'_> {
    type Error = RepoError;

    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step, RepoError> {
        for id in &node.content {
            self.repo.add_with_bases(*id, self.used);
        }
        let Some(sub) = node.subtree else { return Ok(Step::Skip) };
        if !self.used.insert(&sub) {
            return Ok(Step::Skip);
        }
        if node.kind == NodeKind::Dir {
            return Ok(Step::Descend);
        }
        // A subtree on something that is not a folder (no backup writes
        // one, but a snapshot may name it): kept with all below it all the
        // same, since prune deletes only what nothing names.
        walk(self.repo, &sub, &path.0, self)?;
        Ok(Step::Skip)
    }
}

/// Adds every blob the snapshots need to `used`: trees, file content and,
/// down each delta chain, the bases. Any tree that cannot be read stops the
/// prune: deleting on incomplete knowledge could destroy data.
fn add_used(repo: &IndexedRepository, snaps: &[(SnapshotId, Snapshot)], used: &mut BlobSet) -> Result<(), RepoError> {
    let mut marker = Used { repo, used };
    for (_, s) in snaps {
        if marker.used.insert(&s.tree) {
            walk(repo, &s.tree, b"", &mut marker)?;
        }
    }
    Ok(())
}

/// Whether a marker belongs to a process of this host that no longer
/// exists: a run that crashed here need not wait out `STALE_AFTER`.
fn died_here(m: &RunMarker, hostname: &str) -> bool {
    m.hostname == hostname && !hostname.is_empty() && !process_alive(m)
}

/// Whether the marker's process still runs here. With the marker's process
/// identity, a pid now held by another process (pids are reused) does not
/// count; without one (older markers), any process of that pid does.
#[cfg(target_os = "linux")]
fn process_alive(m: &RunMarker) -> bool {
    if !std::path::Path::new(&format!("/proc/{}", m.pid)).exists() {
        return false;
    }
    match (&m.process, cairn_repo::lifecycle::process_identity(m.pid)) {
        (Some(theirs), Some(now)) => *theirs == now,
        // An older marker, or no way to tell: the pid exists.
        _ => true,
    }
}

#[cfg(not(target_os = "linux"))]
fn process_alive(_m: &RunMarker) -> bool {
    true
}

/// Announces a maintenance run (prune, index repair) with a run marker of
/// kind prune, and stops if another one is live: two would delete under
/// each other's feet. Backups are not affected.
pub fn start_maintenance(repo: &Repository, hostname: &str) -> Result<RunGuard, PruneError> {
    let guard = repo.start_run(RunKind::Prune, hostname)?;
    let now = jiff::Timestamp::now();
    for (id, marker) in repo.run_markers()? {
        if guard.id() == id {
            continue;
        }
        if let Ok(m) = marker
            && m.kind == RunKind::Prune
            && is_live(&m, now)
            && !died_here(&m, hostname)
        {
            return Err(PruneError::Busy { host: m.hostname, pid: m.pid, started: m.started });
        }
    }
    Ok(guard)
}

/// How long a staging file must have been left untouched before prune
/// takes it for the leftover of a dead write.
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs a prune.
pub fn prune(repo: Repository, opts: &PruneOptions) -> Result<PruneReport, PruneError> {
    let mut report = PruneReport { dry_run: opts.dry_run, ..PruneReport::default() };
    let guard = if opts.dry_run { None } else { Some(start_maintenance(&repo, &opts.hostname)?) };
    let now = jiff::Timestamp::now();

    // 1. Mark. Snapshots are listed before the index is read: a backup
    //    writes its index file before its snapshot, so every snapshot listed
    //    has its blobs in the index read afterwards.
    let snapshots = repo.snapshots()?;
    let plans = repo.deletion_plans()?;
    let marked: HashSet<PackId> = plans.iter().flat_map(|(_, p)| p.packs.iter().map(|m| m.id)).collect();
    let files = repo.live_index_files()?;
    let index = Index::from_files(files.iter().map(|(_, f)| f));
    let packs = packs_of(files);
    let mut repo = repo.with_index(index);
    let mut used = BlobSet::default();
    add_used(&repo, &snapshots, &mut used)?;
    report.snapshots = snapshots.len();
    report.blobs_used = used.len();
    report.packs = packs.len();

    let mut stored: HashMap<PackId, u64> = HashMap::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        stored.extend(repo.repo().list_packs(kind)?.into_iter().map(|p| (p.id, p.size)));
    }
    report.packs_unindexed = stored.keys().filter(|id| !packs.contains_key(id)).count();

    // Blobs left where they are (in packs neither marked nor repacked) stay
    // indexed, used or not, and a delta among them needs its base: those
    // bases count as used too, which can keep more packs. Until nothing
    // changes (`used` only grows).
    let Marks { home, mut to_mark, mut chosen } = loop {
        let marks = plan_marks(&packs, &marked, &stored, &used, &opts.repack)?;
        let going: HashSet<&PackId> = marks.to_mark.iter().map(|m| &m.id).chain(&marks.chosen).collect();
        let stays = |id: &PackId| !marked.contains(id) && stored.contains_key(id) && !going.contains(id);
        let left: Vec<BlobId> = (packs.iter().filter(|(id, _)| stays(id)))
            .flat_map(|(_, p)| p.blobs.iter().filter(|b| b.base.is_some() && !used.contains(&b.id)).map(|b| b.id))
            .collect();
        if left.is_empty() {
            break marks;
        }
        for id in left {
            repo.add_with_bases(id, &mut used);
        }
    };
    for m in &to_mark {
        report.packs_unused += 1;
        report.bytes_unused += stored[&m.id];
    }
    if opts.dry_run {
        for id in &chosen {
            report.packs_repacked += 1;
            report.bytes_repacked += stored[id];
        }
        remove_staging_leftovers(&repo, None, opts, &mut report)?;
        return Ok(report);
    }
    if !chosen.is_empty() {
        let (new_packs, copied) =
            copy_needed(&repo, &packs, &home, &chosen, opts.repack.max_unused, opts.repack.reencrypt)?;
        chosen = copied;
        for id in &chosen {
            let kept = packs[id].kept_bytes(id, &home);
            report.packs_repacked += 1;
            report.bytes_repacked += stored[id];
            report.bytes_copied += kept;
        }
        if opts.repack.reencrypt {
            report.packs_reencrypted = chosen.len();
        }
        let file = IndexFile { supersedes: Vec::new(), packs: new_packs };
        repo.repo().save_index(&file)?;
        // The copies are what later steps must find.
        repo.index_mut().add_file(&file);
        to_mark.extend(chosen.iter().map(|id| MarkedPack { id: *id, kind: packs[id].kind }));
    }
    if !to_mark.is_empty() {
        let plan =
            DeletionPlan { version: FORMAT_VERSION, created: now, hostname: opts.hostname.clone(), packs: to_mark };
        repo.repo().save_deletion_plan(&plan)?;
    }

    // Step 1's tables are done with; step 2 reads the index files again.
    drop((packs, home));

    // 2. Delete what every running backup has seen marked. Markers are read
    //    after the plan is written: a backup whose marker is not there yet
    //    will find the plan when it loads its index.
    let markers = repo.repo().run_markers()?;
    let plans = repo.repo().deletion_plans()?;
    let now = jiff::Timestamp::now();
    let mut ready: Vec<(PlanId, DeletionPlan)> = Vec::new();
    for (pid, plan) in plans {
        let mut blocked = None;
        for (mid, marker) in &markers {
            if guard.as_ref().is_some_and(|g| g.id() == *mid) {
                continue;
            }
            match marker {
                Err(e) => blocked = Some(format!("run marker {} cannot be read ({e})", mid.short())),
                Ok(m) if !is_live(m, now) || died_here(m, &opts.hostname) => {
                    let note = format!("{} {} pid {} (last seen {})", mid.short(), m.hostname, m.pid, m.updated);
                    if !report.stale_markers.contains(&note) {
                        report.stale_markers.push(note);
                    }
                }
                Ok(m) if m.kind == RunKind::Backup && !m.plans_seen.as_ref().is_some_and(|s| s.contains(&pid)) => {
                    blocked = Some(format!(
                        "a backup on {} (pid {}, started {}) may still use its packs",
                        m.hostname, m.pid, m.started
                    ));
                }
                Ok(_) => {}
            }
        }
        match blocked {
            Some(why) => report.plans_waiting.push(format!("deletion plan {}: {why}", pid.short())),
            None => ready.push((pid, plan)),
        }
    }

    remove_staging_leftovers(&repo, guard.as_ref(), opts, &mut report)?;

    if ready.is_empty() {
        return Ok(report);
    }

    // Snapshots written since step 1 (by backups that loaded their index
    // before a plan existed) may need marked packs: recompute with the
    // index as it is now.
    let seen: HashSet<SnapshotId> = snapshots.iter().map(|(id, _)| *id).collect();
    let newer: Vec<_> = repo.repo().snapshots()?.into_iter().filter(|(id, _)| !seen.contains(id)).collect();
    let cairn_repo::IndexFiles { live: files, superseded: dead_files } = repo.repo().index_files()?;
    *repo.index_mut() = Index::from_files(files.iter().map(|(_, f)| f));
    add_used(&repo, &newer, &mut used)?;
    let live_files: Vec<IndexId> = files.iter().map(|(id, _)| *id).collect();

    let mut doomed: HashSet<PackId> = ready.iter().flat_map(|(_, p)| p.packs.iter().map(|m| m.id)).collect();
    let current = packs_of(files);
    let mut copies: HashMap<BlobId, usize> = HashMap::new();
    for (id, p) in &current {
        if !doomed.contains(id) {
            for b in &p.blobs {
                *copies.entry(b.id).or_default() += 1;
            }
        }
    }
    let rescued: Vec<PackId> = doomed
        .iter()
        .filter(|id| {
            current.get(id).is_some_and(|p| p.blobs.iter().any(|b| used.contains(&b.id) && !copies.contains_key(&b.id)))
        })
        .copied()
        .collect();
    for id in &rescued {
        doomed.remove(id);
    }
    report.packs_rescued = rescued.len();

    if current.keys().any(|id| doomed.contains(id)) {
        // Every index file there is, not only the live ones: a file that is
        // already superseded but still present (a prune died before deleting
        // it) must stay superseded once the file superseding it is deleted.
        // Files written since the listing (by backups) are not touched.
        let superseded: Vec<IndexId> = live_files.into_iter().chain(dead_files.iter().copied()).collect();
        let remaining: Vec<IndexPack> = current
            .iter()
            .filter(|(id, _)| !doomed.contains(id))
            .map(|(id, p)| IndexPack { id: *id, kind: p.kind, blobs: p.blobs.clone() })
            .collect();
        repo.repo().save_index(&IndexFile { supersedes: superseded.clone(), packs: remaining })?;
        for id in &superseded {
            repo.repo().delete_index(id)?;
        }
    } else {
        // Superseded files a dead prune left behind.
        for id in &dead_files {
            repo.repo().delete_index(id)?;
        }
    }
    for (_, plan) in &ready {
        for m in plan.packs.iter().filter(|m| doomed.contains(&m.id)) {
            let size = stored.get(&m.id).copied().unwrap_or(0);
            repo.repo().delete_pack(m.kind, &m.id)?;
            report.packs_deleted += 1;
            report.bytes_deleted += size;
        }
    }
    for (pid, _) in &ready {
        repo.repo().delete_deletion_plan(pid)?;
        report.plans_done += 1;
    }
    drop(guard);
    Ok(report)
}

/// What step 1 decided.
struct Marks {
    /// Each needed blob's one home pack.
    home: HashMap<BlobId, PackId>,
    /// Packs nothing needed is in.
    to_mark: Vec<MarkedPack>,
    /// Packs to copy the needed blobs out of, then mark.
    chosen: Vec<PackId>,
}

/// Step 1's decisions for the blobs in `used`: each one's home (the
/// unmarked pack holding it whose needed share is largest, so duplicates
/// empty the emptier packs), the packs to mark (nothing needed in them),
/// and the packs to repack (unused share above the limit, emptiest first,
/// within the copy budget).
fn plan_marks(
    packs: &BTreeMap<PackId, PackInfo>,
    marked: &HashSet<PackId>,
    stored: &HashMap<PackId, u64>,
    used: &BlobSet,
    opts: &RepackOptions,
) -> Result<Marks, PruneError> {
    let mut needed_bytes: HashMap<PackId, u64> = HashMap::new();
    for (id, p) in packs {
        let n = p.blobs.iter().filter(|b| used.contains(&b.id)).map(|b| u64::from(b.length)).sum();
        needed_bytes.insert(*id, n);
    }
    let share = |id: &PackId| {
        let size = stored.get(id).copied().unwrap_or(0).max(1);
        needed_bytes.get(id).copied().unwrap_or(0) as f64 / size as f64
    };
    let mut home: HashMap<BlobId, PackId> = HashMap::new();
    for (id, p) in packs.iter().filter(|(id, _)| !marked.contains(id) && stored.contains_key(id)) {
        for b in p.blobs.iter().filter(|b| used.contains(&b.id)) {
            let better = home.get(&b.id).is_none_or(|h| share(id) > share(h));
            if better {
                home.insert(b.id, *id);
            }
        }
    }
    for (id, p) in packs.iter().filter(|(id, _)| !marked.contains(id) && !stored.contains_key(id)) {
        if p.blobs.iter().any(|b| used.contains(&b.id) && !home.contains_key(&b.id)) {
            return Err(PruneError::MissingPack(format!("{} pack {}", p.kind.name(), id.short())));
        }
    }

    let mut to_mark: Vec<MarkedPack> = Vec::new();
    let mut repack: Vec<(f64, PackId)> = Vec::new();
    for (id, p) in packs.iter().filter(|(id, _)| !marked.contains(id)) {
        if !stored.contains_key(id) {
            continue;
        }
        let kept = p.kept_bytes(id, &home);
        if kept == 0 {
            to_mark.push(MarkedPack { id: *id, kind: p.kind });
        } else {
            // Measured on the blobs, so the header alone never makes a pack
            // look worth repacking.
            let blobs = p.blob_bytes();
            let unused = 1.0 - kept as f64 / blobs.max(1) as f64;
            if unused > opts.max_unused || opts.reencrypt {
                repack.push((unused, *id));
            }
        }
    }
    // Emptiest first, within the copy budget.
    repack.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    let mut chosen: Vec<PackId> = Vec::new();
    for (_, id) in repack {
        let kept = packs[&id].kept_bytes(&id, &home);
        if kept > budget {
            continue;
        }
        budget -= kept;
        chosen.push(id);
    }
    Ok(Marks { home, to_mark, chosen })
}

/// Staging leftovers: files under tmp/ that a process killed mid-write left
/// (a backup's pack being built, up to a pack's size each). Removed (counted
/// only, in a dry run) while no other run is alive, and only when untouched
/// for an hour: a live write appends to its file all the time.
fn remove_staging_leftovers(
    repo: &IndexedRepository,
    own: Option<&RunGuard>,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<(), PruneError> {
    let now = jiff::Timestamp::now();
    let others_alive = repo.repo().run_markers()?.iter().any(|(mid, marker)| {
        own.is_none_or(|g| g.id() != *mid)
            && marker.as_ref().map_or(true, |m| is_live(m, now) && !died_here(m, &opts.hostname))
    });
    if others_alive {
        return Ok(());
    }
    let before = std::time::SystemTime::now() - STAGING_GRACE;
    for (path, size) in repo.repo().staging_leftovers(before)? {
        if !opts.dry_run {
            repo.repo().delete_staging(&path)?;
        }
        report.staging_removed += 1;
        report.staging_bytes += size;
    }
    Ok(())
}

/// Copies the blobs whose home is one of `chosen` into new packs, verifying
/// each on the way (damage is never copied); returns the new packs' entries
/// and the packs copied. With `reencrypt`, blobs are sealed anew under the
/// current key epoch, and a pack chosen only for that (its unused share is
/// within `max_unused`) whose blobs are all current already is left alone.
fn copy_needed(
    repo: &IndexedRepository,
    packs: &BTreeMap<PackId, PackInfo>,
    home: &HashMap<BlobId, PackId>,
    chosen: &[PackId],
    max_unused: f64,
    reencrypt: bool,
) -> Result<(Vec<IndexPack>, Vec<PackId>), RepoError> {
    let mut writers = [repo.repo().pack_writer(BlobKind::Data), repo.repo().pack_writer(BlobKind::Tree)];
    let mut out = Vec::new();
    let flush = |w: &mut PackWriter, out: &mut Vec<IndexPack>| -> Result<(), RepoError> {
        if let Some(p) = w.finish()? {
            out.push(repo.repo().save_pack(p)?.0);
        }
        Ok(())
    };
    let mut copied = Vec::new();
    for id in chosen {
        let p = &packs[id];
        let object = || format!("{} pack {}", p.kind.name(), id.short());
        let bytes = repo.repo().read_pack(p.kind, id)?;
        if cairn_format::id::file_hash(&bytes) != *id.as_bytes() {
            return Err(RepoError::corrupt(object(), "content does not match its name; run `cairn check --read-data`"));
        }
        let envelope_of = |b: &IndexBlob| {
            bytes
                .get(b.offset as usize..b.offset as usize + b.length as usize)
                .ok_or_else(|| RepoError::corrupt(object(), "shorter than the index says"))
        };
        if reencrypt {
            let kept = p.kept_bytes(id, home);
            let blobs = p.blob_bytes();
            let worth_repacking = 1.0 - kept as f64 / blobs.max(1) as f64 > max_unused;
            let mut all_current = true;
            for b in &p.blobs {
                all_current &= repo.repo().envelope_is_current(envelope_of(b)?);
            }
            if all_current && !worth_repacking {
                continue;
            }
        }
        copied.push(*id);
        let w = &mut writers[if p.kind == BlobKind::Data { 0 } else { 1 }];
        for b in p.blobs.iter().filter(|b| home.get(&b.id) == Some(id)) {
            let envelope = envelope_of(b)?;
            repo.repo().open_envelope(p.kind, &b.id, envelope, b.raw_length, Verify::Full, &mut |base| {
                repo.read_delta_base(base)
            })?;
            // The envelope binds kind and blob id, not the pack: it moves as
            // is, unless it is to be sealed under the current epoch.
            let envelope =
                if reencrypt { repo.repo().reseal_envelope(p.kind, &b.id, envelope)? } else { envelope.to_vec() };
            let sealed = SealedBlob {
                kind: p.kind,
                id: b.id,
                envelope,
                raw_length: b.raw_length,
                base: b.base,
                sketch: b.sketch,
            };
            if w.add(sealed)? {
                flush(w, &mut out)?;
            }
        }
    }
    for w in &mut writers {
        flush(w, &mut out)?;
    }
    Ok((out, copied))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_backend::Backend;
    use cairn_backup::{BackupOptions, Excludes, NoProgress, ParentChoice};
    use cairn_repo::InitOptions;

    use super::*;

    const PW: &[u8] = b"pw";

    /// Found by the crash harness's long run: a killed prune's pid, taken
    /// by another process, kept every later prune out ("another prune is
    /// running") for two hours.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_reused_pid_does_not_keep_a_dead_run_alive() {
        let now = jiff::Timestamp::now();
        let me = std::process::id();
        let marker = |process: Option<String>| RunMarker {
            version: 1,
            kind: RunKind::Prune,
            hostname: "h".into(),
            pid: me,
            process,
            started: now,
            updated: now,
            plans_seen: None,
        };
        let mine = cairn_repo::lifecycle::process_identity(me);
        assert!(mine.is_some(), "Linux has /proc");
        assert!(!died_here(&marker(mine), "h"), "this very process is alive");
        assert!(died_here(&marker(Some("another boot:1".into())), "h"), "same pid, another process");
        assert!(!died_here(&marker(None), "h"), "an older marker without identity: the pid decides");
        assert!(!died_here(&marker(Some("another boot:1".into())), "other host"), "other hosts are not judged");
    }

    fn backup(backend: &Backend, dir: &std::path::Path) -> (SnapshotId, Snapshot) {
        let repo = Repository::open(backend.clone(), PW).unwrap().load_index().unwrap();
        let opts = BackupOptions {
            sources: cairn_backup::Sources::paths(vec![dir.to_path_buf()]),
            excludes: Excludes::default(),
            tags: vec![],
            hostname: "test".into(),
            parent: ParentChoice::None,
            force: false,
            time: None,
            workers: None,
            writes: Default::default(),
            deltas: Default::default(),
        };
        let out = cairn_backup::backup(repo, &opts, Arc::new(NoProgress)).unwrap();
        (out.id, out.snapshot)
    }

    fn noisy(n: usize, seed: u8) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Two snapshots of different content; the first is forgotten.
    fn setup() -> (Backend, tempfile::TempDir, (SnapshotId, Snapshot)) {
        let backend = Backend::memory().unwrap();
        let mut init = InitOptions::fast_for_tests();
        init.pack_size = 64 * 1024;
        Repository::init(backend.clone(), PW, &init).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), noisy(300_000, 1)).unwrap();
        let first = backup(&backend, dir.path());
        std::fs::write(dir.path().join("f"), noisy(300_000, 2)).unwrap();
        backup(&backend, dir.path());
        Repository::open(backend.clone(), PW).unwrap().delete_snapshot(&first.0).unwrap();
        (backend, dir, first)
    }

    fn run(backend: &Backend) -> PruneReport {
        let opts = PruneOptions { hostname: "pruner".into(), ..PruneOptions::default() };
        prune(Repository::open(backend.clone(), PW).unwrap(), &opts).unwrap()
    }

    fn check_clean(backend: &Backend) {
        let report =
            cairn_check::check(Repository::open(backend.clone(), PW).unwrap(), cairn_check::ReadData::All, &())
                .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// Writes one pack of `blobs` and an index file for it.
    fn save_pack(repo: &mut IndexedRepository, blobs: Vec<SealedBlob>) {
        let mut w = repo.repo().pack_writer(blobs[0].kind);
        for b in blobs {
            w.add(b).unwrap();
        }
        let (entry, _) = repo.repo().save_pack(w.finish().unwrap().unwrap()).unwrap();
        repo.repo().save_index(&IndexFile { supersedes: vec![], packs: vec![entry.clone()] }).unwrap();
        repo.index_mut().add_pack(&entry);
    }

    #[test]
    fn a_delta_left_in_a_pack_that_stays_keeps_its_base() {
        let backend = Backend::memory().unwrap();
        Repository::init(backend.clone(), PW, &InitOptions::fast_for_tests()).unwrap();
        let mut repo = Repository::open(backend.clone(), PW).unwrap().load_index().unwrap();
        // Pack 1: blob a, which nothing uses. Pack 2: b, a small delta
        // against a, which nothing uses either, beside c, a large blob a
        // snapshot needs: pack 2 is 99% used, so it stays as it is, b in it.
        let rows: String = (0..3000).map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n")).collect();
        let (a, b) = (rows.as_bytes().to_vec(), rows.replace("(7, ", "(70007, ").into_bytes());
        let c = noisy(200_000, 3);
        let ids = [&a, &b, &c].map(|x| repo.repo().blob_id(x));
        let sealed_a = repo.seal_blob(BlobKind::Data, ids[0], &a).unwrap();
        save_pack(&mut repo, vec![sealed_a]);
        let sealed_b = repo.seal_delta(ids[1], &b, ids[0]).unwrap();
        assert_eq!(sealed_b.base, Some(ids[0]), "b is stored as a delta");
        let sealed_c = repo.seal_blob(BlobKind::Data, ids[2], &c).unwrap();
        save_pack(&mut repo, vec![sealed_b, sealed_c]);
        let tree =
            cairn_format::tree::Tree { nodes: vec![Node { content: vec![ids[2]], ..Node::new(b"c", NodeKind::File) }] }
                .encode();
        let tree_id = repo.repo().blob_id(&tree);
        let sealed_tree = repo.seal_blob(BlobKind::Tree, tree_id, &tree).unwrap();
        save_pack(&mut repo, vec![sealed_tree]);
        let snap: Snapshot = serde_json::from_value(serde_json::json!({
            "version": 1, "time": "2026-12-06T00:00:00Z", "tree": tree_id, "paths": ["/"], "hostname": "h",
            "username": "u", "uid": 0, "gid": 0, "program_version": "test",
        }))
        .unwrap();
        repo.repo().save_snapshot(&snap).unwrap();

        let report = run(&backend);
        assert_eq!(report.packs_deleted, 0, "pack 1 holds b's base: {report:?}");
        let repo = Repository::open(backend.clone(), PW).unwrap().load_index().unwrap();
        assert_eq!(repo.index().get(&ids[1]).and_then(|l| l.base), Some(ids[0]));
        assert!(repo.index().contains(&ids[0]));
        check_clean(&backend);
    }

    #[test]
    fn a_backup_that_has_not_seen_the_plan_holds_the_deletion_back() {
        let (backend, _dir, _) = setup();
        let repo = Repository::open(backend.clone(), PW).unwrap();
        // A backup on another host, started before any plan existed.
        let running = repo.start_run(RunKind::Backup, "other-host").unwrap();
        let first = run(&backend);
        assert!(first.packs_unused > 0, "{first:?}");
        assert_eq!(first.packs_deleted, 0);
        assert_eq!(first.plans_waiting.len(), 1, "{first:?}");
        drop(running);
        let second = run(&backend);
        assert_eq!(second.plans_done, 1, "{second:?}");
        assert!(second.packs_deleted >= first.packs_unused);
        check_clean(&backend);
    }

    #[test]
    fn a_snapshot_written_after_marking_rescues_the_packs_it_needs() {
        let (backend, _dir, (_, forgotten)) = setup();
        let repo = Repository::open(backend.clone(), PW).unwrap();
        let running = repo.start_run(RunKind::Backup, "other-host").unwrap();
        let first = run(&backend);
        assert_eq!(first.plans_waiting.len(), 1);
        // That backup finishes with a snapshot of the old content, whose
        // packs are now marked.
        let id = repo.save_snapshot(&forgotten).unwrap();
        drop(running);
        let second = run(&backend);
        assert!(second.packs_rescued > 0, "{second:?}");
        check_clean(&backend);
        let repo = Repository::open(backend.clone(), PW).unwrap().load_index().unwrap();
        let node = repo.find_node(&forgotten.tree, forgotten.paths[0].as_bytes()).unwrap().unwrap();
        let subtree = repo.load_tree(&node.subtree.unwrap()).unwrap();
        let content: Vec<u8> = subtree.nodes[0].content.iter().flat_map(|b| repo.read_blob(b).unwrap()).collect();
        assert!(content == noisy(300_000, 1), "snapshot {} restores", id.short());
    }
}
