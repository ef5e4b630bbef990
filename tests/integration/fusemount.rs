//! `cairn mount` on a real FUSE mount: the mounted snapshot equals its
//! source, many readers at once, new snapshots appear, every way of ending
//! unmounts, the mount point's mistakes and a missing /dev/fuse are
//! one-line errors, and a damaged blob fails only its own file. Mounting
//! needs root and /dev/fuse (CI has both); elsewhere each test says so and
//! returns.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cairn_test;
use crate::servers::Server;
use crate::util::{Env, assert_same_tree, files_under, random_bytes};

fn can_mount() -> bool {
    let ok = nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists();
    if !ok {
        eprintln!("not root or no /dev/fuse: cannot mount FUSE; this test does not run here");
    }
    ok
}

/// Whether something is mounted at `at` (from /proc/self/mounts).
fn mounted(at: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let at = at.to_string_lossy().replace(' ', "\\040");
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(at.as_str()))
}

/// Waits up to 20 s for `what` to hold.
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `cairn mount`, ended with SIGTERM (and a lazy unmount as a
/// last resort) when dropped.
struct Mount {
    child: Option<Child>,
    at: PathBuf,
    stderr: PathBuf,
}

impl Mount {
    fn start(env: &Env, at: &Path, extra: &[&str]) -> Mount {
        Mount::start_with(env, env.cmd(), at, extra)
    }

    /// Mounts with `cmd` (a cairn command with its repository set).
    fn start_with(env: &Env, mut cmd: Command, at: &Path, extra: &[&str]) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let stderr = env.path(&format!("mount-{}.log", at.file_name().unwrap().to_string_lossy()));
        let child = cmd
            .arg("mount")
            .arg(at)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start cairn mount");
        let mut m = Mount { child: Some(child), at: at.to_path_buf(), stderr };
        wait_for("the mount", || {
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("cairn mount ended early ({status}): {}", m.log());
            }
            mounted(at) && at.join("snapshots").exists()
        });
        m
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` and returns the exit code once the process ended.
    fn end_with(&mut self, signal: nix::sys::signal::Signal) -> Option<i32> {
        let mut child = self.child.take()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let code = wait_exit(&mut child);
        Some(code.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("cairn mount did not end within 20 s of {signal}; it said: {}", self.log())
        }))
    }
}

/// The exit code once `child` ended, or None if it has not within 20 s.
fn wait_exit(child: &mut Child) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s.code().unwrap_or(-1));
        }
        if start.elapsed() > Duration::from_secs(20) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.end_with(nix::sys::signal::Signal::SIGTERM);
        if mounted(&self.at) {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

/// A source tree with what a mount must show: content in several chunks,
/// an empty file, a symlink, a hard-link pair, a user xattr, a fifo, odd
/// modes and names.
pub fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("big"), random_bytes(3 << 20, 1)).unwrap();
    std::fs::write(src.join("sub/medium"), random_bytes(200_000, 2)).unwrap();
    std::fs::write(src.join("sub/deeper/empty"), b"").unwrap();
    std::fs::write(src.join("name with spaces and ünïcode"), b"x").unwrap();
    std::os::unix::fs::symlink("sub/medium", src.join("link")).unwrap();
    std::fs::hard_link(src.join("sub/medium"), src.join("hard")).unwrap();
    let secret = src.join("sub/secret");
    std::fs::write(&secret, b"s").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let _ = xattr::set(src.join("big"), "user.origin", b"camera 7");
    nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    src
}

/// Where the source lies in a mounted snapshot folder.
fn inside(snapshot: &Path, src: &Path) -> PathBuf {
    snapshot.join(src.strip_prefix("/").unwrap())
}

cairn_test!(a_mounted_snapshot_equals_its_source, |env| {
    if !can_mount() {
        return;
    }
    env.init();
    let src = source(&env);
    env.ok(&["backup", "--tag", "daily", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let m = Mount::start(&env, &mnt, &[]);
    let id = env.json(&["snapshots"])[0]["id"].as_str().unwrap().to_string();
    let time_name = std::fs::read_link(mnt.join("snapshots/latest")).unwrap();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    // The layout: every way to the snapshot shows the same tree.
    for folder in [
        mnt.join("snapshots/latest"),
        mnt.join("snapshots").join(&time_name),
        mnt.join("ids").join(&id[..8]),
        mnt.join("hosts").join(&host).join("latest"),
        mnt.join("tags/daily/latest"),
    ] {
        assert_same_tree(&src, &inside(&folder, &src));
    }
    let shown = inside(&mnt.join("snapshots/latest"), &src);
    // getfattr, the user's tool, sees the xattr (assert_same_tree used the syscalls).
    if xattr::get(src.join("big"), "user.origin").ok().flatten().is_some() {
        let out = Command::new("getfattr").args(["-n", "user.origin", "--only-values"]).arg(shown.join("big")).output();
        let out = out.expect("getfattr (package attr)");
        assert_eq!(out.stdout, b"camera 7", "{}", String::from_utf8_lossy(&out.stderr));
    }
    let meta = |p: &Path| p.symlink_metadata().unwrap();
    assert_eq!(meta(&shown.join("hard")).nlink(), 2);
    assert_eq!(meta(&shown.join("hard")).ino(), meta(&shown.join("sub/medium")).ino());
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta(&shown.join("fifo")).file_type()));
    assert_eq!(
        (meta(&shown.join("big")).size(), meta(&shown.join("big")).uid()),
        (3 << 20, meta(&src.join("big")).uid())
    );
    // As root, sequential readers get a read-ahead of 4 MiB (the kernel
    // gives FUSE 128 KiB, and a file system may only lower that itself).
    if nix::unistd::geteuid().is_root() {
        let dev = meta(&mnt).dev();
        let setting =
            format!("/sys/class/bdi/{}:{}/read_ahead_kb", nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        assert_eq!(std::fs::read_to_string(&setting).unwrap().trim(), "4096", "{setting}");
    }
    // Read-only.
    let write = std::fs::OpenOptions::new().write(true).open(shown.join("big"));
    assert!(write.is_err(), "a mounted snapshot must not be writable");
    assert!(std::fs::write(shown.join("new"), b"x").is_err());
    drop(m);
    assert!(!mounted(&mnt), "no mount left");
});

cairn_test!(eight_readers_at_once_read_what_was_backed_up, |env| {
    if !can_mount() {
        return;
    }
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(1 << 20 | (i as usize * 4099), i)).unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let _m = Mount::start(&env, &mnt, &["--cache-size", "8"]);
    let shown = inside(&mnt.join("snapshots/latest"), &src);
    std::thread::scope(|s| {
        for i in 0..8u64 {
            let (src, shown) = (src.clone(), shown.clone());
            s.spawn(move || {
                // Every reader goes through all files, starting at its own,
                // in odd-sized pieces.
                for k in 0..8u64 {
                    let name = format!("f{}", (i + k) % 8);
                    let mut f = std::fs::File::open(shown.join(&name)).unwrap();
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; 7919 + i as usize * 1000];
                    loop {
                        let n = f.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got == std::fs::read(src.join(&name)).unwrap(), "reader {i}: {name} differs");
                }
            });
        }
    });
});

cairn_test!(a_snapshot_added_while_mounted_appears_without_remounting, |env| {
    if !can_mount() {
        return;
    }
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("day1"), b"one").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let _m = Mount::start(&env, &mnt, &[]);
    let first = std::fs::read_link(mnt.join("snapshots/latest")).unwrap();
    std::fs::write(src.join("day2"), random_bytes(300_000, 9)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    wait_for("the second snapshot", || std::fs::read_link(mnt.join("snapshots/latest")).is_ok_and(|l| l != first));
    let shown = inside(&mnt.join("snapshots/latest"), &src);
    assert_eq!(std::fs::read(shown.join("day2")).unwrap(), std::fs::read(src.join("day2")).unwrap());
    assert_eq!(std::fs::read_dir(mnt.join("ids")).unwrap().count(), 2);
    assert!(!inside(&mnt.join("snapshots").join(&first), &src).join("day2").exists());
});

cairn_test!(unmount_sigterm_and_ctrl_c_each_end_with_exit_0_and_no_mount_left, |env| {
    if !can_mount() {
        return;
    }
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    for signal in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
        let mut m = Mount::start(&env, &mnt, &[]);
        assert_eq!(m.end_with(signal), Some(0), "{signal}: {}", m.log());
        assert!(!mounted(&mnt), "{signal}: still mounted");
        assert!(m.log().contains("unmounted"), "{}", m.log());
    }
    // Ctrl-C while a program is inside the mount: it says so and keeps
    // serving (leaving would strand a dead mount); once that program is
    // gone, Ctrl-C again ends it cleanly.
    let mut m = Mount::start(&env, &mnt, &[]);
    let mut holder = Command::new("sleep").arg("30").current_dir(&mnt).spawn().unwrap();
    let pid = nix::unistd::Pid::from_raw(m.child.as_ref().unwrap().id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    wait_for("the busy message", || m.log().contains("it is in use"));
    assert!(m.child.as_mut().unwrap().try_wait().unwrap().is_none(), "still running: {}", m.log());
    assert!(mounted(&mnt) && std::fs::read_dir(mnt.join("snapshots")).is_ok(), "still served");
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(m.end_with(nix::sys::signal::Signal::SIGINT), Some(0), "{}", m.log());
    assert!(!mounted(&mnt));
    // umount from outside: the process notices and ends too.
    let mut m = Mount::start(&env, &mnt, &[]);
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    let mut child = m.child.take().unwrap();
    assert_eq!(wait_exit(&mut child), Some(0), "{}", m.log());
    assert!(!mounted(&mnt));
    // The mount point is usable again: nothing was left in it.
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
});

cairn_test!(mount_point_mistakes_are_one_line_errors, |env| {
    env.init();
    let run = |at: &Path| {
        let out = env.cmd().arg("mount").arg(at).env_remove("CAIRN_PASSWORD").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!((out.status.code(), err.lines().count()), (Some(1), 1), "{err}");
        err
    };
    assert!(run(&env.path("missing")).contains("does not exist: create it first"));
    std::fs::create_dir_all(env.path("full")).unwrap();
    std::fs::write(env.path("full/keep"), b"mine").unwrap();
    assert!(run(&env.path("full")).contains("is not empty"));
    assert_eq!(std::fs::read(env.path("full/keep")).unwrap(), b"mine");
    std::fs::write(env.path("file"), b"").unwrap();
    assert!(run(&env.path("file")).contains("is not a folder"));
});

cairn_test!(a_machine_without_dev_fuse_gets_a_one_line_error, |env| {
    if !can_mount() {
        return;
    }
    env.init();
    std::fs::create_dir_all(env.path("mnt")).unwrap();
    // A mount namespace whose /dev is an empty tmpfs: /dev/fuse is missing
    // there, as on a machine or container without FUSE.
    let script =
        format!("mount -t tmpfs none /dev && exec {} mount {}", env!("CARGO_BIN_EXE_cairn"), env.path("mnt").display());
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("CAIRN_REPOSITORY", &env.repo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/dev/fuse is missing") && err.lines().count() == 1, "{err}");
});

cairn_test!(a_user_who_may_not_open_dev_fuse_is_told_so_in_one_line, |env| {
    if !can_mount() {
        return;
    }
    // Only where /dev/fuse is closed to other users (mode 0600 in some
    // containers); on most machines it is 0666 and the user could mount.
    let mode = std::os::unix::fs::PermissionsExt::mode(&Path::new("/dev/fuse").metadata().unwrap().permissions());
    if mode & 0o006 == 0o006 {
        eprintln!("/dev/fuse is open to every user here; this test does not apply");
        return;
    }
    env.init();
    let at = env.path("mnt");
    std::fs::create_dir_all(&at).unwrap();
    std::fs::set_permissions(env.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // Repository files are private to root: make them readable to the user.
    for p in files_under(&env.repo) {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    let mut dirs = vec![env.repo.clone()];
    while let Some(d) = dirs.pop() {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        dirs.extend(std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    let out = env.run_unprivileged(&["--no-cache", "mount", at.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("may not open /dev/fuse"), "{err}");
    assert!(!mounted(&at));
});

cairn_test!(a_damaged_blob_fails_its_own_file_with_eio_and_others_stay_readable, |env| {
    if !can_mount() {
        return;
    }
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("good"), random_bytes(2 << 20, 1)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let before: Vec<PathBuf> = files_under(&env.repo.join("data"));
    std::fs::write(src.join("bad"), random_bytes(2 << 20, 2)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Damage a pack only the second backup wrote: it holds `bad`'s data only.
    let new_pack = files_under(&env.repo.join("data")).into_iter().find(|p| !before.contains(p)).unwrap();
    let mut bytes = std::fs::read(&new_pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&new_pack, bytes).unwrap();
    let mnt = env.path("mnt");
    let m = Mount::start(&env, &mnt, &[]);
    let shown = inside(&mnt.join("snapshots/latest"), &src);
    let err = std::fs::read(shown.join("bad")).expect_err("a damaged file must not read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(std::fs::read(shown.join("good")).unwrap(), std::fs::read(src.join("good")).unwrap());
    wait_for("the log line", || m.log().contains("reading /snapshots/"));
    let log = m.log();
    let line = log.lines().find(|l| l.contains("reading")).unwrap();
    assert!(line.contains("/bad") && line.contains("blob"), "{line}");
});

cairn_test!(a_repository_on_s3_mounts_through_its_metadata_cache, |env| {
    if !can_mount() {
        return;
    }
    let server = Server::s3s_fs(&env.path("s3s"), &["cairn-test"]);
    let t = server.s3_target("s3s-fs", "cairn-test/mounted");
    let run = |args: &[&str]| crate::util::succeeded(&format!("{args:?}"), t.cmd(&env).args(args).output().unwrap());
    run(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1", "--pack-size-mib", "1"]);
    let src = source(&env);
    run(&["backup", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let _m = Mount::start_with(&env, t.cmd(&env), &mnt, &[]);
    assert_same_tree(&src, &inside(&mnt.join("snapshots/latest"), &src));
    // Trees and index came through the local cache of the repository's metadata.
    assert!(files_under(&env.path("cache")).iter().any(|p| p.to_string_lossy().contains("tree")), "no cached trees");
});

cairn_test!(sigterm_while_a_program_is_just_leaving_the_mount_still_ends_it, |env| {
    if !can_mount() {
        return;
    }
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let mnt = env.path("mnt");
    let mut m = Mount::start(&env, &mnt, &[]);
    // A program inside the mount that leaves a moment after the signal
    // (a reader finishing, a walker passing through): one SIGTERM is enough.
    let mut holder = Command::new("sleep").arg("1").current_dir(&mnt).spawn().unwrap();
    assert_eq!(m.end_with(nix::sys::signal::Signal::SIGTERM), Some(0), "{}", m.log());
    holder.wait().unwrap();
    assert!(!mounted(&mnt), "no mount left: {}", m.log());
});
