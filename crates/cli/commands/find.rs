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
use cairn_format::tree::NodeKind;
use cairn_repo::IndexedRepository;
use cairn_repo::pattern::Matcher;
use cairn_repo::select;
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

struct Finder<'a> {
    repo: &'a IndexedRepository,
    matcher: &'a Matcher,
    /// Hits below each tree already searched, relative to it.
    memo: HashMap<(BlobId, String), Arc<Vec<Hit>>>,
}

impl Finder<'_> {
    /// Hits below `tree`, whose path is `prefix` (patterns with `/` depend
    /// on it, so the memo is keyed by both).
    fn search(&mut self, tree: BlobId, prefix: &str) -> Result<Arc<Vec<Hit>>> {
        let key = (tree, prefix.to_string());
        if let Some(h) = self.memo.get(&key) {
            return Ok(h.clone());
        }
        let mut out = Vec::new();
        for n in self.repo.load_tree(&tree)?.nodes {
            let path = format!("{prefix}/{}", n.name.display());
            if self.matcher.matches(&path) {
                out.push(Hit {
                    path: path.clone(),
                    kind: n.kind,
                    size: n.size,
                    mtime: jiff::Timestamp::new(n.mtime.0, n.mtime.1 as i32).unwrap_or_default(),
                });
            }
            if let Some(sub) = n.subtree {
                out.extend(self.search(sub, &path)?.iter().cloned());
            }
        }
        let out = Arc::new(out);
        self.memo.insert(key, out.clone());
        Ok(out)
    }
}

pub fn run(g: &Global, a: &FindArgs) -> Result<i32> {
    let matcher = Matcher::new(&a.patterns)?;
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let chosen = select::choose(&all, &a.snapshots, &f)?;
    let repo = repo.load_index()?;
    let mut finder = Finder { repo: &repo, matcher: &matcher, memo: HashMap::new() };
    let mut json = Vec::new();
    let mut total = 0;
    for (id, snap) in &chosen {
        let hits = finder.search(snap.tree, "")?;
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
