//! Repository storage: whole files by kind and name, on an Apache OpenDAL
//! operator. Knows nothing of encryption or formats.
//!
//! [`Backend`] is the one interface every repository read and write goes
//! through. [`FileKind`] maps each kind of repository file to its folder
//! (docs/FORMAT.md, "Layout"). The local filesystem is the default service;
//! the memory service serves fast tests.
//!
//! ```
//! use cairn_backend::{Backend, FileKind};
//! let b = Backend::memory().unwrap();
//! let id = "ab".repeat(32);
//! b.write(FileKind::Snapshot, &id, b"bytes".to_vec()).unwrap();
//! assert_eq!(b.read(FileKind::Snapshot, &id).unwrap(), b"bytes");
//! assert_eq!(b.list(FileKind::Snapshot).unwrap(), vec![(id, 5)]);
//! ```

use std::future::IntoFuture;
use std::sync::Arc;

use opendal::{ErrorKind, Operator};

mod cache;
mod fault;
pub mod interrupt;
mod location;
mod pace;

use cache::{Cache, cacheable};
pub use cache::{CacheEntry, DEFAULT_MAX_BYTES as DEFAULT_CACHE_MAX_BYTES, list_caches};
pub use fault::{FaultLayer, FaultPlan};
pub use location::Location;
use pace::Pacer;

/// Longest wait for a request without a body (stat, list, delete, rename).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// Longest wait for one step of a transfer: a whole pack may go up in one
/// step on a slow line.
const IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The kinds of files in a repository; each lives in its own folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `config` at the root.
    Config,
    /// `keys/<id>`.
    Key,
    /// `snapshots/<id>`.
    Snapshot,
    /// `index/<id>`.
    Index,
    /// `data/<2 hex>/<id>`: packs of data blobs.
    DataPack,
    /// `tree/<2 hex>/<id>`: packs of tree blobs.
    TreePack,
    /// `deletions/<id>`: packs prune has marked for deletion.
    Deletion,
    /// `running/<id>`: markers of backups and prunes in progress.
    Marker,
}

impl FileKind {
    /// The folder of this kind (empty for the config).
    pub fn dir(self) -> &'static str {
        match self {
            Self::Config => "",
            Self::Key => "keys/",
            Self::Snapshot => "snapshots/",
            Self::Index => "index/",
            Self::DataPack => "data/",
            Self::TreePack => "tree/",
            Self::Deletion => "deletions/",
            Self::Marker => "running/",
        }
    }

    /// Whether files are spread over 256 sub-folders by their first two hex digits.
    fn fanned_out(self) -> bool {
        matches!(self, Self::DataPack | Self::TreePack)
    }

    /// The path of a file of this kind.
    pub fn path(self, name: &str) -> String {
        match self {
            Self::Config => "config".to_string(),
            k if k.fanned_out() && name.len() >= 2 => format!("{}{}/{}", k.dir(), &name[..2], name),
            k => format!("{}{}", k.dir(), name),
        }
    }

    /// Short lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Key => "key",
            Self::Snapshot => "snapshot",
            Self::Index => "index",
            Self::DataPack => "data pack",
            Self::TreePack => "tree pack",
            Self::Deletion => "deletion plan",
            Self::Marker => "run marker",
        }
    }
}

/// Crash-consistency testing: with `CAIRN_TEST_CRASH_AFTER=N` set, the
/// process aborts (like a power cut: no cleanup, no unwinding) just before
/// its N+1-th write or delete. Inert when unset.
fn crash_point() {
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if let Some(limit) = *LIMIT.get_or_init(|| std::env::var("CAIRN_TEST_CRASH_AFTER").ok()?.parse().ok())
        && DONE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= limit
    {
        std::process::abort();
    }
}

/// Storage requests this process made, by kind (one per call: a listing the
/// service pages counts once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// Whole or ranged reads.
    pub reads: u64,
    /// Writes (uploads).
    pub writes: u64,
    /// Size and existence checks.
    pub stats: u64,
    /// Listings of a folder.
    pub lists: u64,
    /// Deletions.
    pub deletes: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl RequestCounts {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.stats + self.lists + self.deletes
    }
}

impl std::fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} storage requests ({} reads, {} writes, {} stats, {} lists, {} deletes); {} bytes read, {} written",
            self.total(),
            self.reads,
            self.writes,
            self.stats,
            self.lists,
            self.deletes,
            self.bytes_read,
            self.bytes_written
        )
    }
}

/// Counters behind [`request_counts`]: reads, writes, stats, lists, deletes.
/// One row per tier: 0 the repository's location, 1 its cold location.
/// Columns: reads, writes, stats, lists, deletes, bytes read, bytes written.
static REQUESTS: [[std::sync::atomic::AtomicU64; 7]; 2] =
    [const { [const { std::sync::atomic::AtomicU64::new(0) }; 7] }; 2];

