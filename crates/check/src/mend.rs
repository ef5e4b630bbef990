//! Rewriting snapshots around lost data (`cairn repair snapshots`): every
//! tree is rebuilt without what cannot be read any more (a file keeps the
//! chunks that read, a folder whose tree is gone becomes empty), new trees
//! are stored in new packs, and each affected snapshot is saved again,
//! tagged `repaired`, naming the lost paths and its original id. Each tree
//! is rebuilt once however many snapshots share it.

use std::collections::{HashMap, HashSet};

use cairn_format::index::{IndexFile, IndexPack};
use cairn_format::snapshot::Snapshot;
use cairn_format::tree::{NodeKind, Tree};
use cairn_format::{BlobId, BlobKind, SnapshotId};
use cairn_repo::{IndexedRepository, MAX_DELTA_DEPTH, PackWriter, RepoError};

type Result<T> = std::result::Result<T, RepoError>;

/// What is done to the original snapshot once its repaired copy is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Original {
    /// Kept.
    Keep,
    /// Removed (`--forget`).
    Forget,
}

/// One snapshot that needed repair.
#[derive(Debug, Clone)]
pub struct Repaired {
    /// The damaged snapshot.
    pub snapshot: SnapshotId,
    /// Its repaired copy (none in a dry run).
    pub repaired: Option<SnapshotId>,
    /// The paths whose data was lost (`/` for a lost root).
    pub lost: Vec<String>,
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
        if let Some(p) = self.writer.finish()? {
            self.packs.push(self.repo.repo().save_pack(p)?.0);
        }
        Ok(())
    }
}

/// Repairs the snapshots `chosen` of `repo` (whose index is loaded for a
/// backup run: new packs are written); with `dry_run` nothing is written and
/// the report says what would be done.
pub fn repair_snapshots(
    repo: &IndexedRepository,
    chosen: &[(SnapshotId, Snapshot)],
    original: Original,
    dry_run: bool,
) -> Result<Vec<Repaired>> {
    let mut m = Mender {
        repo,
        writer: repo.repo().pack_writer(BlobKind::Tree),
        packs: Vec::new(),
        memo: HashMap::new(),
        written: HashSet::new(),
        dry_run,
    };
    let mut fixes = Vec::new();
    for (id, snap) in chosen {
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
        let repaired = if dry_run {
            None
        } else {
            repo.ensure_run_alive()?;
            let n = repo.repo().save_snapshot(&new)?;
            if original == Original::Forget {
                repo.repo().delete_snapshot(&id)?;
            }
            Some(n)
        };
        report.push(Repaired { snapshot: id, repaired, lost });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_backend::Backend;
    use cairn_format::tree::Node;
    use cairn_repo::{InitOptions, Repository};

    fn save_tree(repo: &mut IndexedRepository, nodes: Vec<Node>) -> BlobId {
        let plain = Tree { nodes }.encode();
        let id = repo.repo().blob_id(&plain);
        let mut w = repo.repo().pack_writer(BlobKind::Tree);
        w.add(repo.seal_blob(BlobKind::Tree, id, &plain).expect("seal")).expect("add");
        let pack = w.finish().expect("finish").expect("pack");
        let (entry, _) = repo.repo().save_pack(pack).expect("save");
        repo.index_mut().add_pack(&entry);
        id
    }

    #[test]
    fn lost_content_and_lost_trees_are_named_per_path_in_a_dry_run() {
        let repo = Repository::init(Backend::memory().expect("memory"), b"pw", &InitOptions::fast_for_tests());
        let mut repo = repo.expect("init").load_index().expect("index");
        let file = |name: &str, blob: u8| Node {
            content: vec![BlobId::from_bytes([blob; 32])],
            ..Node::new(name.as_bytes(), NodeKind::File)
        };
        let gone = BlobId::from_bytes([9; 32]);
        let sub = save_tree(&mut repo, vec![file("lost-data", 1)]);
        let root = save_tree(
            &mut repo,
            vec![
                Node { subtree: Some(sub), ..Node::new(b"d", NodeKind::Dir) },
                Node { subtree: Some(gone), ..Node::new(b"e", NodeKind::Dir) },
            ],
        );
        let snap: Snapshot = serde_json::from_value(serde_json::json!({
            "version": 1, "time": "2026-12-06T00:00:00Z", "tree": root, "paths": ["/"], "hostname": "h",
            "username": "u", "uid": 0, "gid": 0, "program_version": "test",
        }))
        .expect("snapshot");
        let id = SnapshotId::from_bytes([1; 32]);
        let report = repair_snapshots(&repo, &[(id, snap)], Original::Keep, true).expect("repair");
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].lost, ["/d/lost-data", "/e/"]);
        assert_eq!(report[0].repaired, None, "a dry run saves nothing");
        assert!(repo.repo().snapshot_ids().expect("ids").is_empty());
    }
}
