//! `cairn find`: which snapshots hold files matching a pattern, and where.
//!
//! Patterns follow the restore/exclude rules (crates/repo/src/pattern.rs):
//! a name pattern (`*.conf`) matches anywhere, one with `/` matches paths.
//! Trees shared by several snapshots are searched once.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::IndexedRepository;
use cairn_repo::pattern::Matcher;
use cairn_repo::select;
use cairn_view::walk::{Step, Visitor, walk};
use serde::Serialize;

use crate::cli::{FindArgs, Global};
use crate::output::local_time;

#[derive(Debug, Clone, Serialize)]
struct Hit {
    path: String,
    #[serde(rename = "type")]
    kind: NodeKind,
    size: u64,
    mtime: jiff::Timestamp,
}

/// Collects the hits of one snapshot's walk; what was found below a tree
/// at a path is remembered, so the same tree at the same path in the next
/// snapshot (most of them) is not walked again.
struct Finder<'a> {
    matcher: &'a Matcher,
    hits: Vec<Hit>,
    /// Where each open folder's hits begin in `hits`.
    open: Vec<usize>,
    /// Hits below each tree already searched, by tree and path (patterns
    /// with `/` depend on the path).
    memo: HashMap<(BlobId, Vec<u8>), Arc<Vec<Hit>>>,
}

impl Visitor for Finder<'_> {
    type Error = anyhow::Error;

    fn visit(&mut self, path: &Bytes, n: &Node) -> Result<Step> {
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

    fn leave(&mut self, path: &Bytes, n: &Node) -> Result<()> {
        if let (Some(sub), Some(from)) = (n.subtree, self.open.pop()) {
            // `leave` comes only for folders `visit` opened.
            self.memo.insert((sub, path.0.clone()), Arc::new(self.hits[from..].to_vec()));
        }
        Ok(())
    }
}

impl Finder<'_> {
    /// The hits in the snapshot whose root is `tree`.
    fn search(&mut self, repo: &IndexedRepository, tree: BlobId) -> Result<Arc<Vec<Hit>>> {
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

pub fn run(g: &Global, a: &FindArgs) -> Result<i32> {
    let matcher = Matcher::new(&a.patterns)?;
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let chosen = select::choose(&all, &a.snapshots, &f)?;
    let repo = repo.load_index()?;
    let mut finder = Finder { matcher: &matcher, hits: Vec::new(), open: Vec::new(), memo: HashMap::new() };
    let mut json = Vec::new();
    let mut total = 0;
    for (id, snap) in &chosen {
        let hits = finder.search(&repo, snap.tree)?;
        if hits.is_empty() {
            continue;
        }
        total += hits.len();
        if g.json {
            json.push(serde_json::json!({ "snapshot": id, "time": snap.time, "hits": *hits }));
            continue;
        }
        writeln!(std::io::stdout(), "snapshot {} of {}:", id.short(), local_time(snap.time))?;
        for h in hits.iter() {
            let t = local_time(h.mtime);
            writeln!(std::io::stdout(), "  {:>12}  {t}  {}", h.size, h.path)?;
        }
    }
    if g.json {
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(std::io::stdout(), "{total} matches in {} snapshot(s) searched", chosen.len())?;
    }
    Ok(0)
}
