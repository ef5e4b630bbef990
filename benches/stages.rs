//! Micro-benchmarks of each backup/restore stage on one core (divan):
//! chunking, hashing, compression (SQL-like text and incompressible media),
//! delta coding against a base, encryption, pack writing, index lookup and build.
//!
//! `cargo bench --bench stages`. The throughputs bound what the pipeline can
//! reach on two cores (docs/BENCHMARKS.md shows the computation).

use cairn_backend::Backend;
use cairn_chunk::{Chunker, ChunkerParams};
use cairn_crypto::{Keyring, ObjectKind};
use cairn_format::config::DEFAULT_COMPRESSION_LEVEL;
use cairn_format::index::{IndexBlob, IndexFile, IndexPack};
use cairn_format::{BlobId, BlobKind, Compression, PackId, payload};
use cairn_repo::{Index, InitOptions, Repository};
use divan::Bencher;
use divan::counter::BytesCount;

fn main() {
    divan::main();
}

const MIB: usize = 1 << 20;

fn media(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sql(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 200);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "INSERT INTO orders VALUES ({i}, 'customer{}', {}.{:02}, 'shipped', '2026-11-{:02}');\n",
                i % 977,
                i % 5000,
                i % 100,
                1 + i % 28
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

#[divan::bench(args = ["sql", "media"])]
fn chunk(b: Bencher, kind: &str) {
    let data = if kind == "sql" { sql(64 * MIB) } else { media(64 * MIB) };
    let c = Chunker::new(ChunkerParams::default(), &[7; 32]).expect("params");
    b.counter(BytesCount::new(data.len())).bench(|| c.chunks(&data).count());
}

#[divan::bench]
fn hash_blob_id(b: Bencher) {
    let ring = Keyring::generate().expect("keyring");
    let data = media(MIB);
    b.counter(BytesCount::new(data.len())).bench(|| ring.blob_id(&data));
}

#[divan::bench(args = ["sql", "media"])]
fn compress(b: Bencher, kind: &str) {
    let data = if kind == "sql" { sql(MIB) } else { media(MIB) };
    b.counter(BytesCount::new(data.len()))
        .bench(|| payload::encode(&data, Compression::Zstd(DEFAULT_COMPRESSION_LEVEL)));
}

/// A small text file's blob (a config tree's files are 1-4 KiB): what
/// zstd costs per blob where the per-call setup weighs.
#[divan::bench]
fn compress_2_kib_sql(b: Bencher) {
    let data = sql(2048);
    b.counter(BytesCount::new(data.len()))
        .bench(|| payload::encode(&data, Compression::Zstd(DEFAULT_COMPRESSION_LEVEL)));
}

#[divan::bench]
fn decompress_sql(b: Bencher) {
    let data = sql(MIB);
    let p = payload::encode(&data, Compression::Zstd(DEFAULT_COMPRESSION_LEVEL));
    b.counter(BytesCount::new(data.len())).bench(|| payload::decode(&p, MIB));
}

/// A 1 MiB dump chunk with every hundredth line changed, coded against the
/// chunk it replaced (and decoded again).
fn edited_sql() -> (Vec<u8>, Vec<u8>) {
    let base = sql(MIB);
    let mut data = Vec::with_capacity(base.len() + 4096);
    for (i, line) in base.split_inclusive(|b| *b == b'\n').enumerate() {
        if i % 100 == 7 {
            data.extend_from_slice(b"INSERT INTO orders VALUES (0, 'changed', 1.00, 'cancelled', '2026-12-01');\n");
        } else {
            data.extend_from_slice(line);
        }
    }
    (base, data)
}

#[divan::bench]
fn delta_encode_sql(b: Bencher) {
    let (base, data) = edited_sql();
    let id = BlobId::from_bytes([3; 32]);
    b.counter(BytesCount::new(data.len())).bench(|| payload::encode_delta(&data, &id, &base, 3));
}

#[divan::bench]
fn delta_decode_sql(b: Bencher) {
    let (base, data) = edited_sql();
    let p = payload::encode_delta(&data, &BlobId::from_bytes([3; 32]), &base, 3).expect("delta");
    b.counter(BytesCount::new(data.len())).bench(|| payload::decode_delta(&p, &base, 2 * MIB));
}

#[divan::bench]
fn encrypt(b: Bencher) {
    let ring = Keyring::generate().expect("keyring");
    let data = media(MIB);
    b.counter(BytesCount::new(data.len())).bench(|| ring.seal(ObjectKind::DataBlob, &[1; 32], &data));
}

/// A small file's blob (a config tree's files are 1-4 KiB): the per-object
/// costs (sub-key, nonce, tag) weigh here.
#[divan::bench]
fn encrypt_2_kib(b: Bencher) {
    let ring = Keyring::generate().expect("keyring");
    let data = media(2048);
    b.counter(BytesCount::new(data.len())).bench(|| ring.seal(ObjectKind::DataBlob, &[1; 32], &data));
}

#[divan::bench]
fn decrypt(b: Bencher) {
    let ring = Keyring::generate().expect("keyring");
    let data = media(MIB);
    let sealed = ring.seal(ObjectKind::DataBlob, &[1; 32], &data).expect("seal");
    b.counter(BytesCount::new(data.len())).bench(|| ring.open(ObjectKind::DataBlob, &[1; 32], &sealed));
}

#[divan::bench]
fn pack_write_16_mib(b: Bencher) {
    // A repository in memory whose packs are 16 MiB, the default.
    let opts = InitOptions { pack_size: 16 * MIB as u32, ..InitOptions::fast_for_tests() };
    let repo =
        Repository::init(Backend::memory().expect("memory"), b"pw", &opts).expect("init").load_index().expect("index");
    let blob = repo.seal_blob(BlobKind::Data, BlobId::from_bytes([1; 32]), &media(MIB)).expect("seal").envelope;
    b.counter(BytesCount::new(16 * blob.len())).bench(|| {
        let mut w = repo.repo().pack_writer(BlobKind::Data);
        for i in 0..16u8 {
            w.add(cairn_repo::SealedBlob {
                kind: BlobKind::Data,
                id: BlobId::from_bytes([i; 32]),
                envelope: blob.clone(),
                raw_length: MIB as u32,
                base: None,
                sketch: None,
            })
            .expect("add");
        }
        w.finish().expect("finish")
    });
}

fn synthetic_index(n: usize) -> (IndexFile, Vec<BlobId>) {
    let ids: Vec<BlobId> =
        (0..n as u64).map(|i| BlobId::from_bytes(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect();
    let packs = ids
        .chunks(1000)
        .enumerate()
        .map(|(p, chunk)| IndexPack {
            id: PackId::from_bytes(*blake3::hash(&(p as u64).to_be_bytes()).as_bytes()),
            kind: BlobKind::Data,
            blobs: chunk
                .iter()
                .enumerate()
                .map(|(i, id)| IndexBlob {
                    id: *id,
                    offset: i as u32 * 16000,
                    length: 16000,
                    raw_length: 20000,
                    base: None,
                    sketch: None,
                })
                .collect(),
        })
        .collect();
    (IndexFile { supersedes: vec![], packs }, ids)
}

#[divan::bench(args = [1_000_000])]
fn index_build(b: Bencher, n: usize) {
    let (file, _) = synthetic_index(n);
    b.counter(divan::counter::ItemsCount::new(n)).bench(|| Index::from_files([&file]));
}

#[divan::bench(args = [1_000_000])]
fn index_lookup(b: Bencher, n: usize) {
    let (file, ids) = synthetic_index(n);
    let index = Index::from_files([&file]);
    let probe: Vec<BlobId> = ids.iter().step_by(97).copied().collect();
    b.counter(divan::counter::ItemsCount::new(probe.len()))
        .bench(|| probe.iter().filter(|id| index.contains(id)).count());
}