fn counts_of(tiers: &[usize]) -> RequestCounts {
    let get = |i: usize| tiers.iter().map(|&t| REQUESTS[t][i].load(std::sync::atomic::Ordering::Relaxed)).sum();
    RequestCounts {
        reads: get(0),
        writes: get(1),
        stats: get(2),
        lists: get(3),
        deletes: get(4),
        bytes_read: get(5),
        bytes_written: get(6),
    }
}

/// The storage requests made so far by this process, on all tiers.
pub fn request_counts() -> RequestCounts {
    counts_of(&[0, 1])
}

/// The storage requests made so far to cold locations (see [`Backend::with_cold`]).
pub fn cold_request_counts() -> RequestCounts {
    counts_of(&[1])
}

/// A storage failure, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The file does not exist.
    #[error("{path}: not found")]
    NotFound {
        /// Repository-relative path.
        path: String,
    },
    /// Any other failure of the service.
    #[error("{op} {path}: {}", describe(cause))]
    Service {
        /// The operation that failed.
        op: &'static str,
        /// Repository-relative path.
        path: String,
        /// The service's error. Not a `source`: the message already says
        /// what matters, in one line.
        cause: Box<opendal::Error>,
    },
    /// The location string names no usable service.
    #[error("invalid repository location {0:?}: {1}")]
    Location(String, String),
    /// A local folder holds no repository (or does not exist), and the
    /// command may not create one there.
    #[error("no cairn repository at {0}")]
    NoRepository(String),
    /// The process is being interrupted (SIGINT, SIGTERM): no write starts.
    #[error("{0}: not written, the run is being interrupted")]
    Interrupted(String),
}

/// What a service error comes down to, for its message and for whether
/// running again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    NoCredentials,
    NoBucket,
    /// The local file system refused (owner and mode).
    LocalPermission,
    AccessDenied,
    SshFailed,
    Unreachable,
    /// A setting the service rejects: running again changes nothing.
    Invalid,
    Other,
}

fn cause_of(e: &opendal::Error) -> Cause {
    let full = e.to_string();
    let has = |needle: &str| full.contains(needle);
    let io_source = {
        let mut next = std::error::Error::source(e);
        let mut found = false;
        while let Some(s) = next {
            found |= s.downcast_ref::<std::io::Error>().is_some();
            next = s.source();
        }
        found
    };
    if has("failed to load signing credential") {
        Cause::NoCredentials
    } else if has("NoSuchBucket") {
        Cause::NoBucket
    } else if e.kind() == ErrorKind::PermissionDenied && io_source {
        Cause::LocalPermission
    } else if e.kind() == ErrorKind::PermissionDenied
        || has("AccessDenied")
        || has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
    {
        Cause::AccessDenied
    } else if has("failed to connect to the remote host") {
        Cause::SshFailed
    } else if has("error sending request") || has("Connection refused") || has("dns error") {
        Cause::Unreachable
    } else if matches!(
        e.kind(),
        ErrorKind::ConfigInvalid | ErrorKind::Unsupported | ErrorKind::IsADirectory | ErrorKind::NotADirectory
    ) {
        Cause::Invalid
    } else {
        Cause::Other
    }
}

/// The cause of a service error in a few words where it is a common one
/// (a missing bucket, refused credentials, an unreachable endpoint); the
/// service's own message otherwise.
fn describe(e: &opendal::Error) -> String {
    match cause_of(e) {
        Cause::NoCredentials => "no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or -o s3.access_key_id=... -o s3.secret_access_key=...)".into(),
        Cause::NoBucket => "the bucket does not exist (create it first, or check the bucket name)".into(),
        Cause::LocalPermission => "permission denied (the repository's files belong to another user or are not writable: run as their owner, or fix their owner and mode)".into(),
        Cause::AccessDenied => "access denied (check the credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or -o s3.*)".into(),
        Cause::SshFailed => "SSH connection failed: host unreachable or login refused (check host, port, user, -o sftp.key and known_hosts; `ssh -p PORT USER@HOST` shows why)".into(),
        Cause::Unreachable => "service unreachable (check the endpoint and the network)".into(),
        Cause::Invalid | Cause::Other => e.to_string(),
    }
}

impl BackendError {
    fn from_opendal(op: &'static str, path: &str, e: opendal::Error) -> Self {
        if e.kind() == ErrorKind::NotFound {
            Self::NotFound { path: path.to_string() }
        } else {
            Self::Service { op, path: path.to_string(), cause: Box::new(e) }
        }
    }

    /// True when running again later may succeed (the service did not
    /// answer, or failed on its side); false when something must be fixed
    /// first (credentials, a missing bucket, permissions, a bad setting).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Service { cause, .. } => {
                matches!(cause_of(cause), Cause::Unreachable | Cause::SshFailed | Cause::Other)
            }
            _ => false,
        }
    }

    /// True when the error means the file is absent.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The kind of the operating-system error behind a service error (a
    /// full disk, say), for callers that give advice on it.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        let Self::Service { cause, .. } = self else { return None };
        let mut next = std::error::Error::source(&**cause);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return Some(io.kind());
            }
            next = e.source();
        }
        None
    }
}

type Result<T> = std::result::Result<T, BackendError>;

