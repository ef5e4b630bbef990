//! The checker: finds every damaged or missing object and names what it affects.
//!
//! Structure (always): every index file decrypts; every indexed pack exists
//! and its header agrees with the index; every snapshot decrypts and every
//! tree and blob it references is indexed. Data (`--read-data`, or a subset):
//! every selected pack hashes to its name and every blob in it decrypts and
//! matches its id. Each problem names the object and the snapshots and paths
//! it affects; packs no index mentions are reported as leftovers, not damage.
//!
//! ```
//! use cairn_backend::Backend;
//! use cairn_check::{check, ReadData};
//! use cairn_repo::{InitOptions, Repository};
//!
//! let backend = Backend::memory().unwrap();
//! Repository::init(backend.clone(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let repo = Repository::open(backend, b"pw").unwrap();
//! let report = check(repo, ReadData::All, &()).unwrap();
//! assert!(report.problems.is_empty());
//! assert_eq!(report.snapshots, 0);
//! ```

mod mend;
mod repair;

pub use mend::{Original, Repaired, repair_snapshots};
pub use repair::{DamagedPack, PackRepairOutcome, PackRepairPlan, plan_pack_repair, repair_packs};

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use cairn_format::index::IndexPack;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_format::{BlobId, BlobKind, IndexId, PackId, SnapshotId};
use cairn_repo::{IndexBuilder, IndexedRepository, MAX_DELTA_DEPTH, RepoError, Repository, Sketches, Verify};
use cairn_view::walk::{Step, Visitor, walk};
use rayon::prelude::*;
use serde::Serialize;

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// Structure only.
    None,
    /// Every pack.
    All,
    /// Group `n` of `m` (1-based), chosen by pack id: running 1/m .. m/m covers all.
    Subset(u32, u32),
    /// A random share of the packs, in percent.
    Percent(f64),
}

impl ReadData {
    /// A subset as a user writes it: `N/M` (group N of M) or `P%` (a random
    /// share of the packs).
    pub fn parse_subset(s: &str) -> Result<ReadData, String> {
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| format!("invalid subset {s:?}: use N/M or P%"))?;
            if !(0.0..=100.0).contains(&p) || p == 0.0 {
                return Err(format!("invalid subset {s:?}: the percentage must be above 0 and at most 100"));
            }
            return Ok(ReadData::Percent(p));
        }
        if let Some((n, m)) = s.split_once('/')
            && let (Ok(n), Ok(m)) = (n.trim().parse::<u32>(), m.trim().parse::<u32>())
            && m > 0
            && (1..=m).contains(&n)
        {
            return Ok(ReadData::Subset(n, m));
        }
        Err(format!("invalid subset {s:?}: use N/M (1 <= N <= M) or P%"))
    }
}

/// One problem found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    /// The damaged or missing object, e.g. `data pack 1a2b3c4d`.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// Affected snapshots (short ids) and paths in them.
    pub affects: Vec<String>,
}

/// The result of a check.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Damage found (non-empty: exit code 1).
    pub problems: Vec<Problem>,
    /// Not damage: e.g. packs no index mentions.
    pub notes: Vec<String>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Packs in the repository.
    pub packs: u64,
    /// Packs whose data was read.
    pub packs_read: u64,
    /// Blobs decrypted and verified.
    pub blobs_verified: u64,
    /// Bytes read for data verification.
    pub bytes_read: u64,
}

/// Progress of the data read.
pub trait CheckProgress: Send + Sync {
    /// Total packs to read.
    fn start_read(&self, _packs: u64, _bytes: u64) {}
    /// One pack was read.
    fn pack_read(&self, _bytes: u64) {}
}

impl CheckProgress for () {}

/// Why a blob cannot be used.
#[derive(Clone)]
struct Bad {
    object: String,
    message: String,
}

fn selected(read: ReadData, id: &PackId, seed: &std::hash::RandomState) -> bool {
    match read {
        ReadData::None => false,
        ReadData::All => true,
        ReadData::Subset(n, m) => u32::from(id.as_bytes()[0]) % m == (n - 1) % m,
        ReadData::Percent(p) => (seed.hash_one(id.as_bytes()) as f64 / u64::MAX as f64) * 100.0 < p,
    }
}

