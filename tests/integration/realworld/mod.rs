//! Issue 15: the paths real users take. Each test is named after the case it
//! proves (docs/RELIABILITY.md, "Real-world paths") and failed on the code
//! before its fix. This file holds the helpers; the cases are grouped by
//! what they exercise.

mod backup;
mod cli;
mod repository;
mod restore;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cairn_test;
use crate::util::{Env, assert_same_tree, random_bytes, succeeded};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Paths listed by `ls --json` of the newest snapshot.
fn listed(env: &Env) -> Vec<String> {
    let out = env.ok(&["--json", "ls", "latest"]);
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["path"].as_str().map(str::to_string))
        .collect()
}

/// Copies the binary and the shared libraries it loads into `root`, so it
/// runs chrooted there.
fn install_binary(root: &Path) -> String {
    let bin = env!("CARGO_BIN_EXE_cairn");
    std::fs::copy(bin, root.join("cairn")).unwrap();
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let lib = line.split_whitespace().find(|w| w.starts_with('/'));
        if let Some(lib) = lib {
            let to = root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(lib, &to).unwrap();
        }
    }
    "/cairn".into()
}

/// Modes of every file and folder below `dir` that anyone but the owner may use.
fn shared_modes(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = d.symlink_metadata().unwrap();
        if md.mode() & 0o077 != 0 {
            out.push(format!("{} {:o}", d.display(), md.mode() & 0o7777));
        }
        if md.is_dir() {
            stack.extend(std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// Backs up `src` and returns the new snapshot's short id.
fn backup_id(env: &Env, src: &Path) -> String {
    let b = env.json(&["backup", src.to_str().unwrap()]);
    b["snapshot_id"].as_str().unwrap()[..8].to_string()
}

/// Restores `id:src` into `target`; returns the run's output.
fn restore_into(env: &Env, id: &str, src: &Path, target: &Path, extra: &[&str]) -> std::process::Output {
    let spec = format!("{id}:{}", src.display());
    let mut args = vec!["restore", &spec, "--target", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// Everything below `dir` with its mode, to see that nothing changed there.
fn snapshot_of(dir: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = d.symlink_metadata().unwrap();
        out.push((d.display().to_string(), md.mode()));
        if md.is_dir() {
            stack.extend(std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

/// Files left in a repository folder (`tmp`, `running`).
fn left_in(env: &Env, folder: &str) -> Vec<PathBuf> {
    crate::util::files_under(&env.repo.join(folder))
}

/// Runs cairn with `args`, sends `signal` once `started` holds, and returns
/// the output.
fn interrupted(
    env: &Env,
    args: &[&str],
    signal: nix::sys::signal::Signal,
    started: impl Fn() -> bool,
) -> std::process::Output {
    let mut child = env.cmd().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started() {
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("{args:?} did not get going: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    child.wait_with_output().unwrap()
}

/// Flips one byte inside the first blob of every data pack.
fn damage_every_data_pack(env: &Env) {
    for p in env.repo_files("data") {
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[100] ^= 0x55;
        std::fs::write(&p, bytes).unwrap();
    }
}

/// Creates `depth` nested folders named `name` below `root` (through open
/// descriptors: the path outgrows PATH_MAX) and a file `leaf` at the bottom.
fn deep_tree(root: &Path, name: &str, depth: usize, leaf: &[u8]) {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let mut dir = open(root, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap();
    for _ in 0..depth {
        mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).unwrap();
        dir = openat(&dir, name, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap();
    }
    let f = openat(&dir, "leaf", OFlag::O_CREAT | OFlag::O_WRONLY, Mode::from_bits_truncate(0o644)).unwrap();
    nix::unistd::write(&f, leaf).unwrap();
}

/// The content of `leaf` at the bottom of a [`deep_tree`].
fn deep_leaf(root: &Path, name: &str, depth: usize) -> Vec<u8> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::Mode;
    let mut dir = open(root, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap();
    for _ in 0..depth {
        dir = openat(&dir, name, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap();
    }
    let f = openat(&dir, "leaf", OFlag::O_RDONLY, Mode::empty()).unwrap();
    let mut out = Vec::new();
    use std::io::Read;
    std::fs::File::from(f).read_to_end(&mut out).unwrap();
    out
}

/// The test repository, opened through the engine crates, to write what
/// no backup would.
fn open_by_hand(env: &Env) -> cairn_repo::IndexedRepository {
    let backend = cairn_backend::Backend::local(env.repo.to_str().unwrap()).unwrap();
    cairn_repo::Repository::open(backend, b"correct horse").unwrap().load_index().unwrap()
}

/// A tree entry for [`save_by_hand`].
fn hand_node(
    name: &str,
    kind: cairn_format::tree::NodeKind,
    subtree: Option<cairn_format::BlobId>,
    content: Vec<cairn_format::BlobId>,
    size: u64,
) -> cairn_format::tree::Node {
    use cairn_format::tree::{Bytes, Node, NodeKind, Time};
    Node {
        name: Bytes(name.as_bytes().to_vec()),
        kind,
        mode: if kind == NodeKind::Dir { 0o40755 } else { 0o100644 },
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: Time(1_700_000_000, 0),
        ctime: Time(1_700_000_000, 0),
        size,
        inode: 1,
        device: 1,
        links: 1,
        rdev: 0,
        content,
        subtree,
        target: None,
        xattrs: vec![],
    }
}

/// Stores `blobs` in packs of their kind, an index of them, and a snapshot
/// whose tree is `root`.
fn save_by_hand(
    repo: &cairn_repo::IndexedRepository,
    blobs: &[(cairn_format::BlobKind, Vec<u8>)],
    root: cairn_format::BlobId,
) {
    use cairn_format::BlobKind;
    let mut packs = Vec::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let mut writer = repo.repo().pack_writer(kind);
        for (_, plain) in blobs.iter().filter(|(k, _)| *k == kind) {
            let id = repo.repo().blob_id(plain);
            writer.add(repo.seal_blob(kind, id, plain).unwrap()).unwrap();
        }
        if let Some(pack) = writer.finish().unwrap() {
            packs.push(repo.repo().save_pack(pack).unwrap().0);
        }
    }
    repo.repo().save_index(&cairn_format::index::IndexFile { supersedes: vec![], packs }).unwrap();
    let snap = cairn_format::snapshot::Snapshot {
        version: cairn_format::FORMAT_VERSION,
        time: jiff::Timestamp::now(),
        tree: root,
        paths: vec!["/by-hand".into()],
        hostname: "h".into(),
        username: "u".into(),
        uid: 0,
        gid: 0,
        tags: vec![],
        parent: None,
        excludes: vec![],
        program_version: "test".into(),
        summary: None,
        protected: false,
        original: None,
        repaired: vec![],
    };
    repo.repo().save_snapshot(&snap).unwrap();
}
