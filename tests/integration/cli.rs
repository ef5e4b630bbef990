//! The documented workflow, end to end through the binary.

use std::os::unix::fs::PermissionsExt;

use crate::cairn_test;
use crate::util::{assert_same_tree, random_bytes};

fn make_source(root: &std::path::Path) {
    std::fs::create_dir_all(root.join("config/app.d")).unwrap();
    std::fs::create_dir_all(root.join("media/empty")).unwrap();
    std::fs::write(root.join("config/app.conf"), "listen = 8080\n").unwrap();
    std::fs::write(root.join("config/app.d/tls.conf"), "cert = /etc/x.pem\n").unwrap();
    std::fs::set_permissions(root.join("config/app.d/tls.conf"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(root.join("media/photo.jpg"), random_bytes(300_000, 1)).unwrap();
    std::fs::write(root.join("media/zeros.img"), vec![0u8; 200_000]).unwrap();
    std::os::unix::fs::symlink("photo.jpg", root.join("media/latest.jpg")).unwrap();
    std::fs::hard_link(root.join("config/app.conf"), root.join("config/app.conf.bak")).unwrap();
    xattr::set(root.join("config/app.conf"), "user.origin", b"test").ok();
    xattr::set(root.join("config/app.d"), "user.kind", b"folder").ok();
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(root.join("media/photo.jpg"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("media/latest.jpg"), Some(4321), Some(8765)).unwrap();
    }
}

cairn_test!(backup_list_restore_dump_check, |env| {
    let src = env.path("src");
    make_source(&src);
    env.init();
    let b = env.json(&["backup", src.to_str().unwrap(), "--tag", "nightly"]);
    assert_eq!(b["files_new"], 5, "{b}");
    assert_eq!(b["errors"], 0);

    let dump_cmd = "printf 'CREATE TABLE t (id int);\\nINSERT INTO t VALUES (1);\\n'";
    let d = env.json(&["backup", "--stdin-from-command", "--stdin-filename", "db.sql", "--", "sh", "-c", dump_cmd]);
    assert_eq!(d["files_new"], 1);

    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert_eq!(snaps[0]["tags"][0], "nightly");

    let snap = snaps[0]["short_id"].as_str().unwrap().to_string();
    let ls = env.ok(&["ls", &snap]);
    assert!(ls.contains("/config/app.d/tls.conf"), "{ls}");
    assert!(ls.contains("/media/latest.jpg"), "{ls}");

    let dump = env.ok(&["dump", "latest", "db.sql"]);
    assert_eq!(dump, "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n");

    let target = env.path("restored");
    let spec = format!("{snap}:{}", src.display());
    let out = env.run(&["restore", &spec, "--target", target.to_str().unwrap(), "--verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Not a terminal: no progress animation on stderr.
    assert!(!out.stderr.contains(&b'\r'), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&src, &target);
    // The all-zero file was restored with a hole.
    use std::os::unix::fs::MetadataExt;
    assert!(std::fs::metadata(target.join("media/zeros.img")).unwrap().blocks() * 512 < 200_000);

    let check = env.run(&["check", "--read-data"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("no errors"));
});

cairn_test!(xattrs_follow_changes_and_carry_over_unchanged_files, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let (kept, changed) = (src.join("kept.txt"), src.join("changed.txt"));
    std::fs::write(&kept, "kept\n").unwrap();
    std::fs::write(&changed, "changed\n").unwrap();
    if xattr::set(&kept, "user.a", b"1").is_err() {
        eprintln!("no user xattrs on this file system; skipped");
        return;
    }
    xattr::set(&changed, "user.a", b"1").unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Only an attribute changes: size and mtime stay, the ctime moves.
    xattr::set(&changed, "user.a", b"2").unwrap();
    xattr::set(&changed, "user.b", b"new").unwrap();
    let b = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(b["files_unchanged"], 1, "{b}");
    // A no-change backup takes the attributes over from its parent.
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("r");
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    assert_eq!(xattr::get(target.join("changed.txt"), "user.a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(xattr::get(target.join("changed.txt"), "user.b").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(xattr::get(target.join("kept.txt"), "user.a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_same_tree(&src, &target);
});

cairn_test!(an_unprivileged_restore_sets_user_xattrs_on_read_only_files, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let ro = src.join("read-only.txt");
    std::fs::write(&ro, "fixed\n").unwrap();
    if xattr::set(&ro, "user.origin", b"config").is_err() {
        eprintln!("no user xattrs on this file system; skipped");
        return;
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o444)).unwrap();
    // Everything as one unprivileged user (65534 when the tests run as root).
    for p in [env.dir.path(), src.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let init = env.run_unprivileged(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let backup = env.run_unprivileged(&["backup", src.to_str().unwrap()]);
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    let target = env.path("r");
    let restore =
        env.run_unprivileged(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    // The attribute goes on before the mode makes the file read-only: the
    // other way round the kernel refuses an unprivileged owner.
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    let back = target.join("read-only.txt");
    assert_eq!(xattr::get(&back, "user.origin").unwrap().as_deref(), Some(&b"config"[..]));
    assert_eq!(std::fs::metadata(&back).unwrap().permissions().mode() & 0o777, 0o444);
    assert_eq!(std::fs::read(&back).unwrap(), b"fixed\n");
});

cairn_test!(restore_never_overwrites_by_default, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "snapshot content").unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.path("t");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("a"), "precious local edit").unwrap();
    let spec = format!("latest:{}", src.display());
    env.ok(&["restore", &spec, "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "precious local edit");
    env.ok(&["restore", &spec, "--target", target.to_str().unwrap(), "--overwrite", "if-changed"]);
    assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "snapshot content");
});

cairn_test!(restore_single_file_include_exclude_dry_run, |env| {
    let src = env.path("src");
    make_source(&src);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let t1 = env.path("one");
    let spec = format!("latest:{}/media/photo.jpg", src.display());
    env.ok(&["restore", &spec, "--target", t1.to_str().unwrap()]);
    assert_eq!(std::fs::read(t1.join("photo.jpg")).unwrap(), random_bytes(300_000, 1));
    assert_eq!(std::fs::read_dir(&t1).unwrap().count(), 1);

    let t2 = env.path("inc");
    let spec = format!("latest:{}", src.display());
    env.ok(&["restore", &spec, "--target", t2.to_str().unwrap(), "--include", "*.conf", "--exclude", "app.d"]);
    assert!(t2.join("config/app.conf").exists());
    assert!(!t2.join("config/app.d").exists());
    assert!(!t2.join("media").exists());

    let t3 = env.path("dry");
    let out = env.ok(&["restore", &spec, "--target", t3.to_str().unwrap(), "--dry-run"]);
    assert!(out.contains("photo.jpg"), "{out}");
    assert!(!t3.exists());
});

cairn_test!(point_in_time_and_filters, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    env.init();
    for (day, text) in [("2026-11-10T02:00:00Z", "v1"), ("2026-11-17T02:00:00Z", "v2"), ("2026-11-20T02:00:00Z", "v3")]
    {
        std::fs::write(src.join("f"), text).unwrap();
        env.ok(&["backup", src.to_str().unwrap(), "--time", day, "--host", "db1"]);
    }
    let f = format!("{}/f", src.display());
    assert_eq!(env.ok(&["dump", "latest", &f]), "v3");
    assert_eq!(env.ok(&["dump", "latest", &f, "--at", "2026-11-18T00:00:00Z"]), "v2");
    assert_eq!(env.ok(&["dump", "latest", &f, "--at", "2026-11-17T02:00:00Z"]), "v2");
    assert_eq!(env.ok(&["dump", "latest", &f, "--at", "2026-11-16"]), "v1");
    assert!(!env.run(&["dump", "latest", &f, "--at", "2026-11-01"]).status.success());
    assert!(!env.run(&["dump", "latest", &f, "--host", "other"]).status.success());
    assert_eq!(env.json(&["snapshots", "--host", "db1"]).as_array().unwrap().len(), 3);
});

cairn_test!(excludes_and_markers, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("keep")).unwrap();
    std::fs::create_dir_all(src.join("cache")).unwrap();
    std::fs::create_dir_all(src.join("build")).unwrap();
    std::fs::write(src.join("keep/a.txt"), "a").unwrap();
    std::fs::write(src.join("keep/b.tmp"), "b").unwrap();
    std::fs::write(src.join("cache/c"), "c").unwrap();
    std::fs::write(src.join("build/CACHEDIR.TAG"), "x").unwrap();
    std::fs::write(env.path("excludes.txt"), "# comment\ncache\n").unwrap();
    env.init();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude-file",
        env.path("excludes.txt").to_str().unwrap(),
        "--exclude-if-present",
        "CACHEDIR.TAG",
    ]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("keep/a.txt"));
    assert!(!ls.contains("b.tmp"), "{ls}");
    assert!(!ls.contains("/cache"), "{ls}");
    assert!(!ls.contains("/build"), "{ls}");
});

