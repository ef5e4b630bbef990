//! The bad-input matrix for backup and restore (docs/RELIABILITY.md, "Bad
//! input"): sources that change while read, odd names and shapes, special
//! files. Each case has its documented outcome and leaves the repository
//! sound (`check` passes) and the source untouched.
//!
//! The cases that need their own file systems (a restore target that fills
//! up, a read-only target) are in mounts.rs; unreadable files, a wrong
//! password, a newer repository version and two backups at once are in
//! errors.rs and cli.rs.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cairn_test;
use crate::util::{Env, assert_same_tree, random_bytes};

fn backup(env: &Env, src: &Path) -> std::process::Output {
    env.cmd().args(["backup", src.to_str().unwrap()]).output().unwrap()
}

fn restore_latest(env: &Env, src: &Path, target: &str) -> std::path::PathBuf {
    let t = env.path(target);
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", t.to_str().unwrap()]);
    t
}

fn assert_sound(env: &Env) {
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
}

/// Runs `change` in a loop on another thread while a backup runs.
fn backup_while(env: &Env, src: &Path, change: impl Fn(u64) + Send + 'static) -> std::process::Output {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let worker = std::thread::spawn(move || {
        let mut i = 0;
        while !stop2.load(Ordering::SeqCst) {
            change(i);
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    let out = backup(env, src);
    stop.store(true, Ordering::SeqCst);
    worker.join().unwrap();
    out
}

cairn_test!(a_file_growing_while_read_is_stored_as_read_with_a_warning, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let log = src.join("app.log");
    std::fs::write(&log, random_bytes(24 << 20, 1)).unwrap();
    let path = log.clone();
    let out = backup_while(&env, &src, move |i| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(format!("line {i}\n").repeat(100).as_bytes()).unwrap();
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("app.log: changed while being read"), "{err}");
    // Appends only: what was stored is a prefix of the file as it is now.
    let t = restore_latest(&env, &src, "t");
    let stored = std::fs::read(t.join("app.log")).unwrap();
    let now = std::fs::read(&log).unwrap();
    assert!(stored.len() >= 24 << 20 && now.starts_with(&stored), "{} of {} bytes", stored.len(), now.len());
    assert_sound(&env);
    // Once it holds still, the next backup reads it again and is complete.
    let out = backup(&env, &src);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(restore_latest(&env, &src, "t2").join("app.log")).unwrap(), now);
});

cairn_test!(a_file_shrinking_while_read_is_stored_as_read_with_a_warning, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("db");
    // The truncation must land while the file is read: try later and later.
    let mut torn = 0;
    for (attempt, delay_ms) in [60u64, 120, 200, 300, 450, 700].into_iter().enumerate() {
        let data = random_bytes(24 << 20, 10 + attempt as u64);
        std::fs::write(&path, &data).unwrap();
        let child =
            env.cmd().args(["backup", src.to_str().unwrap()]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1 << 20).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let stored = std::fs::read(restore_latest(&env, &src, &format!("t{attempt}")).join("db")).unwrap();
        // Whatever the moment: what was stored is a prefix of what was
        // there, and a torn read is reported.
        assert!(data.starts_with(&stored), "attempt {attempt}: {} bytes stored", stored.len());
        match out.status.code() {
            Some(3) => {
                assert!(err.contains("db: changed while being read"), "{err}");
                torn += 1;
            }
            Some(0) => {
                assert!(stored.len() == data.len() || stored.len() == 1 << 20, "{} bytes, no warning", stored.len())
            }
            other => panic!("attempt {attempt}: exit {other:?}: {err}"),
        }
    }
    assert!(torn > 0, "no attempt truncated the file while it was read");
    assert_sound(&env);
});

cairn_test!(a_file_replaced_while_read_is_stored_whole_in_one_version, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let versions: Vec<Vec<u8>> = (0..4).map(|v| random_bytes(6 << 20, 100 + v)).collect();
    std::fs::write(src.join("conf"), &versions[0]).unwrap();
    let (dir, vs) = (src.clone(), versions.clone());
    // Replaced the way editors and package managers do: a new file renamed over it.
    let out = backup_while(&env, &src, move |i| {
        let tmp = dir.join(".conf.tmp");
        std::fs::write(&tmp, &vs[(i % 4) as usize]).unwrap();
        std::fs::rename(&tmp, dir.join("conf")).unwrap();
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0) | Some(3)), "{err}");
    // An open file is not torn by a rename: one version, whole.
    let stored = std::fs::read(restore_latest(&env, &src, "t").join("conf")).unwrap();
    assert!(versions.contains(&stored), "the stored file mixes versions ({} bytes)", stored.len());
    assert_sound(&env);
});

