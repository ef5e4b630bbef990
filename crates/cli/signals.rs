//! SIGINT and SIGTERM for the commands that do something on the first one
//! and end on the second (`daemon`, `job run`); every other command ends on
//! the first (main.rs). Blocked before any thread starts, so that every
//! thread inherits the mask and only the waiting thread sees them.

use anyhow::Result;
use nix::sys::signal::{SigSet, Signal};

/// Stops what this process runs: the commands it started (dumps, hooks,
/// database clients) and its unfinished writes, which are removed from the
/// repositories; later writes fail. Returns the files removed.
pub fn stop_work() -> usize {
    cairn_backup::children::stop_all();
    cairn_backend::interrupt::remove_all()
}

/// Calls `on_first` with the first signal; on the second, stops the work
/// and ends the process as a shell reports the signal (130, 143).
pub fn watch(command: &'static str, on_first: impl FnOnce(Signal) + Send + 'static) -> Result<()> {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        let mut on_first = Some(on_first);
        while let Ok(s) = signals.wait() {
            if let Some(f) = on_first.take() {
                f(s);
                continue;
            }
            let removed = stop_work();
            eprintln!(
                "cairn: {command} stopped by a second {s}; the repository is intact ({removed} unfinished file(s) removed)"
            );
            std::process::exit(128 + s as i32);
        }
    })?;
    Ok(())
}
