//! `cairn stats`: how much the snapshots hold (cairn-view's `stats`) and
//! what the repository stores; here the output.

use anyhow::Result;
use cairn_repo::select;
use cairn_view::stats::{SnapshotStats, snapshot_stats};
use serde::Serialize;

use crate::cli::{Global, StatsArgs};
use crate::output::bytes;

/// The snapshots' figures and the whole repository's.
#[derive(Debug, Serialize)]
struct Stats {
    #[serde(flatten)]
    snapshots: SnapshotStats,
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

pub fn run(g: &Global, a: &StatsArgs) -> Result<i32> {
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let chosen = select::choose(&all, &a.snapshots, &f)?;
    let repo = repo.load_index()?;
    let snaps = snapshot_stats(&repo, chosen.iter().map(|(_, s)| s.tree))?;
    let (packs, pack_bytes) = repo.repo().pack_totals()?;
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let s = Stats {
        dedup_ratio: ratio(snaps.restore_size, snaps.raw_size),
        compression_ratio: ratio(snaps.raw_size, snaps.stored_size),
        packs,
        pack_bytes,
        index_blobs: repo.index().len() as u64,
        delta_blobs: repo.index().delta_count() as u64,
        snapshots: snaps,
    };
    let n = &s.snapshots;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    println!("snapshots:          {}", n.snapshots);
    println!("files, dirs:        {}, {}", n.files, n.dirs);
    println!("restore size:       {}", bytes(n.restore_size));
    println!("after dedup:        {} in {} blobs ({:.2}x)", bytes(n.raw_size), n.blobs, s.dedup_ratio);
    println!("stored:             {} ({:.2}x compression)", bytes(n.stored_size), s.compression_ratio);
    println!(
        "repository:         {} in {} packs, {} blobs ({} delta-coded)",
        bytes(s.pack_bytes),
        s.packs,
        s.index_blobs,
        s.delta_blobs
    );
    Ok(0)
}