cairn_test!(special_files_are_recorded_not_read, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    nix::unistd::mkfifo(&src.join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    env.init();
    // A fifo with no writer would block a reader forever: it must not be opened.
    env.ok(&["backup", src.to_str().unwrap()]);
    let ls = env.ok(&["ls", "latest", "-l"]);
    assert!(ls.lines().any(|l| l.starts_with('p') && l.ends_with("/pipe")), "{ls}");
    let t = env.path("t");
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", t.to_str().unwrap()]);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(t.join("pipe")).unwrap().file_type().is_fifo());
});

cairn_test!(password_from_file_command_and_prompt, |env| {
    env.init();
    let file = env.path("pw");
    std::fs::write(&file, "correct horse\n").unwrap();
    let out =
        env.cmd().env_remove("CAIRN_PASSWORD").env("CAIRN_PASSWORD_FILE", &file).arg("snapshots").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env
        .cmd()
        .env_remove("CAIRN_PASSWORD")
        .args(["--password-command", "echo correct horse", "snapshots"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        env.cmd().env_remove("CAIRN_PASSWORD").args(["--password-command", "exit 1", "snapshots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password command"));
    // No terminal and no password: a clear error, not a hang.
    let out =
        env.cmd().env_remove("CAIRN_PASSWORD").arg("snapshots").stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no password given"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
});

cairn_test!(init_on_a_terminal_asks_twice, |env| {
    // `script` gives cairn a terminal; the password is typed twice.
    let cmd = format!(
        "printf 'pw1\\npw1\\n' | script -qec '{} -r {} init --kdf-memory-mib 1 --kdf-iterations 1' /dev/null",
        env!("CARGO_BIN_EXE_cairn"),
        env.repo.display()
    );
    let out = std::process::Command::new("sh").arg("-c").arg(&cmd).env_remove("CAIRN_PASSWORD").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("enter password again"), "{text}");
    assert!(text.contains("created cairn repository"), "{text}");
    let out = env.cmd().env("CAIRN_PASSWORD", "pw1").arg("snapshots").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
});

cairn_test!(check_reads_data_subsets, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(400_000, i)).unwrap();
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let total = env.repo_files("data").len() + env.repo_files("tree").len();
    let mut read = 0;
    for n in 1..=3 {
        let r = env.json(&["check", "--read-data-subset", &format!("{n}/3")]);
        read += r["packs_read"].as_u64().unwrap() as usize;
    }
    assert_eq!(read, total, "the three thirds cover every pack once");
    let all = env.json(&["check", "--read-data-subset", "100%"]);
    assert_eq!(all["packs_read"].as_u64().unwrap() as usize, total);
    assert!(!env.run(&["check", "--read-data-subset", "4/3"]).status.success());
});