/// How to reach the storage beyond its location: service options and
/// bandwidth limits.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Service options (`s3.endpoint=...`), as given with `-o`.
    pub service: Vec<(String, String)>,
    /// Upload limit in bytes per second.
    pub limit_upload: Option<u64>,
    /// Download limit in bytes per second.
    pub limit_download: Option<u64>,
    /// Log every storage request to standard error.
    pub log_requests: bool,
    /// Keep metadata in a cache under this folder (one sub-folder per
    /// repository); None for no cache.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Bound of one repository's cache in bytes (0: the default).
    pub cache_max_bytes: u64,
    /// Open an existing repository only: a local folder without one is
    /// [`BackendError::NoRepository`], and nothing is created there (the
    /// local service otherwise makes the folder and its `tmp/` at once).
    pub must_exist: bool,
}

/// A service option as a user writes it, `KEY=VALUE` (`s3.endpoint=...`).
pub fn parse_option(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("invalid option {s:?}: use KEY=VALUE, e.g. s3.endpoint=http://127.0.0.1:9000")),
    }
}

/// Concurrent requests to a remote service; enough to keep a long fat
/// pipe busy with packs, few enough not to trip rate limits.
const REMOTE_CONCURRENCY: usize = 16;

/// Bytes a staged file gathers before writing them out.
const STAGED_CHUNK: usize = 1 << 20;

/// A file being written under a staging name ([`Backend::stage`]). Dropped
/// without [`StagedFile::commit`], it is removed: no partial file is ever
/// visible under a repository name.
pub struct StagedFile {
    backend: Backend,
    /// `None` once committed or aborted.
    writer: Option<opendal::Writer>,
    staging: String,
    len: u64,
    /// Appended bytes not yet written: they are written STAGED_CHUNK at a
    /// time (OpenDAL's local writer writes every `write` call as it comes,
    /// a system call per blob, however its `chunk` option is set).
    pending: Vec<u8>,
    /// Removed by an interrupt while unfinished.
    _in_flight: interrupt::InFlight,
}

impl StagedFile {
    /// Bytes appended so far.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Appends `bytes`.
    pub fn append(&mut self, bytes: Vec<u8>) -> Result<()> {
        if let Some(p) = &self.backend.upload {
            p.wait(bytes.len() as u64);
        }
        self.len += bytes.len() as u64;
        if self.pending.is_empty() && bytes.len() >= STAGED_CHUNK {
            return self.write(bytes);
        }
        self.pending.extend_from_slice(&bytes);
        if self.pending.len() < STAGED_CHUNK {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.pending, Vec::with_capacity(STAGED_CHUNK));
        self.write(full)
    }

    fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        // Present until commit, which takes `self`.
        let w = self.writer.as_mut().unwrap_or_else(|| unreachable!("write after commit"));
        let _writing = interrupt::begin_write(&self.staging)?;
        self.backend.rt.block_on(w.write(bytes)).map_err(|e| BackendError::from_opendal("write", &self.staging, e))
    }

    /// Completes the file and moves it to its name: readers see all of it
    /// or nothing.
    pub fn commit(mut self, kind: FileKind, name: &str) -> Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.write(rest)?;
        }
        let _writing = interrupt::begin_write(&self.staging)?;
        let mut w = self.writer.take().unwrap_or_else(|| unreachable!("commit takes `self`"));
        crash_point();
        let b = &self.backend;
        b.count(1);
        b.count_n(6, self.len);
        if let Err(e) = b.rt.block_on(w.close()) {
            let _ = b.rt.block_on(w.abort());
            let _ = b.rt.block_on(b.op.delete(&self.staging));
            return Err(BackendError::from_opendal("write", &self.staging, e));
        }
        b.count(1);
        let path = kind.path(name);
        if let Err(e) = b.rt.block_on(b.op.rename(&self.staging, &path)) {
            let _ = b.rt.block_on(b.op.delete(&self.staging));
            return Err(BackendError::from_opendal("rename", &path, e));
        }
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let _ = self.backend.rt.block_on(w.abort());
            let _ = self.backend.rt.block_on(self.backend.op.delete(&self.staging));
        }
    }
}

/// Repository storage on an OpenDAL operator, with a private runtime so
/// callers can stay synchronous.
#[derive(Clone)]
pub struct Backend {
    op: Operator,
    rt: Arc<tokio::runtime::Runtime>,
    location: String,
    place: Location,
    upload: Option<Arc<Pacer>>,
    download: Option<Arc<Pacer>>,
    cache_dir: Option<std::path::PathBuf>,
    cache_max_bytes: u64,
    /// Set once the repository id is known ([`Backend::attach_cache`]).
    cache: Arc<std::sync::OnceLock<Cache>>,
    /// Where data packs live when they are kept apart ([`Backend::with_cold`]).
    cold: Option<Arc<Backend>>,
    /// Row of the request counters: 0, or 1 for a cold location.
    tier: usize,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("location", &self.location).finish()
    }
}

fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cairn-io")
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| BackendError::Location("runtime".into(), e.to_string()))
}

/// Request logging for `-vv`: one line per failed or finished request.
#[derive(Debug, Clone, Copy)]
struct StderrLog;

