//! Which snapshots hold entries whose paths match patterns (`cairn find`).
//! Patterns follow the restore/exclude rules (cairn-repo's `pattern`): a
//! name pattern (`*.conf`) matches anywhere, one with `/` matches paths.
//! A visitor of the shared walk; what was found below a tree at a path is
//! remembered, so the unchanged folders of the next snapshot are not
//! searched again.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::pattern::Matcher;
use cairn_repo::{IndexedRepository, RepoError};
use serde::Serialize;

use crate::walk::{Step, Visitor, walk};

/// One entry whose path matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    /// Its path in the snapshot.
    pub path: String,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Its size.
    pub size: u64,
    /// Its modification time.
    pub mtime: jiff::Timestamp,
}

/// Collects the hits of one snapshot's walk; what was found below a tree
/// at a path is remembered, so the same tree at the same path in the next
/// snapshot (most of them) is not walked again.
pub struct Finder<'a> {
    matcher: &'a Matcher,
    hits: Vec<Hit>,
    /// Where each open folder's hits begin in `hits`.
    open: Vec<usize>,
    /// Hits below each tree already searched, by tree and path (patterns
    /// with `/` depend on the path).
    memo: HashMap<(BlobId, Vec<u8>), Arc<Vec<Hit>>>,
    /// Hits held by `memo`.
    remembered: usize,
}

/// Hits remembered for folders, at most (about 100 bytes each).
const REMEMBERED_HITS: usize = 50_000;

impl Visitor for Finder<'_> {
    type Error = RepoError;

    fn visit(&mut self, path: &Bytes, n: &Node) -> Result<Step, RepoError> {
        let shown = path.display();
        if self.matcher.matches(&*shown) {
            self.hits.push(Hit {
                path: shown.into_owned(),
                kind: n.kind,
                size: n.size,
                mtime: jiff::Timestamp::new(n.mtime.0, n.mtime.1 as i32).unwrap_or_default(),
            });
        }
        let Some(sub) = n.subtree.filter(|_| n.kind == NodeKind::Dir) else { return Ok(Step::Descend) };
        if let Some(known) = self.memo.get(&(sub, path.0.clone())) {
            self.hits.extend(known.iter().cloned());
            return Ok(Step::Skip);
        }
        self.open.push(self.hits.len());
        Ok(Step::Descend)
    }

    fn leave(&mut self, path: &Bytes, n: &Node) -> Result<(), RepoError> {
        if let (Some(sub), Some(from)) = (n.subtree, self.open.pop()) {
            // `leave` comes only for folders `visit` opened. Every folder
            // above a hit remembers it again: past a bound, the next
            // snapshot walks instead of memory growing with the tree.
            let found = self.hits.len() - from;
            if self.remembered + found <= REMEMBERED_HITS {
                self.remembered += found;
                self.memo.insert((sub, path.0.clone()), Arc::new(self.hits[from..].to_vec()));
            }
        }
        Ok(())
    }
}

impl<'a> Finder<'a> {
    /// A finder of paths matching `matcher`.
    pub fn new(matcher: &'a Matcher) -> Self {
        Self { matcher, hits: Vec::new(), open: Vec::new(), memo: HashMap::new(), remembered: 0 }
    }

    /// The hits in the snapshot whose root is `tree`.
    pub fn search(&mut self, repo: &IndexedRepository, tree: BlobId) -> Result<Arc<Vec<Hit>>, RepoError> {
        if let Some(known) = self.memo.get(&(tree, Vec::new())) {
            return Ok(known.clone());
        }
        self.hits.clear();
        walk(repo, &tree, b"", self)?;
        let hits = Arc::new(std::mem::take(&mut self.hits));
        self.memo.insert((tree, Vec::new()), hits.clone());
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{dir, file, save_tree, test_repo};

    #[test]
    fn names_and_paths_match_and_a_shared_tree_is_searched_once() {
        let mut repo = test_repo();
        let sub = save_tree(&mut repo, vec![file("app.conf", 1, 10), file("x", 2, 1)]);
        let first = save_tree(&mut repo, vec![dir("etc", sub), file("top.conf", 3, 5)]);
        let second = save_tree(&mut repo, vec![dir("etc", sub), dir("other", sub)]);
        let names = Matcher::new(&["*.conf".into()]).expect("pattern");
        let mut f = Finder::new(&names);
        let paths = |h: &[Hit]| h.iter().map(|h| h.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&f.search(&repo, first).expect("find")), ["/etc/app.conf", "/top.conf"]);
        assert_eq!(paths(&f.search(&repo, second).expect("find")), ["/etc/app.conf", "/other/app.conf"]);
        assert!(f.memo.contains_key(&(sub, b"/etc".to_vec())), "remembered by tree and path");
        let anchored = Matcher::new(&["/other/*.conf".into()]).expect("pattern");
        assert_eq!(paths(&Finder::new(&anchored).search(&repo, second).expect("find")), ["/other/app.conf"]);
    }
}
