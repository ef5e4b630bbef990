//! Executing a restore plan as it comes, a batch at a time: directories,
//! contents in parallel, metadata.
//! From remote storage the contents are written pack by pack, so each pack
//! is downloaded once (see docs/ARCHITECTURE.md, "Restore").

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cairn_format::BlobId;
use cairn_format::tree::{Node, NodeKind};
use cairn_repo::{IndexedRepository, ReadWindow, SharedPacks};
use rayon::prelude::*;

use crate::RestoreError;
use crate::beneath::{At, Beneath, Found};
use crate::metadata;
use crate::plan::{Item, ItemKind, Planned, Select};

/// What to do when a file already exists at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Overwrite {
    /// Keep existing files (default): nothing is ever lost.
    #[default]
    Never,
    /// Replace existing files.
    Always,
    /// Replace existing files whose size or mtime differ from the snapshot's.
    IfChanged,
}

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Existing-file policy.
    pub overwrite: Overwrite,
    /// Re-read each restored file and compare it with the snapshot.
    pub verify: bool,
    /// What `--delete` removes from the target ([`crate::extras`]): only
    /// after everything was written without an error, and before folders
    /// get their times.
    pub delete: Vec<crate::delete::Extra>,
}

/// Receives progress from worker threads.
pub trait RestoreProgress: Send + Sync {
    /// Content bytes written (or skipped as holes).
    fn bytes(&self, _n: u64) {}
    /// A problem with one path; the restore goes on.
    fn warning(&self, _msg: &str) {}
}

impl RestoreProgress for () {}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Files whose content was written.
    pub files: u64,
    /// Directories created or reused.
    pub dirs: u64,
    /// Symlinks, hard links and special files created.
    pub others: u64,
    /// Content bytes restored.
    pub bytes: u64,
    /// Existing files left alone (see [`Overwrite`]).
    pub skipped: u64,
    /// Files verified after writing.
    pub verified: u64,
    /// Entries `--delete` removed.
    pub deleted: u64,
    /// Paths that failed.
    pub errors: u64,
}

struct Run<'a> {
    repo: &'a IndexedRepository,
    /// The target, held open: every path is resolved beneath it.
    root: Beneath,
    opts: &'a RestoreOptions,
    progress: &'a dyn RestoreProgress,
    as_root: bool,
    files: AtomicU64,
    others: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    verified: AtomicU64,
    errors: AtomicU64,
    /// Set a written file's metadata through its open descriptor, by the
    /// worker that wrote it (not with --verify: its reads would move atime).
    metadata_by_worker: bool,
    /// Items written (or linked), each with whether its metadata is set.
    done: Mutex<Vec<(usize, Metadata)>>,
    /// Fetch the delta bases of the next blobs together: only from remote
    /// storage, where each request waits. From a local folder the batch
    /// held up to 32 MiB for no gain (the 30th of 30 daily dumps restored
    /// in 0.38-0.40 s with it and 0.38-0.43 s without, page cache warm, at
    /// a peak of 101-120 MiB against 84; from an emptied page cache
    /// 0.47-0.51 s and 0.48-0.54 s); asking the kernel to read them ahead
    /// (`posix_fadvise`) instead gained under 0.02 s.
    prefetch_bases: bool,
}

impl Run<'_> {
    /// Before reading `content[k]`: the delta bases of the next
    /// [`PREFETCH_BLOBS`] blobs fetched at once, each batch's first blob.
    fn prefetch(&self, content: &[BlobId], k: usize, window: &mut ReadWindow) {
        if self.prefetch_bases && k.is_multiple_of(PREFETCH_BLOBS) {
            self.repo.prefetch_bases(&content[k..content.len().min(k + PREFETCH_BLOBS)], window);
        }
    }
}

/// Whether an item written still needs its metadata applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metadata {
    Pending,
    Applied,
}

/// What became of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Nothing written (an existing file kept, a socket skipped).
    Kept,
    /// Written or created.
    Written(Metadata),
}

impl Run<'_> {
    /// Counts a failure at `rel` (below the target) and reports it.
    fn fail(&self, rel: &Path, msg: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.progress.warning(&format!("{}: {msg}", self.root.path().join(rel).display()));
    }
}

