//! `cairn dump`: one file's content, or with `--archive tar|zip` a folder
//! (or the whole snapshot) as an archive stream, to standard output.

use anyhow::{Result, bail};
use cairn_view::archive::{Start, write_archive};

use crate::cli::{DumpArgs, Global};

pub fn run(g: &Global, a: &DumpArgs) -> Result<i32> {
    let (spec, inline_path) = super::split_spec(&a.snapshot);
    let path = a.path.as_deref().or(inline_path);
    if path.is_none() && a.archive.is_none() {
        bail!("which file? give a path (cairn dump latest /path/in/snapshot), or --archive tar for a folder");
    }
    let repo = super::open(g)?;
    let (_, snap) = super::find_snapshot(&repo, spec, &a.filter)?;
    let repo = repo.load_index()?;
    let path = path.unwrap_or("/");
    let node = repo.find_node(&snap.tree, path.as_bytes())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let shown = format!("/{}", path.trim_matches('/'));
    let start = match &node {
        None => Start::Root(snap.tree),
        Some(n) => Start::Node(shown.as_bytes(), n),
    };
    match (a.archive, &node) {
        (Some(format), _) => drop(write_archive(format, &repo, start, &mut out)?),
        (None, None) => bail!("{path} is the snapshot's root folder: add --archive tar, or use `cairn restore`"),
        (None, Some(n)) if n.kind == cairn_format::tree::NodeKind::Dir => {
            bail!("{path} is a folder: add --archive tar, or use `cairn restore`")
        }
        (None, Some(n)) => drop(cairn_restore::dump(&repo, n, &mut out)?),
    }
    Ok(0)
}
