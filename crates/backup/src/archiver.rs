//! Runs a backup: chooses the parent, starts the stages, writes index and snapshot.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_format::index::IndexFile;
use cairn_format::snapshot::{Snapshot, Summary};
use cairn_format::tree::{Node, NodeKind, Time, Tree, is_valid_name};
use cairn_format::{FORMAT_VERSION, SnapshotId};
use cairn_repo::IndexedRepository;
use crossbeam_channel::bounded;

use crate::delta::BaseFinder;
use crate::exclude::Excludes;
use crate::metadata::NameCache;
use crate::pipeline::Pipeline;
use crate::reader::{FileOutcome, chunk_stream, read_loop};
use crate::walker::{DirDone, Pending, SourceTrie, Walker, build_trees};
use crate::{BackupError, Progress};

/// What to back up.
#[derive(Debug, Clone)]
pub enum Source {
    /// Files and directories (absolute paths).
    Paths(Vec<PathBuf>),
    /// Standard input, stored as one file with this name.
    Stdin {
        /// File name in the snapshot.
        name: String,
    },
    /// A command's standard output, stored as one file with this name. A
    /// command that exits non-zero fails the backup.
    Command {
        /// File name in the snapshot.
        name: String,
        /// Program and arguments.
        argv: Vec<OsString>,
    },
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
    pub source: Source,
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

fn snapshot_paths(source: &Source) -> Vec<String> {
    match source {
        Source::Paths(p) => p.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
        Source::Stdin { name } | Source::Command { name, .. } => vec![format!("/{name}")],
    }
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
            let mut want = snapshot_paths(&opts.source);
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

/// The node of a stream: owned by whoever runs the backup, timed now.
fn stream_node(name: &str) -> Node {
    let (_, uid, gid) = current_user();
    let now = jiff::Timestamp::now();
    let t = Time(now.as_second(), now.subsec_nanosecond() as u32);
    Node { mode: 0o100644, uid, gid, mtime: t, ctime: t, ..Node::new(name.as_bytes(), NodeKind::File) }
}

/// Backs up `opts.source` into `repo` and writes a snapshot. Unreadable
/// files are reported through `progress` and counted in the summary's
/// `errors`; the snapshot is written all the same.
pub fn backup(
    repo: IndexedRepository,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<BackupOutcome, BackupError> {
    let start = jiff::Timestamp::now();
    let parent = find_parent(&repo, opts, &*progress)?;
    let repo = Arc::new(repo);
    let workers =
        opts.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).max(1);
    let pipeline = Pipeline::start(repo.clone(), workers, opts.writes)?;
    let sink = pipeline.sink();
    let stats = Arc::new(Stats::default());
    let names = NameCache::default();
    let (dir_tx, dir_rx) = bounded::<DirDone>(256);
    let builder = {
        let (sink, progress, stats) = (sink.clone(), progress.clone(), stats.clone());
        std::thread::Builder::new()
            .name("trees".into())
            .spawn(move || build_trees(dir_rx, sink, progress, stats))
            .map_err(|e| BackupError::Io(e.to_string()))?
    };

    let mut child = None;
    // Set when a stream gave no bytes: refused below, after the command's
    // own exit status (the more precise message) has been looked at.
    let mut empty_stream = None;
    let root_rx = match &opts.source {
        Source::Paths(paths) => {
            let (file_tx, file_rx) = bounded(workers * 4);
            let mut readers = Vec::new();
            for i in 0..workers {
                let (rx, sink, chunker, progress, stats) =
                    (file_rx.clone(), sink.clone(), repo.repo().chunker().clone(), progress.clone(), stats.clone());
                readers.push(
                    std::thread::Builder::new()
                        .name(format!("read-{i}"))
                        .spawn(move || read_loop(rx, sink, chunker, progress, stats))
                        .map_err(|e| BackupError::Io(e.to_string()))?,
                );
            }
            let trie = SourceTrie::new(paths);
            let walker = Walker {
                sink: &sink,
                excludes: &opts.excludes,
                names: &names,
                force: opts.force,
                progress: &*progress,
                stats: &stats,
                file_tx,
                dir_tx: dir_tx.clone(),
            };
            let parent_tree = parent.as_ref().map(|(_, t)| t);
            // Deep trees recurse deeply; give the walk a large stack.
            let rx = std::thread::scope(|s| {
                std::thread::Builder::new()
                    .name("walk".into())
                    .stack_size(256 << 20)
                    .spawn_scoped(s, move || walker.walk_virtual(&trie, std::path::Path::new("/"), parent_tree))
                    .map_err(|e| BackupError::Io(e.to_string()))?
                    .join()
                    .map_err(|_| BackupError::Io("the walker thread panicked".into()))
            })?;
            for r in readers {
                let _ = r.join();
            }
            rx
        }
        Source::Stdin { name } | Source::Command { name, .. } => {
            if !is_valid_name(name.as_bytes()) {
                return Err(BackupError::Io(format!(
                    "invalid --stdin-filename {name:?}: give a file name without '/'"
                )));
            }
            let reader: Box<dyn Read + Send> = match &opts.source {
                Source::Command { argv, .. } => {
                    let (prog, args) = argv
                        .split_first()
                        .ok_or_else(|| BackupError::Io("--stdin-from-command needs a command".into()))?;
                    let mut cmd = std::process::Command::new(prog);
                    // The dump command is the user's, not a reader of cairn's secrets.
                    for (k, _) in std::env::vars_os() {
                        if k.to_string_lossy().starts_with("CAIRN_") && k.to_string_lossy().contains("PASSWORD") {
                            cmd.env_remove(k);
                        }
                    }
                    let mut c = cmd
                        .args(args)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .map_err(|e| BackupError::Io(format!("cannot run {}: {e}", prog.to_string_lossy())))?;
                    let out = c.stdout.take().ok_or_else(|| BackupError::Io("no stdout pipe".into()))?;
                    child = Some(c);
                    Box::new(out)
                }
                _ => Box::new(std::io::stdin()),
            };
            let mut node = stream_node(name);
            let previous =
                parent.as_ref().and_then(|(_, t)| t.find(name.as_bytes())).filter(|n| n.kind == NodeKind::File);
            let bases = previous.and_then(|n| BaseFinder::new(&n.content, repo.index()));
            let outcome = chunk_stream(reader, &sink, repo.repo().chunker(), bases, &*progress, &stats);
            let entry = match outcome {
                FileOutcome::Done { content, size, .. } => {
                    if size == 0 {
                        empty_stream = Some(name.clone());
                    }
                    node.content = content;
                    node.size = size;
                    if previous.is_some() {
                        stats.add_changed()
                    } else {
                        stats.add_new()
                    }
                    stats.add_total(size);
                    Pending::Ready(node)
                }
                FileOutcome::Failed(e) => {
                    if let Some(mut c) = child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    drop((sink, dir_tx));
                    let _ = builder.join();
                    let _ = pipeline.finish();
                    return Err(BackupError::Stream { name: name.clone(), source: std::io::Error::other(e) });
                }
                FileOutcome::Aborted => Pending::Ready(node),
            };
            let (reply, rx) = bounded(1);
            let _ = dir_tx.send(DirDone { entries: vec![entry], reply });
            rx
        }
    };
    drop(dir_tx);
    let root = root_rx.recv().ok().flatten();
    drop(sink);
    let _ = builder.join();
    let written = pipeline.finish()?;

    // Index before snapshot: a snapshot must never name blobs no index lists.
    // The index is written even when the command failed below, so the data
    // already uploaded is reused by the next run instead of stored again.
    if !written.packs.is_empty() && opts.writes == Writes::Store {
        repo.repo().save_index(&IndexFile { supersedes: Vec::new(), packs: written.packs.clone() })?;
    }
    if let (Some(mut c), Source::Command { argv, .. }) = (child, &opts.source) {
        let status = c.wait().map_err(|e| BackupError::Io(e.to_string()))?;
        if !status.success() {
            let command = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
            return Err(BackupError::CommandFailed { command, status: status.to_string() });
        }
    }
    if let Some(name) = empty_stream {
        return Err(BackupError::EmptyStream { name, from_command: matches!(opts.source, Source::Command { .. }) });
    }
    let root = root.ok_or_else(|| BackupError::Io("the backup was aborted".into()))?;
    let errors = stats.errors.load(Ordering::SeqCst);
    let total_files = stats.files_new.load(Ordering::SeqCst)
        + stats.files_changed.load(Ordering::SeqCst)
        + stats.files_unchanged.load(Ordering::SeqCst);
    if let Source::Paths(paths) = &opts.source
        && errors > 0
        && total_files == 0
        && stats.dirs.load(Ordering::SeqCst) == 0
    {
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
        paths: snapshot_paths(&opts.source),
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