/// Runs a check.
pub fn check(repo: Repository, read: ReadData, progress: &dyn CheckProgress) -> Result<CheckReport, RepoError> {
    let mut report = CheckReport::default();
    // Key files: one damaged locks out its password (the others still open).
    for (name, key) in repo.key_files()? {
        if let Err(e) = key {
            let why = match e {
                RepoError::Corrupt { reason, .. } => reason,
                // The storage failing to answer is not a damaged key.
                e @ RepoError::Backend(_) => return Err(e),
                other => other.to_string(),
            };
            report.problems.push(Problem {
                object: format!("key {}", &name[..name.len().min(8)]),
                message: format!("{why}; its password may no longer open the repository"),
                affects: vec![],
            });
        }
    }
    // Snapshots before the index: a backup writes its index file before its
    // snapshot, so a backup finishing meanwhile cannot look like damage.
    let snapshot_ids = repo.snapshot_ids()?;
    let (live, blobs) = survey_index(&repo, &mut report)?;

    // Packs: present, header agrees with the index. Data packs in a cold
    // tier are left alone unless data is to be read: commands that need no
    // file content never touch the cold tier.
    let skip_cold = repo.has_cold_tier() && read == ReadData::None;
    if skip_cold {
        report
            .notes
            .push("data packs are in the cold tier and were not looked at; `check --read-data` reads them".into());
    }
    let mut stored: HashMap<PackId, (BlobKind, u64)> = HashMap::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        if skip_cold && kind == BlobKind::Data {
            continue;
        }
        stored.extend(repo.list_packs(kind)?.into_iter().map(|p| (p.id, (kind, p.size))));
    }
    report.packs = stored.len() as u64;
    let bad: Mutex<HashMap<BlobId, Bad>> = Mutex::new(HashMap::new());
    let packs = PackCheck { stored: &stored, skip_cold, bad: &bad };

    // The index files' own entries (duplicates included) are compared with
    // the pack headers a batch of packs at a time, as the index is built
    // (room for every blob taken at once: grown as it filled, it took up to
    // three times its size).
    let mut index = IndexBuilder::new(Sketches::Dropped);
    index.reserve(blobs);
    let mut header_problems = Vec::new();
    let unreadable = in_batches(&repo, &live, &mut |p| index.add(p), &mut |batch| {
        header_problems.extend(packs.headers(&repo, batch));
    });
    report.problems.extend(unreadable);
    report.problems.extend(header_problems);
    let repo = repo.with_index(index.build());

    let indexed: HashSet<PackId> = repo.index().packs().iter().map(|(id, _)| *id).collect();
    let mut leftovers: Vec<&PackId> = stored.keys().filter(|id| !indexed.contains(id)).collect();
    leftovers.sort();
    for id in leftovers {
        report.notes.push(format!(
            "{} pack {} is in no index (left by an interrupted backup, or its index file was lost: `cairn repair index` lists it again; prune leaves it alone)",
            stored[id].0.name(),
            id.short()
        ));
    }

    // Data, once the whole index is there to find delta bases in other packs.
    if read != ReadData::None {
        let seed = std::hash::RandomState::new();
        let mut chosen: HashSet<PackId> =
            indexed.iter().filter(|id| selected(read, id, &seed) && stored.contains_key(id)).copied().collect();
        progress.start_read(chosen.len() as u64, chosen.iter().map(|id| stored[id].1).sum());
        // A file unreadable now was reported above, or was replaced by a prune since.
        let _ = in_batches(repo.repo(), &live, &mut |_| {}, &mut |batch| {
            packs.read(&repo, batch, &mut chosen, progress, &mut report);
        });
    }

    // Snapshots and the trees and blobs they reference.
    let bad = bad.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut walker = TreeWalker { repo: &repo, bad: &bad, memo: HashMap::new(), out: Vec::new(), open: Vec::new() };
    let mut affected: HashMap<String, (Bad, BTreeSet<String>)> = HashMap::new();
    for sid in snapshot_ids {
        let snap = match repo.repo().load_snapshot(&sid) {
            Ok(s) => s,
            // Removed by a forget since the listing: not damage.
            Err(RepoError::Backend(e)) if e.is_not_found() => continue,
            Err(e) => {
                report.problems.push(Problem {
                    object: format!("snapshot {}", sid.short()),
                    message: e.to_string(),
                    affects: vec![],
                });
                continue;
            }
        };
        report.snapshots += 1;
        for d in walker.walk(&snap.tree).iter() {
            let entry = affected.entry(d.key.clone()).or_insert_with(|| (d.why.clone(), BTreeSet::new()));
            entry.1.insert(format!("{} {}", short(&sid), if d.path.is_empty() { "/" } else { &d.path }));
        }
    }
    // Damage in packs no snapshot uses is still damage.
    for (id, why) in &bad {
        let key = format!("blob {}", id.short());
        affected.entry(key).or_insert_with(|| (why.clone(), BTreeSet::new()));
    }
    let mut per_object: HashMap<String, Problem> = HashMap::new();
    for (key, (why, paths)) in affected {
        let object = if why.object.is_empty() { key.clone() } else { why.object.clone() };
        let p = per_object.entry(format!("{object}\0{}", why.message)).or_insert_with(|| Problem {
            object,
            message: why.message.clone(),
            affects: vec![],
        });
        p.affects.extend(paths);
    }
    // Problems already reported for a pack get their affected paths merged.
    for p in per_object.into_values() {
        if let Some(existing) = report.problems.iter_mut().find(|e| e.object == p.object) {
            existing.affects.extend(p.affects);
        } else {
            report.problems.push(p);
        }
    }
    for p in &mut report.problems {
        p.affects.sort();
        p.affects.dedup();
    }
    report.problems.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(report)
}

