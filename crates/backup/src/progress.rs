//! How the archiver reports progress and warnings to its caller.

use std::path::Path;

/// Receives progress; every method has a no-op default. Called from worker
/// threads, so implementations must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// Bytes of file content were read.
    fn bytes_read(&self, _n: u64) {}
    /// A file was completed (read or taken from the parent).
    fn file_done(&self, _path: &Path, _size: u64) {}
    /// Bytes of unchanged files taken from the parent without reading.
    fn bytes_skipped(&self, _n: u64) {}
    /// A source could not be read; the backup goes on.
    fn warning(&self, _msg: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
