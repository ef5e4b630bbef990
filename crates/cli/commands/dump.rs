//! `cairn dump`: one file's content to standard output.

use anyhow::{Result, bail};

use crate::cli::{DumpArgs, Global};

pub fn run(g: &Global, a: &DumpArgs) -> Result<i32> {
    let (spec, inline_path) = super::split_spec(&a.snapshot);
    let Some(path) = a.path.as_deref().or(inline_path) else {
        bail!("which file? give a path: cairn dump latest /path/in/snapshot");
    };
    let repo = super::open(g)?;
    let (_, snap) = super::find_snapshot(&repo, spec, &a.filter)?;
    let repo = repo.load_index()?;
    let Some(node) = repo.find_node(&snap.tree, path.as_bytes())? else {
        bail!("{path} is the snapshot's root folder; use `cairn restore` for folders");
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    cairn_restore::dump(&repo, &node, &mut out)?;
    Ok(0)
}