fn short(id: &SnapshotId) -> String {
    id.short()
}

/// Index entries compared with pack headers and read at a time: a batch
/// of packs holds about this many blobs (48 bytes each), and at
/// least two packs per thread; a delta is verified right after its base
/// when both are in the batch.
/// Every entry of every file held at once was check's peak: 239 MiB for a
/// million files.
const BATCH_BLOBS: usize = 50_000;

/// A batch of this many blobs closes at a pack per thread: packs of small
/// blobs hold 48,000 each (320 bytes stored), and two of them per thread
/// made check's peak grow with the machine's cores (113-116 MiB with 2
/// threads, 137-146 with 4, 216-222 with 8, over 576,000 blobs).
const MAX_BATCH_BLOBS: usize = 100_000;

/// An index file that cannot be read or decoded.
fn index_problem(id: &IndexId, e: RepoError) -> Problem {
    Problem { object: format!("index {}", id.short()), message: e.to_string(), affects: vec![] }
}

/// Reads every index file, one at a time: each damaged one is named;
/// files another one supersedes (left by an interrupted prune) are out of
/// force. Returns the files in force and how many blobs they list.
fn survey_index(repo: &Repository, report: &mut CheckReport) -> Result<(Vec<IndexId>, usize), RepoError> {
    let mut readable = Vec::new();
    let mut superseded = HashSet::new();
    for id in repo.index_ids()? {
        let mut blobs = 0;
        match repo.read_index_file(&id, &mut |p| blobs += p.blobs.len()) {
            Ok(s) => {
                superseded.extend(s);
                readable.push((id, blobs));
            }
            Err(e) => report.problems.push(index_problem(&id, e)),
        }
    }
    let live: Vec<(IndexId, usize)> = readable.into_iter().filter(|(id, _)| !superseded.contains(id)).collect();
    let blobs = live.iter().map(|(_, n)| n).sum();
    Ok((live.into_iter().map(|(id, _)| id).collect(), blobs))
}

/// Reads the index files `live` again, each pack into `each` and into
/// batches handed to `run`; returns the problems of files now unreadable
/// (one replaced by a prune since is not one: the file replacing it lists
/// its packs).
fn in_batches(
    repo: &Repository,
    live: &[IndexId],
    each: &mut dyn FnMut(&IndexPack),
    run: &mut dyn FnMut(&Batch),
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut batch = Batch::default();
    for id in live {
        let read = repo.read_index_file(id, &mut |p| {
            each(&p);
            batch.add(p);
            // Packs enough for every thread twice over, or a pack of small
            // blobs read alone ran a thread at a time (1.6 -> 2.7 s).
            let (packs, threads) = (batch.kinds.len(), rayon::current_num_threads());
            let enough_packs = packs >= 2 * threads || (batch.blobs >= MAX_BATCH_BLOBS && packs % threads == 0);
            if batch.blobs >= BATCH_BLOBS && enough_packs {
                run(&std::mem::take(&mut batch));
            }
        });
        match read {
            Ok(_) => {}
            Err(RepoError::Backend(e)) if e.is_not_found() => {}
            Err(e) => problems.push(index_problem(id, e)),
        }
    }
    run(&batch);
    problems
}

