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
//!    else is spared. Then: the index files listing a pack to delete are
//!    replaced by files without it (the others stay as they are), the
//!    replaced index files, the packs, the plan are deleted, in that order,
//!    so a crash at any point leaves a repository `check` accepts and the
//!    next prune finishes the job.
//!
//! Memory: the index (36 bytes a blob), 16 bytes of each used blob's id,
//! and a row per pack; index files are read again a pack at a time where
//! a step needs what the index does not keep (a copy's sketch, which file
//! lists which pack).
//!
//! ```
//! use cairn_backend::Backend;
//! use cairn_prune::{prune, PruneOptions};
//! use cairn_repo::{InitOptions, Repository};
//! let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let report = prune(repo, &PruneOptions::default()).unwrap();
//! assert_eq!(report.packs_deleted, 0);
//! ```

use std::collections::{HashMap, HashSet};

use cairn_format::index::{IndexBlob, IndexFile, IndexPack};
use cairn_format::lifecycle::{DeletionPlan, MarkedPack, RunKind, RunMarker};
use cairn_format::snapshot::Snapshot;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_format::{BlobKind, FORMAT_VERSION, IndexId, PackId, PlanId, SnapshotId};
use cairn_repo::lifecycle::is_live;
use cairn_repo::{
    BlobCopy, BlobKey, BlobSet, INDEX_FILE_BLOBS, Index, IndexListing, IndexedRepository, ListedIndexFile, PackWriter,
    RepoError, Repository, RunGuard, SealedBlob, Sketches, Verify,
};
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

/// One pack of the index, as step 1 weighs it.
struct PackRow {
    id: PackId,
    kind: BlobKind,
    /// Its size in storage; `None` when the storage does not have it.
    stored: Option<u64>,
    /// A plan marks it already.
    marked: bool,
    /// Bytes of all its blobs (envelopes).
    blob_bytes: u64,
    /// Bytes of its blobs a snapshot needs.
    needed: u64,
    /// Bytes of the needed blobs whose home it is: what repacking it copies.
    kept: u64,
}

impl PackRow {
    /// Whether it can be a needed blob's home: stored, and not on its way out.
    fn eligible(&self) -> bool {
        self.stored.is_some() && !self.marked
    }

    /// Share of its stored bytes that snapshots need.
    fn needed_share(&self) -> f64 {
        self.needed as f64 / self.stored.unwrap_or(0).max(1) as f64
    }
}

