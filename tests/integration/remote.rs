//! Repositories on remote storage: one end-to-end scenario run against a
//! local folder, two S3 servers (s3s-fs, moto_server) and an SSH server
//! (sshd, SFTP), all real and on 127.0.0.1; then injected faults.

use std::net::TcpListener;
use std::process::Output;

use crate::cairn_test;
use crate::servers::{Server, Target};
use crate::util::{Env, INIT_SMALL, assert_same_tree, random_bytes, succeeded};

fn run(env: &Env, t: &Target, args: &[&str]) -> Output {
    t.cmd(env).args(args).output().unwrap()
}

fn ok(env: &Env, t: &Target, args: &[&str]) -> String {
    succeeded(&format!("[{}] cairn {args:?}", t.name), run(env, t, args))
}

fn json(env: &Env, t: &Target, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(env, t, &a)).unwrap()
}

/// The request count `-v` prints on standard error.
fn requests(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("cairn: "))
        .filter(|l| l.contains("storage requests"))
        .find_map(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {stderr:?}"))
}

/// A source tree: a 2 MB incompressible file and 20 small config files.
fn make_source(env: &Env, name: &str) -> std::path::PathBuf {
    let src = env.path(name);
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("media.bin"), random_bytes(2_000_000, 41)).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("etc/f{i}.conf")), format!("setting = {i}\n")).unwrap();
    }
    src
}

