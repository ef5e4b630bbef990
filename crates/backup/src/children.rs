//! Commands this process runs (a stream's dump command, a job's hooks, a
//! database client loading a dump). An interrupt of cairn stops them all
//! ([`stop_all`], from the binary's signal thread): without it a `pg_dump`
//! went on holding its transaction open after cairn was gone, and a `psql
//! --single-transaction` whose input ended early could commit half a
//! restore. Unattended (a timer, the daemon, cron) each runs in a process
//! group of its own, so that stopping it stops what it started too; run from
//! a terminal, a command stays in the terminal's foreground group, where
//! it can still ask for a password and Ctrl-C reaches it directly.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Mutex;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// How a command was started, and so how it is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// It leads a process group of its own: signals go to the group.
    Own,
    /// It is in cairn's (the terminal's) group: signals go to it alone.
    Shared,
}

/// The commands running now: pid and grouping.
static RUNNING: Mutex<Vec<(i32, Grouping)>> = Mutex::new(Vec::new());

/// A running command, known to [`stop_all`] until this is dropped.
#[derive(Debug)]
pub struct Tracked {
    pid: i32,
    grouping: Grouping,
}

/// Starts `cmd` as [`Grouping`] says, and tracks it.
pub fn spawn(cmd: &mut Command, grouping: Grouping) -> io::Result<(Child, Tracked)> {
    if grouping == Grouping::Own {
        cmd.process_group(0);
    }
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    RUNNING.lock().unwrap_or_else(|p| p.into_inner()).push((pid, grouping));
    Ok((child, Tracked { pid, grouping }))
}

/// [`Grouping::Shared`] when cairn runs in the foreground of a terminal (a
/// command may ask for a password there, and Ctrl-C reaches it), else
/// [`Grouping::Own`].
pub fn unattended_or_terminal() -> Grouping {
    let stdin = std::io::stdin();
    match nix::unistd::tcgetpgrp(&stdin) {
        Ok(fg) if fg == nix::unistd::getpgrp() => Grouping::Shared,
        _ => Grouping::Own,
    }
}

impl Tracked {
    /// Kills the command (with everything it started, in its own group).
    pub fn kill(&self) {
        signal(self.pid, self.grouping, Signal::SIGKILL);
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(|p| p.into_inner()).retain(|(p, _)| *p != self.pid);
    }
}

fn signal(pid: i32, grouping: Grouping, s: Signal) {
    let _ = match grouping {
        Grouping::Own => killpg(Pid::from_raw(pid), s),
        Grouping::Shared => kill(Pid::from_raw(pid), s),
    };
}

/// Asks every tracked command running now to stop (SIGTERM, so a dump
/// ends its transaction cleanly); returns how many there were.
/// What starts later runs: an interrupted job's finally hooks.
pub fn stop_all() -> usize {
    let running = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (pid, grouping) in &running {
        signal(*pid, *grouping, Signal::SIGTERM);
    }
    running.len()
}
