//! Runs a backup: chooses the parent, starts the stages, writes index and snapshot.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cairn_format::index::IndexFile;
use cairn_format::snapshot::{Snapshot, Summary};
use cairn_format::tree::{Node, NodeKind, Tree};
use cairn_format::{FORMAT_VERSION, SnapshotId};
use cairn_repo::IndexedRepository;
use crossbeam_channel::bounded;

use crate::exclude::Excludes;
use crate::metadata::NameCache;
use crate::pipeline::Pipeline;
use crate::reader::{SMALL_FILE_READERS, read_loop};
use crate::stream::{self, Stream};
use crate::walker::{DirDone, ParentDir, SourceTrie, Walker, build_trees};
use crate::{BackupError, Progress};

/// What to back up: folders and files, and streams stored as files of the
/// same snapshot.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Files and directories (absolute paths).
    pub paths: Vec<PathBuf>,
    /// Standard input or commands' output, each one file.
    pub streams: Vec<Stream>,
}

impl Sources {
    /// Only these files and directories.
    pub fn paths(paths: Vec<PathBuf>) -> Self {
        Self { paths, streams: Vec::new() }
    }

    /// Only one stream.
    pub fn stream(stream: Stream) -> Self {
        Self { paths: Vec::new(), streams: vec![stream] }
    }
}

/// Which snapshot to compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot of the same host and paths.
    Auto,
    /// No parent: read every file.
    None,
    /// This snapshot.
    Id(SnapshotId),
}

/// Options of one backup run.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The sources.
    pub sources: Sources,
    /// Exclude rules.
    pub excludes: Excludes,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name recorded (and used to find the parent).
    pub hostname: String,
    /// Parent selection.
    pub parent: ParentChoice,
    /// Read every file even when the parent says it is unchanged.
    pub force: bool,
    /// Snapshot time (default: now).
    pub time: Option<jiff::Timestamp>,
    /// Reader and sealer threads (default: number of cores).
    pub workers: Option<usize>,
    /// Whether anything is written.
    pub writes: Writes,
    /// Whether new chunks may be stored as deltas.
    pub deltas: Deltas,
}

/// Whether a backup codes new data chunks against similar stored ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deltas {
    /// A new chunk like a stored one is stored as a delta against it
    /// (docs/FORMAT.md, "Delta blobs").
    #[default]
    Code,
    /// Every new chunk is stored whole (`backup --no-deltas`): more bytes
    /// (a day of a database dump several times as many), but each chunk
    /// reads back on its own, and damage to one blob reaches no other.
    /// Sketches are still recorded, for later backups to code against.
    Off,
}

/// Whether a backup stores what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Writes {
    /// Packs, index and snapshot are written.
    #[default]
    Store,
    /// Everything is read, chunked, compressed and encrypted as for real, so
    /// the summary says what would be added, but nothing is written: no
    /// pack, no index, no snapshot (`backup --dry-run`).
    DryRun,
}

/// A snapshot was written (or, in a dry run, would have been).
#[derive(Debug)]
pub struct BackupOutcome {
    /// Its id (all zeros in a dry run: nothing was saved).
    pub id: SnapshotId,
    /// It.
    pub snapshot: Snapshot,
}

/// Counters shared by the stages.
#[derive(Default)]
pub struct Stats {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    bytes_read: AtomicU64,
    total_bytes: AtomicU64,
    errors: AtomicU64,
}

macro_rules! counter {
    ($($name:ident => $field:ident),*) => {
        impl Stats {
            $(pub fn $name(&self) { self.$field.fetch_add(1, Ordering::Relaxed); })*
        }
    };
}
counter!(add_new => files_new, add_changed => files_changed, add_unchanged => files_unchanged, add_dir => dirs, add_error => errors);

impl Stats {
    pub fn add_bytes_read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_total(&self, n: u64) {
        self.total_bytes.fetch_add(n, Ordering::Relaxed);
    }
}

fn current_user() -> (String, u32, u32) {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string());
    (name, uid.as_raw(), nix::unistd::getgid().as_raw())
}

