//! The repository: privacy, passwords, damage and its repair, hostile trees,
//! interrupts, and messages about the place it is (or is not) in.
use super::*;

// Case 8: key files were 0644, readable by every local user. Now every
// repository file is 0600 and every folder 0700, whatever the umask.
cairn_test!(repository_files_are_owner_only_whatever_the_umask, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(100_000, 1)).unwrap();
    std::fs::write(env.path("pw2"), "second password\n").unwrap();
    // Run with a umask of 0: cairn must not rely on the user's.
    let with_umask_0 = |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        let mut c = env.cmd();
        // SAFETY: umask is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        succeeded(&format!("{args:?}"), c.args(args).output().unwrap());
    };
    with_umask_0(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    with_umask_0(&["backup", src.to_str().unwrap()]);
    with_umask_0(&["key", "add", "--new-password-file", env.path("pw2").to_str().unwrap()]);
    assert_eq!(env.repo_files("keys").len(), 2);
    let shared = shared_modes(&env.repo);
    assert!(shared.is_empty(), "readable by others: {shared:?}");
});

// Case 9: an empty password was accepted; CAIRN_PASSWORD won over an
// explicit --password-file, and a missing file was ignored when it was set;
// a dump command saw CAIRN_PASSWORD.
cairn_test!(passwords_follow_restic_precedence_and_empty_ones_are_refused, |env| {
    let init = ["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"];
    // Empty, from each source: refused, and no repository is created.
    let out = env.cmd().env("CAIRN_PASSWORD", "").args(init).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAIRN_PASSWORD is empty"), "{out:?}");
    std::fs::write(env.path("empty"), "\n").unwrap();
    let out = env.cmd().env_remove("CAIRN_PASSWORD").env("CAIRN_PASSWORD_FILE", env.path("empty")).args(init).output();
    assert_eq!(out.unwrap().status.code(), Some(1));
    assert!(!env.repo.exists(), "nothing created");

    // The file wins over the variable; a missing file is an error, not ignored.
    std::fs::write(env.path("pw"), "from the file\n").unwrap();
    let pw = env.path("pw").display().to_string();
    succeeded("init", env.cmd().args(["--password-file", &pw]).args(init).output().unwrap());
    let out = env.cmd().args(["--password-file", &pw, "snapshots"]).output().unwrap();
    succeeded("the file's password, the variable set to another", out);
    let out = env.cmd().args(["--password-file", "/nonexistent/pw", "snapshots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pw"), "{out:?}");
    // The command wins over the file.
    let mut c = env.cmd();
    c.args(["--password-file", "/nonexistent/pw", "--password-command", "echo from the file", "snapshots"]);
    succeeded("the command's password", c.output().unwrap());

    // A dump command does not see the password variables.
    let out = env
        .cmd()
        .env("CAIRN_PASSWORD", "from the file")
        .env("CAIRN_NEW_PASSWORD", "secret too")
        .args(["backup", "--stdin-from-command", "--stdin-filename", "env.txt", "--", "sh", "-c"])
        .arg("echo \"[$CAIRN_PASSWORD][$CAIRN_NEW_PASSWORD]\"")
        .output()
        .unwrap();
    succeeded("backup of a command", out);
    assert_eq!(
        env.cmd().env("CAIRN_PASSWORD", "from the file").args(["dump", "latest", "env.txt"]).output().unwrap().stdout,
        b"[][]\n"
    );

    // --insecure-no-password makes a repository without one, on purpose.
    let other = env.path("open-repo");
    let no_password = |args: &[&str]| {
        let mut c = env.cmd();
        c.env_remove("CAIRN_PASSWORD").env("CAIRN_REPOSITORY", &other).arg("--insecure-no-password").args(args);
        succeeded(&format!("{args:?} without a password"), c.output().unwrap());
    };
    no_password(&init);
    no_password(&["snapshots"]);

    // The variable is documented in --help.
    let help = env.cmd().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("CAIRN_PASSWORD "), "{help:?}");
});

