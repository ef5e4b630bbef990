//! Writes the committed seed corpora (fuzz/corpus/<target>/seed-*): real
//! objects of a small repository made in memory, one per mode of each
//! target, so fuzzing starts from inputs that decode.
//!
//!   cd fuzz && cargo run --example seeds

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use cairn_backend::Backend;
use cairn_backup::{BackupOptions, Excludes, NoProgress, ParentChoice, backup};
use cairn_crypto::envelope::{self, AeadKey};
use cairn_crypto::{KdfParams, Keyring, ObjectKind, kdf};
use cairn_format::keyfile::KeyFile;
use cairn_format::lifecycle::RunKind;
use cairn_format::{BlobKind, Compression, payload};
use cairn_repo::{InitOptions, Repository};

const PASSWORD: &[u8] = b"fuzz";
const FAST_KDF: KdfParams = KdfParams { memory_kib: 8, iterations: 1, parallelism: 1 };
const SALT: &[u8] = b"cairn fuzz salt!";
/// Mode bytes of fuzz/src/lib.rs: raw, sealed, plain.
const RAW: u8 = 0;
const SEALED: u8 = 1;
const PLAIN: u8 = 2;

fn put(target: &str, name: &str, prefix: &[u8], body: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(body);
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

/// A document seed in both modes that reach the decoder.
fn put_doc(target: &str, name: &str, plain: &[u8]) {
    put(target, &format!("{name}-plain"), &[PLAIN], plain);
    put(target, &format!("{name}-sealed-zstd"), &[SEALED], &payload::encode(plain, Compression::Zstd(3)));
}

fn main() {
    let src = tempfile::tempdir().expect("tempdir");
    let root = src.path();
    std::fs::create_dir_all(root.join("etc/deep/er")).expect("mkdir");
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").expect("write");
    // Rows that differ, so its one chunk (over 64 KiB) gets a sketch.
    let rows = |n: usize| (0..n).map(|i| format!("INSERT INTO t VALUES ({i}, 'row');\n")).collect::<String>();
    std::fs::write(root.join("etc/deep/er/big.sql"), rows(4000)).expect("write");
    std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "latin-1 name").expect("write");
    std::os::unix::fs::symlink("hosts", root.join("etc/link")).expect("symlink");

    // The default chunker: big.sql stays one chunk, large enough for a sketch.
    let opts = InitOptions { kdf: FAST_KDF, ..InitOptions::default() };
    let backend = Backend::memory().expect("memory");
    let repo = Repository::init(backend.clone(), PASSWORD, &opts).expect("init");
    let backup_opts = BackupOptions {
        sources: cairn_backup::Sources::paths(vec![root.to_path_buf()]),
        excludes: Excludes::default(),
        tags: vec!["seed".into()],
        hostname: "fuzz".into(),
        parent: ParentChoice::Auto,
        force: false,
        time: None,
        workers: None,
        writes: Default::default(),
    };
    backup(repo.load_index().expect("index"), &backup_opts, Arc::new(NoProgress)).expect("backup");
    // A second run after an edit, so the index holds delta blobs (and,
    // both versions being sketched, index files and headers of version 2).
    std::fs::write(root.join("etc/deep/er/big.sql"), rows(3999) + "changed\n").expect("write");
    let repo = Repository::open(backend.clone(), PASSWORD).expect("open");
    backup(repo.load_index().expect("index"), &backup_opts, Arc::new(NoProgress)).expect("backup");
    let repo = Repository::open(backend, PASSWORD).expect("open");

    put_doc("config", "config", &repo.config().encode());
    for (i, (_, snap)) in repo.snapshots().expect("snapshots").iter().enumerate() {
        put_doc("snapshot", &format!("snapshot{i}"), &snap.encode());
    }
    let files = repo.live_index_files().expect("index files");
    for (i, (_, file)) in files.iter().enumerate() {
        put_doc("index", &format!("index{i}"), &file.encode());
    }
    let repo = repo.load_index().expect("index");
    for (i, (pack, kind)) in repo.index().packs().iter().enumerate() {
        let (_, size) = repo.repo().find_pack(pack).expect("pack size").expect("the pack is stored");
        let header = repo.repo().read_pack_header(*kind, pack, size).expect("pack header");
        let kind_byte = if *kind == BlobKind::Data { 0 } else { 1 };
        put("pack", &format!("pack{i}-plain"), &[PLAIN, kind_byte], &header.encode());
    }
    for (i, (pack, kind)) in repo.index().packs().iter().enumerate() {
        if *kind != BlobKind::Tree {
            continue;
        }
        let ids: Vec<_> = files
            .iter()
            .flat_map(|(_, f)| &f.packs)
            .filter(|p| p.id == *pack)
            .flat_map(|p| p.blobs.iter().map(|b| b.id))
            .collect();
        for (j, id) in ids.iter().enumerate() {
            let mut tree = repo.load_tree(id).expect("tree");
            put_doc("tree", &format!("tree{i}-{j}"), &tree.encode());
            // Trees of earlier versions (JSON) are still read.
            put_doc("tree", &format!("tree{i}-{j}-json"), &tree.encode_json());
        }
    }

    let marker = repo.repo().start_run(RunKind::Backup, "fuzz").expect("marker");
    for (i, (_, m)) in repo.repo().run_markers().expect("markers").into_iter().enumerate() {
        put_doc("lifecycle", &format!("marker{i}"), &m.expect("marker").encode());
    }
    drop(marker);
    let plan = cairn_format::lifecycle::DeletionPlan {
        version: cairn_format::FORMAT_VERSION,
        created: jiff::Timestamp::now(),
        hostname: "fuzz".into(),
        packs: vec![],
    };
    put_doc("lifecycle", "plan-empty", &plan.encode());

    // Key files: a whole one (raw: the password and salt are in the target),
    // and the keyring plaintext inside one.
    let ring = Keyring::generate().expect("keyring");
    let wrapped = ring.wrap(PASSWORD, SALT, FAST_KDF).expect("wrap");
    let file = KeyFile::new("fuzz".into(), "fuzz".into(), FAST_KDF, SALT, &wrapped);
    put("keyfile", "keyfile-raw", &[RAW], &file.encode());
    let kek = kdf::derive(PASSWORD, SALT, FAST_KDF).expect("kdf");
    let plain = envelope::open(&AeadKey::new(&kek), ObjectKind::KeyFile, &[0; 32], &wrapped).expect("open");
    put("keyfile", "keyring-sealed", &[SEALED], &plain);
    let rotated = ring.rotated().expect("rotate").wrap(PASSWORD, SALT, FAST_KDF).expect("wrap");
    let plain = envelope::open(&AeadKey::new(&kek), ObjectKind::KeyFile, &[0; 32], &rotated).expect("open");
    put("keyfile", "keyring2-sealed", &[SEALED], &plain);

    // Envelopes and payloads of each compression.
    let sample = b"a short plaintext, a short plaintext, a short plaintext";
    let key = AeadKey::new(&[7; 32]);
    put(
        "envelope",
        "envelope-raw",
        &[RAW],
        &envelope::seal(&key, 0, ObjectKind::Index, &[0; 32], sample).expect("seal"),
    );
    put("envelope", "plaintext-sealed", &[SEALED], sample);
    put("payload", "stored", &[20], &payload::encode(sample, Compression::None));
    put("payload", "zstd", &[20], &payload::encode(&sample.repeat(50), Compression::Zstd(3)));
    let base: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut edited = base.clone();
    edited[100..110].copy_from_slice(b"0123456789");
    let delta = payload::encode_delta(&edited, &cairn_format::BlobId::from_bytes([1; 32]), &base, 3).expect("delta");
    put("payload", "delta", &[20], &delta);
    println!("seeds written under {}/corpus", env!("CARGO_MANIFEST_DIR"));
}
