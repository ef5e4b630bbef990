//! Failures a user meets: each a clear message and the documented exit code.

use std::os::unix::fs::PermissionsExt;

use crate::cairn_test;
use crate::util::{files_under, random_bytes};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

cairn_test!(wrong_password_exits_12, |env| {
    env.init();
    let out = env.cmd().env("CAIRN_PASSWORD", "wrong").args(["snapshots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("wrong password"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
});

cairn_test!(missing_repository_exits_10, |env| {
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("no cairn repository at"), "{}", stderr(&out));
    assert!(stderr(&out).contains("cairn init"), "{}", stderr(&out));
});

cairn_test!(init_twice_is_refused, |env| {
    env.init();
    let out = env.run(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
});

cairn_test!(failing_dump_command_writes_no_snapshot, |env| {
    env.init();
    let out = env.run(&[
        "backup",
        "--stdin-from-command",
        "--stdin-filename",
        "db.sql",
        "--",
        "sh",
        "-c",
        "echo partial; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("failed (exit status: 3); no snapshot was written"), "{}", stderr(&out));
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 0);
    let out = env.run(&["backup", "--stdin-from-command", "--", "/nonexistent/pg_dump"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot run /nonexistent/pg_dump"), "{}", stderr(&out));
    env.ok(&["check"]);
});

cairn_test!(unreadable_files_warn_and_exit_3, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::write(src.join("ok.txt"), "fine").unwrap();
    std::fs::write(src.join("secret.txt"), "no").unwrap();
    std::fs::write(src.join("zz.txt"), "after").unwrap();
    std::fs::write(src.join("locked/inner"), "no").unwrap();
    std::fs::set_permissions(src.join("secret.txt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads everything; run as an unprivileged user when we are root.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = |args: &[&str]| env.run_unprivileged(args);
    let init = as_nobody(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let out = as_nobody(&["backup", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("secret.txt") && e.contains("Permission denied"), "{e}");
    assert!(e.contains("locked"), "{e}");
    let ls = as_nobody(&["ls", "latest"]);
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("ok.txt"), "{ls}");
    assert!(!ls.contains("secret.txt"), "{ls}");
    // The files read in the same batch as the unreadable one keep their own content.
    let target = env.path("restored");
    let out = as_nobody(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(target.join("ok.txt")).unwrap(), "fine");
    assert_eq!(std::fs::read_to_string(target.join("zz.txt")).unwrap(), "after");
    assert!(!target.join("secret.txt").exists());
});

cairn_test!(missing_source_path_is_fatal_when_nothing_is_readable, |env| {
    env.init();
    let out = env.run(&["backup", env.path("does-not-exist").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no source could be read"), "{}", stderr(&out));
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 0);
});

cairn_test!(repository_of_a_newer_version_is_refused, |env| {
    env.init();
    // What a future cairn would write: a key file of version 2, named by its hash.
    for key in env.repo_files("keys") {
        let text = std::fs::read_to_string(&key).unwrap().replace("\"version\": 1", "\"version\": 2");
        std::fs::remove_file(&key).unwrap();
        std::fs::write(key.with_file_name(blake3::hash(text.as_bytes()).to_hex().as_str()), text).unwrap();
    }
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("newer than this cairn supports"), "{}", stderr(&out));
    assert!(stderr(&out).contains("upgrade cairn"), "{}", stderr(&out));
});

cairn_test!(check_with_the_storage_gone_part_way_fails_clearly_and_changes_nothing, |env| {
    // One data pack larger than check's 4 MiB read window, so the storage
    // can go away between two windows of the same pack, and a few small
    // files for a second pack kind.
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(11 << 20, 7)).unwrap();
    for i in 0..5 {
        std::fs::write(src.join(format!("small-{i}.txt")), format!("file {i}\n")).unwrap();
    }
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    let clean = env.run(&["-v", "check", "--read-data"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    let requests: u64 = stderr(&clean)
        .lines()
        .find_map(|l| l.strip_prefix("cairn: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no request count: {}", stderr(&clean)));
    let before = files_under(&env.repo);
    for gone_after in 0..requests {
        let out = env
            .cmd()
            .env("CAIRN_TEST_FAULTS", format!("gone_after={gone_after}"))
            .args(["check", "--read-data"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "gone after {gone_after}: {err}");
        assert!(!err.contains("panicked"), "gone after {gone_after}: {err}");
        assert!(err.contains("gone"), "gone after {gone_after}: the cause is not named: {err}");
    }
    // Nothing was changed or left behind, and the repository still checks clean.
    assert_eq!(files_under(&env.repo), before);
    assert!(env.ok(&["check", "--read-data"]).contains("no errors"));
});
