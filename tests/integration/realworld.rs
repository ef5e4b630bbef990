//! Issue 15: the paths real users take. Each test is named after the case it
//! proves (docs/RELIABILITY.md, "Real-world paths") and failed on the code
//! before its fix.

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

// Case 6a: a symlink already in the target where restore creates a folder
// (`target/tmp -> outside`) made restore write the whole folder outside and
// chmod it to the snapshot's mode; with --overwrite always too.
cairn_test!(restore_never_writes_through_a_symlink_planted_where_a_folder_goes, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("tmp/deep")).unwrap();
    std::fs::write(src.join("tmp/deep/file"), "data").unwrap();
    std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o777)).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = snapshot_of(&outside);
    let target = env.path("target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("tmp")).unwrap();

    let out = restore_into(&env, &id, &src, &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a symlink is in the way at tmp"), "{err}");
    assert_eq!(snapshot_of(&outside), before, "nothing written or chmodded outside the target");
    assert!(target.join("tmp").symlink_metadata().unwrap().file_type().is_symlink(), "the link is kept");

    // --overwrite always replaces the link with the folder; outside stays as it was.
    succeeded("restore --overwrite always", restore_into(&env, &id, &src, &target, &["--overwrite", "always"]));
    assert_eq!(snapshot_of(&outside), before);
    assert_same_tree(&src, &target);
});

// Case 6b: a symlink planted at the first name of a hard-link group got the
// other names linked to it and the link's target chmodded.
cairn_test!(restore_never_links_to_or_chmods_a_symlink_planted_at_a_hard_links_first_name, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "linked").unwrap();
    std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    let outside = env.path("outside-file");
    std::fs::write(&outside, "not yours").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = snapshot_of(&outside);
    let target = env.path("target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("a")).unwrap();

    let out = restore_into(&env, &id, &src, &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"), "{out:?}");
    assert_eq!(snapshot_of(&outside), before, "the link's target is not chmodded");
    assert!(target.join("b").symlink_metadata().is_err(), "no name is linked to the planted symlink");
    succeeded("restore --overwrite always", restore_into(&env, &id, &src, &target, &["--overwrite", "always"]));
    assert_eq!(snapshot_of(&outside), before);
    assert_same_tree(&src, &target);
});

// Case 6c: restoring snapshot A (where d/x is a symlink) and then B (where
// d/x is a folder) into one target put B's files outside the target.
cairn_test!(restoring_one_snapshot_over_another_never_follows_the_first_ones_symlinks, |env| {
    let src = env.path("src");
    let outside = env.path("outside");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("d/x")).unwrap();
    env.init();
    let a = backup_id(&env, &src);
    std::fs::remove_file(src.join("d/x")).unwrap();
    std::fs::create_dir_all(src.join("d/x")).unwrap();
    std::fs::write(src.join("d/x/f"), "b's file").unwrap();
    let b = backup_id(&env, &src);
    let target = env.path("target");
    succeeded("restore A", restore_into(&env, &a, &src, &target, &[]));
    let out = restore_into(&env, &b, &src, &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside the target");
    succeeded("restore B, replacing", restore_into(&env, &b, &src, &target, &["--overwrite", "always"]));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_same_tree(&src, &target);
});