/// A row for each pack of the index (by its number there), with the bytes
/// of its blobs.
fn pack_rows(index: &Index, stored: &HashMap<PackId, u64>, marked: &HashSet<PackId>) -> Vec<PackRow> {
    let mut rows: Vec<PackRow> = (index.packs().iter())
        .map(|(id, kind)| PackRow {
            id: *id,
            kind: *kind,
            stored: stored.get(id).copied(),
            marked: marked.contains(id),
            blob_bytes: 0,
            needed: 0,
            kept: 0,
        })
        .collect();
    index.for_each_blob(|_, copies| {
        for c in copies {
            rows[c.pack].blob_bytes += u64::from(c.length);
        }
    });
    rows
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
    let (mut repo, mut listing) = repo.load_index_listed(|_| true, Sketches::Dropped)?;
    let mut used = BlobSet::default();
    add_used(&repo, &snapshots, &mut used)?;
    report.snapshots = snapshots.len();
    report.blobs_used = used.len();
    report.packs = repo.index().packs().len();

    let mut stored: HashMap<PackId, u64> = HashMap::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        stored.extend(repo.repo().list_packs(kind)?.into_iter().map(|p| (p.id, p.size)));
    }
    report.packs_unindexed = stored.keys().filter(|id| repo.index().pack_number(id).is_none()).count();

    // Blobs left where they are (in packs neither marked nor repacked) stay
    // indexed, used or not, and a delta among them needs its base: those
    // count as used too, with the bases of every copy of them, which can
    // keep more packs. Until nothing changes (`used` only grows).
    let mut rows = pack_rows(repo.index(), &stored, &marked);
    let marks = loop {
        let marks = plan_marks(repo.index(), &mut rows, &used, &opts.repack)?;
        let going: HashSet<usize> = marks.to_mark.iter().chain(&marks.chosen).copied().collect();
        let (mut left, mut bases) = (Vec::new(), Vec::new());
        repo.index().for_each_blob(|key, copies| {
            let stays = |c: &BlobCopy| rows[c.pack].eligible() && !going.contains(&c.pack);
            // The cheap test first: most blobs are no delta.
            if copies.iter().any(|c| c.base.is_some() && stays(c)) && !used.contains_key(key) {
                left.push(key);
                bases.extend(copies.iter().filter_map(|c| c.base));
            }
        });
        if left.is_empty() {
            break marks;
        }
        for key in left {
            used.insert_key(key);
        }
        for base in bases {
            repo.add_with_bases(base, &mut used);
        }
    };
    for n in &marks.to_mark {
        report.packs_unused += 1;
        report.bytes_unused += rows[*n].stored.unwrap_or(0);
    }
    if opts.dry_run {
        for n in &marks.chosen {
            report.packs_repacked += 1;
            report.bytes_repacked += rows[*n].stored.unwrap_or(0);
        }
        remove_staging_leftovers(&repo, None, opts, &mut report)?;
        return Ok(report);
    }
    let mut to_mark: Vec<usize> = marks.to_mark.clone();
    if !marks.chosen.is_empty() {
        let copied = copy_needed(&repo, &listing, &rows, &marks, &used, &opts.repack)?;
        for n in &copied.packs {
            report.packs_repacked += 1;
            report.bytes_repacked += rows[*n].stored.unwrap_or(0);
            report.bytes_copied += rows[*n].kept;
        }
        if opts.repack.reencrypt {
            report.packs_reencrypted = copied.packs.len();
        }
        to_mark.extend(copied.packs);
    }
    if !to_mark.is_empty() {
        let packs = to_mark.iter().map(|n| MarkedPack { id: rows[*n].id, kind: rows[*n].kind }).collect();
        let plan = DeletionPlan { version: FORMAT_VERSION, created: now, hostname: opts.hostname.clone(), packs };
        repo.repo().save_deletion_plan(&plan)?;
    }

    // Step 1's tables are done with.
    drop((rows, marks));

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
    // index as it is now (step 1's, and the files written since: the
    // backups' and this run's copies).
    let seen: HashSet<SnapshotId> = snapshots.iter().map(|(id, _)| *id).collect();
    let newer: Vec<_> = repo.repo().snapshots()?.into_iter().filter(|(id, _)| !seen.contains(id)).collect();
    let known: HashSet<IndexId> = listing.live.iter().map(|f| f.id).chain(listing.superseded.iter().copied()).collect();
    let added = repo.add_new_index_files(&known)?;
    listing.live.extend(added);
    add_used(&repo, &newer, &mut used)?;

    // A marked pack holding a needed blob of which no pack outside the
    // plans holds a copy is spared.
    let mut doomed: HashSet<PackId> = ready.iter().flat_map(|(_, p)| p.packs.iter().map(|m| m.id)).collect();
    let index = repo.index();
    let is_doomed: Vec<bool> = index.packs().iter().map(|(id, _)| doomed.contains(id)).collect();
    let mut rescued: HashSet<PackId> = HashSet::new();
    index.for_each_blob(|key, copies| {
        if copies.iter().all(|c| is_doomed[c.pack]) && used.contains_key(key) {
            rescued.extend(copies.iter().map(|c| index.packs()[c.pack].0));
        }
    });
    for id in &rescued {
        doomed.remove(id);
    }
    report.packs_rescued = rescued.len();

    rewrite_index_files(repo.repo(), &listing, &doomed)?;
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