/// A blob as an index file lists it, without its similarity sketch (which
/// check has no use for, and which was 40% of an entry held) and with its
/// delta base kept aside in [`Batch::bases`] (most blobs have none; inline
/// it took 33 of 80 bytes).
#[derive(Debug, Clone, Copy)]
struct Listed {
    id: BlobId,
    offset: u32,
    length: u32,
    raw_length: u32,
    delta: bool,
}

/// Index entries of a batch of packs.
#[derive(Default)]
struct Batch {
    by_pack: HashMap<PackId, Vec<Listed>>,
    kinds: HashMap<PackId, BlobKind>,
    /// The base of each delta blob, by its pack and offset.
    bases: HashMap<(PackId, u32), BlobId>,
    blobs: usize,
}

impl Batch {
    fn add(&mut self, p: IndexPack) {
        self.blobs += p.blobs.len();
        self.kinds.insert(p.id, p.kind);
        for b in &p.blobs {
            if let Some(base) = b.base {
                self.bases.insert((p.id, b.offset), base);
            }
        }
        let listed = p.blobs.iter().map(|b| Listed {
            id: b.id,
            offset: b.offset,
            length: b.length,
            raw_length: b.raw_length,
            delta: b.base.is_some(),
        });
        // Exactly: grown by doubling, a batch took up to twice its entries.
        let entries = self.by_pack.entry(p.id).or_default();
        entries.reserve_exact(p.blobs.len());
        entries.extend(listed);
    }

    /// The base the index gives blob `b` of `pack`.
    fn base_of(&self, pack: &PackId, b: &Listed) -> Option<BlobId> {
        if b.delta { self.bases.get(&(*pack, b.offset)).copied() } else { None }
    }
}

/// The pack pass: each batch's packs are looked up in the storage and
/// their headers compared with the entries; then the chosen ones are read.
struct PackCheck<'a> {
    /// Packs in the storage: kind and size.
    stored: &'a HashMap<PackId, (BlobKind, u64)>,
    skip_cold: bool,
    bad: &'a Mutex<HashMap<BlobId, Bad>>,
}