cairn_test!(files_saved_over_during_a_backup_are_stored_with_their_own_metadata, |env| {
    use std::os::unix::fs::PermissionsExt;
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    const FILES: u64 = 1000;
    // Version v of file k: its content says (k, v); odd versions are private.
    fn version(k: u64, v: u64) -> (Vec<u8>, u32) {
        (
            format!("file {k} version {v}\n").repeat(20 + (k % 7) as usize).into_bytes(),
            if v % 2 == 1 { 0o600 } else { 0o644 },
        )
    }
    let save = |dir: &Path, k: u64, v: u64| {
        let (content, mode) = version(k, v);
        let tmp = dir.join(format!(".f{k}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::rename(&tmp, dir.join(format!("f{k}"))).unwrap();
    };
    for k in 0..FILES {
        save(&src, k, 0);
    }
    for round in 0..12 {
        let dir = src.clone();
        // Saved the way editors and package managers save: a new file
        // renamed over the old, while the walk and the readers run.
        let out = backup_while(&env, &src, move |i| {
            for k in (0..FILES).filter(|k| k % 8 == i % 8) {
                save(&dir, k, i + 1);
            }
        });
        let err = String::from_utf8_lossy(&out.stderr);
        // Nothing was torn or missing: every file is whole, in one version.
        assert_eq!(out.status.code(), Some(0), "round {round}: {err}");
        let t = restore_latest(&env, &src, &format!("t{round}"));
        for k in 0..FILES {
            let f = t.join(format!("f{k}"));
            let content = std::fs::read(&f).unwrap_or_else(|e| panic!("round {round}: f{k} missing: {e}"));
            let text = String::from_utf8(content.clone()).unwrap();
            let v: u64 = text.lines().next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
            let (expected, mode) = version(k, v);
            assert_eq!(content, expected, "round {round}: f{k}");
            let restored = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(restored, mode, "round {round}: f{k}, version {v}, stored with another version's mode");
        }
    }
    assert_sound(&env);
});

cairn_test!(special_files_of_every_kind_are_recorded_not_read, |env| {
    use std::os::unix::fs::FileTypeExt;
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let root = nix::unistd::geteuid().is_root();
    if root {
        // /dev/null's numbers: a character device.
        nix::sys::stat::mknod(
            &src.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t = restore_latest(&env, &src, "t");
    let ft = |n: &str| std::fs::symlink_metadata(t.join(n)).unwrap().file_type();
    assert!(ft("fifo").is_fifo());
    // A socket is recorded, not restored: one made by restore would be dead.
    assert!(env.ok(&["ls", "latest", "-l"]).lines().any(|l| l.starts_with('s') && l.ends_with("/sock")));
    assert!(!t.join("sock").exists());
    if root {
        assert!(ft("null").is_char_device());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(t.join("null")).unwrap().rdev(), nix::sys::stat::makedev(1, 3));
    }
    assert_sound(&env);
});

cairn_test!(odd_names_and_a_tree_1000_levels_deep_round_trip, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // Not UTF-8, the longest name a file system takes, and characters that
    // mean something elsewhere.
    let names: Vec<Vec<u8>> = vec![
        b"caf\xe9 latin-1".to_vec(),
        b"\xff\xfe".to_vec(),
        vec![b'n'; 255],
        "ünïcödé ✓".as_bytes().to_vec(),
        b"new\nline".to_vec(),
        b"-rf".to_vec(),
        b" leading and trailing ".to_vec(),
    ];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(src.join(std::ffi::OsStr::from_bytes(n)), format!("file {i}")).unwrap();
    }
    let mut deep = src.join("deep");
    for _ in 0..1000 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom"), "at level 1000").unwrap();
    env.init();
    let out = backup(&env, &src);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = restore_latest(&env, &src, "t");
    // The comparison recurses once per level: give it the stack for 1000.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || assert_same_tree(&src, &t))
        .unwrap()
        .join()
        .unwrap();
    assert_sound(&env);
});

cairn_test!(a_directory_of_200k_entries_round_trips, |env| {
    // On tmpfs when there is one: on this machine's ext4 each create costs
    // 0.35 ms (the test would spend two minutes making and restoring files),
    // on tmpfs 0.01 ms. What is tested is cairn's handling of the entries.
    let env = match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) => Env { repo: dir.path().join("repo"), dir },
        Err(_) => env,
    };
    let src = env.path("src");
    let big = src.join("many");
    std::fs::create_dir_all(&big).unwrap();
    let n = 200_000;
    for i in 0..n {
        // Empty files: the cost is in the entries, not the content.
        std::fs::File::create(big.join(format!("entry-{i:06}"))).unwrap();
    }
    std::fs::write(big.join("one-with-content"), "hello").unwrap();
    env.init();
    let out = backup(&env, &src);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let t = restore_latest(&env, &src, "t");
    let restored = std::fs::read_dir(t.join("many")).unwrap().count();
    assert_eq!(restored, n + 1);
    assert_eq!(std::fs::read_to_string(t.join("many/one-with-content")).unwrap(), "hello");
    assert_sound(&env);
});

cairn_test!(a_sparse_file_round_trips_sparse, |env| {
    // CI: 2 GiB with two islands of data; CAIRN_LONG_TESTS=1: the 50 GiB
    // of docs/RELIABILITY.md.
    let gib: u64 = if std::env::var_os("CAIRN_LONG_TESTS").is_some() { 50 } else { 2 };
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let f = src.join("disk.img");
    let island = random_bytes(1 << 20, 7);
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::create(&f).unwrap();
        file.set_len(gib << 30).unwrap();
        file.write_all_at(&island, 4096).unwrap();
        file.write_all_at(&island, (gib << 30) / 2).unwrap();
    }
    env.init();
    let out = backup(&env, &src);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The zeros deduplicate to almost nothing.
    assert!(env.repo_size() < 16 << 20, "repository {} bytes", env.repo_size());
    let t = restore_latest(&env, &src, "t");
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(t.join("disk.img")).unwrap();
    assert_eq!(md.len(), gib << 30);
    assert!(md.blocks() * 512 < 64 << 20, "restored sparse: {} bytes allocated", md.blocks() * 512);
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(t.join("disk.img")).unwrap();
        let mut buf = vec![0u8; island.len()];
        file.read_exact_at(&mut buf, (gib << 30) / 2).unwrap();
        assert!(buf == island);
        file.read_exact_at(&mut buf, 4096).unwrap();
        assert!(buf == island);
    }
    assert_sound(&env);
});
