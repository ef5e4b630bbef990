//! `cairn copy`: copy snapshots from another repository into this one.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use cairn_repo::{Repository, select};

use crate::cli::{CopyArgs, Global};
use crate::output::bytes;

/// The source repository's password.
fn from_password(a: &CopyArgs) -> Result<Vec<u8>> {
    if let Ok(p) = std::env::var("CAIRN_FROM_PASSWORD") {
        return Ok(p.into_bytes());
    }
    if let Some(f) = &a.from_password_file {
        let s = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        return Ok(s.lines().next().unwrap_or_default().as_bytes().to_vec());
    }
    if std::io::stderr().is_terminal() {
        let p = rpassword::prompt_password("enter password for the source repository: ").context("reading password")?;
        return Ok(p.into_bytes());
    }
    bail!("no password for the source repository: set CAIRN_FROM_PASSWORD or --from-password-file")
}

pub fn run(g: &Global, a: &CopyArgs) -> Result<i32> {
    let backend = super::open_backend(g, &a.from_repo, &a.from_options, super::Create::Never)?;
    Repository::ensure_exists(&backend)?;
    let src = Repository::open(backend, &from_password(a)?).context("opening the source repository")?;
    let all = src.snapshots()?;
    let f = super::filter(&a.filter)?;
    let chosen = select::choose(&all, &a.snapshots, &f)?;
    let src = src.load_index()?;
    let dst = super::open(g)?;
    if dst.config().id == src.repo().config().id {
        bail!("source and destination are the same repository");
    }
    // Copying adds data like a backup does, so it announces itself the same way.
    let dst = dst.load_index_for_backup(&super::backup::hostname())?;
    let out = cairn_backup::copy(&src, dst, &chosen)?;
    if g.json {
        let copied: Vec<_> = out.copied.iter().map(|(s, d)| serde_json::json!({ "source": s, "copy": d })).collect();
        let v = serde_json::json!({
            "copied": copied, "skipped": out.skipped, "blobs_added": out.blobs_added, "bytes_added": out.bytes_added,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !g.quiet {
        for (s, d) in &out.copied {
            println!("snapshot {} copied as {}", s.short(), d.short());
        }
        if !out.skipped.is_empty() {
            println!("{} snapshot(s) already there, skipped", out.skipped.len());
        }
        println!("{} copied, {} blobs ({}) added", out.copied.len(), out.blobs_added, bytes(out.bytes_added));
    }
    Ok(0)
}
