//! Commands this process runs (a stream's dump command, a job's hooks, a
//! database client loading a dump), each in a process group of its own so
//! that stopping it stops what it started too. An interrupt of cairn stops
//! them all ([`stop_all`], from the binary's signal thread): without it a
//! `pg_dump` went on holding its transaction open after cairn was gone, and
//! a `psql --single-transaction` whose input ended early could commit half
//! a restore.

use std::process::Child;
use std::sync::Mutex;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The process groups running now.
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// A command running in its own process group (spawned with
/// `process_group(0)`), known to [`stop_all`] until this is dropped.
#[derive(Debug)]
pub struct Tracked {
    group: i32,
}

impl Tracked {
    /// Starts tracking `child`, which leads its own process group.
    pub fn new(child: &Child) -> Tracked {
        let group = child.id() as i32;
        GROUPS.lock().unwrap_or_else(|p| p.into_inner()).push(group);
        Tracked { group }
    }

    /// Kills the command and everything it started (a shell's children too).
    pub fn kill(&self) {
        let _ = killpg(Pid::from_raw(self.group), Signal::SIGKILL);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        GROUPS.lock().unwrap_or_else(|p| p.into_inner()).retain(|g| *g != self.group);
    }
}

/// Asks every tracked command running now to stop (SIGTERM to its group,
/// so a dump ends its transaction cleanly); returns how many there were.
/// What starts later runs: an interrupted job's finally hooks.
pub fn stop_all() -> usize {
    let groups = GROUPS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
    }
    groups.len()
}
