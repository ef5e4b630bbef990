//! The cold-storage split: data packs in a second location (or the same
//! bucket under a colder storage class), everything else in the first, so
//! commands that need no file content never touch the cold tier.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::cairn_test;
use crate::servers::Server;
use crate::util::{INIT_SMALL, assert_same_tree, files_under, random_bytes};

/// stderr of a `-v` run mentions the cold tier only if it was touched.
const COLD_LINE: &str = "of which to the cold location";

cairn_test!(data_packs_live_in_the_cold_location_and_only_content_reads_touch_it, |env| {
    let cold = env.path("cold");
    let cold_arg = format!("fs:{}", cold.display());
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("media.bin"), random_bytes(1_500_000, 3)).unwrap();
    std::fs::write(src.join("etc/app.conf"), "port = 80\n").unwrap();
    let s = src.to_str().unwrap();
    let with_cold = |args: &[&str]| {
        let mut a = vec!["--cold-repo", &cold_arg, "-v"];
        a.extend_from_slice(args);
        let out = env.run(&a);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), err)
    };
    with_cold(INIT_SMALL);
    with_cold(&["backup", s]);
    std::fs::write(src.join("etc/app.conf"), "port = 8080\n").unwrap();
    with_cold(&["backup", s]);

    // Data packs only in the cold location; nothing else there.
    assert!(env.repo_files("data").is_empty(), "data packs in the hot location");
    assert!(!files_under(&cold.join("data")).is_empty(), "no data packs in the cold location");
    for folder in ["snapshots", "index", "tree", "keys"] {
        assert!(files_under(&cold.join(folder)).is_empty(), "{folder} in the cold location");
    }
    assert!(!env.repo_files("tree").is_empty() && !env.repo_files("index").is_empty());

    // Listing, browsing, diff, find and check without data read make no
    // request to the cold tier.
    let snaps: serde_json::Value = serde_json::from_str(&with_cold(&["--json", "snapshots"]).0).unwrap();
    let (a, b) = (snaps[0]["id"].as_str().unwrap().to_string(), snaps[1]["id"].as_str().unwrap().to_string());
    for args in [vec!["snapshots"], vec!["ls", "latest"], vec!["find", "app.conf"], vec!["diff", &a, &b], vec!["check"]]
    {
        let (out, err) = with_cold(&args);
        assert!(!err.contains(COLD_LINE), "{args:?} touched the cold tier: {err}\n{out}");
    }
    // `stats` lists the cold tier for the stored size, and reads nothing there.
    let (_, err) = with_cold(&["stats"]);
    assert!(err.contains("to the cold location: 1 storage requests (0 reads"), "{err}");
    // Restoring content reads it, and is exact.
    let target = env.path("restored");
    let (_, err) = with_cold(&["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap(), "--verify"]);
    assert!(err.contains(COLD_LINE), "{err}");
    assert_same_tree(&src, &target);
    assert!(with_cold(&["check", "--read-data"]).0.contains("no errors"));
    with_cold(&["forget", "--keep-last", "1", "--prune", "--max-unused", "0%"]);
    assert!(with_cold(&["check", "--read-data"]).0.contains("no errors"));

    // Without the cold location the repository refuses, saying what to give.
    let out = env.run(&["snapshots"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cold location") && err.contains("--cold-repo"), "{err}");
    // And a cold location given to a repository without one is refused too.
    let plain = env.path("plain");
    let out = env
        .cmd()
        .env("CAIRN_REPOSITORY", &plain)
        .args(["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = env.cmd().env("CAIRN_REPOSITORY", &plain).args(["--cold-repo", &cold_arg, "snapshots"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no cold location"));
});

/// Storage classes of the objects under `prefix`, by key, from moto's
/// bucket listing (moto answers unsigned requests).
fn storage_classes(server: &Server, bucket: &str) -> Vec<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(s, "GET /{bucket}?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", server.port)
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let tag = |part: &str, name: &str| -> String {
        part.split(&format!("<{name}>")).nth(1).and_then(|r| r.split(&format!("</{name}>")).next()).unwrap_or("").into()
    };
    reply.split("<Contents>").skip(1).map(|c| (tag(c, "Key"), tag(c, "StorageClass"))).collect()
}

cairn_test!(data_packs_can_go_to_a_colder_storage_class_in_the_same_bucket, |env| {
    let server = Server::moto();
    server.create_bucket("split");
    let t = server.s3_target("moto", "split/repo");
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("media.bin"), random_bytes(800_000, 5)).unwrap();
    let cold = [
        "--cold-repo",
        "s3:split/repo",
        "--cold-option",
        &t.options[0],
        "--cold-option",
        "s3.storage_class=STANDARD_IA",
    ];
    let run = |args: &[&str]| {
        let out = t.cmd(&env).args(cold).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    run(&["backup", src.to_str().unwrap()]);
    let classes = storage_classes(&server, "split");
    let data: Vec<_> = classes.iter().filter(|(k, _)| k.starts_with("repo/data/")).collect();
    assert!(!data.is_empty(), "{classes:?}");
    assert!(data.iter().all(|(_, c)| c == "STANDARD_IA"), "{classes:?}");
    let rest: Vec<_> = classes.iter().filter(|(k, _)| !k.starts_with("repo/data/")).collect();
    assert!(rest.len() >= 4 && rest.iter().all(|(_, c)| c == "STANDARD"), "{classes:?}");
    let target = env.path("restored");
    run(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &target);
});