/// init, backup, incremental backup, no-change backup (requests counted),
/// restore, check --read-data, tag, find, forget --prune, check, restore.
fn end_to_end(env: &Env, t: &Target) {
    let src = make_source(env, "src");
    let s = src.to_str().unwrap();
    ok(env, t, INIT_SMALL);
    ok(env, t, &["backup", s]);
    std::fs::write(src.join("etc/f3.conf"), "setting = changed\n").unwrap();
    let second = json(env, t, &["backup", s]);
    assert_eq!(second["files_changed"], 1, "[{}] {second}", t.name);
    assert_eq!(second["files_unchanged"], 20, "[{}] {second}", t.name);

    // A no-change backup makes a handful of requests: config, key, lists of
    // keys, snapshots, plans and index, one index file, the parent's tree
    // pack, the run marker (written, updated, deleted) and the snapshot.
    let out = run(env, t, &["-v", "-q", "backup", s]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "[{}] {err}", t.name);
    eprintln!("[{}] no-change backup: {}", t.name, err.trim());
    let n = requests(&err);
    assert!(n > 0 && n <= 24, "[{}] {err}", t.name);

    let target = env.path(&format!("restored-{}", t.name));
    ok(env, t, &["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap(), "--verify"]);
    assert_same_tree(&src, &target);
    assert!(ok(env, t, &["check", "--read-data"]).contains("no errors"));
    ok(env, t, &["tag", "--add", "kept", "latest"]);
    assert!(ok(env, t, &["find", "f3.conf"]).contains("f3.conf"));
    ok(env, t, &["forget", "--keep-last", "1", "--prune"]);
    assert!(ok(env, t, &["check", "--read-data"]).contains("no errors"));
    let snaps = json(env, t, &["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1, "[{}]", t.name);
    assert_eq!(snaps[0]["tags"][0], "kept", "[{}] {snaps}", t.name);
    let again = env.path(&format!("again-{}", t.name));
    ok(env, t, &["restore", &format!("latest:{s}"), "--target", again.to_str().unwrap()]);
    assert_same_tree(&src, &again);
}

cairn_test!(end_to_end_on_a_local_folder, |env| {
    let t = Target { name: "fs", repo: format!("fs:{}", env.repo.display()), env: vec![], options: vec![] };
    end_to_end(&env, &t);
});

cairn_test!(end_to_end_on_s3_s3s_fs, |env| {
    let server = Server::s3s_fs(&env.path("s3s"), &["cairn-test"]);
    end_to_end(&env, &server.s3_target("s3s-fs", "cairn-test/backups/host1"));
});

cairn_test!(end_to_end_on_s3_moto, |env| {
    let server = Server::moto();
    server.create_bucket("cairn-test");
    end_to_end(&env, &server.s3_target("moto", "cairn-test/backups/host1"));
});

cairn_test!(end_to_end_on_sftp, |env| {
    let (server, key) = Server::sshd(&env.path("sshd"));
    end_to_end(&env, &server.sftp_target("sftp", &key, &env.path("sftp-repo")));
});

cairn_test!(s3_errors_name_the_cause_in_one_line, |env| {
    let server = Server::moto();
    let run = |repo: &str, endpoint: &str| {
        env.cmd()
            .env("CAIRN_REPOSITORY", repo)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .args([
                "-o",
                &format!("s3.endpoint={endpoint}"),
                "-o",
                "retries=1",
                "init",
                "--kdf-memory-mib",
                "1",
                "--kdf-iterations",
                "1",
            ])
            .output()
            .unwrap()
    };
    let out = run("s3:no-such-bucket/x", &server.endpoint());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bucket does not exist") && err.lines().count() == 1, "{err}");
    // Running again will not make the bucket: no "run again" advice (issue 15, case 12).
    assert!(!err.contains("run again"), "{err}");
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = run("s3:any-bucket/x", &format!("http://127.0.0.1:{closed}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unreachable") && err.lines().count() == 1, "{err}");
});

fn with_faults(env: &Env, t: &Target, faults: &str, args: &[&str]) -> (Output, String) {
    let out = t.cmd(env).env("CAIRN_TEST_FAULTS", faults).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

/// Counts the faults the injection layer reports on standard error.
fn injected(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.starts_with("cairn: injected transient fault")).count()
}

cairn_test!(a_tenth_of_requests_failing_transiently_still_backs_up_and_restores_exactly, |env| {
    let server = Server::s3s_fs(&env.path("s3s"), &["faults"]);
    let fs = Target { name: "fs", repo: format!("fs:{}", env.repo.display()), env: vec![], options: vec![] };
    let s3 = server.s3_target("s3s-fs", "faults/repo");
    let faults = "fail=0.1,latency_ms=2";
    for t in [fs, s3] {
        let src = make_source(&env, &format!("src-{}", t.name));
        let s = src.to_str().unwrap();
        let mut total = 0;
        let mut must = |args: &[&str]| {
            let (out, err) = with_faults(&env, &t, faults, args);
            assert!(out.status.success(), "[{}] {args:?} under faults: {err}", t.name);
            total += injected(&err);
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        must(INIT_SMALL);
        must(&["backup", s]);
        std::fs::write(src.join("more.bin"), random_bytes(1_500_000, 7)).unwrap();
        must(&["backup", s]);
        let target = env.path(&format!("restored-{}", t.name));
        must(&["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap(), "--verify"]);
        assert_same_tree(&src, &target);
        assert!(must(&["check", "--read-data"]).contains("no errors"));
        eprintln!("[{}] {total} transient faults injected and survived", t.name);
        // Every tenth request of each process fails: 5 on s3s-fs (where
        // the cache saves requests) and 9 on fs when this was written.
        assert!(total >= 3, "[{}] only {total} faults were injected", t.name);
        // And without faults the repository is just as sound.
        assert!(ok(&env, &t, &["check", "--read-data"]).contains("no errors"));
    }
});

cairn_test!(a_backend_gone_for_good_fails_clearly_writes_no_snapshot_and_leaves_a_sound_repository, |env| {
    let server = Server::s3s_fs(&env.path("s3s"), &["gone"]);
    let t = server.s3_target("s3s-fs", "gone/repo");
    let src = make_source(&env, "src");
    let s = src.to_str().unwrap();
    ok(&env, &t, INIT_SMALL);
    ok(&env, &t, &["backup", s]);
    std::fs::write(src.join("new.bin"), random_bytes(3_000_000, 9)).unwrap();
    let mut failures = 0;
    for gone_after in [2, 5, 8, 11, 14, 17, 20, 25, 30, 40, 60] {
        let (out, err) = with_faults(&env, &t, &format!("gone_after={gone_after}"), &["backup", s]);
        if out.status.success() {
            break;
        }
        failures += 1;
        assert_eq!(out.status.code(), Some(1), "gone after {gone_after}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "gone after {gone_after}: one line expected: {err}");
        assert!(lines[0].contains("the service is gone"), "gone after {gone_after}: {err}");
        let snaps = json(&env, &t, &["snapshots"]);
        assert_eq!(snaps.as_array().unwrap().len(), 1, "gone after {gone_after}: a snapshot was written");
        assert!(ok(&env, &t, &["check", "--read-data"]).contains("no errors"), "gone after {gone_after}");
    }
    assert!(failures >= 5, "only {failures} runs failed");
    ok(&env, &t, &["backup", s]);
    let target = env.path("restored");
    ok(&env, &t, &["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap(), "--verify"]);
    assert_same_tree(&src, &target);
    assert!(ok(&env, &t, &["check", "--read-data"]).contains("no errors"));
});

cairn_test!(the_metadata_cache_saves_requests_and_survives_damage_and_deletion, |env| {
    let server = Server::s3s_fs(&env.path("s3s"), &["cached"]);
    let t = server.s3_target("s3s-fs", "cached/repo");
    let src = make_source(&env, "src");
    let s = src.to_str().unwrap();
    ok(&env, &t, INIT_SMALL);
    ok(&env, &t, &["backup", s]);
    let count = |extra: &[&str]| {
        let mut a = vec!["-v", "-q"];
        a.extend_from_slice(extra);
        a.extend(["backup", s]);
        let out = run(&env, &t, &a);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        eprintln!("no-change backup {extra:?}: {}", err.trim());
        requests(&err)
    };
    let cached = count(&[]);
    let uncached = count(&["--no-cache"]);
    // The cache serves the index file, the parent snapshot and its tree pack.
    assert!(cached + 3 <= uncached, "cached {cached}, uncached {uncached}");

    let caches = json(&env, &t, &["cache"]);
    let repo_cache = env.path("cache").join(caches["caches"][0]["repository"].as_str().unwrap());
    assert!(caches["caches"][0]["files"].as_u64().unwrap() >= 3, "{caches}");

    // Damage every cached file: each is checked against its name, dropped
    // and fetched again; the restore is exact.
    for f in crate::util::files_under(&repo_cache) {
        std::fs::write(&f, b"damaged").unwrap();
    }
    let target = env.path("restored");
    ok(&env, &t, &["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap(), "--verify"]);
    assert_same_tree(&src, &target);
    assert!(ok(&env, &t, &["check"]).contains("no errors"));
    // Deleting the cache loses nothing.
    std::fs::remove_dir_all(&repo_cache).unwrap();
    assert!(ok(&env, &t, &["check", "--read-data"]).contains("no errors"));
    assert!(repo_cache.exists());

    // `cache --cleanup` removes caches unused for --max-age days, only those.
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    std::fs::File::open(&repo_cache).unwrap().set_modified(month_ago).unwrap();
    let kept = json(&env, &t, &["cache", "--cleanup", "--max-age", "60"]);
    assert_eq!(kept["removed"].as_array().unwrap().len(), 0, "{kept}");
    let cleaned = json(&env, &t, &["cache", "--cleanup"]);
    assert_eq!(cleaned["removed"].as_array().unwrap().len(), 1, "{cleaned}");
    assert!(!repo_cache.exists());
});

cairn_test!(bandwidth_limits_hold_the_average_rate, |env| {
    // A lower bound on time, so no slow machine can fail it: only a limit
    // that does not hold can.
    let t = Target { name: "fs", repo: format!("fs:{}", env.repo.display()), env: vec![], options: vec![] };
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("media.bin"), random_bytes(2_000_000, 77)).unwrap();
    let s = src.to_str().unwrap();
    ok(&env, &t, INIT_SMALL);
    let start = std::time::Instant::now();
    ok(&env, &t, &["--limit-upload", "1024", "backup", s]);
    let up = start.elapsed();
    assert!(up.as_secs_f64() >= 1.8, "2 MB went up in {up:?} under a 1 MiB/s limit");
    let target = env.path("restored");
    let start = std::time::Instant::now();
    ok(
        &env,
        &t,
        &["--limit-download", "1024", "restore", &format!("latest:{s}"), "--target", target.to_str().unwrap()],
    );
    let down = start.elapsed();
    assert!(down.as_secs_f64() >= 1.8, "2 MB came down in {down:?} under a 1 MiB/s limit");
    assert_same_tree(&src, &target);
});

cairn_test!(an_unreachable_sftp_server_is_named_in_one_line, |env| {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = env
        .cmd()
        .env("CAIRN_REPOSITORY", format!("sftp:root@127.0.0.1:{closed}/srv/repo"))
        .args(["-o", "retries=0", "snapshots"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("SSH connection failed") && err.lines().count() == 1, "{err}");
});
