//! The write side of a backup: compress + encrypt on a worker pool, append
//! to packs, upload packs, collect their index entries.
//!
//! `BlobSink::submit` is the entrance: it drops blobs the repository (or this
//! run) already has, so every later stage only sees new data.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cairn_format::index::{IndexFile, IndexPack};
use cairn_format::{BlobId, BlobKind};
use cairn_repo::{BlobSet, FinishedPack, IndexedRepository, PackWriter, RepoError, SealedBlob};
use crossbeam_channel::{Receiver, Sender, bounded};

use crate::BackupError;
use crate::archiver::{Deltas, Writes};
use crate::delta::Choice;

struct RawBlob {
    kind: BlobKind,
    id: BlobId,
    data: Vec<u8>,
    /// Its sketch and delta base (data blobs).
    choice: Choice,
}

/// What the write side did.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Packs written and not yet in an index file (a running backup writes
    /// one every 100,000 blobs), for the last one.
    pub packs: Vec<IndexPack>,
    /// New blobs stored.
    pub blobs_added: u64,
    /// Bytes uploaded (pack files).
    pub bytes_added: u64,
    /// Plaintext bytes of the new blobs.
    pub raw_added: u64,
}

#[derive(Default)]
struct Shared {
    error: Mutex<Option<RepoError>>,
    aborted: AtomicBool,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    raw_added: AtomicU64,
    /// Packs uploaded and not yet in an index file.
    packs: Mutex<Unindexed>,
}

/// Packs uploaded and not yet in an index file, and how many blobs they hold.
#[derive(Default)]
struct Unindexed {
    packs: Vec<IndexPack>,
    blobs: usize,
}

/// Blobs an index file of a running backup holds (the repository's
/// [`cairn_repo::INDEX_FILE_BLOBS`]): past this many, the packs uploaded so
/// far are written to an index file and let go. Holding
/// them to the end took some 100 bytes a blob (the initial backup of a
/// million small files peaked at 406 MiB), and one index file of a million
/// blobs costs every later command that much to decode. Safe while a prune
/// runs: it deletes nothing a running backup may use before that backup
/// has written its snapshot (docs/FORMAT.md, "Deleting packs").
const INDEX_EVERY_BLOBS: usize = cairn_repo::INDEX_FILE_BLOBS;

impl Shared {
    fn fail(&self, e: RepoError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        self.aborted.store(true, Ordering::SeqCst);
    }
}

/// The write side has failed; stop producing.
#[derive(Debug)]
pub struct Aborted;

/// Cloneable entrance to the write side; each clone is one producer's.
pub struct BlobSink {
    tx: Sender<RawBlob>,
    /// Straight to the packer: small blobs are sealed by the thread that
    /// made them (see [`SEAL_HERE_MAX`]), gathered in `outbox` first.
    sealed: Sender<Vec<SealedBlob>>,
    /// This producer's sealed blobs not yet handed to the packer; sent when
    /// [`OUTBOX_BYTES`] are gathered, and when the sink is dropped.
    outbox: Mutex<Outbox>,
    /// Every blob this run has queued: the repository's index takes them
    /// only when the run ends.
    inflight: Arc<Mutex<BlobSet>>,
    repo: Arc<IndexedRepository>,
    shared: Arc<Shared>,
    deltas: Deltas,
}

#[derive(Default)]
struct Outbox {
    blobs: Vec<SealedBlob>,
    bytes: usize,
}

/// Sealed bytes a producer gathers before handing them to the packer at
/// once: one hand-off per file cost more than sealing a small file.
const OUTBOX_BYTES: usize = 256 * 1024;

impl Clone for BlobSink {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            sealed: self.sealed.clone(),
            outbox: Mutex::default(),
            inflight: self.inflight.clone(),
            repo: self.repo.clone(),
            shared: self.shared.clone(),
            deltas: self.deltas,
        }
    }
}

impl Drop for BlobSink {
    fn drop(&mut self) {
        let blobs = std::mem::take(&mut self.outbox.get_mut().unwrap_or_else(|p| p.into_inner()).blobs);
        if !blobs.is_empty() {
            // A closed packer means the backup has failed already.
            let _ = self.sealed.send(blobs);
        }
    }
}

impl BlobSink {
    /// The repository being written to.
    pub fn repo(&self) -> &IndexedRepository {
        &self.repo
    }

    /// Whether new chunks may be stored as deltas.
    pub fn deltas(&self) -> Deltas {
        self.deltas
    }