// Case 7: while a restore runs, a private folder is never more readable
// than the snapshot says (folders were created 0755 and given their mode
// only at the end). The restore is killed half-way.
cairn_test!(a_restore_killed_half_way_leaves_nothing_more_readable_than_the_snapshot, |env| {
    use std::os::unix::fs::MetadataExt;
    let src = env.path("src");
    std::fs::create_dir_all(src.join("secret")).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("secret/f{i:02}")), random_bytes(100_000, i)).unwrap();
        std::fs::set_permissions(src.join(format!("secret/f{i:02}")), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o700)).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    let target = env.path("target");
    let spec = format!("{id}:{}", src.display());
    for verify in [false, true] {
        let _ = std::fs::remove_dir_all(&target);
        let mut cmd = env.cmd();
        // 4 MB at 400 KiB/s: about ten seconds, so the kill lands mid-run.
        cmd.args(["--limit-download", "400", "restore", &spec, "--target", target.to_str().unwrap()]);
        if verify {
            cmd.arg("--verify");
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::read_dir(target.join("secret")).map(|d| d.count()).unwrap_or(0) < 2 {
            assert!(std::time::Instant::now() < deadline, "the restore did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let n = std::fs::read_dir(target.join("secret")).unwrap().count();
        assert!(n < 40, "the kill landed after the restore had finished ({n} files)");
        for (path, mode) in snapshot_of(&target.join("secret")) {
            assert_eq!(mode & 0o077, 0, "{path} is {:o} mid-restore", mode & 0o7777);
        }
        assert_eq!(std::fs::metadata(target.join("secret")).unwrap().mode() & 0o777, 0o700);
    }
});

// Case 13: `--at DAY` meant the start of that day (the help says its end);
// `restore --dry-run | head` panicked and the dry run ignored --overwrite;
// `--exclude etc/ssl` and `--include ssh/ssh_config` matched nothing; JSON
// times came in three formats.
cairn_test!(dates_dry_runs_patterns_and_json_times_do_what_they_say, |env| {
    let src = env.path("src");
    for d in ["etc/ssl/certs", "etc/ssh", "many"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("etc/ssl/certs/ca.pem"), "cert").unwrap();
    std::fs::write(src.join("etc/ssh/ssh_config"), "Host *").unwrap();
    std::fs::write(src.join("etc/ssh/sshd_config"), "Port 22").unwrap();
    for i in 0..3000 {
        std::fs::write(src.join(format!("many/file-with-a-longish-name-{i:05}")), "").unwrap();
    }
    env.init();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s, "--time", "2026-11-21 10:00", "--exclude", "etc/ssl"]);
    let paths = listed(&env);
    assert!(paths.iter().any(|p| p.ends_with("etc/ssh/ssh_config")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("/etc/ssl")), "etc/ssl is excluded at any depth: {paths:?}");

    // The snapshot of 10:00 is there "at" that day.
    let at_day = env.json(&["snapshots", "--at", "2026-11-21"]);
    assert_eq!(at_day.as_array().unwrap().len(), 1, "{at_day}");

    // --include with a slash, not anchored.
    let target = env.path("only-ssh-config");
    let spec = format!("latest:{s}");
    env.ok(&["restore", &spec, "--target", target.to_str().unwrap(), "--include", "ssh/ssh_config"]);
    assert!(target.join("etc/ssh/ssh_config").is_file());
    assert!(!target.join("etc/ssh/sshd_config").exists());
    assert!(!target.join("many").exists());

    // A dry run read through `head`: a closed pipe ends it quietly (141), no panic.
    let mut child = env
        .cmd()
        .args(["restore", &spec, "--target", target.to_str().unwrap(), "--dry-run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // The dry run follows --overwrite: the file already there is kept, or replaced.
    let dry = |overwrite: &str| {
        env.ok(&["restore", &spec, "--target", target.to_str().unwrap(), "--dry-run", "--overwrite", overwrite])
    };
    let line = |out: String| out.lines().find(|l| l.contains("etc/ssh/ssh_config")).unwrap_or_default().to_string();
    assert!(line(dry("never")).starts_with("would keep "), "{}", dry("never"));
    assert!(line(dry("always")).starts_with("would replace "));
    assert!(dry("never").lines().any(|l| l.starts_with("would create ") && l.contains("sshd_config")));

    // RFC 3339 everywhere in --json.
    let rfc = |v: &serde_json::Value| v.as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok());
    let snaps = env.json(&["snapshots"]);
    assert!(rfc(&snaps[0]["time"]), "{snaps}");
    let ls = env.ok(&["--json", "ls", "latest", &format!("{s}/etc/ssh/ssh_config")]);
    let node: serde_json::Value = serde_json::from_str(ls.lines().last().unwrap()).unwrap();
    assert!(rfc(&node["mtime"]) && rfc(&node["ctime"]), "{node}");
    let found = env.json(&["find", "ssh_config"]);
    assert!(rfc(&found[0]["hits"][0]["mtime"]), "{found}");
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
// run without end. Both refuse it; `check`, which visits each tree once,
// finishes.
cairn_test!(a_tree_bomb_is_refused_not_expanded_without_end, |env| {
    use cairn_format::tree::{Bytes, Node, NodeKind, Time, Tree};
    use cairn_format::{BlobKind, FORMAT_VERSION};
    env.init();
    let backend = cairn_backend::Backend::local(env.repo.to_str().unwrap()).unwrap();
    let repo = cairn_repo::Repository::open(backend, b"correct horse").unwrap().load_index().unwrap();
    let node = |name: &str, kind: NodeKind, subtree| Node {
        name: Bytes(name.as_bytes().to_vec()),
        kind,
        mode: if kind == NodeKind::Dir { 0o40755 } else { 0o100644 },
        uid: 0,
        gid: 0,
        user: None,
        group: None,
        mtime: Time(1_700_000_000, 0),
        ctime: Time(1_700_000_000, 0),
        size: 0,
        inode: 1,
        device: 1,
        links: 1,
        rdev: 0,
        content: vec![],
        subtree,
        target: None,
        xattrs: vec![],
    };
    let mut tree = Tree { nodes: vec![node("leaf", NodeKind::File, None)] };
    let mut writer = cairn_repo::PackWriter::new(BlobKind::Tree, 1 << 20);
    let mut top = None;
    for _ in 0..=40 {
        let bytes = tree.encode();
        let id = repo.repo().blob_id(&bytes);
        writer.add(repo.seal_blob(BlobKind::Tree, id, &bytes).unwrap()).unwrap();
        tree = Tree { nodes: vec![node("a", NodeKind::Dir, Some(id)), node("b", NodeKind::Dir, Some(id))] };
        top = Some(id);
    }
    let pack = writer.finish(repo.repo().keyring()).unwrap().unwrap();
    let (entry, _) = repo.repo().save_pack(pack).unwrap();
    repo.repo().save_index(&cairn_format::index::IndexFile { supersedes: vec![], packs: vec![entry] }).unwrap();
    let snap = cairn_format::snapshot::Snapshot {
        version: FORMAT_VERSION,
        time: jiff::Timestamp::now(),
        tree: top.unwrap(),
        paths: vec!["/bomb".into()],
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
    for args in [&["ls", "latest"][..], &["restore", "latest", "--target", target.to_str().unwrap()]] {
        let (code, err) = bounded(args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains("refer to the same trees over and over"), "{args:?}: {err}");
    }
    assert!(!target.exists() || std::fs::read_dir(&target).unwrap().count() == 0, "nothing restored");
    let (code, err) = bounded(&["check"]);
    assert!(code.is_some(), "check ended: {err}");
});

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

/// Flips one byte inside the first blob of every data pack.
fn damage_every_data_pack(env: &Env) {
    for p in env.repo_files("data") {
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[100] ^= 0x55;
        std::fs::write(&p, bytes).unwrap();
    }
}

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

// Found by trying it: restoring again, as an ordinary user, over an earlier
// restore that holds a read-only folder (mode 0555 in the snapshot) failed
// with "Permission denied" for every file in it, even with --overwrite always.
cairn_test!(an_ordinary_user_restores_again_over_read_only_folders, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("ro")).unwrap();
    std::fs::write(src.join("ro/f"), "one").unwrap();
    std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    // The test folder, repository and snapshot must be the user's to use.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    if is_root() {
        let status = Command::new("chown").args(["-R", "65534:65534"]).arg(&env.repo).status().unwrap();
        assert!(status.success());
    }
    let target = env.path("target");
    let spec = format!("{id}:{}", src.display());
    let t = target.to_str().unwrap();
    succeeded("first restore", env.run_unprivileged(&["restore", &spec, "--target", t]));
    succeeded("again, replacing", env.run_unprivileged(&["restore", &spec, "--target", t, "--overwrite", "always"]));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(target.join("ro")).unwrap().mode() & 0o777, 0o555, "its own mode again");
    assert_eq!(std::fs::read(target.join("ro/f")).unwrap(), b"one");
});