impl PackCheck<'_> {
    /// The batch's packs, but data packs left in a cold tier.
    fn listed(&self, batch: &Batch) -> Vec<(PackId, BlobKind)> {
        batch
            .kinds
            .iter()
            .map(|(id, kind)| (*id, *kind))
            .filter(|(_, kind)| !(self.skip_cold && *kind == BlobKind::Data))
            .collect()
    }

    /// Marks every blob the batch lists in `pack` as unusable.
    fn mark_pack_bad(&self, batch: &Batch, pack: &PackId, kind: BlobKind, message: String) {
        let mut b = self.bad.lock().unwrap_or_else(|p| p.into_inner());
        for blob in batch.by_pack.get(pack).into_iter().flatten() {
            b.insert(
                blob.id,
                Bad { object: format!("{} pack {}", kind.name(), pack.short()), message: message.clone() },
            );
        }
    }

    /// Each pack of the batch is present and its header lists its blobs
    /// where the index files do.
    fn headers(&self, repo: &Repository, batch: &Batch) -> Vec<Problem> {
        let by_pack = &batch.by_pack;
        self.listed(batch)
            .par_iter()
            .filter_map(|(id, kind)| {
                let object = format!("{} pack {}", kind.name(), id.short());
                let Some((_, size)) = self.stored.get(id) else {
                    self.mark_pack_bad(batch, id, *kind, "pack is missing".into());
                    return Some(Problem { object, message: "missing (the index lists it)".into(), affects: vec![] });
                };
                match repo.read_pack_header(*kind, id, *size) {
                    Ok(header) => {
                        // Found by offset (the header lists blobs in file
                        // order): a map by id was 10 MiB per pack of small blobs.
                        let offsets: Vec<u32> = header.with_offsets().map(|(o, _)| o).collect();
                        let agrees = |b: &Listed| {
                            offsets.binary_search(&b.offset).is_ok_and(|i| {
                                let e = &header.entries[i];
                                (e.id, e.length, e.base) == (b.id, b.length, batch.base_of(id, b))
                            })
                        };
                        let mismatched = by_pack.get(id).into_iter().flatten().filter(|b| !agrees(b)).count();
                        (mismatched > 0).then(|| {
                            self.mark_pack_bad(batch, id, *kind, "index and pack header disagree".into());
                            Problem {
                                object,
                                message: format!(
                                    "{mismatched} blob(s) listed in the index are not where its header says"
                                ),
                                affects: vec![],
                            }
                        })
                    }
                    Err(e) => {
                        self.mark_pack_bad(batch, id, *kind, format!("header unreadable: {e}"));
                        Some(Problem { object, message: format!("header unreadable: {e}"), affects: vec![] })
                    }
                }
            })
            .collect()
    }

    /// Reads the batch's packs that are in `chosen` (taking them out: a
    /// pack two files list is read once) and verifies every blob in them.
    fn read(
        &self,
        repo: &IndexedRepository,
        batch: &Batch,
        chosen: &mut HashSet<PackId>,
        progress: &dyn CheckProgress,
        report: &mut CheckReport,
    ) {
        let bad = self.bad;
        let listed = self.listed(batch);
        let to_read: Vec<(PackId, BlobKind, u64)> = listed
            .iter()
            .filter(|(id, _)| chosen.remove(id))
            .map(|(id, kind)| (*id, *kind, self.stored[id].1))
            .collect();
        if to_read.is_empty() {
            return;
        }
        let deltas = Deltas::new(&to_read, batch);
        // One pack buffer per pool thread for the whole batch: a fresh 16 MiB
        // buffer is 4096 page faults to fill (rayon's per-split buffers made
        // 91,000 faults on the benchmark repository).
        let results = cairn_repo::parallel::map_in_order(&to_read, Vec::new, |buf, (id, kind, size)| {
            let r = read_pack(repo, *id, *kind, *size, batch, &deltas, bad, buf);
            progress.pack_read(*size);
            r
        });
        for (p, blobs, bytes) in results {
            report.problems.extend(p);
            report.blobs_verified += blobs;
            report.bytes_read += bytes;
            report.packs_read += 1;
        }
    }
}

/// The delta blobs of the packs being read, by the blob each is coded
/// against. A delta is verified right after its base, with the base's
/// plaintext at hand: decoding the base again for it (decrypting and
/// decompressing a chunk to check a few kilobytes) doubled check's work on a
/// repository of nightly dumps.
struct Deltas {
    by_base: HashMap<BlobId, Vec<(PackId, Listed)>>,
    /// Blobs (by pack) some worker has taken on: each is verified once.
    claimed: Mutex<HashSet<(PackId, BlobId)>>,
}

impl Deltas {
    fn new(chosen: &[(PackId, BlobKind, u64)], batch: &Batch) -> Self {
        let mut by_base: HashMap<BlobId, Vec<(PackId, Listed)>> = HashMap::new();
        for (pack, kind, _) in chosen {
            if *kind != BlobKind::Data {
                continue;
            }
            for b in batch.by_pack.get(pack).into_iter().flatten() {
                if let Some(base) = batch.base_of(pack, b) {
                    by_base.entry(base).or_default().push((*pack, *b));
                }
            }
        }
        Self { by_base, claimed: Mutex::default() }
    }

    /// True for the first caller only. Only deltas can be verified by
    /// another pack's reader, so only they are tracked.
    fn claim(&self, pack: PackId, blob: &Listed) -> bool {
        !blob.delta || self.claimed.lock().unwrap_or_else(|p| p.into_inner()).insert((pack, blob.id))
    }