    /// Whether a blob is stored already or on its way.
    pub fn has(&self, id: &BlobId) -> bool {
        self.repo.index().contains(id) || self.inflight.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Queues a blob unless the repository or this run already has it;
    /// `choice` holds a data blob's sketch and the stored blob it may be
    /// coded against as a delta.
    pub fn submit(&self, kind: BlobKind, id: BlobId, data: Vec<u8>, choice: Choice) -> Result<(), Aborted> {
        if self.shared.aborted.load(Ordering::Relaxed) {
            return Err(Aborted);
        }
        if self.repo.index().contains(&id) {
            return Ok(());
        }
        if !self.inflight.lock().unwrap_or_else(|p| p.into_inner()).insert(&id) {
            return Ok(());
        }
        let raw = RawBlob { kind, id, data, choice };
        if raw.data.len() > SEAL_HERE_MAX || raw.choice.base.is_some() {
            return self.tx.send(raw).map_err(|_| Aborted);
        }
        let sealed = match seal(&self.repo, &raw) {
            Ok(s) => s,
            Err(e) => {
                self.shared.fail(e);
                return Err(Aborted);
            }
        };
        let full = {
            let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
            outbox.bytes += sealed.envelope.len();
            outbox.blobs.push(sealed);
            (outbox.bytes >= OUTBOX_BYTES).then(|| {
                outbox.bytes = 0;
                std::mem::take(&mut outbox.blobs)
            })
        };
        match full {
            Some(blobs) => self.sealed.send(blobs).map_err(|_| Aborted),
            None => Ok(()),
        }
    }

    /// Whether the write side has failed.
    pub fn aborted(&self) -> bool {
        self.shared.aborted.load(Ordering::Relaxed)
    }
}

/// The running write side.
pub struct Pipeline {
    sink: Option<BlobSink>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, BackupError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| BackupError::Io(format!("cannot start thread {name}: {e}")))
}

impl Pipeline {
    /// Starts sealers, the packer and uploaders.
    /// With [`Writes::DryRun`], packs are built in memory and dropped.
    pub fn start(
        repo: Arc<IndexedRepository>,
        workers: usize,
        writes: Writes,
        deltas: Deltas,
    ) -> Result<Self, BackupError> {
        let shared = Arc::new(Shared::default());
        let (raw_tx, raw_rx) = bounded::<RawBlob>(workers * 2);
        let (sealed_tx, sealed_rx) = bounded::<Vec<SealedBlob>>(workers * 2);
        // Rendezvous: a finished pack waits in the packer until an uploader
        // takes it, so at most (uploaders + 1) packs are in memory.
        let (pack_tx, pack_rx) = bounded::<FinishedPack>(0);
        let mut threads = Vec::new();
        for i in 0..workers {
            let (rx, tx, repo, shared) = (raw_rx.clone(), sealed_tx.clone(), repo.clone(), shared.clone());
            threads.push(spawn(&format!("seal-{i}"), move || seal_loop(rx, tx, &repo, &shared))?);
        }
        {
            let (repo, shared) = (repo.clone(), shared.clone());
            threads.push(spawn("packer", move || pack_loop(sealed_rx, pack_tx, &repo, &shared, writes))?);
        }
        // Remote storage: two uploads in flight hide a request's latency. A
        // local folder takes a pack in a few tens of milliseconds, less than
        // the workers take to fill the next one, so a second uploader would
        // only hold one more pack (16 MiB) in memory.
        let uploaders = if repo.repo().is_remote() { 2 } else { 1 };
        for i in 0..uploaders {
            let (rx, repo, shared) = (pack_rx.clone(), repo.clone(), shared.clone());
            threads.push(spawn(&format!("upload-{i}"), move || upload_loop(rx, &repo, &shared, writes))?);
        }
        let sink = BlobSink {
            tx: raw_tx,
            sealed: sealed_tx,
            outbox: Mutex::default(),
            inflight: Arc::default(),
            repo,
            shared: shared.clone(),
            deltas,
        };
        Ok(Self { sink: Some(sink), threads, shared })
    }

    /// A handle for producers.
    pub fn sink(&self) -> BlobSink {
        // Present until `finish`, which takes `self`.
        self.sink.clone().unwrap_or_else(|| unreachable!("sink taken before finish"))
    }

    /// Flushes every stage and waits for the uploads; the first error wins.
    pub fn finish(mut self) -> Result<WriteStats, RepoError> {
        self.sink = None;
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                self.shared.fail(RepoError::Invalid("a backup worker thread panicked".into()));
            }
        }
        if let Some(e) = self.shared.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        Ok(WriteStats {
            packs: std::mem::take(&mut self.shared.packs.lock().unwrap_or_else(|p| p.into_inner()).packs),
            blobs_added: self.shared.blobs_added.load(Ordering::SeqCst),
            bytes_added: self.shared.bytes_added.load(Ordering::SeqCst),
            raw_added: self.shared.raw_added.load(Ordering::SeqCst),
        })
    }
}