impl opendal::layers::LoggingInterceptor for StderrLog {
    fn log(
        &self,
        info: &opendal::raw::ServiceInfo,
        operation: opendal::raw::Operation,
        context: &[(&str, &str)],
        message: &str,
        err: Option<&opendal::Error>,
    ) {
        if message == "started" {
            return;
        }
        let ctx: Vec<String> = context.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match err {
            Some(e) => eprintln!("cairn: {} {} {} {}: {e}", info.scheme(), operation, ctx.join(" "), message),
            None => eprintln!("cairn: {} {} {} {}", info.scheme(), operation, ctx.join(" "), message),
        }
    }
}

/// Largest buffer [`Backend::read_range_into`] reserves before the bytes arrive.
const RESERVE_MAX: u64 = 128 << 20;

/// A local repository folder must be a folder, and with `must_exist` hold
/// a repository (its config or its keys; one without its config is a
/// damaged repository, for `check` and the repository layer to report).
fn check_local_root(root: &str, must_exist: bool) -> Result<()> {
    let path = std::path::Path::new(root);
    let denied = || {
        BackendError::Location(
            root.into(),
            "permission denied (the repository belongs to another user: run as its owner, or fix its owner and mode)"
                .into(),
        )
    };
    let holds = |p: std::path::PathBuf| match p.try_exists() {
        Ok(there) => Ok(there),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(denied()),
        Err(e) => Err(BackendError::Location(root.into(), e.to_string())),
    };
    match path.metadata() {
        Ok(md) if !md.is_dir() => {
            Err(BackendError::Location(root.into(), "it is a file, not a folder; give the repository's folder".into()))
        }
        Ok(_) if !must_exist => Ok(()),
        Ok(_) if holds(path.join(FileKind::Config.path("")))? || holds(path.join(FileKind::Key.dir()))? => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(denied()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackendError::Location(root.into(), e.to_string())),
        _ if must_exist => Err(BackendError::NoRepository(root.into())),
        _ => Ok(()),
    }
}