    /// Verifies the unclaimed deltas coded against `base` (whose verified
    /// plaintext is `plain`), and theirs in turn; returns how many passed
    /// and records the others (damaged, or unreadable) in `bad`.
    fn verify_after(
        &self,
        repo: &IndexedRepository,
        base: &BlobId,
        plain: &[u8],
        bad: &Mutex<HashMap<BlobId, Bad>>,
    ) -> u64 {
        let mut verified = 0;
        for (pack, d) in self.by_base.get(base).into_iter().flatten() {
            if !self.claim(*pack, d) {
                continue;
            }
            let read = repo.repo().read_pack_bytes(BlobKind::Data, pack, u64::from(d.offset), u64::from(d.length));
            // Claimed, it is this reader's to report: its own pack's reader
            // may have passed it already.
            let result = match read {
                Ok(envelope) => {
                    let mut given = |_: &BlobId| Ok(plain.to_vec());
                    open_checked(repo, BlobKind::Data, d, Some(*base), &envelope, &mut given)
                }
                Err(e) => Err(format!("unreadable: {e}")),
            };
            match result {
                Ok(dplain) => verified += 1 + self.verify_after(repo, &d.id, &dplain, bad),
                Err(e) => {
                    let object = format!("data blob {} in data pack {}", d.id.short(), pack.short());
                    bad.lock().unwrap_or_else(|p| p.into_inner()).insert(d.id, Bad { object, message: e });
                }
            }
        }
        verified
    }
}

/// Opens and verifies blob `b`, which the index codes against `listed_base`;
/// a delta gets its base's plaintext from `base`.
fn open_checked(
    repo: &IndexedRepository,
    kind: BlobKind,
    b: &Listed,
    listed_base: Option<BlobId>,
    envelope: &[u8],
    base: &mut dyn FnMut(&BlobId) -> Result<Vec<u8>, RepoError>,
) -> Result<Vec<u8>, String> {
    let mut checked = |id: &BlobId| {
        if listed_base != Some(*id) {
            return Err(RepoError::corrupt(
                format!("{} blob {}", kind.name(), b.id.short()),
                "its delta base differs from the index",
            ));
        }
        base(id)
    };
    repo.repo()
        .open_envelope(kind, &b.id, envelope, b.raw_length, Verify::Full, &mut checked)
        .map_err(|e| e.to_string())
}

/// How much of a pack a local check reads at a time. Whole packs (16 MiB
/// and more, one per thread) made check's peak memory; from remote storage
/// a pack is still fetched in one request.
const LOCAL_WINDOW: u64 = 4 << 20;

/// A pack read front to back in windows, every byte hashed once, handing
/// out the byte ranges the index places blobs at.
struct PackReader<'a> {
    repo: &'a IndexedRepository,
    kind: BlobKind,
    id: PackId,
    /// Its size as listed by the storage.
    size: u64,
    window: u64,
    /// Holds the pack's bytes `start..start + buf.len()`.
    buf: &'a mut Vec<u8>,
    start: u64,
    hasher: cairn_format::id::FileHasher,
    /// The storage gave fewer bytes than listed.
    short: bool,
}

impl<'a> PackReader<'a> {
    fn new(repo: &'a IndexedRepository, kind: BlobKind, id: PackId, size: u64, buf: &'a mut Vec<u8>) -> Self {
        let window = if repo.repo().is_remote() { size } else { LOCAL_WINDOW };
        buf.clear();
        Self { repo, kind, id, size, window, buf, start: 0, hasher: Default::default(), short: false }
    }

    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Reads on from the end of the buffer, at least up to `to`.
    fn read_on(&mut self, to: u64) -> Result<(), RepoError> {
        let from = self.end();
        let upto = to.max(from + self.window).min(self.size);
        let before = self.buf.len();
        self.repo.repo().read_pack_bytes_onto(self.kind, &self.id, from, upto - from, self.buf)?;
        self.hasher.update(&self.buf[before..]);
        if self.end() < upto {
            self.short = true;
        }
        Ok(())
    }

    /// The pack's bytes `from..to`; `None` when they are beyond its end or
    /// before what has been passed (a damaged index's overlapping entries).
    fn get(&mut self, from: u64, to: u64) -> Result<Option<&[u8]>, RepoError> {
        if from < self.start || to > self.size || from > to {
            return Ok(None);
        }
        if to > self.end() && !self.short {
            // What comes before `from` is done with: only the unfinished
            // tail moves to the front.
            let keep = from.min(self.end());
            self.buf.drain(..(keep - self.start) as usize);
            self.start = keep;
            self.read_on(to)?;
        }
        if to > self.end() {
            return Ok(None);
        }
        Ok(Some(&self.buf[(from - self.start) as usize..(to - self.start) as usize]))
    }