// Case 12: messages that pointed the wrong way, and read-only commands
// that created folders (`PATH/tmp`) where they were pointed.
cairn_test!(wrong_places_get_messages_that_point_the_right_way_and_nothing_is_created, |env| {
    let run_at = |repo: &Path, args: &[&str]| env.cmd().env("CAIRN_REPOSITORY", repo).args(args).output().unwrap();
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // A restic and a borg repository, made by the real tools.
    let restic = env.path("restic-repo");
    let made = Command::new("restic").args(["init", "-q", "-r"]).arg(&restic).env("RESTIC_PASSWORD", "x").output();
    succeeded("restic init (tests/run installs restic)", made.unwrap());
    let borg = env.path("borg-repo");
    let made = Command::new("borg").args(["init", "-e", "repokey"]).arg(&borg).env("BORG_PASSPHRASE", "x").output();
    succeeded("borg init (tests/run installs borgbackup)", made.unwrap());
    for (repo, tool) in [(&restic, "restic"), (&borg, "borg")] {
        let out = run_at(repo, &["snapshots"]);
        assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
        assert!(stderr(&out).contains(&format!("is a {tool} repository, not a cairn one")), "{}", stderr(&out));
        assert!(!stderr(&out).contains("damaged"), "{}", stderr(&out));
    }

    // A file, a missing folder, a folder without a repository: named, and
    // nothing is made there by commands that only read.
    std::fs::write(env.path("a-file"), "x").unwrap();
    let out = run_at(&env.path("a-file"), &["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("it is a file, not a folder"), "{}", stderr(&out));
    let empty = env.path("empty-folder");
    std::fs::create_dir_all(&empty).unwrap();
    let cases: [(PathBuf, &[&str]); 3] =
        [(env.path("nowhere"), &["snapshots"]), (empty.clone(), &["check"]), (env.path("nowhere"), &["ls", "latest"])];
    for (repo, args) in cases {
        let out = run_at(&repo, args);
        assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
        assert!(stderr(&out).contains("no cairn repository at"), "{}", stderr(&out));
    }
    assert!(!env.path("nowhere").exists(), "a read-only command created the folder");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "a read-only command created tmp/ there");

    // Another user's repository: a permission problem, not AWS credentials.
    if is_root() {
        env.init();
        let out = env.run_unprivileged(&["snapshots"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("permission denied") && !err.contains("AWS") && !err.contains("run again"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
});

// Case 10: a tree graph that names one subtree many times (forty levels of
// two references each: 2^40 paths from 41 trees) made `ls` and `restore`
// run without end. Both refuse it, as do `find`, `diff` and `dump
// --archive tar` (all walk through cairn-view's walker or its guard);
// `check`, which visits each tree once, finishes.
cairn_test!(a_tree_bomb_is_refused_not_expanded_without_end, |env| {
    use cairn_format::BlobKind;
    use cairn_format::tree::{NodeKind, Tree};
    env.init();
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    env.ok(&["backup", empty.to_str().unwrap()]);
    let first = env.json(&["snapshots"])[0]["id"].as_str().unwrap().to_string();
    let repo = open_by_hand(&env);
    let mut tree = Tree { nodes: vec![hand_node("leaf", NodeKind::File, None, vec![], 0)] };
    let mut blobs = Vec::new();
    let mut top = None;
    for _ in 0..=40 {
        let bytes = tree.encode();
        let id = repo.repo().blob_id(&bytes);
        blobs.push((BlobKind::Tree, bytes));
        let dir = |name| hand_node(name, NodeKind::Dir, Some(id), vec![], 0);
        tree = Tree { nodes: vec![dir("a"), dir("b")] };
        top = Some(id);
    }
    save_by_hand(&repo, &blobs, top.unwrap());

    // Each command gets two minutes; before the bound, ls printed for ever.
    let bounded = |args: &[&str]| {
        let mut child = env.cmd().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                return (status.code(), err);
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("cairn {args:?} ran for two minutes: unbounded");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let target = env.path("target");
    for args in [
        &["ls", "latest"][..],
        &["restore", "latest", "--target", target.to_str().unwrap()],
        &["find", "leaf"],
        &["diff", &first, "latest"],
        &["dump", "latest", "--archive", "tar"],
    ] {
        let (code, err) = bounded(args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains("refer to the same trees over and over"), "{args:?}: {err}");
    }
    // A restore writes as it plans, so what it planned before the walk was
    // refused is there: bounded by the walk's bound (100,000 visits of
    // trees, plus 100 per distinct one), not 2^40 folders.
    let (mut written, mut folders) = (0, vec![target.clone()]);
    while let Some(dir) = folders.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            written += 1;
            folders.push(e.path());
        }
    }
    assert!(written < 300_000, "{written} entries restored before the refusal");
    let (code, err) = bounded(&["check"]);
    assert!(code.is_some(), "check ended: {err}");
});

// Case 11: SIGINT and SIGTERM during backup, restore, prune and check: one
// line saying what was interrupted and that the repository is intact, this
// run's staging files and run marker removed, exit 130 or 143.
cairn_test!(interrupted_runs_say_so_clean_up_and_exit_130_or_143, |env| {
    use nix::sys::signal::Signal::{SIGINT, SIGTERM};
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(500_000, i)).unwrap();
    }
    env.init();
    let s = src.to_str().unwrap();
    let check_clean = |what: &str, out: &std::process::Output, code: i32| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.contains(&format!("{what} interrupted by")) && err.contains("the repository is intact"), "{err}");
        assert!(left_in(&env, "tmp").is_empty(), "{what}: staging left: {:?}", left_in(&env, "tmp"));
        assert!(left_in(&env, "running").is_empty(), "{what}: run marker left");
        env.ok(&["check", "--read-data"]);
    };

    // Each run is throttled to take about ten seconds; the signal comes a
    // second after its run marker (or its first folder) appears.
    let a_second_after = |cond: bool| {
        if cond {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        cond
    };
    let out = interrupted(&env, &["--limit-upload", "400", "backup", s], SIGINT, || {
        a_second_after(!left_in(&env, "running").is_empty())
    });
    check_clean("backup", &out, 130);
    assert!(env.json(&["snapshots"]).as_array().unwrap().is_empty());

    env.ok(&["backup", s]);
    let target = env.path("target");
    let out = interrupted(
        &env,
        &["--limit-download", "400", "restore", &format!("latest:{s}"), "--target", target.to_str().unwrap()],
        SIGTERM,
        || a_second_after(target.exists()),
    );
    check_clean("restore", &out, 143);

    // Check reading every pack, slowly.
    let out = interrupted(&env, &["--limit-download", "400", "check", "--read-data"], SIGINT, || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        true
    });
    check_clean("check", &out, 130);

    // A prune rewriting every pack under a new key, interrupted mid-way.
    env.ok(&["key", "rotate"]);
    let out = interrupted(&env, &["--limit-upload", "400", "prune", "--reencrypt"], SIGTERM, || {
        a_second_after(!left_in(&env, "running").is_empty())
    });
    check_clean("prune", &out, 143);
    let restored = env.path("after");
    env.ok(&["restore", &format!("latest:{s}"), "--target", restored.to_str().unwrap()]);
    assert_same_tree(&src, &restored);
});

