//! The bodies of the fuzz targets: every decoder of repository data, reached
//! the way cairn reaches it (docs/RELIABILITY.md, "Fuzzing").
//!
//! Each target reads its first input byte as a mode:
//!
//! - [`Mode::Raw`]: the rest is the stored object as an attacker with write
//!   access to the storage would leave it; almost all of it fails
//!   authentication, which is the point: the framing code before the AEAD
//!   check must not panic either.
//! - [`Mode::Sealed`]: the rest is sealed with the repository's real keys, so
//!   it passes authentication and reaches the payload decoder (the fuzzer
//!   picks the compression flag) and the object's decoder. This is the
//!   holder of a key writing malformed plaintext.
//! - [`Mode::Plain`]: as sealed, with the payload flag "stored" put in front,
//!   so every input reaches the object's decoder itself.
//!
//! A target passes when nothing panics, hangs or allocates past the fuzzer's
//! limits; errors are the expected outcome and are dropped. Where a decoder
//! accepts its input, the target also checks what a reader relies on next.

use std::cell::RefCell;

use cairn_backend::{Backend, FileKind};
use cairn_crypto::envelope::{self, AeadKey};
use cairn_crypto::{KdfParams, Keyring, ObjectKind, kdf};
use cairn_format::keyfile::KeyFile;
use cairn_format::lifecycle::{DeletionPlan, RunMarker};
use cairn_format::pack::{PackHeader, TRAILER_LEN, header_len_from_trailer};
use cairn_format::snapshot::Snapshot;
use cairn_format::tree::Tree;
use cairn_format::{BlobId, BlobKind, Compression, IndexId, PackId, SnapshotId, id::file_hash, payload};
use cairn_repo::{Index, InitOptions, Repository, Verify};

const PASSWORD: &[u8] = b"fuzz";
/// The cheapest Argon2id settings, so a key-file case costs microseconds.
const FAST_KDF: KdfParams = KdfParams { memory_kib: 8, iterations: 1, parallelism: 1 };
const SALT: &[u8] = b"cairn fuzz salt!";
/// Bytes of filler the pack target puts before a header it was given, at most.
const MAX_PACK_FILLER: u64 = 1 << 20;

/// How a target treats its input (see the module comment).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Raw,
    Sealed,
    Plain,
}

fn split(data: &[u8]) -> Option<(Mode, &[u8])> {
    let (&m, rest) = data.split_first()?;
    let mode = match m % 3 {
        0 => Mode::Raw,
        1 => Mode::Sealed,
        _ => Mode::Plain,
    };
    Some((mode, rest))
}

/// A repository in memory, made once per fuzzing process, with its
/// storage and its keys at hand to plant hostile objects (the repository
/// keeps both to itself).
struct Fixture {
    repo: Repository,
    backend: Backend,
    keyring: Keyring,
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fn with_fixture<R>(f: impl FnOnce(&Fixture) -> R) -> R {
    FIXTURE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fx = slot.get_or_insert_with(|| {
            let backend = Backend::memory().expect("memory backend");
            let opts = InitOptions { kdf: FAST_KDF, ..InitOptions::fast_for_tests() };
            let repo = Repository::init(backend.clone(), PASSWORD, &opts).expect("init");
            // The keys, unwrapped from the key file as the repository did.
            let (name, _) = backend.list(FileKind::Key).expect("list keys").pop().expect("a key file");
            let file = KeyFile::decode(&backend.read(FileKind::Key, &name).expect("key file")).expect("key file");
            let (salt, wrapped) = (file.salt().expect("salt"), file.wrapped().expect("wrapped"));
            let keyring = Keyring::unwrap(PASSWORD, &salt, file.params(), &wrapped).expect("unwrap");
            Fixture { repo, backend, keyring }
        });
        f(fx)
    })
}

/// The stored bytes for `rest` under `mode`, sealed (where the mode says)
/// as an object of `kind` with envelope id `id`.
fn stored(keyring: &Keyring, mode: Mode, kind: ObjectKind, id: &[u8; 32], rest: &[u8]) -> Vec<u8> {
    match mode {
        Mode::Raw => rest.to_vec(),
        Mode::Sealed => keyring.seal(kind, id, rest).expect("seal"),
        Mode::Plain => keyring.seal(kind, id, &payload::encode(rest, Compression::None)).expect("seal"),
    }
}

/// Writes a document the way the repository names it (by its hash), runs
/// `read` on its id, and removes it again so the next case starts clean.
fn round_trip_file<T>(
    file: FileKind,
    kind: ObjectKind,
    mode: Mode,
    rest: &[u8],
    read: impl FnOnce(&Repository, [u8; 32]) -> T,
) {
    with_fixture(|fx| {
        let bytes = stored(&fx.keyring, mode, kind, &[0; 32], rest);
        let id = file_hash(&bytes);
        let name = hex(&id);
        fx.backend.write(file, &name, bytes).expect("memory write");
        let _ = read(&fx.repo, id);
        let _ = fx.backend.delete(file, &name);
    });
}