/// The name a file is written under before it is renamed into place:
/// beside it, so the rename stays on one file system, and recognisably
/// cairn's (with this process's id, so a later restore can tell one a dead
/// restore left: [`sweep_dead_temps`]).
fn temp_name(name: &OsStr) -> OsString {
    let suffix = format!("{TEMP_MARK}{}", std::process::id());
    let mut tmp = OsString::from(".");
    // Names are at most 255 bytes (NAME_MAX): a long one gets a number of
    // this run instead of itself in front of the suffix.
    if 1 + name.len() + suffix.len() > 255 {
        static LONG: AtomicU64 = AtomicU64::new(0);
        tmp.push(format!("long-{}", LONG.fetch_add(1, Ordering::Relaxed)));
    } else {
        tmp.push(name);
    }
    tmp.push(suffix);
    tmp
}

/// What every temporary name holds, before the restore's process id.
const TEMP_MARK: &str = ".cairn-restore-";

/// Removes from `dir` the temporary files of restores that are no longer
/// running (killed, or interrupted before they could clean up).
fn sweep_dead_temps(dir: &OwnedFd) {
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
    let Ok(mut entries) = nix::dir::Dir::openat(dir, ".", flags, nix::sys::stat::Mode::empty()) else { return };
    let mut dead = Vec::new();
    for e in entries.iter().flatten() {
        let name = e.file_name().to_bytes();
        let Some(pos) = name.windows(TEMP_MARK.len()).rposition(|w| w == TEMP_MARK.as_bytes()) else {
            continue;
        };
        let pid = std::str::from_utf8(&name[pos + TEMP_MARK.len()..]).ok().and_then(|p| p.parse::<i32>().ok());
        let alive = |pid: i32| {
            pid == std::process::id() as i32
                || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(nix::errno::Errno::ESRCH)
        };
        if name.starts_with(b".") && pid.is_some_and(|p| p > 0 && !alive(p)) {
            dead.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    for name in dead {
        let _ = nix::unistd::unlinkat(dir, name.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
}

/// Creates the temporary file `tmp`, replacing one a killed restore of the
/// same pid left (rare: tried only when creating fails, one syscall less
/// per file than removing first).
fn create_temp(tmp: &At) -> Result<File, String> {
    match tmp.create_new() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            tmp.unlink().map_err(|e| e.to_string())?;
            tmp.create_new().map_err(|e| e.to_string())
        }
        r => r.map_err(|e| e.to_string()),
    }
}

/// Whether the file at `at` may be written; `false` means keep what is there.
pub(crate) fn may_write(at: &At, node: &Node, overwrite: Overwrite) -> bool {
    match (at.found(), overwrite) {
        (Found::Nothing, _) => true,
        (_, Overwrite::Never) => false,
        (_, Overwrite::Always) => true,
        (Found::File { size, mtime }, Overwrite::IfChanged) => {
            !(size == node.size && mtime == (node.mtime.0, node.mtime.1))
        }
        (_, Overwrite::IfChanged) => true,
    }
}

fn is_zero(b: &[u8]) -> bool {
    // OR-folding fixed-size pieces vectorizes; an early exit per piece keeps
    // data blocks cheap.
    b.chunks(4096).all(|c| c.iter().fold(0u8, |a, x| a | x) == 0)
}

/// Bytes of plaintext reading `content` decodes: its own and its delta
/// bases' ([`IndexedRepository::decode_bytes`]).
fn decode_cost(repo: &IndexedRepository, content: &[BlobId]) -> u64 {
    content.iter().map(|id| repo.decode_bytes(id)).sum()
}

/// Blobs whose delta bases are fetched together, at once, before they are
/// read (`IndexedRepository::prefetch_bases`).
const PREFETCH_BLOBS: usize = 32;

/// Bytes each restore worker reads from a pack per request.
const READAHEAD: u32 = 4 << 20;

/// Packs a remote restore downloads ahead of the one being written.
const PACKS_AHEAD: usize = 2;

/// Files that cost more than two of these to read are written by several
/// workers at once, one segment of about this many bytes to decode each
/// (a file's own bytes and its delta bases', [`decode_cost`]): one large
/// dump or video would otherwise keep a single core busy while the others
/// sit idle.
const SEGMENT: u64 = 32 << 20;

/// A local restore hands out work in runs of about this many bytes of
/// content (a run holds at least one piece of work)...
const RUN_BYTES: u64 = 16 << 20;

/// ... or this many pieces, whichever comes first: thousands of small files
/// cost per file, not per byte.
const RUN_ITEMS: usize = 256;

/// Cuts a sequence of work sizes into consecutive index ranges of at most
/// `max_bytes` (or a single larger piece) and at most `max_items` pieces.
fn cut_runs(sizes: impl Iterator<Item = u64>, max_bytes: u64, max_items: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    let mut end = 0usize;
    for (i, size) in sizes.enumerate() {
        if i > start && (bytes + size > max_bytes || i - start >= max_items) {
            runs.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
        end = i + 1;
    }
    if end > start {
        runs.push(start..end);
    }
    runs
}

/// A large file being written in segments by several workers.
struct SplitFile {
    item: usize,
    /// The temporary file, relative to the target: resolved again by each
    /// segment, since a restore may have many files split at once and open
    /// descriptors (even of their folders) are a scarce resource.
    tmp: std::path::PathBuf,
    /// Segments not yet written; whoever finishes the last one completes the file.
    remaining: AtomicU64,
    /// The first error of any segment.
    error: Mutex<Option<String>>,
}

/// One piece of restore work, ordered by where its data sits in the packs.
enum Work {
    /// A whole file (item index) and what reading it decodes ([`decode_cost`]).
    File { item: usize, cost: u64 },
    /// Blobs `blobs` of a split file, written from byte `offset` on.
    Segment { file: usize, blobs: std::ops::Range<usize>, offset: u64 },
}

/// Writes a file's content to `tmp`, leaving holes where blobs are all
/// zeros; returns its length and the file, still open.
fn write_content(run: &Run, node: &Node, tmp: &At, window: &mut ReadWindow) -> Result<(u64, File), String> {
    let mut f = create_temp(tmp)?;
    let mut last: Option<(BlobId, Vec<u8>, bool)> = None;
    let mut pos = 0u64;
    let mut ends_in_hole = false;
    for (k, id) in node.content.iter().enumerate() {
        run.prefetch(&node.content, k, window);
        if last.as_ref().is_none_or(|(l, _, _)| l != id) {
            let data = run.repo.read_blob_windowed(id, &node.content[k + 1..], window).map_err(|e| e.to_string())?;
            let zero = is_zero(&data);
            last = Some((*id, data, zero));
        }
        let Some((_, data, zero)) = &last else { unreachable!() };
        if *zero {
            f.seek(SeekFrom::Current(data.len() as i64)).map_err(|e| e.to_string())?;
        } else {
            f.write_all(data).map_err(|e| e.to_string())?;
        }
        ends_in_hole = *zero;
        pos += data.len() as u64;
        run.progress.bytes(data.len() as u64);
    }
    // A hole at the end exists only once the length is set. Only then: a
    // truncate per file was 5% of a restore of many small files.
    if ends_in_hole {
        f.set_len(pos).map_err(|e| e.to_string())?;
    }
    // No fsync per file: a restore interrupted by a crash is simply run
    // again, and syncing every small file would dominate restore time.
    Ok((pos, f))
}

/// Re-reads a restored file and checks each blob-sized piece against its id.
fn verify(run: &Run, node: &Node, rel: &Path) -> Result<(), String> {
    let mut f = run.root.at(rel).and_then(|at| at.open(false)).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    for id in &node.content {
        let loc = run.repo.index().get(id).ok_or_else(|| format!("blob {} not in index", id.short()))?;
        buf.resize(loc.raw_length as usize, 0);
        f.read_exact(&mut buf).map_err(|e| format!("verify: {e}"))?;
        if run.repo.repo().blob_id(&buf) != *id {
            return Err(format!("verify: content differs from the snapshot (blob {})", id.short()));
        }
    }
    if f.read(&mut [0u8; 1]).map_err(|e| e.to_string())? != 0 {
        return Err("verify: file is longer than in the snapshot".into());
    }
    Ok(())
}

/// Blobs of a split file and the byte offset the first of them starts at.
type Segment = (std::ops::Range<usize>, u64);

/// Creates the temporary file of a large file and cuts its content into
/// segments at blob boundaries; `Ok(None)` when the existing file is kept.
/// With `by_pack`, a segment also ends where the file's data moves to
/// another pack, so each segment is served by one pack.
fn split_file(
    run: &Run,
    item: usize,
    node: &Node,
    rel: &Path,
    by_pack: bool,
) -> Result<Option<(SplitFile, Vec<Segment>)>, String> {
    let at = run.root.at(rel).map_err(|e| e.to_string())?;
    if !may_write(&at, node, run.opts.overwrite) {
        run.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    }
    let mut pieces = Vec::new();
    let (mut start, mut start_offset, mut offset) = (0usize, 0u64, 0u64);
    let mut cost = 0u64;
    let mut pack = None;
    for (i, id) in node.content.iter().enumerate() {
        let loc = run.repo.index().get(id).ok_or_else(|| format!("data blob {} is in no index", id.short()))?;
        let new_pack = by_pack && pack.is_some_and(|p| p != loc.pack);
        if i > start && (cost >= SEGMENT || new_pack) {
            pieces.push((start..i, start_offset));
            (start, start_offset, cost) = (i, offset, 0);
        }
        pack = Some(loc.pack);
        offset += u64::from(loc.raw_length);
        cost += run.repo.decode_bytes(id);
    }
    pieces.push((start..node.content.len(), start_offset));
    let tmp = at.sibling(&temp_name(&at.name));
    let file = create_temp(&tmp)?;
    // The full length up front: blobs land at their offsets in any order,
    // and all-zero blobs are simply not written (holes).
    if let Err(e) = file.set_len(offset) {
        let _ = tmp.unlink();
        return Err(e.to_string());
    }
    drop(file);
    let tmp = rel.with_file_name(&tmp.name);
    let split = SplitFile { item, tmp, remaining: AtomicU64::new(pieces.len() as u64), error: Mutex::new(None) };
    Ok(Some((split, pieces)))
}

/// Writes one segment of a split file; the last segment to finish renames
/// the file into place (or removes it if any segment failed).
fn write_segment(
    run: &Run,
    items: &[Item],
    split: &SplitFile,
    blobs: &std::ops::Range<usize>,
    mut offset: u64,
    window: &mut ReadWindow,
) -> Option<Result<Outcome, String>> {
    use std::os::unix::fs::FileExt;
    let node = &items[split.item].node;
    let failed = || split.error.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    let file = if failed() {
        None
    } else {
        match run.root.at(&split.tmp).and_then(|at| at.open(true)) {
            Ok(f) => Some(f),
            Err(e) => {
                split.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e.to_string());
                None
            }
        }
    };
    if let Some(file) = file {
        let content = &node.content[blobs.clone()];
        for (k, id) in content.iter().enumerate() {
            run.prefetch(content, k, window);
            let read = run.repo.read_blob_windowed(id, &content[k + 1..], window);
            let written = read.map_err(|e| e.to_string()).and_then(|data| {
                if !is_zero(&data) {
                    file.write_all_at(&data, offset).map_err(|e| e.to_string())?;
                }
                Ok(data.len() as u64)
            });
            match written {
                Ok(n) => {
                    offset += n;
                    run.progress.bytes(n);
                }
                Err(e) => {
                    split.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    break;
                }
            }
        }
    }
    if split.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
        return None;
    }
    let name = items[split.item].rel.file_name().unwrap_or_default();
    let tmp = match run.root.at(&split.tmp) {
        Ok(tmp) => tmp,
        Err(e) => return Some(Err(e.to_string())),
    };
    if let Some(e) = split.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = tmp.unlink();
        return Some(Err(e));
    }
    if let Err(e) = tmp.rename_to(name) {
        let _ = tmp.unlink();
        return Some(Err(e.to_string()));
    }
    run.bytes.fetch_add(node.size, Ordering::Relaxed);
    run.files.fetch_add(1, Ordering::Relaxed);
    Some(Ok(Outcome::Written(Metadata::Pending)))
}