    /// Reads (and hashes) the rest; the hash of the whole pack and its size.
    fn finish(mut self) -> Result<([u8; 32], u64), RepoError> {
        while self.end() < self.size && !self.short {
            self.start = self.end();
            self.buf.clear();
            self.read_on(0)?;
        }
        Ok((self.hasher.finish(), self.end()))
    }
}

/// Reads a pack (its `size` as listed by the storage) through `bytes` and
/// verifies its hash and every blob in it, and the deltas coded against
/// them (see [`Deltas`]).
#[allow(clippy::too_many_arguments)]
fn read_pack(
    repo: &IndexedRepository,
    id: PackId,
    kind: BlobKind,
    size: u64,
    batch: &Batch,
    deltas: &Deltas,
    bad: &Mutex<HashMap<BlobId, Bad>>,
    bytes: &mut Vec<u8>,
) -> (Vec<Problem>, u64, u64) {
    let object = format!("{} pack {}", kind.name(), id.short());
    let unreadable =
        |e: RepoError| Problem { object: object.clone(), message: format!("unreadable: {e}"), affects: vec![] };
    let mut pack = PackReader::new(repo, kind, id, size, bytes);
    // Each blob the index lists for this pack, at the index's location, in
    // the order they lie in the pack.
    let mut listed: Vec<&Listed> = batch.by_pack.get(&id).into_iter().flatten().collect();
    listed.sort_by_key(|b| b.offset);
    let mut verified = 0;
    for b in listed {
        if !deltas.claim(id, b) {
            // Verified (and counted) already, after its base.
            continue;
        }
        let (start, end) = (u64::from(b.offset), u64::from(b.offset) + u64::from(b.length));
        let result = match pack.get(start, end) {
            // A delta blob whose base was not at hand decodes with the base
            // read from its own pack (where it is verified in full, and its
            // damage reported, when that pack is read).
            Ok(Some(env)) => {
                open_checked(repo, kind, b, batch.base_of(&id, b), env, &mut |base: &BlobId| repo.read_delta_base(base))
            }
            Ok(None) => Err("beyond the end of the pack, or overlapping the blob before it".to_string()),
            Err(e) => return (vec![unreadable(e)], verified, pack.end()),
        };
        match result {
            Ok(plain) => verified += 1 + deltas.verify_after(repo, &b.id, &plain, bad),
            Err(e) => {
                bad.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    b.id,
                    Bad { object: format!("{} blob {} in {object}", kind.name(), b.id.short()), message: e },
                );
            }
        }
    }
    let (hash, n) = match pack.finish() {
        Ok(h) => h,
        Err(e) => return (vec![unreadable(e)], verified, 0),
    };
    let mut problems = Vec::new();
    if hash != *id.as_bytes() {
        problems.push(Problem {
            object: object.clone(),
            message: "content does not match its name (hash mismatch)".into(),
            affects: vec![],
        });
    }
    // Header and trailer were checked against the index in the structure pass.
    (problems, verified, n)
}

/// Something damaged below a tree: the path relative to the tree, a key
/// identifying the damaged object, and why.
#[derive(Clone)]
struct Damage {
    path: String,
    key: String,
    why: Bad,
}

/// Walks each snapshot through the shared walker, each distinct tree once:
/// what is damaged below a tree is remembered (paths relative to it) and
/// reused wherever the tree appears again, so unchanged folders shared by
/// many snapshots are looked at once.
struct TreeWalker<'a> {
    repo: &'a IndexedRepository,
    bad: &'a HashMap<BlobId, Bad>,
    memo: HashMap<BlobId, Arc<Vec<Damage>>>,
    /// The damage found so far in this snapshot, with full paths.
    out: Vec<Damage>,
    /// Open folders: their tree, where their damage starts in `out`, and
    /// the length of their path.
    open: Vec<(BlobId, usize, usize)>,
}

fn tree_object(id: &BlobId) -> String {
    format!("tree {}", id.short())
}

