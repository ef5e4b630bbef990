//! Copying snapshots into another repository: a backup whose source is a
//! snapshot of a second repository.
//!
//! The two repositories have their own keys and, unless one was made from
//! the other's secrets, their own chunker and blob-id keys: then every file
//! is re-chunked (its content read from the source, in order, and cut by the
//! destination's chunker) and every tree rebuilt with the new ids. When both
//! share the content secret (same blob ids for the same bytes), blobs are
//! copied one to one. Either way the destination's deduplication applies,
//! and snapshots already present there (same time, host, paths, user and
//! tags) are skipped, so copying twice adds nothing.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_format::snapshot::Snapshot;
use cairn_format::tree::{Bytes, Node, NodeKind, Tree};
use cairn_format::{BlobId, BlobKind, SnapshotId};
use cairn_repo::IndexedRepository;
use cairn_repo::lru::Lru;
use cairn_view::ContentReader;
use cairn_view::walk::{Step, Visitor, walk};

use crate::archiver::Stats;
use crate::delta::{self, Choice};
use crate::pipeline::{BlobSink, Pipeline};
use crate::reader::{FileOutcome, chunk_stream};
use crate::{BackupError, NoProgress};

/// What a copy did.
#[derive(Debug, Default, Clone)]
pub struct CopyOutcome {
    /// Source snapshot id and its new id in the destination.
    pub copied: Vec<(SnapshotId, SnapshotId)>,
    /// Source snapshots the destination already had.
    pub skipped: Vec<SnapshotId>,
    /// New blobs stored in the destination.
    pub blobs_added: u64,
    /// Bytes added to the destination.
    pub bytes_added: u64,
}

/// What identifies a snapshot across repositories (tree ids differ).
fn identity(s: &Snapshot) -> (jiff::Timestamp, String, Vec<String>, String, Vec<String>) {
    let mut paths = s.paths.clone();
    paths.sort();
    let mut tags = s.tags.clone();
    tags.sort();
    (s.time, s.hostname.clone(), paths, s.username.clone(), tags)
}

/// Bytes of content lists `Copier::contents` keeps. Unbounded, it held
/// every file's list twice: 84 bytes a blob copied (a copy of 575,000
/// blobs into an empty repository peaked at 110 MiB, of 300,000 at 85).
const CONTENTS_CACHE_BYTES: u64 = 8 << 20;

struct Copier<'a> {
    src: &'a IndexedRepository,
    sink: BlobSink,
    /// Blob ids mean the same bytes in both repositories.
    same_ids: bool,
    trees: HashMap<BlobId, BlobId>,
    /// The destination's content of source contents met lately: a file
    /// unchanged between two snapshots copied is read once.
    contents: Lru<Vec<BlobId>, Vec<BlobId>>,
    stats: Stats,
    /// The source trees being copied, innermost last.
    open: Vec<Frame>,
}

impl Copier<'_> {
    fn content(&mut self, ids: &[BlobId]) -> Result<Vec<BlobId>, BackupError> {
        if let Some(c) = self.contents.get(&ids.to_vec()) {
            return Ok(c.as_ref().clone());
        }
        let out = if self.same_ids {
            for id in ids {
                if !self.sink.repo().index().contains(id) {
                    // Same ids: the blob is copied as it is, never cut.
                    let data = self.src.read_blob(id)?;
                    let choice = delta::choose(self.sink.repo(), &data, None);
                    self.sink.submit(BlobKind::Data, *id, data, choice).map_err(|_| aborted())?;
                }
            }
            ids.to_vec()
        } else {
            let reader = ContentReader::new(self.src, ids);
            let chunker = self.sink.repo().repo().chunker().clone();
            match chunk_stream(reader, 0, &self.sink, &chunker, None, &NoProgress, &self.stats) {
                FileOutcome::Done { content, .. } => content,
                FileOutcome::Failed(e) => return Err(BackupError::Io(format!("reading the source repository: {e}"))),
                FileOutcome::Aborted => return Err(aborted()),
                // Only a file opened by the walk vanishes.
                FileOutcome::Vanished => return Err(BackupError::Io("reading the source repository failed".into())),
            }
        };
        let cost = 32 * (ids.len() + out.len()) as u64 + 64;
        self.contents.insert(ids.to_vec(), Arc::new(out.clone()), cost);
        Ok(out)
    }

    /// The destination's id of the source tree `id`, copied (once) with
    /// everything below it through the shared walk.
    fn tree(&mut self, id: BlobId) -> Result<BlobId, BackupError> {
        if let Some(t) = self.trees.get(&id) {
            return Ok(*t);
        }
        self.open.push(Frame { old: id, dir: None, nodes: Vec::new() });
        walk(self.src, &id, b"", self)?;
        self.close()
    }

    /// Stores the innermost open tree with its rewritten entries.
    fn close(&mut self) -> Result<BlobId, BackupError> {
        let Some(frame) = self.open.pop() else { return Err(BackupError::Io("copy: no tree open".into())) };
        let bytes = Tree { nodes: frame.nodes }.encode();
        let new = self.sink.repo().repo().blob_id(&bytes);
        self.sink.submit(BlobKind::Tree, new, bytes, Choice::default()).map_err(|_| aborted())?;
        self.trees.insert(frame.old, new);
        if let Some(mut dir) = frame.dir {
            dir.subtree = Some(new);
            self.add(dir);
        }
        Ok(new)
    }

    fn add(&mut self, node: Node) {
        if let Some(top) = self.open.last_mut() {
            top.nodes.push(node);
        }
    }
}