cairn_test!(two_backups_at_once_into_one_repository, |env| {
    env.init();
    let dirs: Vec<_> = (0..2)
        .map(|i| {
            let d = env.path(&format!("host{i}"));
            std::fs::create_dir_all(&d).unwrap();
            for f in 0..20 {
                // Half the content is shared between the two sources.
                std::fs::write(
                    d.join(format!("f{f}")),
                    random_bytes(50_000, if f % 2 == 0 { f } else { 1000 * i + f }),
                )
                .unwrap();
            }
            d
        })
        .collect();
    let children: Vec<_> =
        dirs.iter().map(|d| env.cmd().args(["backup", "-q", d.to_str().unwrap()]).spawn().unwrap()).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 2);
    env.ok(&["check", "--read-data"]);
    for d in &dirs {
        let t = env.path(&format!("restore-{}", d.file_name().unwrap().to_str().unwrap()));
        env.ok(&[
            "restore",
            &format!("latest:{}", d.display()),
            "--path",
            d.to_str().unwrap(),
            "--target",
            t.to_str().unwrap(),
        ]);
        assert_same_tree(d, &t);
    }
});

cairn_test!(listings_into_a_closed_pipe_end_quietly, |env| {
    // `cairn ls latest | head -1`: the reader goes away; cairn must stop
    // with the broken-pipe exit code, not panic in println!.
    let src = env.path("src");
    make_source(&src);
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("config/new.conf"), "x = 1\n").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let snaps = env.json(&["snapshots"]);
    let id = |i: usize| snaps[i]["short_id"].as_str().unwrap().to_string();
    let (first, second) = (id(0), id(1));
    for args in [
        vec!["ls", "latest"],
        vec!["ls", "--long", "latest"],
        vec!["--json", "ls", "latest"],
        vec!["snapshots"],
        vec!["find", "*.conf"],
        vec!["diff", &first, &second],
    ] {
        let mut child = env
            .cmd()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before cairn has opened the repository and written a line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
    }
});

cairn_test!(generated_bash_completion_loads_and_completes_commands, |env| {
    let script = env.path("cairn.bash");
    std::fs::write(&script, env.ok(&["generate", "--completion", "bash"])).unwrap();
    // Load it as a user's shell would, then ask for what `cairn mo<TAB>` offers.
    let probe = format!(
        "source {} && complete -p cairn && COMP_WORDS=(cairn mo) COMP_CWORD=1 && _cairn cairn mo cairn && echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = std::process::Command::new("bash").args(["-c", &probe]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().next().is_some_and(|l| l.starts_with("complete ") && l.ends_with(" cairn")), "{text}");
    assert_eq!(text.lines().last(), Some("mount"), "{text}");
});

cairn_test!(generated_man_pages_render_with_man, |env| {
    let dir = env.path("man");
    env.ok(&["generate", "--man", dir.to_str().unwrap()]);
    for (page, wants) in [("cairn.1", "mount"), ("cairn-mount.1", "--allow-other"), ("cairn-backup.1", "--exclude")] {
        let path = dir.join(page);
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o644, "{page}: readable by everyone");
        let out =
            std::process::Command::new("man").args(["-P", "cat", "-l"]).arg(&path).output().expect("man (man-db)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("NAME") && text.contains(wants), "{page}: {text}");
    }
    // Nothing asked for is a usage error, not silence.
    assert_eq!(env.run(&["generate"]).status.code(), Some(2));
});
