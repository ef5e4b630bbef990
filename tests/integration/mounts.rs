//! Tests that need their own file systems (tmpfs mounts): a disk that fills
//! up, and --one-file-system. They need root (CI runs as root); elsewhere they
//! say so and return.

use std::path::Path;
use std::process::Command;

use crate::cairn_test;
use crate::util::{Env, random_bytes};

/// A tmpfs mounted for the life of the value.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: cannot mount a tmpfs; this test does not run here");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs at {}", at.display());
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

cairn_test!(backup_to_a_full_disk_fails_cleanly_and_keeps_earlier_snapshots, |env| {
    let small = env.path("small");
    let Some(_fs) = Tmpfs::mount(&small, "4m") else { return };
    let env = Env { dir: tempfile::tempdir().unwrap(), repo: small.join("repo") };
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("first"), random_bytes(500_000, 1)).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("huge"), random_bytes(8 << 20, 2)).unwrap();

    let out = env.run(&["backup", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("free space"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    // The failed write left no partial file behind to keep the disk full.
    let staged: Vec<_> = crate::util::files_under(&env.repo.join("tmp"));
    assert!(staged.is_empty(), "staging files left: {staged:?}");
    // Nothing was lost: one snapshot, still restorable; check sees only leftovers.
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    env.ok(&["check", "--read-data"]);
    let t = env.path("t");
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", t.to_str().unwrap()]);
    assert_eq!(std::fs::read(t.join("first")).unwrap(), random_bytes(500_000, 1));
});

cairn_test!(one_file_system_stops_at_mount_points, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("here"), "x").unwrap();
    let Some(_fs) = Tmpfs::mount(&src.join("mnt"), "1m") else { return };
    std::fs::write(src.join("mnt/elsewhere"), "y").unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap(), "--one-file-system"]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("/here"), "{ls}");
    assert!(ls.contains("/mnt\n"), "the mount point itself is kept: {ls}");
    assert!(!ls.contains("elsewhere"), "{ls}");
    env.ok(&["backup", src.to_str().unwrap()]);
    assert!(env.ok(&["ls", "latest"]).contains("elsewhere"));
});

cairn_test!(restore_to_a_disk_that_fills_fails_clearly_and_writes_nothing_wrong, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a-small"), random_bytes(300_000, 1)).unwrap();
    std::fs::write(src.join("b-big"), random_bytes(8 << 20, 2)).unwrap();
    std::fs::write(src.join("c-small"), random_bytes(200_000, 3)).unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("small");
    let Some(_fs) = Tmpfs::mount(&target, "4m") else { return };

    let out = env.run(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("b-big") && err.contains("No space left on device"), "{err}");
    // What was written is exact; the file that did not fit is not there,
    // not even in part, and no temporary file is left filling the disk.
    for (name, seed, len) in [("a-small", 1, 300_000), ("c-small", 3, 200_000)] {
        if let Ok(got) = std::fs::read(target.join(name)) {
            assert!(got == random_bytes(len, seed), "{name} restored with wrong content");
        }
    }
    assert!(!target.join("b-big").exists(), "a file that did not fit must not be left in part");
    let names: Vec<_> = std::fs::read_dir(&target).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(names.iter().all(|n| !n.to_string_lossy().contains("cairn-restore")), "temporary files left: {names:?}");
    // The repository and the source are untouched.
    assert!(env.ok(&["check", "--read-data"]).contains("no errors"));
    assert_eq!(std::fs::read(src.join("b-big")).unwrap(), random_bytes(8 << 20, 2));
});

cairn_test!(restore_to_a_read_only_target_fails_clearly, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "content").unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("ro");
    let Some(_fs) = Tmpfs::mount(&target, "1m") else { return };
    let ok = Command::new("mount").args(["-o", "remount,ro"]).arg(&target).status().unwrap();
    assert!(ok.success());

    let out = env.run(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(err.lines().count() <= 2, "a clear error, not a flood: {err}");
    assert!(std::fs::read_dir(&target).unwrap().next().is_none());
});