fn seal_loop(rx: Receiver<RawBlob>, tx: Sender<Vec<SealedBlob>>, repo: &IndexedRepository, shared: &Shared) {
    for raw in rx {
        if shared.aborted.load(Ordering::Relaxed) {
            continue;
        }
        match seal(repo, &raw) {
            Ok(s) => {
                if tx.send(vec![s]).is_err() {
                    return;
                }
            }
            Err(e) => shared.fail(e),
        }
    }
}

/// Blobs up to this size (small files, a file's last chunk, most trees)
/// are sealed by the thread that made them instead of the worker pool: for
/// a tree of small files, handing each one to another thread and back
/// cost more than sealing it (a quarter of an initial backup's CPU went to
/// thread switches and channels).
const SEAL_HERE_MAX: usize = 64 * 1024;

fn seal(repo: &IndexedRepository, raw: &RawBlob) -> Result<SealedBlob, RepoError> {
    match raw.kind {
        BlobKind::Data => seal_data(repo, raw),
        BlobKind::Tree => repo.seal_blob(raw.kind, raw.id, &raw.data),
    }
}

/// Seals a data blob as the reader chose (`delta::choose`): coded against
/// its base when that is smaller, its sketch recorded for later runs.
fn seal_data(repo: &IndexedRepository, raw: &RawBlob) -> Result<SealedBlob, RepoError> {
    let mut sealed = match raw.choice.base {
        // A base that cannot be read (damaged, say) only costs the saving:
        // store the blob whole.
        Some(base) => repo.seal_delta(raw.id, &raw.data, base).or_else(|_| repo.seal_blob(raw.kind, raw.id, &raw.data)),
        None => repo.seal_blob(raw.kind, raw.id, &raw.data),
    }?;
    sealed.sketch = raw.choice.sketch;
    Ok(sealed)
}

fn pack_loop(
    rx: Receiver<Vec<SealedBlob>>,
    tx: Sender<FinishedPack>,
    repo: &IndexedRepository,
    shared: &Shared,
    writes: Writes,
) {
    // Staged where the storage allows (a local folder): the pack being
    // built is written out blob by blob instead of held in memory. A dry
    // run writes nothing, not even there.
    let writer = |kind| match writes {
        Writes::Store => repo.repo().staged_pack_writer(kind),
        Writes::DryRun => repo.repo().pack_writer(kind),
    };
    let (mut data, mut tree) = (writer(BlobKind::Data), writer(BlobKind::Tree));
    let emit = |w: &mut PackWriter| match w.finish() {
        Ok(Some(p)) => {
            let _ = tx.send(p);
        }
        Ok(None) => {}
        Err(e) => shared.fail(e),
    };
    for blob in rx.into_iter().flatten() {
        if shared.aborted.load(Ordering::Relaxed) {
            continue;
        }
        shared.blobs_added.fetch_add(1, Ordering::Relaxed);
        let w = if blob.kind == BlobKind::Data { &mut data } else { &mut tree };
        match w.add(blob) {
            Ok(true) => emit(w),
            Ok(false) => {}
            Err(e) => shared.fail(e),
        }
    }
    if !shared.aborted.load(Ordering::Relaxed) {
        emit(&mut data);
        emit(&mut tree);
    }
}

fn upload_loop(rx: Receiver<FinishedPack>, repo: &IndexedRepository, shared: &Shared, writes: Writes) {
    for pack in rx {
        if shared.aborted.load(Ordering::Relaxed) {
            continue;
        }
        let raw = pack.raw_bytes;
        if writes == Writes::DryRun {
            shared.bytes_added.fetch_add(pack.bytes.size(), Ordering::Relaxed);
            shared.raw_added.fetch_add(raw, Ordering::Relaxed);
            continue;
        }
        match repo.repo().save_pack(pack) {
            Ok((index, len)) => {
                shared.bytes_added.fetch_add(len, Ordering::Relaxed);
                shared.raw_added.fetch_add(raw, Ordering::Relaxed);
                let full = {
                    let mut unindexed = shared.packs.lock().unwrap_or_else(|p| p.into_inner());
                    unindexed.blobs += index.blobs.len();
                    unindexed.packs.push(index);
                    (unindexed.blobs >= INDEX_EVERY_BLOBS).then(|| std::mem::take(&mut *unindexed))
                };
                if let Some(full) = full
                    && let Err(e) = repo.repo().save_index(&IndexFile { supersedes: Vec::new(), packs: full.packs })
                {
                    shared.fail(e);
                }
            }
            Err(e) => shared.fail(e),
        }
    }
}
