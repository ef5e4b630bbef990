//! `cairn cat`: decrypted repository objects as JSON, for debugging.

use std::io::Write;

use anyhow::{Context, Result, bail};
use cairn_format::{BlobId, IndexId, PackId};
use serde_json::json;

use crate::cli::{CatArgs, CatKind, Global};

fn need(a: &CatArgs) -> Result<&str> {
    a.id.as_deref().with_context(|| format!("cairn cat {:?} needs an id", a.kind).to_lowercase())
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.parse().map_err(|_| anyhow::anyhow!("{s:?} is not a {what} id (64 hex digits)"))
}

pub fn run(g: &Global, a: &CatArgs) -> Result<i32> {
    let repo = super::open(g)?;
    let v = match a.kind {
        CatKind::Config => serde_json::to_value(repo.config())?,
        CatKind::Snapshot => {
            let (id, s) = super::find_snapshot(&repo, need(a)?, &Default::default())?;
            let mut v = serde_json::to_value(s)?;
            v["id"] = json!(id);
            v
        }
        CatKind::Key => {
            let id = need(a)?;
            let keys = repo.keys()?;
            let k = keys.into_iter().find(|k| k.id.to_hex().starts_with(id)).with_context(|| format!("no key {id}"))?;
            serde_json::to_value(k.file)?
        }
        CatKind::Index => {
            let id: IndexId = parse(need(a)?, "index")?;
            let f = repo.load_index_file(&id)?;
            json!({
                "supersedes": f.supersedes,
                "packs": f.packs.iter().map(|p| json!({
                    "id": p.id, "kind": p.kind.name(),
                    "blobs": p.blobs.iter().map(|b| json!({"id": b.id, "offset": b.offset, "length": b.length, "raw_length": b.raw_length, "base": b.base})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        }
        CatKind::Tree => {
            let id: BlobId = parse(need(a)?, "tree")?;
            let repo = repo.load_index()?;
            serde_json::to_value(repo.load_tree(&id)?)?
        }
        CatKind::Blob => {
            let id: BlobId = parse(need(a)?, "blob")?;
            let repo = repo.load_index()?;
            let loc = repo.index().get(&id).with_context(|| format!("blob {id} is not in the index"))?;
            let data = repo.read_blob(&id)?;
            json!({"id": id, "kind": loc.kind.name(), "pack": loc.pack, "offset": loc.offset, "length": loc.length, "raw_length": data.len()})
        }
        CatKind::Pack => {
            let id: PackId = parse(need(a)?, "pack")?;
            let Some((kind, size)) = repo.find_pack(&id)? else { bail!("pack {id} not found") };
            let h = repo.read_pack_header(kind, &id, size)?;
            json!({
                "id": id, "kind": kind.name(), "size": size,
                "blobs": h.with_offsets().map(|(o, e)| json!({"id": e.id, "offset": o, "length": e.length, "raw_length": e.raw_length})).collect::<Vec<_>>(),
            })
        }
    };
    writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&v)?)?;
    Ok(0)
}