impl TreeWalker<'_> {
    /// Everything damaged below the tree `tree`, paths relative to it.
    fn walk(&mut self, tree: &BlobId) -> Arc<Vec<Damage>> {
        if let Some(m) = self.memo.get(tree) {
            return m.clone();
        }
        self.out.clear();
        self.open.clear();
        if let Some(d) = self.tree_damage(tree) {
            self.out.push(d);
        } else if let Err(e) = walk(self.repo, tree, b"", self) {
            self.out.push(Damage {
                path: String::new(),
                key: format!("blob {}", tree.short()),
                why: Bad { object: tree_object(tree), message: e.to_string() },
            });
        }
        let out = Arc::new(std::mem::take(&mut self.out));
        self.memo.insert(*tree, out.clone());
        out
    }

    /// Why the tree `id` cannot be walked, as far as the index and the data
    /// check tell (missing, or a damaged blob), with an empty path.
    fn tree_damage(&self, id: &BlobId) -> Option<Damage> {
        if !self.repo.index().contains(id) {
            let object = tree_object(id);
            return Some(Damage {
                path: String::new(),
                key: object.clone(),
                why: Bad { object, message: "missing: in no index".into() },
            });
        }
        let why = self.bad.get(id)?.clone();
        Some(Damage { path: String::new(), key: format!("blob {}", id.short()), why })
    }

    /// Adds `below` (paths relative to a folder) under the folder's `path`.
    fn add_below(&mut self, path: &str, below: &[Damage]) {
        for d in below {
            self.out.push(Damage { path: format!("{path}{}", d.path), key: d.key.clone(), why: d.why.clone() });
        }
    }
    /// Why a data blob cannot be read, if it cannot: it or a blob down its
    /// delta chain is missing or damaged.
    fn content_damage(&self, id: &BlobId) -> Option<(String, Bad)> {
        let mut at = *id;
        for _ in 0..=MAX_DELTA_DEPTH {
            let blob = format!("data blob {}", at.short());
            let Some(loc) = self.repo.index().get(&at) else {
                let message = if at == *id { "missing: in no index" } else { "missing: in no index (a delta base)" };
                return Some((blob.clone(), Bad { object: blob, message: message.into() }));
            };
            if let Some(b) = self.bad.get(&at) {
                return Some((format!("blob {}", at.short()), b.clone()));
            }
            match loc.base {
                Some(base) => at = base,
                None => return None,
            }
        }
        let blob = format!("data blob {}", id.short());
        Some((blob.clone(), Bad { object: blob, message: "delta chain too deep or circular".into() }))
    }
}

impl Visitor for TreeWalker<'_> {
    type Error = RepoError;

    fn visit(&mut self, path: &Bytes, n: &Node) -> Result<Step, RepoError> {
        let shown = path.display().into_owned();
        match (n.kind, n.subtree) {
            (NodeKind::Dir, Some(sub)) => {
                if let Some(known) = self.memo.get(&sub).cloned() {
                    self.add_below(&shown, &known);
                    return Ok(Step::Skip);
                }
                if let Some(d) = self.tree_damage(&sub) {
                    self.memo.insert(sub, Arc::new(vec![d.clone()]));
                    self.out.push(Damage { path: shown, ..d });
                    return Ok(Step::Skip);
                }
                // Cut by the shown path's length: damage paths are shown paths.
                self.open.push((sub, self.out.len(), shown.len()));
                Ok(Step::Descend)
            }
            (NodeKind::File, _) => {
                for id in &n.content {
                    if let Some((key, why)) = self.content_damage(id) {
                        self.out.push(Damage { path: shown.clone(), key, why });
                    }
                }
                Ok(Step::Skip)
            }
            _ => Ok(Step::Skip),
        }
    }

    fn leave(&mut self, _path: &Bytes, _n: &Node) -> Result<(), RepoError> {
        if let Some((sub, from, cut)) = self.open.pop() {
            let below: Vec<Damage> = self.out[from..]
                .iter()
                .map(|d| Damage {
                    path: d.path.get(cut..).unwrap_or("").to_string(),
                    key: d.key.clone(),
                    why: d.why.clone(),
                })
                .collect();
            self.memo.insert(sub, Arc::new(below));
        }
        Ok(())
    }

    fn unreadable(&mut self, path: &Bytes, _n: &Node, e: RepoError) -> Result<(), RepoError> {
        if let Some((sub, _, _)) = self.open.pop() {
            let d = Damage {
                path: String::new(),
                key: format!("blob {}", sub.short()),
                why: Bad { object: tree_object(&sub), message: e.to_string() },
            };
            self.out.push(Damage { path: path.display().into_owned(), ..d.clone() });
            self.memo.insert(sub, Arc::new(vec![d]));
        }
        Ok(())
    }
}
