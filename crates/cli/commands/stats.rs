//! `cairn stats`: how much the snapshots hold and what it costs to store.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use cairn_backend::FileKind;
use cairn_format::BlobId;
use cairn_format::tree::NodeKind;
use cairn_repo::{IndexedRepository, MAX_DELTA_DEPTH, select};
use serde::Serialize;

use crate::cli::{Global, StatsArgs};
use crate::output::bytes;

#[derive(Debug, Default, Serialize)]
struct Stats {
    /// Snapshots counted.
    snapshots: u64,
    /// Files, summed over the snapshots (what restoring them all writes).
    files: u64,
    /// Directories, summed likewise.
    dirs: u64,
    /// Bytes of file content, summed likewise.
    restore_size: u64,
    /// Distinct blobs the snapshots need (content, trees, delta bases).
    blobs: u64,
    /// Their plaintext size: the data after deduplication.
    raw_size: u64,
    /// Their stored size (compressed, delta-coded, encrypted).
    stored_size: u64,
    /// restore_size / raw_size.
    dedup_ratio: f64,
    /// raw_size / stored_size.
    compression_ratio: f64,
    /// Whole repository: packs, their bytes, blobs indexed, delta blobs among them.
    packs: u64,
    pack_bytes: u64,
    index_blobs: u64,
    delta_blobs: u64,
}

/// Files, dirs and bytes below a tree.
type Totals = (u64, u64, u64);

struct Walker<'a> {
    repo: &'a IndexedRepository,
    totals: HashMap<BlobId, Totals>,
    blobs: HashSet<BlobId>,
}

impl Walker<'_> {
    fn need(&mut self, id: BlobId) {
        let mut at = id;
        for _ in 0..=MAX_DELTA_DEPTH {
            if !self.blobs.insert(at) {
                return;
            }
            match self.repo.index().get(&at).and_then(|l| l.base) {
                Some(b) => at = b,
                None => return,
            }
        }
    }

    fn tree(&mut self, id: BlobId) -> Result<Totals> {
        if let Some(t) = self.totals.get(&id) {
            return Ok(*t);
        }
        self.need(id);
        let mut t = (0, 0, 0);
        for n in self.repo.load_tree(&id)?.nodes {
            match n.kind {
                NodeKind::Dir => {
                    t.1 += 1;
                    if let Some(sub) = n.subtree {
                        let s = self.tree(sub)?;
                        t = (t.0 + s.0, t.1 + s.1, t.2 + s.2);
                    }
                }
                NodeKind::File => {
                    t.0 += 1;
                    t.2 += n.size;
                    for b in n.content {
                        self.need(b);
                    }
                }
                _ => {}
            }
        }
        self.totals.insert(id, t);
        Ok(t)
    }
}

pub fn run(g: &Global, a: &StatsArgs) -> Result<i32> {
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let chosen = select::choose(&all, &a.snapshots, &f)?;
    let repo = repo.load_index()?;
    let mut w = Walker { repo: &repo, totals: HashMap::new(), blobs: HashSet::new() };
    let mut s = Stats::default();
    for (_, snap) in &chosen {
        let (files, dirs, size) = w.tree(snap.tree)?;
        s.snapshots += 1;
        s.files += files;
        s.dirs += dirs;
        s.restore_size += size;
    }
    s.blobs = w.blobs.len() as u64;
    for id in &w.blobs {
        if let Some(l) = repo.index().get(id) {
            s.raw_size += u64::from(l.raw_length);
            s.stored_size += u64::from(l.length);
        }
    }
    s.dedup_ratio = if s.raw_size > 0 { s.restore_size as f64 / s.raw_size as f64 } else { 0.0 };
    s.compression_ratio = if s.stored_size > 0 { s.raw_size as f64 / s.stored_size as f64 } else { 0.0 };
    for kind in [FileKind::DataPack, FileKind::TreePack] {
        for (_, size) in repo.repo().backend().list(kind)? {
            s.packs += 1;
            s.pack_bytes += size;
        }
    }
    s.index_blobs = repo.index().len() as u64;
    s.delta_blobs = repo.index().delta_count() as u64;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("snapshots:          {}", s.snapshots);
    println!("files, dirs:        {}, {}", s.files, s.dirs);
    println!("restore size:       {}", bytes(s.restore_size));
    println!("after dedup:        {} in {} blobs ({:.2}x)", bytes(s.raw_size), s.blobs, s.dedup_ratio);
    println!("stored:             {} ({:.2}x compression)", bytes(s.stored_size), s.compression_ratio);
    println!(
        "repository:         {} in {} packs, {} blobs ({} delta-coded)",
        bytes(s.pack_bytes),
        s.packs,
        s.index_blobs,
        s.delta_blobs
    );
    Ok(0)
}