/// Takes the `doomed` packs out of the index files before they are deleted:
/// the files that list one are replaced by files of the rest of their
/// packs, written a part of [`INDEX_FILE_BLOBS`] blobs at a time, read a
/// pack at a time; the last part supersedes them (and what they
/// superseded). Then every superseded file goes, those superseded earlier
/// first: a superseded file must not come back into force while its
/// successor goes. A crash between parts leaves packs listed twice, which
/// readers take as one.
fn rewrite_index_files(repo: &Repository, listing: &IndexListing, doomed: &HashSet<PackId>) -> Result<(), RepoError> {
    let (affected, unaffected): (Vec<&ListedIndexFile>, Vec<&ListedIndexFile>) =
        listing.live.iter().partition(|f| f.packs.iter().any(|p| doomed.contains(p)));
    // Packs another file in force lists need not be listed again.
    let mut listed: HashSet<PackId> = unaffected.iter().flat_map(|f| f.packs.iter().copied()).collect();
    let mut supersedes: Vec<IndexId> = Vec::new();
    for f in &affected {
        for id in std::iter::once(&f.id).chain(&f.supersedes) {
            if !supersedes.contains(id) {
                supersedes.push(*id);
            }
        }
    }
    let mut part: Vec<IndexPack> = Vec::new();
    let mut blobs = 0;
    for f in &affected {
        let mut failed = None;
        repo.read_index_file(&f.id, &mut |p| {
            if failed.is_some() || doomed.contains(&p.id) || !listed.insert(p.id) {
                return;
            }
            blobs += p.blobs.len();
            part.push(p);
            if blobs >= INDEX_FILE_BLOBS {
                let packs = std::mem::take(&mut part);
                blobs = 0;
                if let Err(e) = repo.save_index(&IndexFile { supersedes: Vec::new(), packs }) {
                    failed = Some(e);
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    // An index file of no packs would stay for good; without one, the
    // files go all the same (the superseded first).
    if !part.is_empty() {
        repo.save_index(&IndexFile { supersedes, packs: part })?;
    }
    for id in &listing.superseded {
        repo.delete_index(id)?;
    }
    for f in &affected {
        repo.delete_index(&f.id)?;
    }
    Ok(())
}

/// What step 1 decided (packs by their number in the index).
struct Marks {
    /// The home pack of each needed blob stored in more than one pack (a
    /// blob stored once has its one pack as home, if that is eligible).
    homes: HashMap<BlobKey, usize>,
    /// Packs nothing needed is in.
    to_mark: Vec<usize>,
    /// Packs to copy the needed blobs out of, then mark.
    chosen: Vec<usize>,
}

impl Marks {
    /// Whether the needed blob `key` has its home in pack `pack`, one of its copies' packs.
    fn is_home(&self, key: BlobKey, pack: usize) -> bool {
        self.homes.get(&key).is_none_or(|h| *h == pack)
    }
}

/// Step 1's decisions for the blobs in `used`: each one's home (the
/// eligible pack holding it whose needed share is largest, so duplicates
/// empty the emptier packs), the packs to mark (nothing needed in them),
/// and the packs to repack (unused share above the limit, emptiest first,
/// within the copy budget). Fills the rows' `needed` and `kept`.
fn plan_marks(index: &Index, rows: &mut [PackRow], used: &BlobSet, opts: &RepackOptions) -> Result<Marks, PruneError> {
    for r in rows.iter_mut() {
        (r.needed, r.kept) = (0, 0);
    }
    // One pass over the index (each lookup in `used` a cache miss on a
    // large repository): a blob stored once has its pack as home; the few
    // stored more than once wait until every pack's needed share is known.
    let mut several = Vec::new();
    index.for_each_blob(|key, copies| {
        if !used.contains_key(key) {
            return;
        }
        for c in copies {
            rows[c.pack].needed += u64::from(c.length);
        }
        if copies.len() > 1 {
            several.push((key, copies.to_vec()));
        } else if rows[copies[0].pack].eligible() {
            rows[copies[0].pack].kept += u64::from(copies[0].length);
        }
    });
    let mut homes = HashMap::new();
    for (key, copies) in &several {
        // Equal shares: the pack with the lower id, so a run decides the same way every time.
        let home = (copies.iter().filter(|c| rows[c.pack].eligible())).max_by(|a, b| {
            let (ra, rb) = (&rows[a.pack], &rows[b.pack]);
            ra.needed_share().total_cmp(&rb.needed_share()).then(rb.id.cmp(&ra.id))
        });
        if let Some(h) = home {
            rows[h.pack].kept += u64::from(h.length);
            homes.insert(*key, h.pack);
        }
    }
    // A needed blob with no home, in a pack the storage lacks and no plan
    // marks: damage to look at before deleting more.
    let homeless = |c: &BlobCopy| !rows[c.pack].marked && rows[c.pack].stored.is_none();
    let mut missing = None;
    index.for_each_blob(|key, copies| {
        if missing.is_none()
            && copies.iter().any(homeless)
            && !copies.iter().any(|c| rows[c.pack].eligible())
            && used.contains_key(key)
        {
            missing = copies.iter().find(|c| homeless(c)).map(|c| c.pack);
        }
    });
    if let Some(n) = missing {
        let r = &rows[n];
        return Err(PruneError::MissingPack(format!("{} pack {}", r.kind.name(), r.id.short())));
    }

    let mut to_mark = Vec::new();
    let mut repack: Vec<(f64, usize)> = Vec::new();
    for (n, r) in rows.iter().enumerate().filter(|(_, r)| r.eligible()) {
        if r.kept == 0 {
            to_mark.push(n);
        } else {
            // Measured on the blobs, so the header alone never makes a pack
            // look worth repacking.
            let unused = 1.0 - r.kept as f64 / r.blob_bytes.max(1) as f64;
            if unused > opts.max_unused || opts.reencrypt {
                repack.push((unused, n));
            }
        }
    }
    // Emptiest first, within the copy budget.
    repack.sort_by(|a, b| b.0.total_cmp(&a.0).then(rows[a.1].id.cmp(&rows[b.1].id)));
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    let mut chosen = Vec::new();
    for (_, n) in repack {
        let kept = rows[n].kept;
        if kept > budget {
            continue;
        }
        budget -= kept;
        chosen.push(n);
    }
    Ok(Marks { homes, to_mark, chosen })
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

/// What copying the needed blobs out of the chosen packs did.
struct Copied {
    /// The packs copied (a pack chosen only to be sealed anew whose blobs
    /// all are current already is left alone).
    packs: Vec<usize>,
    /// Index files written for the new packs.
    files: usize,
}

/// Copies the blobs whose home is one of `marks.chosen` into new packs,
/// verifying each on the way (damage is never copied), and writes index
/// files for the new packs, one each [`INDEX_FILE_BLOBS`] blobs. The blob
/// lists come from the index files that list a chosen pack, read again a
/// pack at a time: the index in memory keeps no sketches, and a copy keeps
/// its blob's. With `reencrypt`, blobs are sealed anew under the current
/// key epoch, and a pack chosen only for that (its unused share is within
/// `max_unused`) whose blobs are all current already is left alone.
fn copy_needed(
    repo: &IndexedRepository,
    listing: &IndexListing,
    rows: &[PackRow],
    marks: &Marks,
    used: &BlobSet,
    repack: &RepackOptions,
) -> Result<Copied, RepoError> {
    let chosen: HashSet<PackId> = marks.chosen.iter().map(|n| rows[*n].id).collect();
    let mut copier = Copier {
        repo,
        writers: [repo.repo().pack_writer(BlobKind::Data), repo.repo().pack_writer(BlobKind::Tree)],
        done: HashSet::new(),
        written: Vec::new(),
        out: Copied { packs: Vec::new(), files: 0 },
    };
    for file in listing.live.iter().filter(|f| f.packs.iter().any(|p| chosen.contains(p))) {
        let mut failed = None;
        repo.repo().read_index_file(&file.id, &mut |p| {
            if failed.is_some() || !chosen.contains(&p.id) {
                return;
            }
            let Some(n) = repo.index().pack_number(&p.id) else { return };
            if let Err(e) = copier.copy_pack(n, &p, &rows[n], marks, used, repack) {
                failed = Some(e);
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    copier.finish()
}

/// Copies packs' needed blobs into new packs (see [`copy_needed`]).
struct Copier<'a> {
    repo: &'a IndexedRepository,
    writers: [PackWriter; 2],
    /// Packs copied or passed over already (an index file may list a pack twice).
    done: HashSet<usize>,
    /// Entries of the new packs not yet in an index file.
    written: Vec<IndexPack>,
    out: Copied,
}

impl Copier<'_> {
    fn copy_pack(
        &mut self,
        n: usize,
        p: &IndexPack,
        row: &PackRow,
        marks: &Marks,
        used: &BlobSet,
        repack: &RepackOptions,
    ) -> Result<(), RepoError> {
        if !self.done.insert(n) {
            return Ok(());
        }
        let repo = self.repo.repo();
        let object = || format!("{} pack {}", p.kind.name(), p.id.short());
        let bytes = repo.read_pack(p.kind, &p.id)?;
        if cairn_format::id::file_hash(&bytes) != *p.id.as_bytes() {
            return Err(RepoError::corrupt(object(), "content does not match its name; run `cairn check --read-data`"));
        }
        let envelope_of = |b: &IndexBlob| {
            bytes
                .get(b.offset as usize..b.offset as usize + b.length as usize)
                .ok_or_else(|| RepoError::corrupt(object(), "shorter than the index says"))
        };
        if repack.reencrypt {
            let worth_repacking = 1.0 - row.kept as f64 / row.blob_bytes.max(1) as f64 > repack.max_unused;
            let mut all_current = true;
            for b in &p.blobs {
                all_current &= repo.envelope_is_current(envelope_of(b)?);
            }
            if all_current && !worth_repacking {
                return Ok(());
            }
        }
        self.out.packs.push(n);
        let (ir, k) = (self.repo, if p.kind == BlobKind::Data { 0 } else { 1 });
        let homed = |b: &&IndexBlob| used.contains(&b.id) && marks.is_home(BlobKey::of(&b.id), n);
        for b in p.blobs.iter().filter(homed) {
            let envelope = envelope_of(b)?;
            repo.open_envelope(p.kind, &b.id, envelope, b.raw_length, Verify::Full, &mut |base| {
                ir.read_delta_base(base)
            })?;
            // The envelope binds kind and blob id, not the pack: it moves as
            // is, unless it is to be sealed under the current epoch.
            let envelope =
                if repack.reencrypt { repo.reseal_envelope(p.kind, &b.id, envelope)? } else { envelope.to_vec() };
            let sealed = SealedBlob {
                kind: p.kind,
                id: b.id,
                envelope,
                raw_length: b.raw_length,
                base: b.base,
                sketch: b.sketch,
            };
            if self.writers[k].add(sealed)? {
                let finished = self.writers[k].finish()?;
                self.save(finished)?;
            }
        }
        Ok(())
    }

    /// Stores a finished pack, and an index file once enough blobs wait for one.
    fn save(&mut self, pack: Option<cairn_repo::FinishedPack>) -> Result<(), RepoError> {
        if let Some(pack) = pack {
            self.written.push(self.repo.repo().save_pack(pack)?.0);
        }
        if self.written.iter().map(|p| p.blobs.len()).sum::<usize>() >= INDEX_FILE_BLOBS {
            self.save_index()?;
        }
        Ok(())
    }

    fn save_index(&mut self) -> Result<(), RepoError> {
        if !self.written.is_empty() {
            let packs = std::mem::take(&mut self.written);
            self.repo.repo().save_index(&IndexFile { supersedes: Vec::new(), packs })?;
            self.out.files += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Copied, RepoError> {
        for k in 0..self.writers.len() {
            let finished = self.writers[k].finish()?;
            self.save(finished)?;
        }
        self.save_index()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_backend::Backend;
    use cairn_backup::{BackupOptions, Excludes, NoProgress, ParentChoice};
    use cairn_repo::InitOptions;

    use cairn_format::BlobId;

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

    /// A fresh repository and three blobs with their ids: a (rows of SQL),
    /// b (a with one row changed: a small delta against a) and c (noise of
    /// `seed`).
    fn three_blobs(seed: u8) -> (Backend, IndexedRepository, [Vec<u8>; 3], [BlobId; 3]) {
        let backend = Backend::memory().unwrap();
        Repository::init(backend.clone(), PW, &InitOptions::fast_for_tests()).unwrap();
        let repo = Repository::open(backend.clone(), PW).unwrap().load_index().unwrap();
        let rows: String = (0..3000).map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n")).collect();
        let blobs = [rows.as_bytes().to_vec(), rows.replace("(7, ", "(70007, ").into_bytes(), noisy(200_000, seed)];
        let ids = blobs.each_ref().map(|x| repo.repo().blob_id(x));
        (backend, repo, blobs, ids)
    }

    /// Saves a snapshot of one file whose content is `blob`.
    fn save_snapshot_of(repo: &mut IndexedRepository, blob: BlobId) {
        let tree =
            cairn_format::tree::Tree { nodes: vec![Node { content: vec![blob], ..Node::new(b"c", NodeKind::File) }] }
                .encode();
        let tree_id = repo.repo().blob_id(&tree);
        let sealed_tree = repo.seal_blob(BlobKind::Tree, tree_id, &tree).unwrap();
        save_pack(repo, vec![sealed_tree]);
        let snap: Snapshot = serde_json::from_value(serde_json::json!({
            "version": 1, "time": "2026-12-06T00:00:00Z", "tree": tree_id, "paths": ["/"], "hostname": "h",
            "username": "u", "uid": 0, "gid": 0, "program_version": "test",
        }))
        .unwrap();
        repo.repo().save_snapshot(&snap).unwrap();
    }

    /// Found by reading prune's marking: a blob stored twice (two backups
    /// that stored the same new content at once), whole in one pack and as
    /// a delta in another. The marking followed the delta chain of the copy
    /// the index tells (the whole one) but could give the blob its home in
    /// the other pack, and then delete the base that copy needs.
    #[test]
    fn a_blob_stored_whole_and_as_a_delta_keeps_the_base_of_either_copy() {
        let (backend, mut repo, [a, b, c], ids) = three_blobs(4);
        // Pack 1: a, which no snapshot names.
        let sealed_a = repo.seal_blob(BlobKind::Data, ids[0], &a).unwrap();
        save_pack(&mut repo, vec![sealed_a]);
        // Pack 2: b whole, beside c, which nothing uses; pack 3: b as a
        // delta against a, so pack 3 is the fuller and b's home. One index
        // file lists both, pack 2 first: the index tells b's whole copy.
        let whole_b = repo.seal_blob(BlobKind::Data, ids[1], &b).unwrap();
        let sealed_c = repo.seal_blob(BlobKind::Data, ids[2], &c).unwrap();
        let delta_b = repo.seal_delta(ids[1], &b, ids[0]).unwrap();
        assert_eq!(delta_b.base, Some(ids[0]), "b's second copy is a delta");
        let mut packs = Vec::new();
        for blobs in [vec![whole_b, sealed_c], vec![delta_b]] {
            let mut w = repo.repo().pack_writer(BlobKind::Data);
            for blob in blobs {
                w.add(blob).unwrap();
            }
            packs.push(repo.repo().save_pack(w.finish().unwrap().unwrap()).unwrap().0);
        }
        let file = IndexFile { supersedes: vec![], packs };
        repo.repo().save_index(&file).unwrap();
        repo.index_mut().add_file(&file);
        save_snapshot_of(&mut repo, ids[1]);

        let report = run(&backend);
        assert!(report.packs_deleted >= 1, "pack 2 goes: {report:?}");
        check_clean(&backend);
        let repo = Repository::open(backend.clone(), PW).unwrap().load_index().unwrap();
        assert!(repo.read_blob(&ids[1]).unwrap() == b, "b reads back");
    }

    #[test]
    fn a_delta_left_in_a_pack_that_stays_keeps_its_base() {
        // Pack 1: blob a, which nothing uses. Pack 2: b, a small delta
        // against a, which nothing uses either, beside c, a large blob a
        // snapshot needs: pack 2 is 99% used, so it stays as it is, b in it.
        let (backend, mut repo, [a, b, c], ids) = three_blobs(3);
        let sealed_a = repo.seal_blob(BlobKind::Data, ids[0], &a).unwrap();
        save_pack(&mut repo, vec![sealed_a]);
        let sealed_b = repo.seal_delta(ids[1], &b, ids[0]).unwrap();
        assert_eq!(sealed_b.base, Some(ids[0]), "b is stored as a delta");
        let sealed_c = repo.seal_blob(BlobKind::Data, ids[2], &c).unwrap();
        save_pack(&mut repo, vec![sealed_b, sealed_c]);
        save_snapshot_of(&mut repo, ids[2]);

        let report = run(&backend);
        assert_eq!(report.packs_deleted, 0, "pack 1 holds b's base: {report:?}");
        let repo = Repository::open(backend.clone(), PW).unwrap().load_index().unwrap();
        assert_eq!(repo.index().get(&ids[1]).and_then(|l| l.base), Some(ids[0]));
        assert!(repo.index().contains(&ids[0]));
        check_clean(&backend);
    }

    /// Each index file's packs, by file.
    fn index_files(backend: &Backend) -> HashMap<IndexId, Vec<PackId>> {
        let repo = Repository::open(backend.clone(), PW).unwrap();
        (repo.index_ids().unwrap().into_iter())
            .map(|id| (id, repo.load_index_file(&id).unwrap().packs.iter().map(|p| p.id).collect()))
            .collect()
    }

    #[test]
    fn only_the_index_files_listing_a_deleted_pack_are_rewritten() {
        let (backend, _dir, _) = setup();
        let before = index_files(&backend);
        let report = run(&backend);
        assert!(report.packs_deleted > 0, "{report:?}");
        let after = index_files(&backend);
        let packs: HashSet<PackId> = {
            let repo = Repository::open(backend.clone(), PW).unwrap();
            let listed = [BlobKind::Data, BlobKind::Tree].map(|k| repo.list_packs(k).unwrap());
            listed.into_iter().flatten().map(|p| p.id).collect()
        };
        for (id, listed) in &before {
            let deleted = listed.iter().any(|p| !packs.contains(p));
            assert_eq!(after.contains_key(id), !deleted, "index {} lists a deleted pack: {deleted}", id.short());
        }
        assert!(after.values().flatten().all(|p| packs.contains(p)), "no file lists a deleted pack");
        check_clean(&backend);
    }

    /// A prune that died after writing an index file superseding the others
    /// (as prune wrote one before) left them behind: once that file goes,
    /// none of them may come back into force with the packs it deleted.
    #[test]
    fn files_a_dead_prune_superseded_do_not_come_back() {
        let (backend, _dir, _) = setup();
        let repo = Repository::open(backend.clone(), PW).unwrap();
        let old = repo.index_ids().unwrap();
        let packs = old.iter().flat_map(|id| repo.load_index_file(id).unwrap().packs).collect();
        repo.save_index(&IndexFile { supersedes: old.clone(), packs }).unwrap();
        let report = run(&backend);
        assert!(report.packs_deleted > 0, "{report:?}");
        let after = index_files(&backend);
        assert!(old.iter().all(|id| !after.contains_key(id)), "the superseded files are gone");
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
