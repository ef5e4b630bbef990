//! Reading ahead of the walker: directory listings and inodes of the
//! sources loaded into the kernel's caches by a few threads at once, so the
//! walker, which visits one entry after another, finds them in memory
//! instead of waiting for each from the disk in turn. On 100,000 small
//! files with an emptied page cache, the walk waited on one inode read
//! after another (CPU 0.79 s of 0.81 s wall, one core).
//!
//! Nothing here decides what is backed up: it only reads what the walker
//! will read (same excludes, never crossing into another file system), and
//! stops when the walk is done.
//!
//! The threads run at the lowest priority (nice 19). From the page cache
//! there is nothing to warm and they only repeat the walk's calls, on the
//! cores the walk and the tree builder need: a no-change backup of those
//! 100,000 files took 0.61-0.63 s with them at normal priority, 0.52-0.53
//! without them and 0.51-0.53 at nice 19; from an emptied cache 1.39-1.42 s
//! without them, 0.86-0.92 at normal priority and 0.83-0.88 at nice 19 (they
//! wait on the disk, not for a core). docs/BENCHMARKS.md has the runs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exclude::Excludes;

/// Threads reading ahead: enough requests in flight for a disk's queue;
/// each spends its time waiting, not computing.
const THREADS: usize = 4;

/// Reads the metadata below `paths` until done or `stop` is set.
pub fn warm(paths: &[PathBuf], excludes: &Excludes, stop: &AtomicBool) {
    let Ok(pool) = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .thread_name(|i| format!("warm-{i}"))
        .start_handler(|_| lowest_priority())
        .build()
    else {
        return;
    };
    pool.scope(|s| {
        for p in paths {
            if let Ok(md) = p.metadata()
                && md.is_dir()
            {
                s.spawn(move |s| visit(s, p.clone(), md.dev(), excludes, stop));
            }
        }
    });
}

fn visit<'s>(s: &rayon::Scope<'s>, dir: PathBuf, dev: u64, excludes: &'s Excludes, stop: &'s AtomicBool) {
    if stop.load(Ordering::Relaxed) {
        return;
    }
    let Ok(listing) = std::fs::read_dir(&dir) else { return };
    for entry in listing.flatten() {
        // The inode: what the walker's stat would wait for.
        let Ok(md) = entry.metadata() else { continue };
        if md.is_dir() && md.dev() == dev {
            let path = entry.path();
            if !excludes.is_excluded(Path::new(&path)) {
                s.spawn(move |s| visit(s, path, dev, excludes, stop));
            }
        }
    }
}

/// Gives the calling thread the lowest priority (Linux keeps a nice value
/// per thread). Only lowers it, which needs no privilege; a failure leaves
/// the thread as it was.
fn lowest_priority() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority reads nothing from memory; `tid` is this thread.
    unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t, 19) };
}
