//! `cairn repair index`: rebuild the index from the pack headers.
//!
//! Every pack's encrypted header lists its blobs (docs/FORMAT.md section 8),
//! so the index can always be derived again: one new index file lists every
//! readable pack and supersedes all existing index files, which are then
//! deleted. Packs whose header cannot be read are named and left out.

use anyhow::Result;
use cairn_backend::FileKind;
use cairn_format::BlobKind;
use cairn_format::index::{IndexBlob, IndexFile, IndexPack};

use crate::cli::{Global, RepairAction};

pub fn run(g: &Global, action: &RepairAction) -> Result<i32> {
    match action {
        RepairAction::Index => index(g),
    }
}

fn index(g: &Global) -> Result<i32> {
    let repo = super::open(g)?;
    // No prune may delete packs while the index is rebuilt from them.
    let _guard = cairn_prune::start_maintenance(&repo, &super::backup::hostname())?;
    // Existing index files first: whatever is listed now is superseded.
    let old = repo.index_ids()?;
    let mut packs = Vec::new();
    let mut damaged = Vec::new();
    for (kind, fk) in [(BlobKind::Data, FileKind::DataPack), (BlobKind::Tree, FileKind::TreePack)] {
        for (name, size) in repo.backend().list(fk)? {
            let Ok(id) = name.parse() else { continue };
            match repo.read_pack_header(kind, &id, size) {
                Ok(h) => packs.push(IndexPack {
                    id,
                    kind,
                    blobs: h
                        .with_offsets()
                        .map(|(offset, e)| IndexBlob {
                            id: e.id,
                            offset,
                            length: e.length,
                            raw_length: e.raw_length,
                            base: e.base,
                        })
                        .collect(),
                }),
                Err(e) => {
                    eprintln!("warning: {} pack {} left out: {e}", kind.name(), id.short());
                    damaged.push(id);
                }
            }
        }
    }
    let blobs: usize = packs.iter().map(|p| p.blobs.len()).sum();
    let n = packs.len();
    let new = repo.save_index(&IndexFile { supersedes: old.clone(), packs })?;
    for id in old.iter().filter(|id| **id != new) {
        repo.backend().delete(FileKind::Index, &id.to_hex())?;
    }
    if g.json {
        let v = serde_json::json!({
            "index": new, "packs": n, "blobs": blobs, "replaced": old.len(), "damaged_packs": damaged,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !g.quiet {
        println!(
            "index rebuilt from {n} pack headers ({blobs} blobs) as {}; {} old index file(s) replaced",
            new.short(),
            old.len()
        );
        if !damaged.is_empty() {
            println!(
                "{} pack(s) with unreadable headers left out: run `cairn check` to see what they affect",
                damaged.len()
            );
        }
    }
    Ok(if damaged.is_empty() { 0 } else { 1 })
}