fn restore_file(run: &Run, node: &Node, rel: &Path, window: &mut ReadWindow) -> Result<Outcome, String> {
    let at = run.root.at(rel).map_err(|e| e.to_string())?;
    if !may_write(&at, node, run.opts.overwrite) {
        run.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(Outcome::Kept);
    }
    let tmp = at.sibling(&temp_name(&at.name));
    match write_content(run, node, &tmp, window) {
        Ok((n, file)) => {
            let mut meta = Metadata::Pending;
            if run.metadata_by_worker {
                for p in metadata::apply(metadata::Target::File(&file), node, run.as_root) {
                    run.fail(rel, p);
                }
                meta = Metadata::Applied;
            }
            drop(file);
            if let Err(e) = tmp.rename_to(&at.name) {
                let _ = tmp.unlink();
                return Err(e.to_string());
            }
            run.bytes.fetch_add(n, Ordering::Relaxed);
            run.files.fetch_add(1, Ordering::Relaxed);
            Ok(Outcome::Written(meta))
        }
        Err(e) => {
            let _ = tmp.unlink();
            Err(e)
        }
    }
}

fn create_special(node: &Node, at: &At, overwrite: Overwrite) -> Result<Outcome, String> {
    // A socket lives only while its server listens: one made by restore
    // would be dead, so it is skipped (as tar does), not counted a failure.
    if node.kind == NodeKind::Socket {
        return Ok(Outcome::Kept);
    }
    let name = at.name.as_os_str();
    // Owner-only until its own mode is set, as files and folders are.
    let private = nix::sys::stat::Mode::from_bits_truncate((node.mode & 0o700) as _);
    if at.found() != Found::Nothing {
        if overwrite == Overwrite::Never {
            return Ok(Outcome::Kept);
        }
        at.unlink().map_err(|e| e.to_string())?;
    }
    match node.kind {
        NodeKind::Symlink => {
            let t = node.target.as_ref().map(|t| t.0.clone()).unwrap_or_default();
            nix::unistd::symlinkat(OsStr::from_bytes(&t), &at.dir, name).map_err(|e| e.to_string())?;
        }
        NodeKind::Fifo => {
            nix::unistd::mkfifoat(&at.dir, name, private).map_err(|e| e.to_string())?;
        }
        NodeKind::Chardev | NodeKind::Blockdev => {
            let kind = if node.kind == NodeKind::Chardev {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            nix::sys::stat::mknodat(&at.dir, name, kind, private, node.rdev as _)
                .map_err(|e| format!("cannot create device node (needs root): {e}"))?;
        }
        NodeKind::Socket | NodeKind::File | NodeKind::Dir => return Err("not a special file".into()),
    }
    Ok(Outcome::Written(Metadata::Pending))
}

/// Makes `rel` a hard link to `first`, which must be a regular file.
fn link_one(run: &Run, first: &Path, rel: &Path) -> Result<Outcome, String> {
    let from = run.root.at(first).map_err(|e| e.to_string())?;
    let to = run.root.at(rel).map_err(|e| e.to_string())?;
    if to.found() != Found::Nothing {
        if run.opts.overwrite == Overwrite::Never {
            return Ok(Outcome::Kept);
        }
        to.unlink().map_err(|e| e.to_string())?;
    }
    if !matches!(from.found(), Found::File { .. }) {
        return Err("its first name is not a regular file (not linked)".into());
    }
    let flags = nix::fcntl::AtFlags::empty();
    nix::unistd::linkat(&from.dir, from.name.as_os_str(), &to.dir, to.name.as_os_str(), flags)
        .map_err(|e| e.to_string())?;
    Ok(Outcome::Written(Metadata::Pending))
}

/// Applies an item's metadata by name, beneath the target.
fn apply_at(run: &Run, item: &Item) {
    match run.root.at(&item.rel) {
        Ok(at) => {
            for p in metadata::apply(metadata::Target::At(&at), &item.node, run.as_root) {
                run.fail(&item.rel, p);
            }
        }
        Err(e) => run.fail(&item.rel, e),
    }
}

/// Plan steps a restore takes at a time: the plan is written a batch after
/// another while the walk plans the next, so a restore holds at most a few
/// batches of items (about 1 KiB each), however many files the snapshot has.
const BATCH_ITEMS: usize = 4096;

/// Folders across batches: those whose creation failed (they get no
/// metadata) and, with `--delete`, those whose metadata waits for it.
#[derive(Default)]
struct Folders {
    created: u64,
    failed: std::collections::HashSet<std::path::PathBuf>,
    deferred: Vec<Item>,
}

/// Restores the part of the snapshot tree `root` that `select` names into
/// `target`, planning and writing side by side ([`crate::plan`]).
pub fn restore(
    repo: &IndexedRepository,
    root: &BlobId,
    select: &Select<'_>,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreSummary, RestoreError> {
    let beneath =
        Beneath::open(target).map_err(|e| RestoreError::Target { path: target.display().to_string(), source: e })?;
    let run = Run {
        repo,
        root: beneath,
        opts,
        progress,
        as_root: nix::unistd::geteuid().is_root(),
        files: AtomicU64::new(0),
        others: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        verified: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        metadata_by_worker: !opts.verify,
        done: Mutex::new(Vec::new()),
        prefetch_bases: repo.repo().is_remote(),
    };
    if let Ok(fd) = run.root.dir(Path::new("")) {
        sweep_dead_temps(&fd);
    }
    // Remote storage: whole packs fetched once and shared by the workers,
    // kept across batches (the next batch's files often start in the pack
    // the last one ended in).
    let packs =
        repo.repo().is_remote().then(|| Arc::new(SharedPacks::new(rayon::current_num_threads() + PACKS_AHEAD + 1)));
    let mut folders = Folders::default();
    let defer = !opts.delete.is_empty();
    let planned = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Planned>>(1);
        let planner = s.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_ITEMS);
            let planned = crate::plan::plan(repo, root, select, &mut |p| {
                batch.push(p);
                if batch.len() >= BATCH_ITEMS {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
                    tx.send(full).map_err(|_| RestoreError::Stopped)?;
                }
                Ok(())
            });
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            planned
        });
        for batch in rx {
            write_batch(&run, batch, packs.as_ref(), &mut folders, defer);
        }
        planner.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    // --delete: only after a restore without errors, and before the
    // folders' times are set (removing an entry moves them).
    let mut deleted = 0;
    if planned.is_ok() && defer {
        if run.errors.load(Ordering::Relaxed) > 0 {
            progress.warning("nothing deleted: the restore had errors (--delete acts only after a full restore)");
        } else {
            let (n, failed) = crate::delete::delete_extras(&run.root, &opts.delete);
            deleted = n;
            for (rel, e) in failed {
                run.fail(&rel, format!("could not delete: {e}"));
            }
        }
    }
    for dir in &folders.deferred {
        apply_at(&run, dir);
    }
    planned?;
    Ok(RestoreSummary {
        files: run.files.into_inner(),
        dirs: folders.created,
        others: run.others.into_inner(),
        bytes: run.bytes.into_inner(),
        skipped: run.skipped.into_inner(),
        verified: run.verified.into_inner(),
        deleted,
        errors: run.errors.into_inner(),
    })
}