impl Backend {
    /// Opens a location (see [`Location`]) with default options.
    pub fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &Options::default())
    }

    /// Opens a location with options. Remote services get retries with
    /// backoff, timeouts and bounded concurrency (OpenDAL layers).
    pub fn open_with(location: &str, options: &Options) -> Result<Self> {
        let place = Location::parse(location)?;
        if let Location::Local(root) = &place {
            check_local_root(root, options.must_exist)?;
        }
        // `retries` applies to every service; the rest belong to the service.
        let mut retries = 8;
        let mut service = Vec::new();
        for (k, v) in &options.service {
            if k == "retries" {
                retries = v.parse().map_err(|_| {
                    BackendError::Location(location.into(), format!("retries={v}: give a number of retries"))
                })?;
            } else {
                service.push((k.clone(), v.clone()));
            }
        }
        let rt = runtime()?;
        let op = {
            let _g = rt.enter();
            let mut op = place.operator(location, &service)?;
            if let Some(plan) = FaultPlan::from_env() {
                op = op.layer(FaultLayer::new(plan));
            }
            // Every request may be retried (all cairn writes are of whole,
            // content-named files), so the retry layer may sit outermost.
            op = op
                .layer(opendal::layers::TimeoutLayer::new().with_timeout(REQUEST_TIMEOUT).with_io_timeout(IO_TIMEOUT))
                .layer(
                    opendal::layers::RetryLayer::new()
                        .with_jitter()
                        .with_min_delay(std::time::Duration::from_millis(100))
                        .with_max_delay(std::time::Duration::from_secs(10))
                        .with_max_times(retries),
                );
            if place.is_remote() {
                op = op.layer(opendal::layers::ConcurrentLimitLayer::new(REMOTE_CONCURRENCY));
            }
            if options.log_requests {
                op = op.layer(opendal::layers::LoggingLayer::new(StderrLog));
            }
            op
        };
        let location = match &place {
            Location::Local(root) => root.clone(),
            _ => location.to_string(),
        };
        // A local repository is its own cache.
        let cache_dir = options.cache_dir.clone().filter(|_| place.is_remote());
        Ok(Self {
            op,
            rt,
            location,
            place,
            upload: options.limit_upload.map(|r| Arc::new(Pacer::new(r))),
            download: options.limit_download.map(|r| Arc::new(Pacer::new(r))),
            cache_dir,
            cache_max_bytes: if options.cache_max_bytes == 0 {
                DEFAULT_CACHE_MAX_BYTES
            } else {
                options.cache_max_bytes
            },
            cache: Arc::default(),
            cold: None,
            tier: 0,
        })
    }

    /// This storage with data packs in `cold` (another location, or the
    /// same one with a colder storage class) and every other file here, so
    /// commands that need no file content never touch the cold tier.
    pub fn with_cold(mut self, mut cold: Backend) -> Self {
        cold.tier = 1;
        cold.cold = None;
        self.cold = Some(Arc::new(cold));
        self
    }

    /// True if any of the storage is reached over a network.
    pub fn is_remote(&self) -> bool {
        self.place.is_remote() || self.cold.as_ref().is_some_and(|c| c.place.is_remote())
    }

    /// The cold location, if data packs are kept apart.
    pub fn cold(&self) -> Option<&Backend> {
        self.cold.as_deref()
    }

    /// The backend holding files of `kind`, if not this one.
    fn cold_for(&self, kind: FileKind) -> Option<&Backend> {
        self.cold.as_deref().filter(|_| kind == FileKind::DataPack)
    }

    fn count(&self, i: usize) {
        self.count_n(i, 1);
    }

    fn count_n(&self, i: usize, n: u64) {
        REQUESTS[self.tier][i].fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts using the cache folder of repository `repo_id` (hex), if a
    /// cache was asked for. A cache that cannot be opened is skipped.
    pub fn attach_cache(&self, repo_id: &str) {
        if let Some(root) = &self.cache_dir
            && self.cache.get().is_none()
            && let Ok(c) = Cache::open(root, repo_id, self.cache_max_bytes)
        {
            let _ = self.cache.set(c);
        }
    }

    /// The cache, for files of `kind`.
    fn cache_for(&self, kind: FileKind) -> Option<&Cache> {
        self.cache.get().filter(|_| cacheable(kind))
    }

    /// A local folder.
    pub fn local(path: &str) -> Result<Self> {
        Self::open(&format!("fs:{path}"))
    }

    /// An in-memory store (tests).
    pub fn memory() -> Result<Self> {
        Self::open("memory:")
    }

    /// Human-readable location.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Writes a whole file atomically: readers see all of it or nothing.
    pub fn write(&self, kind: FileKind, name: &str, bytes: Vec<u8>) -> Result<()> {
        if let Some(c) = self.cold_for(kind) {
            return c.write(kind, name, bytes);
        }
        crash_point();
        self.count(1);
        self.count_n(6, bytes.len() as u64);
        if let Some(p) = &self.upload {
            p.wait(bytes.len() as u64);
        }
        if let Some(c) = self.cache_for(kind) {
            c.put(kind, name, &bytes);
        }
        let path = kind.path(name);
        let _writing = interrupt::begin_write(&path)?;
        if !self.place.needs_staging() {
            // A local write goes through a temporary file in tmp/ named after it.
            let _in_flight = matches!(self.place, Location::Local(_)).then(|| interrupt::staged(self, &path));
            return self.put(&path, bytes).map_err(|e| BackendError::from_opendal("write", &path, e));
        }
        static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = format!("tmp/{}-{}-{nanos}-{n}", kind.path(name).replace('/', "_"), std::process::id());
        let _in_flight = interrupt::staged(self, &staging);
        self.put(&staging, bytes).map_err(|e| BackendError::from_opendal("write", &staging, e))?;
        self.count(1);
        let moved = self.rt.block_on(self.op.rename(&staging, &path));
        if let Err(e) = moved {
            let _ = self.rt.block_on(self.op.delete(&staging));
            return Err(BackendError::from_opendal("rename", &path, e));
        }
        Ok(())
    }

    /// A file of `kind` to be written piece by piece and given its name
    /// when complete ([`StagedFile::commit`]), where the storage can move
    /// files cheaply: a local folder. `None` elsewhere (object stores, SFTP
    /// and cached kinds): build the file in memory and [`Backend::write`] it.
    /// Backup writes its packs this way, so a pack being built is in the
    /// page cache instead of the process's memory.
    pub fn stage(&self, kind: FileKind) -> Result<Option<StagedFile>> {
        if let Some(c) = self.cold_for(kind) {
            return c.stage(kind);
        }
        if !matches!(self.place, Location::Local(_)) || self.cache_for(kind).is_some() {
            return Ok(None);
        }
        static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = format!("tmp/{}-{}-{n}", kind.dir().trim_end_matches('/'), std::process::id());
        // Appends are gathered into writes of STAGED_CHUNK by `StagedFile`
        // (the writer's `chunk` alone did not gather them): one write per
        // blob cost a hand-over to the I/O threads each (twice the
        // context switches of the whole backup, and 2.1-2.5 s of kernel
        // time instead of 1.1-1.5 s on the scale-1 benchmark); 4 MiB held
        // 5-10 MiB more memory for no gain over 1 MiB.
        let writer = self
            .rt
            .block_on(self.op.writer_with(&staging).chunk(STAGED_CHUNK).into_future())
            .map_err(|e| BackendError::from_opendal("write", &staging, e))?;
        let _in_flight = interrupt::staged(self, &staging);
        Ok(Some(StagedFile {
            backend: self.clone(),
            writer: Some(writer),
            staging,
            len: 0,
            pending: Vec::new(),
            _in_flight,
        }))
    }

    /// One upload; on failure the partial upload is aborted, so a failed
    /// write (a full disk) leaves nothing taking up space.
    fn put(&self, path: &str, bytes: Vec<u8>) -> opendal::Result<()> {
        self.rt.block_on(async {
            let mut w = self.op.writer(path).await?;
            let written = match w.write(bytes).await {
                Ok(()) => w.close().await.map(|_| ()),
                Err(e) => Err(e),
            };
            if written.is_err() {
                let _ = w.abort().await;
            }
            written
        })
    }

    /// Writes a file only if none exists under that name; returns false if one did.
    /// Services without atomic conditional writes get a check, then a write.
    pub fn write_new(&self, kind: FileKind, name: &str, bytes: Vec<u8>) -> Result<bool> {
        if let Some(c) = self.cold_for(kind) {
            return c.write_new(kind, name, bytes);
        }
        if !self.op.info().capability().write_with_if_not_exists || self.place.needs_staging() {
            if self.exists(kind, name)? {
                return Ok(false);
            }
            self.write(kind, name, bytes)?;
            return Ok(true);
        }
        crash_point();
        self.count(1);
        self.count_n(6, bytes.len() as u64);
        if let Some(p) = &self.upload {
            p.wait(bytes.len() as u64);
        }
        let path = kind.path(name);
        let _writing = interrupt::begin_write(&path)?;
        let _in_flight = matches!(self.place, Location::Local(_)).then(|| interrupt::staged(self, &path));
        match self.rt.block_on(self.op.write_with(&path, bytes).if_not_exists(true).into_future()) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConditionNotMatch => Ok(false),
            Err(e) => Err(BackendError::from_opendal("write", &path, e)),
        }
    }

    /// Reads a whole file.
    pub fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        if let Some(c) = self.cold_for(kind) {
            return c.read(kind, name);
        }
        let cache = self.cache_for(kind);
        if let Some(bytes) = cache.and_then(|c| c.get(kind, name)) {
            return Ok(bytes);
        }
        let bytes = self.fetch(kind, name)?;
        if let Some(c) = cache {
            c.put(kind, name, &bytes);
        }
        Ok(bytes)
    }

    /// Reads a whole file from the service.
    fn fetch(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        self.count(0);
        let path = kind.path(name);
        let bytes = self
            .rt
            .block_on(self.op.read(&path))
            .map(|b| b.to_vec())
            .map_err(|e| BackendError::from_opendal("read", &path, e))?;
        self.count_n(5, bytes.len() as u64);
        if let Some(p) = &self.download {
            p.wait(bytes.len() as u64);
        }
        Ok(bytes)
    }

    /// Reads `len` bytes at `offset`.
    /// Cached kinds are fetched whole once (tree packs are small) and then
    /// served from the cache.
    pub fn read_range(&self, kind: FileKind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_range_into(kind, name, offset, len, &mut buf)?;
        Ok(buf)
    }

    /// Like [`Backend::read_range`], into `buf` (its contents replaced): a
    /// reader that keeps one buffer per pack touches warm memory instead of
    /// faulting in fresh pages for every pack it downloads.
    pub fn read_range_into(&self, kind: FileKind, name: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        self.read_range_onto(kind, name, offset, len, buf)
    }

    /// Like [`Backend::read_range_into`], appending to what `buf` holds:
    /// a reader going through a file in windows keeps the unfinished tail
    /// of one window in front of the next.
    pub fn read_range_onto(&self, kind: FileKind, name: &str, offset: u64, len: u64, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(c) = self.cold_for(kind) {
            return c.read_range_onto(kind, name, offset, len, buf);
        }
        if self.cache_for(kind).is_some() {
            let whole = self.read(kind, name)?;
            if let Some(part) =
                usize::try_from(offset).ok().and_then(|o| whole.get(o..o.checked_add(usize::try_from(len).ok()?)?))
            {
                buf.extend_from_slice(part);
                return Ok(());
            }
        }
        self.count(0);
        if let Some(p) = &self.download {
            p.wait(len);
        }
        let path = kind.path(name);
        // Up front, so the copies below do not regrow it; bounded, because
        // `len` may come from a damaged index.
        buf.reserve(usize::try_from(len.min(RESERVE_MAX)).unwrap_or(0));
        // The service's buffers are copied into `buf` as they arrive:
        // one copy, into memory the caller already has.
        let n = self
            .rt
            .block_on(async { self.op.reader(&path).await?.read_into(buf, offset..offset + len).await })
            .map_err(|e| BackendError::from_opendal("read", &path, e))?;
        self.count_n(5, n as u64);
        Ok(())
    }

    /// Reads several `(name, offset, len)` ranges of files of `kind`, all
    /// requests in flight at once: the blobs of a delta chain sit in
    /// different packs, and one wait for all of them instead of one wait
    /// each is what lets a chain read about as fast as one blob (a cold
    /// disk's seek, a remote store's round trip).
    pub fn read_ranges(&self, kind: FileKind, ranges: &[(String, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        if ranges.len() < 2 || self.cold_for(kind).is_some() || self.cache_for(kind).is_some() {
            return ranges
                .iter()
                .map(|(name, offset, len)| {
                    let mut buf = Vec::new();
                    self.read_range_into(kind, name, *offset, *len, &mut buf).map(|()| buf)
                })
                .collect();
        }
        for (_, _, len) in ranges {
            self.count(0);
            if let Some(p) = &self.download {
                p.wait(*len);
            }
        }
        let got = self.rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, (name, offset, len)) in ranges.iter().enumerate() {
                let (op, path, range) = (self.op.clone(), kind.path(name), *offset..offset + len);
                let mut buf = Vec::with_capacity(usize::try_from((*len).min(RESERVE_MAX)).unwrap_or(0));
                set.spawn(async move {
                    let read = async { op.reader(&path).await?.read_into(&mut buf, range).await };
                    let res = read.await.map_err(|e| BackendError::from_opendal("read", &path, e));
                    (i, res.map(|_| buf))
                });
            }
            let mut out: Vec<Option<Vec<u8>>> = vec![None; ranges.len()];
            while let Some(done) = set.join_next().await {
                // A read task cannot panic but for a bug; say which reads it was among.
                let (i, res) = done.map_err(|e| {
                    let e = opendal::Error::new(ErrorKind::Unexpected, e.to_string());
                    BackendError::from_opendal("read", &kind.path(&ranges[0].0), e)
                })?;
                out[i] = Some(res?);
            }
            Ok::<_, BackendError>(out)
        })?;
        let bufs: Vec<Vec<u8>> = got.into_iter().map(Option::unwrap_or_default).collect();
        self.count_n(5, bufs.iter().map(|b| b.len() as u64).sum());
        Ok(bufs)
    }

    /// Size of a file in bytes.
    pub fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        if let Some(c) = self.cold_for(kind) {
            return c.size(kind, name);
        }
        self.count(2);
        let path = kind.path(name);
        self.rt
            .block_on(self.op.stat(&path))
            .map(|m| m.content_length())
            .map_err(|e| BackendError::from_opendal("stat", &path, e))
    }

    /// Whether a file exists.
    pub fn exists(&self, kind: FileKind, name: &str) -> Result<bool> {
        match self.size(kind, name) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a file; deleting an absent file is not an error.
    pub fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        if let Some(c) = self.cold_for(kind) {
            return c.delete(kind, name);
        }
        if let Some(c) = self.cache_for(kind) {
            c.remove(kind, name);
        }
        crash_point();
        self.count(4);
        let path = kind.path(name);
        self.rt.block_on(self.op.delete(&path)).map_err(|e| BackendError::from_opendal("delete", &path, e))
    }

    /// Files under `tmp/` (staging of writes in progress, or left by a
    /// process killed mid-write) last modified before `before`: their
    /// paths and sizes, here and in a cold location.
    pub fn staging_leftovers(&self, before: std::time::SystemTime) -> Result<Vec<(String, u64)>> {
        let mut out = match &self.cold {
            Some(c) => c.staging_leftovers(before)?,
            None => Vec::new(),
        };
        if !self.op.info().capability().create_dir {
            // Object stores stage nothing.
            return Ok(out);
        }
        self.count(3);
        let entries = match self.rt.block_on(self.op.list("tmp/")) {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(BackendError::from_opendal("list", "tmp/", e)),
        };
        for e in entries.iter().filter(|e| e.metadata().is_file()) {
            self.count(2);
            let meta = match self.rt.block_on(self.op.stat(e.path())) {
                Ok(m) => m,
                // Renamed into place meanwhile.
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(BackendError::from_opendal("stat", e.path(), err)),
            };
            let modified = meta.last_modified().map(std::time::SystemTime::from);
            if modified.is_some_and(|m| m < before) {
                out.push((e.path().to_string(), meta.content_length()));
            }
        }
        Ok(out)
    }

    /// Deletes a staging file found by [`Backend::staging_leftovers`].
    pub fn delete_staging(&self, path: &str) -> Result<()> {
        if !path.starts_with("tmp/") || path.contains("..") {
            return Err(BackendError::Location(path.into(), "not a staging file".into()));
        }
        let holder = match &self.cold {
            Some(c) if c.rt.block_on(c.op.exists(path)).unwrap_or(false) => c.as_ref(),
            _ => self,
        };
        holder.count(4);
        holder.rt.block_on(holder.op.delete(path)).map_err(|e| BackendError::from_opendal("delete", path, e))
    }

    /// Names and sizes of all files of a kind, sorted by name.
    pub fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        if let Some(c) = self.cold_for(kind) {
            return c.list(kind);
        }
        let dir = kind.dir();
        if dir.is_empty() {
            return Ok(match self.size(kind, "") {
                Ok(n) => vec![("config".into(), n)],
                Err(e) if e.is_not_found() => vec![],
                Err(e) => return Err(e),
            });
        }
        self.count(3);
        let entries = match self.rt.block_on(self.op.list_with(dir).recursive(true).into_future()) {
            Ok(v) => v,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(BackendError::from_opendal("list", dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            if e.metadata().is_dir() {
                continue;
            }
            let name = e.name().to_string();
            // Staging files of interrupted writes never carry a valid id name.
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let mut size = e.metadata().content_length();
            if size == 0 {
                size = self.size(kind, &name)?;
            }
            out.push((name, size));
        }
        out.sort();
        if let Some(c) = self.cache_for(kind) {
            c.retain(kind, &out.iter().map(|(n, _)| n.as_str()).collect());
        }
        Ok(out)
    }

    /// Creates the folder layout of a new repository (a no-op on object stores).
    pub fn create_layout(&self) -> Result<()> {
        if let Some(c) = &self.cold {
            c.create_layout()?;
        }
        if !self.op.info().capability().create_dir || matches!(self.place, Location::S3 { .. }) {
            return Ok(());
        }
        let kinds = [FileKind::Key, FileKind::Snapshot, FileKind::Index, FileKind::DataPack, FileKind::TreePack];
        let staging = self.place.needs_staging().then_some("tmp/");
        for dir in kinds.iter().map(|k| k.dir()).chain(staging) {
            self.rt.block_on(self.op.create_dir(dir)).map_err(|e| BackendError::from_opendal("create", dir, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conformance(b: &Backend) {
        let id = "ab".repeat(32);
        b.create_layout().unwrap();
        assert!(!b.exists(FileKind::DataPack, &id).unwrap());
        assert!(b.read(FileKind::DataPack, &id).unwrap_err().is_not_found());
        b.write(FileKind::DataPack, &id, b"0123456789".to_vec()).unwrap();
        assert_eq!(b.read_range(FileKind::DataPack, &id, 2, 3).unwrap(), b"234");
        assert_eq!(b.size(FileKind::DataPack, &id).unwrap(), 10);
        assert_eq!(b.list(FileKind::DataPack).unwrap(), vec![(id.clone(), 10)]);
        assert!(b.list(FileKind::TreePack).unwrap().is_empty());
        assert!(b.write_new(FileKind::Config, "", b"c".to_vec()).unwrap());
        assert!(!b.write_new(FileKind::Config, "", b"d".to_vec()).unwrap());
        assert_eq!(b.read(FileKind::Config, "").unwrap(), b"c");
        b.delete(FileKind::DataPack, &id).unwrap();
        b.delete(FileKind::DataPack, &id).unwrap();
        assert!(b.list(FileKind::DataPack).unwrap().is_empty());
    }

    #[test]
    fn data_packs_go_to_the_cold_tier_and_nothing_else_does() {
        let (hot, cold) = (Backend::memory().unwrap(), Backend::memory().unwrap());
        let split = hot.clone().with_cold(cold.clone());
        let (data, tree) = ("ab".repeat(32), "cd".repeat(32));
        split.write(FileKind::DataPack, &data, b"data".to_vec()).unwrap();
        split.write(FileKind::TreePack, &tree, b"tree".to_vec()).unwrap();
        assert_eq!(cold.list(FileKind::DataPack).unwrap(), vec![(data.clone(), 4)]);
        assert!(hot.list(FileKind::DataPack).unwrap().is_empty());
        assert_eq!(hot.list(FileKind::TreePack).unwrap(), vec![(tree.clone(), 4)]);
        assert!(cold.list(FileKind::TreePack).unwrap().is_empty());
        assert_eq!(split.read_range(FileKind::DataPack, &data, 1, 2).unwrap(), b"at");
        split.delete(FileKind::DataPack, &data).unwrap();
        assert!(cold.list(FileKind::DataPack).unwrap().is_empty());
    }

    #[test]
    fn memory_conformance() {
        conformance(&Backend::memory().unwrap());
    }

    #[test]
    fn local_conformance_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(dir.path().to_str().unwrap()).unwrap();
        conformance(&b);
        b.write(FileKind::TreePack, &"cd".repeat(32), vec![1]).unwrap();
        assert!(dir.path().join("tree/cd").join("cd".repeat(32)).exists());
    }

    fn files_in(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |d| d.count())
    }

    #[test]
    fn a_staged_file_appears_whole_on_commit_and_vanishes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backend::open(dir.path().to_str().unwrap()).unwrap();
        b.create_layout().unwrap();
        let name = "ef".repeat(32);
        let mut f = b.stage(FileKind::DataPack).unwrap().expect("a local folder stages");
        let mut expected = Vec::new();
        for i in 0..40u8 {
            let piece = vec![i; 100_000];
            expected.extend_from_slice(&piece);
            f.append(piece).unwrap();
        }
        assert_eq!(f.size(), 4_000_000);
        assert!(!b.exists(FileKind::DataPack, &name).unwrap(), "nothing visible before commit");
        f.commit(FileKind::DataPack, &name).unwrap();
        assert_eq!(b.read(FileKind::DataPack, &name).unwrap(), expected);
        assert_eq!(files_in(&dir.path().join("tmp")), 0, "staging cleared");

        let mut f = b.stage(FileKind::DataPack).unwrap().expect("stages");
        f.append(vec![7; 3_000_000]).unwrap();
        drop(f);
        assert_eq!(files_in(&dir.path().join("tmp")), 0, "an abandoned staged file is removed");
        assert_eq!(b.list(FileKind::DataPack).unwrap().len(), 1);

        assert!(Backend::memory().unwrap().stage(FileKind::DataPack).unwrap().is_none(), "only local folders stage");
    }
}
