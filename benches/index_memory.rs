//! Loads 10 million synthetic index entries and reports the in-memory index's
//! bytes per entry and its lookup rate (hits and misses).
//!
//! `cargo bench --bench index_memory` (set CAIRN_INDEX_ENTRIES to change the count).

use std::time::Instant;

use cairn_format::index::{IndexBlob, IndexFile, IndexPack};
use cairn_format::{BlobId, BlobKind, PackId};
use cairn_repo::Index;

fn id(i: u64) -> BlobId {
    BlobId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes())
}

fn main() {
    let n: usize = std::env::var("CAIRN_INDEX_ENTRIES").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let per_pack = 1000;
    let t = Instant::now();
    let files: Vec<IndexFile> = (0..n.div_ceil(per_pack * 100))
        .map(|f| IndexFile {
            supersedes: vec![],
            packs: (0..100)
                .map(|p| {
                    let pack = (f * 100 + p) as u64;
                    IndexPack {
                        id: PackId::from_bytes(*blake3::hash(&pack.to_be_bytes()).as_bytes()),
                        kind: BlobKind::Data,
                        blobs: (0..per_pack as u64)
                            .map(|b| pack * per_pack as u64 + b)
                            .filter(|i| (*i as usize) < n)
                            .map(|i| IndexBlob {
                                id: id(i),
                                offset: (i % 1000) as u32 * 16000,
                                length: 16000,
                                raw_length: 20000,
                                base: None,
                                sketch: None,
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    let made = t.elapsed();
    let t = Instant::now();
    let index = Index::from_files(&files);
    let built = t.elapsed();
    drop(files);
    assert_eq!(index.len(), n);
    let packs = index.packs().len();
    // Entries, plus the pack table (id, kind, end) and its id -> number map.
    let pack_bytes = packs * (32 + 1 + 4 + 32 + 4 + 16);
    let per_entry = (index.entry_bytes() + pack_bytes) as f64 / n as f64;

    let probes = 2_000_000u64;
    let t = Instant::now();
    let hits = (0..probes).filter(|i| index.contains(&id(i * 7919 % n as u64))).count();
    let hit_rate = probes as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let misses = (0..probes).filter(|i| index.contains(&id(n as u64 + i))).count();
    let miss_rate = probes as f64 / t.elapsed().as_secs_f64();
    assert_eq!((hits, misses), (probes as usize, 0));
    // Hashing the probe ids is part of the loop; measure it alone to subtract.
    let t = Instant::now();
    let sink: u64 = (0..probes).map(|i| u64::from(id(i).as_bytes()[0])).sum();
    let hash_s = t.elapsed().as_secs_f64();
    println!("entries: {n} in {packs} packs (synthetic index files made in {:.1}s)", made.as_secs_f64());
    println!("build: {:.2}s ({:.1} M entries/s)", built.as_secs_f64(), n as f64 / built.as_secs_f64() / 1e6);
    println!("memory: {per_entry:.1} bytes per entry ({} MiB in all)", (index.entry_bytes() + pack_bytes) >> 20);
    println!(
        "lookups: {:.2} M/s hits, {:.2} M/s misses (id generation alone: {:.2} M/s; checksum {sink})",
        hit_rate / 1e6,
        miss_rate / 1e6,
        probes as f64 / hash_s / 1e6
    );
}