/// Writes one batch of the plan: its folders, then file contents in
/// parallel, specials, hard links, verification, metadata, and last the
/// metadata of the folders the batch completes (deepest first: writing
/// into a folder changes its mtime).
fn write_batch(run: &Run, batch: Vec<Planned>, packs: Option<&Arc<SharedPacks>>, folders: &mut Folders, defer: bool) {
    let mut items = Vec::with_capacity(batch.len());
    let mut completed = Vec::new();
    for p in batch {
        match p {
            Planned::Item(i) => items.push(i),
            Planned::Done(d) => completed.push(d),
        }
    }
    let items = &items[..];
    // 1. Folders, in tree order so parents exist first; each one that was
    //    there already is swept of temporary files dead restores left.
    let replace = run.opts.overwrite != Overwrite::Never;
    for item in items.iter().filter(|i| i.kind == ItemKind::Dir) {
        match run.root.mkdir(&item.rel, replace) {
            Ok(existed) => {
                folders.created += 1;
                if existed {
                    if !run.as_root
                        && let Err(e) = run.root.make_writable(&item.rel)
                    {
                        run.fail(&item.rel, e);
                    }
                    if let Ok(fd) = run.root.dir(&item.rel) {
                        sweep_dead_temps(&fd);
                    }
                }
            }
            Err(e) => {
                folders.failed.insert(item.rel.clone());
                run.fail(&item.rel, e);
            }
        }
    }
    // 2. File contents in parallel, in the order their data sits in the
    //    packs, so each worker's read-ahead window serves neighbouring files.
    //    Large files are cut into segments that workers write side by side.
    let record = |i: usize, res: Result<Outcome, String>| match res {
        Ok(Outcome::Written(meta)) => run.done.lock().unwrap_or_else(|p| p.into_inner()).push((i, meta)),
        Ok(Outcome::Kept) => {}
        Err(e) => run.fail(&items[i].rel, e),
    };
    // Remote storage: every byte read travels, so whole packs are fetched
    // once and shared, files whose data spans packs are cut at pack
    // boundaries, and the workers take the work in pack order from one
    // cursor: they stay within the same few packs.
    let repo = run.repo;
    let spans_packs = |node: &Node| {
        let mut packs = node.content.iter().filter_map(|id| repo.index().get(id).map(|l| l.pack));
        packs.next().is_some_and(|first| packs.any(|p| p != first))
    };
    let mut splits: Vec<SplitFile> = Vec::new();
    let mut work: Vec<Work> = Vec::new();
    for (i, item) in items.iter().enumerate().filter(|(_, item)| item.kind == ItemKind::File) {
        // Split and shared out by what a file costs to read, not by its
        // size: one coded against earlier versions decodes their bytes too.
        let cost = decode_cost(repo, &item.node.content);
        if cost < 2 * SEGMENT && !(packs.is_some() && spans_packs(&item.node)) {
            work.push(Work::File { item: i, cost });
            continue;
        }
        match split_file(run, i, &item.node, &item.rel, packs.is_some()) {
            Ok(Some((split, segments))) => {
                let n = splits.len();
                splits.push(split);
                work.extend(segments.into_iter().map(|(blobs, offset)| Work::Segment { file: n, blobs, offset }));
            }
            Ok(None) => {}
            Err(e) => run.fail(&item.rel, e),
        }
    }
    let first_location = |w: &Work| {
        let id = match w {
            Work::File { item, .. } => items[*item].node.content.first(),
            Work::Segment { file, blobs, .. } => items[splits[*file].item].node.content.get(blobs.start),
        };
        id.and_then(|id| repo.index().get(id))
    };
    work.sort_by_cached_key(|w| first_location(w).map(|l| (l.pack, l.offset)));
    let do_work = |w: &Work, window: &mut ReadWindow| match w {
        Work::File { item, .. } => record(*item, restore_file(run, &items[*item].node, &items[*item].rel, window)),
        Work::Segment { file, blobs, offset } => {
            let split = &splits[*file];
            if let Some(res) = write_segment(run, items, split, blobs, *offset, window) {
                record(split.item, res);
            }
        }
    };
    if let Some(packs) = packs {
        let workers = rayon::current_num_threads();
        let next = AtomicUsize::new(0);
        // The pack of each piece of work, numbered in the order they come.
        let locs: Vec<Option<cairn_repo::BlobLocation>> = work.iter().map(first_location).collect();
        let mut order: Vec<usize> = Vec::with_capacity(work.len());
        let mut firsts: Vec<usize> = Vec::new();
        for (i, loc) in locs.iter().enumerate() {
            let same = i > 0 && loc.as_ref().map(|l| l.pack) == locs[i - 1].as_ref().map(|l| l.pack);
            if !same && loc.is_some() {
                firsts.push(i);
            }
            order.push(firsts.len().saturating_sub(1));
        }
        std::thread::scope(|scope| {
            // Read-ahead: the next packs download, side by side, while the
            // workers decode and write the current one.
            for lane in 0..PACKS_AHEAD {
                let (firsts, order, locs, next, work) = (&firsts, &order, &locs, &next, &work);
                scope.spawn(move || {
                    for (k, &i) in firsts.iter().enumerate().skip(lane).step_by(PACKS_AHEAD) {
                        loop {
                            let at = next.load(Ordering::Relaxed);
                            if at >= work.len() {
                                return;
                            }
                            if k <= order[at] + PACKS_AHEAD {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                        if let Some(loc) = &locs[i] {
                            // A failure here is met again, and reported, by a worker.
                            let _ = repo.prefetch_pack(loc, packs);
                        }
                    }
                });
            }
            for _ in 0..workers {
                scope.spawn(|| {
                    let mut window = ReadWindow::shared(packs.clone(), READAHEAD);
                    while let Some(w) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                        do_work(w, &mut window);
                    }
                });
            }
        });
    } else {
        // Contiguous runs of work per task (a window restarted per item
        // would read 4 MiB far too often), cut by bytes: runs of equal item counts put all of a
        // large dump's segments, which sit next to each other in the packs,
        // into one run, and one core wrote them alone for the last quarter
        // of the restore.
        let bytes = |w: &Work| match w {
            Work::File { cost, .. } => *cost,
            Work::Segment { file, blobs, .. } => {
                decode_cost(repo, &items[splits[*file].item].node.content[blobs.clone()])
            }
        };
        let runs = cut_runs(work.iter().map(bytes), RUN_BYTES, RUN_ITEMS);
        // Every pool thread takes the next run from one cursor, with one
        // window (and buffer) for all its runs: a fresh 4 MiB buffer per run
        // doubled the page faults, and rayon's splitting of the run list
        // left one thread 0.5 s alone on its last few runs.
        cairn_repo::parallel::map_in_order(
            &runs,
            || ReadWindow::new(READAHEAD),
            |window, run| {
                for w in &work[run.clone()] {
                    do_work(w, window);
                }
            },
        );
    }
    for (i, item) in items.iter().enumerate().filter(|(_, item)| item.kind == ItemKind::Special) {
        let made = run
            .root
            .at(&item.rel)
            .map_err(|e| e.to_string())
            .and_then(|at| create_special(&item.node, &at, run.opts.overwrite));
        match made {
            Ok(Outcome::Written(_)) => run.others.fetch_add(1, Ordering::Relaxed),
            // A socket is never restored; anything else kept was there already.
            Ok(Outcome::Kept) if item.node.kind != NodeKind::Socket => run.skipped.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        record(i, made);
    }
    // 3. Hard links, once their first name exists (in this batch or an
    //    earlier one), and only to a regular file there (linkat never
    //    follows; a symlink planted at the first name must not get the
    //    other names, nor their metadata).
    for (i, item) in items.iter().enumerate() {
        if let ItemKind::HardLink(first) = &item.kind {
            match link_one(run, first, &item.rel) {
                Ok(Outcome::Written(meta)) => {
                    run.others.fetch_add(1, Ordering::Relaxed);
                    run.done.lock().unwrap_or_else(|p| p.into_inner()).push((i, meta));
                }
                Ok(Outcome::Kept) => {
                    run.skipped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => run.fail(&item.rel, format!("hard link to {}: {e}", run.root.path().join(first).display())),
            }
        }
    }
    // 4. Verify.
    let mut done = std::mem::take(&mut *run.done.lock().unwrap_or_else(|p| p.into_inner()));
    done.sort_unstable_by_key(|&(i, _)| i);
    if run.opts.verify {
        done.par_iter().for_each(|&(i, _)| {
            let item = &items[i];
            if item.kind == ItemKind::File {
                match verify(run, &item.node, &item.rel) {
                    Ok(()) => {
                        run.verified.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => run.fail(&item.rel, e),
                }
            }
        });
    }
    // 5. Metadata of what the workers did not set: files and specials,
    //    then the folders this batch completes. One thread: twice a
    //    parallel version of this loop measured faster by hand and slower in
    //    compare.py (3.45-4.05 s against 2.29-2.42 s; docs/BENCHMARKS.md).
    for &(i, meta) in &done {
        if meta == Metadata::Pending {
            apply_at(run, &items[i]);
        }
    }
    for dir in completed {
        if folders.failed.remove(&dir.rel) {
            continue;
        }
        if defer {
            folders.deferred.push(dir);
        } else {
            apply_at(run, &dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_cut_by_bytes_and_by_count() {
        // Two 32-byte segments of one file never share a run of 40 bytes.
        assert_eq!(cut_runs([10, 10, 32, 32, 5].into_iter(), 40, 100), vec![0..2, 2..3, 3..5]);
        // Many empty files: cut by count.
        assert_eq!(cut_runs([0; 7].into_iter(), 40, 3), vec![0..3, 3..6, 6..7]);
        // A piece larger than a run is a run of its own.
        assert_eq!(cut_runs([100].into_iter(), 40, 3), vec![0..1]);
        assert!(cut_runs(std::iter::empty(), 40, 3).is_empty());
    }

    #[test]
    fn a_temporary_file_left_by_a_killed_restore_is_replaced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = Beneath::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        let tmp_name = temp_name(OsStr::new("file"));
        std::fs::write(dir.path().join(&tmp_name), b"left over").unwrap_or_else(|e| panic!("write: {e}"));
        let tmp = root.at(Path::new(&tmp_name)).unwrap_or_else(|e| panic!("at: {e}"));
        let mut f = create_temp(&tmp).unwrap_or_else(|e| panic!("create_temp: {e}"));
        f.write_all(b"new").unwrap_or_else(|e| panic!("write: {e}"));
        drop(f);
        assert_eq!(std::fs::read(dir.path().join(&tmp_name)).unwrap_or_default(), b"new");
        // A fresh name is simply created, owner-only.
        let other = root.at(Path::new(&temp_name(OsStr::new("other")))).unwrap_or_else(|e| panic!("at: {e}"));
        assert!(create_temp(&other).is_ok());
        assert!(matches!(other.found(), Found::File { size: 0, .. }));
    }

    #[test]
    fn temporary_files_of_dead_restores_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // pid 2^22 + 1 is above Linux's pid_max: never a live process.
        let dead = format!(".f{TEMP_MARK}{}", (1 << 22) + 1);
        let live = temp_name(OsStr::new("g"));
        for name in [OsStr::new(&dead), live.as_os_str(), OsStr::new("f.cairn-restore-notapid")] {
            std::fs::write(dir.path().join(name), b"x").unwrap_or_else(|e| panic!("write: {e}"));
        }
        let root = Beneath::open(dir.path()).unwrap_or_else(|e| panic!("open: {e}"));
        sweep_dead_temps(&root.dir(Path::new("")).unwrap_or_else(|e| panic!("dir: {e}")));
        assert!(!dir.path().join(&dead).exists());
        assert!(dir.path().join(&live).exists());
        assert!(dir.path().join("f.cairn-restore-notapid").exists());
    }
}