fn snapshot_paths(sources: &Sources) -> Vec<String> {
    sources
        .paths
        .iter()
        .chain(sources.streams.iter().map(|s| &s.path))
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// The parent snapshot's node at the absolute `path`.
fn node_at(repo: &IndexedRepository, root: &Tree, path: &std::path::Path) -> Option<Node> {
    let mut names = path.components().filter_map(|c| match c {
        std::path::Component::Normal(n) => Some(n.as_encoded_bytes()),
        _ => None,
    });
    let mut node = root.find(names.next()?)?.clone();
    for name in names {
        let tree = repo.load_tree(&node.subtree?).ok()?;
        node = tree.find(name)?.clone();
    }
    Some(node)
}

fn find_parent(
    repo: &IndexedRepository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<Option<(SnapshotId, Tree)>, BackupError> {
    let parent = match opts.parent {
        ParentChoice::None => return Ok(None),
        ParentChoice::Id(id) => Some((id, repo.repo().load_snapshot(&id)?)),
        ParentChoice::Auto => {
            let mut want = snapshot_paths(&opts.sources);
            want.sort();
            repo.repo().snapshots()?.into_iter().rev().find(|(_, s)| {
                let mut have = s.paths.clone();
                have.sort();
                s.hostname == opts.hostname && have == want
            })
        }
    };
    let Some((id, snap)) = parent else {
        return Ok(None);
    };
    match repo.load_tree(&snap.tree) {
        Ok(t) => Ok(Some((id, t))),
        Err(e) => {
            progress.warning(&format!("parent snapshot {}: {e}; reading all files", id.short()));
            Ok(None)
        }
    }
}

/// Backs up `opts.sources` into `repo` and writes a snapshot. Unreadable
/// files are reported through `progress` and counted in the summary's
/// `errors`; the snapshot is written all the same. A stream that fails or
/// gives nothing fails the backup, and no snapshot is written.
pub fn backup(
    repo: IndexedRepository,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome, BackupError> {
    let start = jiff::Timestamp::now();
    if opts.sources.paths.is_empty() && opts.sources.streams.is_empty() {
        return Err(BackupError::Io("nothing to back up: give paths or streams".into()));
    }
    stream::check_overlaps(&opts.sources.paths, &opts.sources.streams)?;
    let parent = find_parent(&repo, opts, &*progress)?;
    let repo = Arc::new(repo);
    let workers =
        opts.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1);
    let pipeline = Pipeline::start(repo.clone(), workers, opts.writes, opts.deltas)?;
    let sink = pipeline.sink();
    let stats = Arc::new(Stats::default());
    let names = Arc::new(NameCache::default());
    let (dir_tx, dir_rx) = bounded::<DirDone>(256);
    let builder = {
        let (sink, names, progress, stats) = (sink.clone(), names.clone(), progress.clone(), stats.clone());
        std::thread::Builder::new()
            .name("trees".into())
            .spawn(move || build_trees(dir_rx, sink, names, progress, stats))
            .map_err(|e| BackupError::Io(e.to_string()))?
    };

    let mut running = Vec::new();
    for stream in &opts.sources.streams {
        let previous =
            parent.as_ref().and_then(|(_, t)| node_at(&repo, t, &stream.path)).filter(|n| n.kind == NodeKind::File);
        let shared = stream::Shared {
            sink: sink.clone(),
            chunker: repo.repo().chunker().clone(),
            progress: progress.clone(),
            stats: stats.clone(),
        };
        running.push(stream::start(stream, previous.as_ref(), shared)?);
    }
    let (slots, stream_threads): (Vec<_>, Vec<_>) = running.into_iter().map(|r| (r.slot, r.thread)).unzip();
    let root_rx = {
        let mut readers = Vec::new();
        let mut start_readers = |name: &str, n: usize| {
            let (tx, rx) = bounded(n * 4);
            for i in 0..n {
                let (rx, sink, chunker, progress, stats) =
                    (rx.clone(), sink.clone(), repo.repo().chunker().clone(), progress.clone(), stats.clone());
                readers.push(
                    std::thread::Builder::new()
                        .name(format!("{name}-{i}"))
                        .spawn(move || read_loop(rx, sink, chunker, progress, stats))
                        .map_err(|e| BackupError::Io(e.to_string()))?,
                );
            }
            Ok::<_, BackupError>(tx)
        };
        let small_files = start_readers("read-small", SMALL_FILE_READERS)?;
        let large_files = start_readers("read", workers)?;
        let stream_paths: Vec<&std::path::Path> = opts.sources.streams.iter().map(|s| s.path.as_path()).collect();
        let trie = SourceTrie::new(&opts.sources.paths, &stream_paths);
        let walker = Walker {
            sink: &sink,
            excludes: &opts.excludes,
            names: &names,
            force: opts.force,
            progress: &*progress,
            stats: &stats,
            small_files,
            large_files,
            dir_tx: dir_tx.clone(),
            streams: &slots,
        };
        let parent_tree = parent.as_ref().map(|(_, t)| ParentDir { id: None, tree: t.clone() });
        let walked = AtomicBool::new(false);
        // Deep trees recurse deeply; give the walk a large stack.
        let rx = std::thread::scope(|s| {
            s.spawn(|| crate::warm::warm(&opts.sources.paths, &opts.excludes, &walked));
            let rx = std::thread::Builder::new()
                .name("walk".into())
                .stack_size(256 << 20)
                .spawn_scoped(s, move || walker.walk_virtual(&trie, std::path::Path::new("/"), parent_tree))
                .map_err(|e| BackupError::Io(e.to_string()))?
                .join()
                .map_err(|_| BackupError::Io("the walker thread panicked".into()));
            walked.store(true, Ordering::Relaxed);
            rx
        })?;
        for r in readers {
            let _ = r.join();
        }
        rx
    };
    drop(dir_tx);
    let root = root_rx.recv().ok().flatten();
    drop(sink);
    let _ = builder.join();
    // Every stream's verdict, its command's exit included; the first
    // failure wins, after the index is written below.
    let mut stream_failure = None;
    for t in stream_threads {
        let verdict = t.join().unwrap_or_else(|_| Err(BackupError::Io("a stream thread panicked".into())));
        if let Err(e) = verdict {
            stream_failure.get_or_insert(e);
        }
    }
    let written = pipeline.finish()?;

    // Index before snapshot: a snapshot must never name blobs no index lists.
    // The index is written even when the command failed below, so the data
    // already uploaded is reused by the next run instead of stored again.
    if !written.packs.is_empty() && opts.writes == Writes::Store {
        repo.repo().save_index(&IndexFile { supersedes: Vec::new(), packs: written.packs.clone() })?;
    }
    if let Some(e) = stream_failure {
        return Err(e);
    }
    let root = root.ok_or_else(|| BackupError::Io("the backup was aborted".into()))?;
    let errors = stats.errors.load(Ordering::SeqCst);
    let total_files = stats.files_new.load(Ordering::SeqCst)
        + stats.files_changed.load(Ordering::SeqCst)
        + stats.files_unchanged.load(Ordering::SeqCst);
    let paths = &opts.sources.paths;
    if opts.sources.streams.is_empty() && errors > 0 && total_files == 0 && stats.dirs.load(Ordering::SeqCst) == 0 {
        let tree = repo.load_tree(&root).map(|t| t.nodes.len()).unwrap_or(0);
        if tree == 0 {
            let list = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
            return Err(BackupError::NoSources(list));
        }
    }
    let (username, uid, gid) = current_user();
    let summary = Summary {
        files_new: stats.files_new.load(Ordering::SeqCst),
        files_changed: stats.files_changed.load(Ordering::SeqCst),
        files_unchanged: stats.files_unchanged.load(Ordering::SeqCst),
        dirs: stats.dirs.load(Ordering::SeqCst),
        bytes_read: stats.bytes_read.load(Ordering::SeqCst),
        total_bytes: stats.total_bytes.load(Ordering::SeqCst),
        blobs_added: written.blobs_added,
        bytes_added_raw: written.raw_added,
        bytes_added: written.bytes_added,
        errors,
        start,
        end: jiff::Timestamp::now(),
    };
    let snapshot = Snapshot {
        version: FORMAT_VERSION,
        time: opts.time.unwrap_or(start),
        tree: root,
        paths: snapshot_paths(&opts.sources),
        hostname: opts.hostname.clone(),
        username,
        uid,
        gid,
        tags: opts.tags.clone(),
        parent: parent.as_ref().map(|(id, _)| *id),
        excludes: opts.excludes.patterns().to_vec(),
        program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary),
        protected: false,
        original: None,
        repaired: vec![],
    };
    if opts.writes == Writes::DryRun {
        // Nothing was saved, so there is no id.
        return Ok(BackupOutcome { id: SnapshotId::from_bytes([0; 32]), snapshot });
    }
    repo.ensure_run_alive()?;
    let id = repo.repo().save_snapshot(&snapshot)?;
    Ok(BackupOutcome { id, snapshot })
}
