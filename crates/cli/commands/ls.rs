//! `cairn ls`: list the files of a snapshot.

use std::io::Write;

use anyhow::Result;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_view::walk::{Step, Visitor, walk};

use crate::cli::{Global, LsArgs};
use crate::output::{local_time, mode, rfc3339};

/// Prints one line; a reader gone away (`cairn ls | head`) is an error
/// for main to end the command quietly on, not a panic of `println!`.
fn print(g: &Global, long: bool, path: &str, n: &Node) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if g.json {
        let mut v = serde_json::to_value(n).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("content");
            o.insert("path".into(), path.into());
            o.insert("mtime".into(), rfc3339(n.mtime.0, n.mtime.1).into());
            o.insert("ctime".into(), rfc3339(n.ctime.0, n.ctime.1).into());
        }
        writeln!(out, "{v}")
    } else if long {
        let t = jiff::Timestamp::from_second(n.mtime.0).map(local_time).unwrap_or_default();
        let owner = n.user.clone().unwrap_or_else(|| n.uid.to_string());
        let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
        let mut line = format!("{} {owner:>8} {group:>8} {:>12} {t} {path}", mode(n.mode, n.kind), n.size);
        if let Some(target) = &n.target {
            line.push_str(&format!(" -> {}", target.display()));
        }
        writeln!(out, "{line}")
    } else {
        writeln!(out, "{path}")
    }
}

/// Prints every entry the walk visits.
struct Printer<'a> {
    g: &'a Global,
    long: bool,
}

impl Visitor for Printer<'_> {
    type Error = anyhow::Error;
    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step> {
        print(self.g, self.long, &path.display(), node)?;
        Ok(Step::Descend)
    }
}

pub fn run(g: &Global, a: &LsArgs) -> Result<i32> {
    let (spec, inline_path) = super::split_spec(&a.snapshot);
    let repo = super::open(g)?;
    let (_, snap) = super::find_snapshot(&repo, spec, &a.filter)?;
    let repo = repo.load_index()?;
    let path = a.path.as_deref().or(inline_path).unwrap_or("/").trim_end_matches('/');
    let mut printer = Printer { g, long: a.long };
    match repo.find_node(&snap.tree, path.as_bytes())? {
        None => walk(&repo, &snap.tree, b"", &mut printer)?,
        Some(n) => {
            let shown = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
            print(g, a.long, &shown, &n)?;
            if let Some(sub) = n.subtree.filter(|_| n.kind == NodeKind::Dir) {
                walk(&repo, &sub, shown.as_bytes(), &mut printer)?;
            }
        }
    }
    Ok(0)
}