// Case 4: a damaged blob poisoned every later backup (backup reused it) and
// no repair removed it. `repair packs` salvages what reads, drops the rest
// from the index so the next backup stores it again, and `repair snapshots
// --forget` then mends snapshots whose files are gone from the source.
cairn_test!(repair_packs_lets_the_next_backup_store_damaged_content_again, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let s = src.to_str().unwrap();
    env.init();
    std::fs::write(src.join("b"), random_bytes(300_000, 2)).unwrap();
    env.ok(&["backup", s]);
    std::fs::write(src.join("a"), random_bytes(300_000, 1)).unwrap();
    env.ok(&["backup", s]);
    let packs_before = env.repo_files("data").len();
    damage_every_data_pack(&env);
    assert_eq!(env.run(&["check", "--read-data"]).status.code(), Some(1));

    // The plan changes nothing.
    let plan = env.json(&["repair", "packs", "--dry-run"]);
    assert_eq!(plan["damaged"].as_array().unwrap().len(), packs_before, "{plan}");
    assert_eq!(env.repo_files("data").len(), packs_before);

    let done = env.json(&["repair", "packs"]);
    assert!(done["salvaged"].as_u64().unwrap() > 0, "{done}");
    assert!(!done["lost"].as_array().unwrap().is_empty(), "{done}");
    assert_eq!(env.json(&["repair", "packs"])["damaged"].as_array().unwrap().len(), 0, "nothing damaged is left");

    // `b` is gone from the source; `a` is stored again by a forced backup.
    std::fs::remove_file(src.join("b")).unwrap();
    env.ok(&["backup", "--force", s]);
    // The first two snapshots still need b's lost chunk.
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    env.ok(&["repair", "snapshots", "--forget"]);
    succeeded("check after repair", env.run(&["check", "--read-data"]));
    let target = env.path("restored");
    env.ok(&["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap(), "--verify"]);
    assert_same_tree(&src, &target);
});

// Found by reading the change: restore held a folder descriptor for every
// file written in segments (files of 64 MiB and more, and remote files
// spanning packs) until the end; 60 of them under a limit of 48 open files
// failed every one with "Too many open files". Each segment now resolves
// its file again. The files are all zeros (holes): cheap to make and write.
cairn_test!(many_large_files_restore_within_a_small_open_file_limit, |env| {
    use cairn_format::BlobKind;
    use cairn_format::tree::{NodeKind, Tree};
    env.init();
    let repo = open_by_hand(&env);
    let zeros = vec![0u8; 64 << 10];
    let zero = repo.repo().blob_id(&zeros);
    let big = |i: usize| hand_node(&format!("z{i:02}"), NodeKind::File, None, vec![zero; 1100], 1100 * (64 << 10));
    let mut tree = Tree { nodes: (0..60).map(big).collect() };
    let bytes = tree.encode();
    let root = repo.repo().blob_id(&bytes);
    save_by_hand(&repo, &[(BlobKind::Data, zeros), (BlobKind::Tree, bytes)], root);
    let target = env.path("target");
    let mut cmd = env.cmd();
    cmd.args(["restore", "latest", "--target", target.to_str().unwrap()]);
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 48, rlim_max: 48 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    succeeded("restore under 48 open files", cmd.output().unwrap());
    for i in [0, 59] {
        assert_eq!(std::fs::metadata(target.join(format!("z{i:02}"))).unwrap().len(), 1100 * (64 << 10));
    }
});

// Trees written by cairn before the binary encoding (JSON, docs/FORMAT.md
// 10.1) still list and restore, and a backup on top of them keeps every
// unchanged folder's JSON tree instead of writing it again.
cairn_test!(json_trees_of_earlier_versions_read_and_are_kept_where_nothing_changed, |env| {
    use cairn_format::BlobKind;
    use cairn_format::tree::{NodeKind, Tree};
    env.init();
    let src = env.path("src");
    for d in ["a", "a/deep", "b"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for (f, text) in [("a/one.txt", "one"), ("a/deep/two.txt", "two"), ("b/three.txt", "three"), ("top.txt", "top")] {
        std::fs::write(src.join(f), text).unwrap();
    }
    let src_arg = src.to_str().unwrap();
    env.ok(&["backup", "-q", src_arg]);
    let repo = open_by_hand(&env);
    let (_, snap) = repo.repo().snapshots().unwrap().pop().unwrap();
    // The same snapshot with every tree in JSON, as an earlier cairn wrote it.
    fn to_json(
        repo: &cairn_repo::IndexedRepository,
        id: &cairn_format::BlobId,
        blobs: &mut Vec<(BlobKind, Vec<u8>)>,
    ) -> cairn_format::BlobId {
        let mut tree = repo.load_tree(id).unwrap();
        for n in tree.nodes.iter_mut().filter(|n| n.kind == NodeKind::Dir) {
            n.subtree = Some(to_json(repo, &n.subtree.unwrap(), blobs));
        }
        let bytes = Tree::encode_json(&mut tree);
        assert_eq!(bytes[0], b'{');
        blobs.push((BlobKind::Tree, bytes.clone()));
        repo.repo().blob_id(&bytes)
    }
    let mut blobs = Vec::new();
    let root = to_json(&repo, &snap.tree, &mut blobs);
    assert!(blobs.len() >= 6, "every folder re-encoded");
    save_by_hand(&repo, &blobs, root);
    let old = env.json(&["snapshots"]).as_array().unwrap().iter().find(|s| s["tree"] == root.to_hex()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // It lists and restores like any other.
    let listed = env.ok(&["ls", &old]);
    assert!(listed.contains("/a/deep/two.txt") && listed.contains("/top.txt"), "{listed}");
    let target = env.path("restored");
    env.ok(&["restore", "-q", &format!("{old}:{src_arg}"), "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(target.join("a/deep/two.txt")).unwrap(), "two");
    // One folder changes; the others keep their JSON trees.
    std::fs::write(src.join("b/three.txt"), "three, changed").unwrap();
    let out = env.json(&["backup", "--parent", &old, src_arg]);
    let new = Tree::decode(&repo_tree(&env, out["snapshot_id"].as_str().unwrap())).unwrap();
    let folder = |tree: &Tree, path: &str| {
        let repo = open_by_hand(&env);
        let mut t = tree.clone();
        let mut id = None;
        for part in path.trim_start_matches('/').split('/') {
            let n = t.find(part.as_bytes()).unwrap().clone();
            id = n.subtree;
            t = repo.load_tree(&n.subtree.unwrap()).unwrap();
        }
        id.unwrap()
    };
    let old_root = open_by_hand(&env).load_tree(&root).unwrap();
    let a = format!("{src_arg}/a");
    assert_eq!(folder(&new, &a), folder(&old_root, &a), "the unchanged folder keeps its JSON tree");
    let b = format!("{src_arg}/b");
    assert_ne!(folder(&new, &b), folder(&old_root, &b), "the changed folder gets a new tree");
    let repo = open_by_hand(&env);
    let plain = repo.read_blob(&folder(&new, &b)).unwrap();
    assert_eq!(plain[0], cairn_format::tree::BINARY_TREE, "written in the binary encoding");
});

/// The plaintext of snapshot `id`'s root tree.
fn repo_tree(env: &Env, id: &str) -> Vec<u8> {
    let repo = open_by_hand(env);
    let (_, snap) = repo.repo().snapshots().unwrap().into_iter().find(|(s, _)| s.to_hex().starts_with(id)).unwrap();
    repo.read_blob(&snap.tree).unwrap()
}