fn hex(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The AEAD envelope: any bytes under every kind of object; and for a valid
/// envelope, that it opens to what was sealed and that no single flipped
/// byte or other kind opens it.
pub fn envelope(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    let key = AeadKey::new(&[7; 32]);
    let kinds = [
        ObjectKind::KeyFile,
        ObjectKind::Config,
        ObjectKind::Index,
        ObjectKind::Snapshot,
        ObjectKind::PackHeader,
        ObjectKind::DataBlob,
        ObjectKind::TreeBlob,
        ObjectKind::DeletionPlan,
        ObjectKind::RunMarker,
    ];
    if mode == Mode::Raw {
        let _ = envelope::epoch_of(rest);
        for kind in kinds {
            let _ = envelope::open(&key, kind, &[0; 32], rest);
        }
        with_fixture(|fx| fx.keyring.open(ObjectKind::Index, &[0; 32], rest).is_ok());
        return;
    }
    let sealed = envelope::seal(&key, 3, ObjectKind::DataBlob, &[1; 32], rest).expect("seal");
    assert_eq!(envelope::open(&key, ObjectKind::DataBlob, &[1; 32], &sealed).ok().as_deref(), Some(rest));
    assert!(envelope::open(&key, ObjectKind::TreeBlob, &[1; 32], &sealed).is_err());
    let at = rest.first().map_or(0, |&b| usize::from(b)) % sealed.len();
    let mut flipped = sealed;
    flipped[at] ^= 0x01;
    assert!(envelope::open(&key, ObjectKind::DataBlob, &[1; 32], &flipped).is_err(), "a flipped byte {at} opened");
}

/// Key files: the plaintext JSON, then the keyring inside its envelope.
pub fn keyfile(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    if mode == Mode::Raw {
        let Ok(file) = KeyFile::decode(rest) else { return };
        let (Ok(salt), Ok(wrapped)) = (file.salt(), file.wrapped()) else { return };
        let params = file.params();
        // The key derivation runs only at cheap settings: what an expensive
        // one costs is bounded by kdf::derive's maxima, not a decoder's care.
        if params.memory_kib <= 64 && params.iterations <= 2 && params.parallelism <= 2 {
            let _ = Keyring::unwrap(PASSWORD, &salt, params, &wrapped);
        }
        return;
    }
    // A validly wrapped keyring of any content: its decoder must refuse
    // what it cannot use, and what it accepts must seal and open.
    let kek = kdf::derive(PASSWORD, SALT, FAST_KDF).expect("kdf");
    let wrapped = envelope::seal(&AeadKey::new(&kek), 0, ObjectKind::KeyFile, &[0; 32], rest).expect("seal");
    if let Ok(ring) = Keyring::unwrap(PASSWORD, SALT, FAST_KDF, &wrapped) {
        let sealed = ring.seal(ObjectKind::Config, &[0; 32], b"x").expect("seal with an unwrapped keyring");
        assert_eq!(ring.open(ObjectKind::Config, &[0; 32], &sealed).ok().as_deref(), Some(&b"x"[..]));
    }
}

/// The config, through `Repository::open` (which also builds the chunker
/// from the config's parameters).
pub fn config(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    if mode == Mode::Plain {
        let _ = cairn_format::config::Config::decode(rest);
    }
    with_fixture(|fx| {
        // A second repository sharing the fixture's keys would need its key
        // file; overwrite the fixture's config and put it back afterwards.
        let backend = &fx.backend;
        let original = backend.read(FileKind::Config, "").expect("config");
        let bytes = stored(&fx.keyring, mode, ObjectKind::Config, &[0; 32], rest);
        backend.write(FileKind::Config, "", bytes).expect("memory write");
        let _ = Repository::open(backend.clone(), PASSWORD);
        backend.write(FileKind::Config, "", original).expect("memory write");
    });
}

/// Snapshots, through `Repository::load_snapshot`.
pub fn snapshot(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    if mode == Mode::Plain {
        let _ = Snapshot::decode(rest);
    }
    round_trip_file(FileKind::Snapshot, ObjectKind::Snapshot, mode, rest, |repo, id| {
        repo.load_snapshot(&SnapshotId::from_bytes(id))
    });
}

/// Index files, through `Repository::load_index_file`, then into the
/// in-memory index the way every command loads it, and looked up.
pub fn index(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    round_trip_file(FileKind::Index, ObjectKind::Index, mode, rest, |repo, id| {
        let Ok(file) = repo.load_index_file(&IndexId::from_bytes(id)) else { return };
        let index = Index::from_files([&file]);
        for pack in &file.packs {
            for blob in &pack.blobs {
                assert!(index.get(&blob.id).is_some(), "a listed blob is not found in the index");
            }
        }
        let _ = (index.len(), index.entry_bytes(), index.delta_count());
    });
}

/// Trees: the blob envelope and payload (`open_blob`), then the JSON.
pub fn tree(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    with_fixture(|fx| {
        let keyring = &fx.keyring;
        let id = BlobId::from_bytes([9; 32]);
        let sealed = stored(keyring, mode, ObjectKind::TreeBlob, id.as_bytes(), rest);
        // The length the index would give: the decoded length when there is
        // one, so a well-formed payload reaches the JSON decoder.
        let raw_length = match mode {
            Mode::Plain => rest.len() as u32,
            _ => payload::decode(rest, 1 << 20).map_or(rest.len(), |p| p.len()) as u32,
        };
        let mut no_base = |_: &BlobId| Err(cairn_repo::RepoError::Invalid("no base".into()));
        let Ok(plain) =
            fx.repo.open_envelope(BlobKind::Tree, &id, &sealed, raw_length, Verify::Authenticated, &mut no_base)
        else {
            return;
        };
        let Ok(tree) = Tree::decode(&plain) else { return };
        for node in &tree.nodes {
            let _ = node.name.display();
            assert!(tree.find(&node.name.0).is_some(), "a decoded entry cannot be found by its name");
        }
    });
}

/// Packs: the trailer, the sealed header, and each blob the header lists,
/// through `Repository::read_pack_header` as check and repair read them.
pub fn pack(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    let Some((&kind_byte, rest)) = rest.split_first() else { return };
    let kind = if kind_byte & 1 == 0 { BlobKind::Data } else { BlobKind::Tree };
    with_fixture(|fx| {
        let keyring = &fx.keyring;
        let bytes = match mode {
            Mode::Raw => rest.to_vec(),
            Mode::Sealed | Mode::Plain => {
                let header = stored(keyring, mode, ObjectKind::PackHeader, &[0; 32], rest);
                // Filler where the header says its blobs are, so a header that
                // decodes also passes the length check and its blobs are read.
                let plain = if mode == Mode::Plain { Some(rest.to_vec()) } else { payload::decode(rest, 1 << 20).ok() };
                let filler = plain.and_then(|p| PackHeader::decode(&p).ok()).map_or(0, |h| h.blobs_len());
                if filler > MAX_PACK_FILLER {
                    return;
                }
                let mut pack = vec![0x5a; filler as usize];
                pack.extend_from_slice(&header);
                pack.extend_from_slice(&(header.len() as u32).to_le_bytes());
                pack
            }
        };
        if bytes.len() >= TRAILER_LEN {
            let _ = header_len_from_trailer(&bytes[bytes.len() - TRAILER_LEN..], bytes.len() as u64);
        }
        let id = PackId::from_bytes(file_hash(&bytes));
        let name = id.to_hex();
        let file = cairn_repo::pack_file_kind(kind);
        let size = bytes.len() as u64;
        fx.backend.write(file, &name, bytes).expect("memory write");
        if let Ok(header) = fx.repo.read_pack_header(kind, &id, size) {
            let mut no_base = |_: &BlobId| Err(cairn_repo::RepoError::Invalid("no base".into()));
            for (offset, entry) in header.with_offsets() {
                let Ok(envelope) = fx.backend.read_range(file, &name, offset.into(), entry.length.into()) else {
                    continue;
                };
                let _ = fx.repo.open_envelope(kind, &entry.id, &envelope, entry.raw_length, Verify::Full, &mut no_base);
            }
        }
        let _ = fx.backend.delete(file, &name);
    });
}

/// Payloads: plain and delta decoding with a size limit the input picks.
pub fn payload(data: &[u8]) {
    let Some((&limit_byte, rest)) = data.split_first() else { return };
    let limit = 1usize << (limit_byte % 24);
    if let Ok(out) = payload::decode(rest, limit) {
        assert!(out.len() <= limit, "decoded {} bytes past the limit {limit}", out.len());
    }
    let base: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    if let Ok(Some(_)) = payload::delta_base(rest)
        && let Ok(out) = payload::decode_delta(rest, &base, limit)
    {
        assert!(out.len() <= limit, "decoded {} delta bytes past the limit {limit}", out.len());
    }
}

/// Prune's deletion plans and the run markers, through the listings prune
/// and backup read them with.
pub fn lifecycle(data: &[u8]) {
    let Some((mode, rest)) = split(data) else { return };
    if mode == Mode::Plain {
        let _ = DeletionPlan::decode(rest);
        let _ = RunMarker::decode(rest);
    }
    round_trip_file(FileKind::Deletion, ObjectKind::DeletionPlan, mode, rest, |repo, _| repo.deletion_plans());
    with_fixture(|fx| {
        // Markers are sealed under their own (random) id, not a hash.
        let id = [7u8; 32];
        let bytes = stored(&fx.keyring, mode, ObjectKind::RunMarker, &id, rest);
        fx.backend.write(FileKind::Marker, &hex(&id), bytes).expect("memory write");
        let _ = fx.repo.run_markers();
        let _ = fx.backend.delete(FileKind::Marker, &hex(&id));
    });
}
