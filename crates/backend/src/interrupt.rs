//! What this process has unfinished in repositories (staged packs, files
//! being written, its run marker), so that an interrupt (SIGINT, SIGTERM)
//! removes them before the process exits. Each piece of work registers
//! itself while it is in flight and is forgotten when it completes or is
//! dropped; [`remove_all`] is called once, by the binary's signal thread.
//! It first closes the gate every write passes ([`begin_write`]) and waits
//! for the writes under way, so nothing it removes is written again behind
//! it (a run marker finishing its write as it was deleted, say).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{Backend, BackendError};

/// Writes under way.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Set once the process is being interrupted: no write starts after it.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The longest [`remove_all`] waits for writes under way.
const DRAIN: Duration = Duration::from_secs(10);

/// A write under way; the gate waits for it.
pub(crate) struct Writing(());

impl Drop for Writing {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the process is being interrupted: an error met now is a
/// consequence of that, for the signal thread to report, not the caller.
pub fn interrupted() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// Lets a write start, unless the process is being interrupted.
pub(crate) fn begin_write(path: &str) -> Result<Writing, BackendError> {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let writing = Writing(());
    if CLOSED.load(Ordering::SeqCst) {
        return Err(BackendError::Interrupted(path.to_string()));
    }
    Ok(writing)
}

/// What to remove.
enum Leftover {
    /// One file, by its repository path (a run marker).
    File(String),
    /// Every file in `tmp/` whose name starts with this (a staged file and
    /// the temporary file the storage service writes it through).
    Staged(String),
}

struct Registry {
    entries: Vec<(u64, Backend, Leftover)>,
    /// Set by [`remove_all`]: what registers later is removed at once.
    closed: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { entries: Vec::new(), closed: false });
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A registration; dropping it forgets the file (it was completed or removed).
#[must_use = "the registration ends when this is dropped"]
pub struct InFlight(u64);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        r.entries.retain(|(id, _, _)| *id != self.0);
    }
}

fn register(backend: &Backend, what: Leftover) -> InFlight {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    if r.closed {
        drop(r);
        remove(backend, &what);
    } else {
        r.entries.push((id, backend.clone(), what));
    }
    InFlight(id)
}

/// Registers one repository file to remove on interrupt.
pub fn file(backend: &Backend, path: &str) -> InFlight {
    register(backend, Leftover::File(path.to_string()))
}

/// Registers the staging files in `tmp/` named `tmp/<name>...`.
pub fn staged(backend: &Backend, staging: &str) -> InFlight {
    let name = staging.rsplit('/').next().unwrap_or(staging);
    register(backend, Leftover::Staged(name.to_string()))
}

fn remove(backend: &Backend, what: &Leftover) {
    let rt = &backend.rt;
    match what {
        Leftover::File(path) => {
            let _ = rt.block_on(backend.op.delete(path));
        }
        Leftover::Staged(prefix) => {
            let Ok(entries) = rt.block_on(backend.op.list("tmp/")) else { return };
            for e in entries {
                if e.name().starts_with(prefix.as_str()) {
                    let _ = rt.block_on(backend.op.delete(e.path()));
                }
            }
        }
    }
}

/// Removes everything registered, and from now on removes what registers.
/// Returns how many leftovers were removed.
pub fn remove_all() -> usize {
    CLOSED.store(true, Ordering::SeqCst);
    let start = Instant::now();
    while ACTIVE.load(Ordering::SeqCst) > 0 && start.elapsed() < DRAIN {
        std::thread::sleep(Duration::from_millis(5));
    }
    let entries = {
        let mut r = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        r.closed = true;
        std::mem::take(&mut r.entries)
    };
    for (_, backend, what) in &entries {
        remove(backend, what);
    }
    entries.len()
}
