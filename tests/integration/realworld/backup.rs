//! Backup: `/`, relative and symlinked sources, empty streams, long paths.
use super::*;

// Case 1: `backup /` stored an empty snapshot. Inside a chroot with /proc
// mounted (a mount namespace of its own), the whole tree is stored, /proc
// is an empty folder, no warning, and the restore is bit-exact.
cairn_test!(backup_of_root_in_a_chroot_stores_the_whole_tree, |env| {
    if !is_root() {
        eprintln!("skipped: chroot and mount need root (CI runs as root)");
        return;
    }
    let root = env.path("chroot");
    for d in ["etc/ssl/certs", "home/me/.config", "proc", "tmp", "var/lib/db"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("etc/hostname"), "box\n").unwrap();
    std::fs::write(root.join("etc/ssl/certs/ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    std::fs::write(root.join("home/me/.config/app.toml"), "x = 1\n").unwrap();
    std::fs::write(root.join("var/lib/db/data"), random_bytes(300_000, 7)).unwrap();
    std::os::unix::fs::symlink("../etc/hostname", root.join("home/me/host")).unwrap();
    let cairn = install_binary(&root);
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();

    let script = format!(
        "mount -t proc proc {r}/proc && chroot {r} {cairn} init --kdf-memory-mib 1 --kdf-iterations 1 \
         && chroot {r} {cairn} --json backup /",
        r = root.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--fork", "sh", "-c", &script])
        .env("CAIRN_REPOSITORY", "/repo")
        .env("CAIRN_PASSWORD", "correct horse")
        .env("CAIRN_CACHE_DIR", "/cache")
        .output()
        .unwrap();
    let stdout = succeeded("backup / in a chroot", out);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["errors"], 0, "{summary}");
    assert!(summary["files_new"].as_u64().unwrap() >= 5, "{summary}");

    // The repository moves out of the tree it holds, then the tree restores as it was.
    std::fs::rename(root.join("repo"), &env.repo).unwrap();
    let _ = std::fs::remove_dir_all(root.join("cache"));
    let paths = listed(&env);
    assert!(paths.iter().any(|p| p == "/etc/ssl/certs/ca.pem"), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/proc"), "{paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("/proc/")), "nothing below /proc: {paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("/repo")), "the repository is not its own source");
    let target = env.path("restored");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    // /proc is stored with the mounted proc's metadata, and empty.
    assert_eq!(std::fs::read_dir(target.join("proc")).unwrap().count(), 0);
    std::fs::remove_dir(target.join("proc")).unwrap();
    std::fs::remove_dir(root.join("proc")).unwrap();
    assert_same_tree(&root, &target);
});

// Case 2: `backup ../other` stored the decoy `a/other`; `backup ..` only `a`.
cairn_test!(relative_sources_resolve_dot_dot_as_a_shell_does, |env| {
    let top = env.path("top");
    std::fs::create_dir_all(top.join("a/other")).unwrap();
    std::fs::create_dir_all(top.join("other/sub")).unwrap();
    std::fs::write(top.join("a/other/decoy"), "wrong folder").unwrap();
    std::fs::write(top.join("other/sub/real"), "right folder").unwrap();
    std::fs::write(top.join("a/mine"), "a").unwrap();
    env.init();
    let backup_in = |dir: &Path, args: &[&str]| {
        let out = env.cmd().current_dir(dir).arg("--json").arg("backup").args(args).output().unwrap();
        succeeded(&format!("backup {args:?}"), out);
    };
    let t = top.display().to_string();

    backup_in(&top.join("a"), &["../other"]);
    let paths = listed(&env);
    assert!(paths.contains(&format!("{t}/other/sub/real")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("decoy")), "{paths:?}");

    backup_in(&top.join("a"), &[".."]);
    let paths = listed(&env);
    assert!(paths.contains(&format!("{t}/other/sub/real")) && paths.contains(&format!("{t}/a/mine")), "{paths:?}");

    // `./x/../y`, trailing slashes, a source given twice and one nested in another.
    backup_in(&top, &["./a/../other/", "other", "other/sub"]);
    let snaps = env.json(&["snapshots"]);
    let newest = snaps.as_array().unwrap().last().unwrap();
    assert_eq!(newest["paths"], serde_json::json!([format!("{t}/other")]), "{newest}");
    let paths = listed(&env);
    assert_eq!(paths.iter().filter(|p| p.ends_with("/real")).count(), 1, "{paths:?}");
});

// Case 2: a symlink given as a source is followed (as `cp -H`): the user
// named it for what it holds, and storing only the link would lose it all.
cairn_test!(a_symlinked_source_folder_is_backed_up_with_its_contents, |env| {
    let real = env.path("real/www");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("index.html"), "<h1>hi</h1>").unwrap();
    std::os::unix::fs::symlink("real/www", env.path("www")).unwrap();
    std::os::unix::fs::symlink("index.html", real.join("home.html")).unwrap();
    env.init();
    env.ok(&["backup", env.path("www").to_str().unwrap()]);
    let www = env.path("www").display().to_string();
    let dump = env.ok(&["dump", "latest", &format!("{www}/index.html")]);
    assert_eq!(dump, "<h1>hi</h1>");
    // Below the source, symlinks stay links.
    let ls = env.ok(&["ls", "-l", "latest", &format!("{www}/home.html")]);
    assert!(ls.contains("-> index.html"), "{ls}");
});

// Case 3: an empty stream (the dump before the pipe failed) became a
// good-looking 0-byte snapshot with exit 0. Now it is refused: exit 1, no
// snapshot, and `latest` still names the last good dump.
cairn_test!(an_empty_stream_is_refused_and_latest_stays_the_last_good_dump, |env| {
    env.init();
    let run_stdin = |input: &[u8]| {
        let mut child = env
            .cmd()
            .args(["backup", "--stdin", "--stdin-filename", "db.sql"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    succeeded("a real dump", run_stdin(b"CREATE TABLE t (id int);\n"));
    let out = run_stdin(b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("standard input gave no data") && err.contains("db.sql"), "{err}");
    let out = env.run(&["backup", "--stdin-from-command", "--stdin-filename", "db.sql", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the command gave no data"), "{out:?}");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    assert_eq!(env.ok(&["dump", "latest", "db.sql"]), "CREATE TABLE t (id int);\n");
});

// Case 5: paths longer than PATH_MAX (4096 bytes) were skipped with a
// warning and could not be restored. 40 folders of 200-byte names: 8 KB.
cairn_test!(paths_longer_than_path_max_back_up_and_restore, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let name = "d".repeat(200);
    let leaf = random_bytes(50_000, 5);
    deep_tree(&src, &name, 40, &leaf);
    env.init();
    let b = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!((b["errors"].as_u64(), b["files_new"].as_u64()), (Some(0), Some(1)), "{b}");
    let target = env.path("target");
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap(), "--verify"]);
    assert_eq!(deep_leaf(&target, &name, 40), leaf);
    succeeded("check", env.run(&["check", "--read-data"]));
});

// Found by trying it: `cairn backup --stdin` typed at a prompt, without a
// pipe, sat waiting for keystrokes. It now says what it needs (a terminal
// from util-linux's `script`).
cairn_test!(stdin_from_a_terminal_is_refused_at_once, |env| {
    env.init();
    let cairn = env!("CARGO_BIN_EXE_cairn");
    let out = Command::new("script")
        .args(["-qec", &format!("timeout 20 {cairn} backup --stdin --stdin-filename x.sql"), "/dev/null"])
        .env("CAIRN_REPOSITORY", &env.repo)
        .env("CAIRN_PASSWORD", "correct horse")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("standard input is a terminal"), "{text}");
    assert!(env.json(&["snapshots"]).as_array().unwrap().is_empty());
});

// Found by trying it: `cairn backup "$DIR"` with DIR unset (an empty
// argument) backed up the current folder, exit 0; a restore target that is
// a file gave a bare "File exists".
cairn_test!(an_empty_source_and_a_file_as_restore_target_are_named, |env| {
    env.init();
    let out = env.run(&["backup", ""]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("an empty path was given"), "{out:?}");
    assert!(env.json(&["snapshots"]).as_array().unwrap().is_empty());
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(env.path("a-file"), "mine").unwrap();
    let out = env.run(&["restore", "latest", "--target", env.path("a-file").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("it is a file; give a folder"), "{out:?}");
    assert_eq!(std::fs::read(env.path("a-file")).unwrap(), b"mine");
});

// Found by asking what a user whose folder root backs up could make cairn
// do: files were opened by path after the walk had seen them, following
// symlinks, so an entry swapped for a symlink between the two stored the
// link's target (another user's secret) as the user's own file, and a
// restore handed it to them; an entry swapped for a FIFO hung the backup
// on its open. Here a file and a folder are swapped back and forth with a
// symlink to a secret (and the file with a FIFO) all through a series of
// backups; no snapshot may hold the secret, and no backup may hang.
cairn_test!(entries_swapped_during_a_backup_never_store_what_a_symlink_points_to, |env| {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    use std::sync::atomic::{AtomicBool, Ordering};
    const SECRET: &[u8] = b"TOP SECRET of another user\n";
    env.init();
    let secret = env.path("secret");
    std::fs::create_dir_all(secret.join("d")).unwrap();
    std::fs::write(secret.join("f"), SECRET).unwrap();
    std::fs::write(secret.join("d/shadow"), SECRET).unwrap();
    let src = env.path("home");
    std::fs::create_dir_all(src.join("d")).unwrap();
    // Files before the swapped ones keep the readers busy while the walk
    // goes on, so some time passes between the walk's look and the read.
    std::fs::write(src.join("a-big"), random_bytes(3 << 20, 1)).unwrap();
    for i in 0..300 {
        std::fs::write(src.join(format!("b{i:03}")), format!("filler {i}\n")).unwrap();
    }
    std::fs::write(src.join("f"), b"mine\n").unwrap();
    std::fs::write(src.join("d/shadow"), b"mine\n").unwrap();
    let stage = env.path("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::os::unix::fs::symlink(secret.join("f"), stage.join("f-link")).unwrap();
    nix::unistd::mkfifo(&stage.join("f-fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::os::unix::fs::symlink(secret.join("d"), stage.join("d-link")).unwrap();

    let stop = AtomicBool::new(false);
    let swaps = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let swap = |a: &Path, b: &Path| {
                renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).unwrap();
            };
            let (f, d) = (src.join("f"), src.join("d"));
            while !stop.load(Ordering::Relaxed) {
                for other in ["f-link", "f-fifo"] {
                    swap(&f, &stage.join(other));
                    swap(&d, &stage.join("d-link"));
                    swap(&f, &stage.join(other));
                    swap(&d, &stage.join("d-link"));
                }
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for round in 0..40 {
                let mut child = env
                    .cmd()
                    .args(["backup", "-q", src.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let started = std::time::Instant::now();
                let status = loop {
                    if let Some(st) = child.try_wait().unwrap() {
                        break st;
                    }
                    if started.elapsed() > std::time::Duration::from_secs(60) {
                        child.kill().unwrap();
                        let _ = child.wait();
                        panic!("backup {round} hung for a minute (a FIFO opened as a file?)");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                };
                // Exit 3: entries that changed while read are warned about.
                assert!(matches!(status.code(), Some(0) | Some(3)), "backup {round}: {status}");
                let target = env.path(&format!("restored-{round}"));
                let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
                // A symlink swapped away before its target was read is left
                // out (a warning): stored without a target, it made the
                // restore fail (exit 1).
                assert_eq!(out.status.code(), Some(0), "restore {round}: {out:?}");
                for file in crate::util::files_under(&target) {
                    if file.symlink_metadata().unwrap().file_type().is_file() {
                        let content = std::fs::read(&file).unwrap();
                        assert!(
                            !content.windows(SECRET.len()).any(|w| w == SECRET),
                            "backup {round} stored a symlink's target as {}",
                            file.display()
                        );
                    }
                }
                std::fs::remove_dir_all(&target).unwrap();
            }
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });
    assert!(swaps.load(Ordering::Relaxed) > 25, "the entries were swapped during the backups");
});

// Found with the change above: every folder on the way down stays open
// while its entries are read, so a tree deeper than the open-files limit
// (1,024 by default) was stored only to that depth ("Too many open files",
// exit 3), which any user could make of their home folder. cairn raises
// its soft limit to the hard one.
cairn_test!(a_tree_deeper_than_the_default_open_files_limit_is_stored_whole, |env| {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    use std::os::unix::process::CommandExt;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < 4096 {
        eprintln!("skipped: the hard open-files limit is {hard}, below what the test needs");
        return;
    }
    env.init();
    let src = env.path("deep");
    // Built folder by folder: the whole path is longer than PATH_MAX.
    let mut fd =
        nix::fcntl::open(env.dir.path(), nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
    let mut name = "deep";
    for _ in 0..1500 {
        nix::sys::stat::mkdirat(&fd, name, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
        fd = nix::fcntl::openat(&fd, name, nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        name = "d";
    }
    let file = nix::fcntl::openat(
        &fd,
        "bottom",
        nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    nix::unistd::write(&file, b"at the bottom\n").unwrap();
    drop(file);
    let mut cmd = env.cmd();
    cmd.args(["backup", src.to_str().unwrap()]);
    // SAFETY: only an async-signal-safe system call between fork and exec.
    unsafe {
        cmd.pre_exec(move || setrlimit(Resource::RLIMIT_NOFILE, 1024, hard).map_err(std::io::Error::from));
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let paths = listed(&env);
    assert!(
        paths.iter().any(|p| p.ends_with("/d/bottom") && p.split('/').filter(|c| *c == "d").count() == 1499),
        "{}",
        paths.len()
    );
});
