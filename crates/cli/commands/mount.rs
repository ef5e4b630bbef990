//! `cairn mount`: the snapshots as a read-only file system until unmounted
//! (`umount`, `fusermount3 -u`), Ctrl-C or SIGTERM; each ends with the
//! folder unmounted and exit code 0.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cairn_mount::MountOptions;
use cairn_view::{View, ViewOptions};
use nix::sys::signal::{SigSet, Signal};

use crate::cli::{Global, MountArgs};

pub fn run(g: &Global, a: &MountArgs) -> Result<i32> {
    // Blocked before any thread starts, so that every thread (the key
    // derivation's, the file system's) leaves the signals to the one below.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    // The usual mistakes are reported before the password is asked for.
    cairn_mount::check_mountpoint(&a.mountpoint)?;
    let options = ViewOptions {
        filter: super::filter(&a.filter)?,
        cache_bytes: a.cache_size << 20,
        refresh: Duration::from_secs(2),
    };
    let view = Arc::new(View::open(super::open(g)?, options)?);
    let mut mounted =
        cairn_mount::mount(view, &a.mountpoint, &MountOptions { allow_other: a.allow_other, ..Default::default() })?;
    let shown = a.mountpoint.display();
    eprintln!("cairn: snapshots mounted at {shown}; press Ctrl-C or run `umount {shown}` to end");
    let (tx, caught) = crossbeam_channel::bounded(1);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        while let Ok(s) = signals.wait() {
            if tx.send(s).is_err() {
                return;
            }
        }
    })?;
    loop {
        crossbeam_channel::select! {
            recv(caught) -> signal => {
                if let Ok(s) = signal {
                    eprintln!("cairn: {s}: unmounting {shown}");
                }
                match unmount_soon(&mut mounted) {
                    Ok(()) => {
                        // The session ends once the kernel has let go.
                        let _ = mounted.ended.recv_timeout(Duration::from_secs(10));
                        break;
                    }
                    // Still served: leaving now would strand the mount.
                    Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => eprintln!(
                        "cairn: cannot unmount {shown}: it is in use (a shell or program has something open there); \
                         close that, then press Ctrl-C again or run `umount {shown}`"
                    ),
                    Err(e) => return Err(e.into()),
                }
            }
            recv(mounted.ended) -> ended => {
                if let Ok(Err(e)) = ended {
                    anyhow::bail!("mount at {shown} ended with an error: {e}");
                }
                break;
            }
        }
    }
    eprintln!("cairn: unmounted {shown}");
    Ok(0)
}

/// How long a mount found busy is tried again before the user is told:
/// a program that has just closed its last file there, or a walker passing
/// through, lets go within moments.
const BUSY_GRACE: Duration = Duration::from_secs(3);

/// Unmounts, trying again for [`BUSY_GRACE`] while the mount is in use.
fn unmount_soon(mounted: &mut cairn_mount::Mounted) -> std::io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match mounted.unmount() {
            Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy && start.elapsed() < BUSY_GRACE => {
                std::thread::sleep(Duration::from_millis(100));
            }
            done => return done,
        }
    }
}