/// A source tree being copied: its entries as rewritten so far, and the
/// folder entry that names it (none for a snapshot's root).
struct Frame {
    old: BlobId,
    dir: Option<Node>,
    nodes: Vec<Node>,
}

impl Visitor for Copier<'_> {
    type Error = BackupError;

    fn visit(&mut self, _path: &Bytes, n: &Node) -> Result<Step, BackupError> {
        let mut n = n.clone();
        if n.kind == NodeKind::File && !n.content.is_empty() {
            n.content = self.content(&n.content)?;
        }
        let Some(sub) = n.subtree else {
            self.add(n);
            return Ok(Step::Skip);
        };
        if let Some(new) = self.trees.get(&sub) {
            n.subtree = Some(*new);
            self.add(n);
            return Ok(Step::Skip);
        }
        if n.kind == NodeKind::Dir {
            self.open.push(Frame { old: sub, dir: Some(n), nodes: Vec::new() });
            return Ok(Step::Descend);
        }
        // A subtree on something that is not a folder: copied all the same.
        n.subtree = Some(self.tree(sub)?);
        self.add(n);
        Ok(Step::Skip)
    }

    fn leave(&mut self, _path: &Bytes, _n: &Node) -> Result<(), BackupError> {
        self.close().map(|_| ())
    }
}

fn aborted() -> BackupError {
    BackupError::Io("writing to the destination repository failed".into())
}

/// Copies `snapshots` of `src` into `dst`, skipping those `dst` has.
pub fn copy(
    src: &IndexedRepository,
    dst: IndexedRepository,
    snapshots: &[(SnapshotId, Snapshot)],
) -> Result<CopyOutcome, BackupError> {
    let present: Vec<_> = dst.repo().snapshots()?.iter().map(|(_, s)| identity(s)).collect();
    let mut out = CopyOutcome::default();
    let todo: Vec<&(SnapshotId, Snapshot)> = snapshots
        .iter()
        .filter(|(id, s)| {
            let have = present.contains(&identity(s));
            if have {
                out.skipped.push(*id);
            }
            !have
        })
        .collect();
    if todo.is_empty() {
        return Ok(out);
    }
    let probe = b"cairn copy: do blob ids agree?";
    let same_ids = src.repo().blob_id(probe) == dst.repo().blob_id(probe)
        && src.repo().config().chunker == dst.repo().config().chunker;
    let dst = Arc::new(dst);
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let pipeline = Pipeline::start(dst.clone(), workers, crate::Writes::Store, crate::Deltas::Code)?;
    let mut copier = Copier {
        src,
        sink: pipeline.sink(),
        same_ids,
        trees: HashMap::new(),
        contents: Lru::new(CONTENTS_CACHE_BYTES),
        stats: Stats::default(),
        open: Vec::new(),
    };
    let mut roots = Vec::new();
    let mut failure = None;
    for (id, snap) in &todo {
        match copier.tree(snap.tree) {
            Ok(root) => roots.push((*id, snap, root)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(copier);
    let written = pipeline.finish()?;
    // Index before snapshots, as in a backup; written even after a failure
    // so the next run reuses what was uploaded.
    if !written.packs.is_empty() {
        dst.repo().save_index(&cairn_format::index::IndexFile { supersedes: Vec::new(), packs: written.packs })?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    out.blobs_added = written.blobs_added;
    out.bytes_added = written.bytes_added;
    for (id, snap, root) in roots {
        dst.ensure_run_alive()?;
        let mut copy = snap.clone();
        copy.tree = root;
        copy.parent = None;
        copy.original = Some(snap.original.unwrap_or(id));
        let new = dst.repo().save_snapshot(&copy)?;
        out.copied.push((id, new));
    }
    Ok(out)
}
