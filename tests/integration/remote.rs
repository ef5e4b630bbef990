//! Repositories on S3-compatible storage: the same scenario as on a local
//! folder, against a real S3 server (moto_server, from PyPI) on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use crate::cairn_test;
use crate::util::{assert_same_tree, random_bytes};

/// A moto S3 server on a free loopback port, stopped on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] must be installed (.ci/run installs it)");
        let server = S3Server { child, port };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("moto_server did not start on port {port} (is moto[server] installed? .ci/run installs it)");
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a plain S3 `PUT /bucket` (moto accepts it unsigned).
    fn create_bucket(&self, name: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

cairn_test!(s3_repository_backup_incremental_restore_check_prune, |env| {
    let server = S3Server::start();
    server.create_bucket("cairn-test");
    let endpoint = format!("s3.endpoint={}", server.endpoint());
    let run = |args: &[&str]| {
        let mut a = vec!["-o", &endpoint];
        a.extend_from_slice(args);
        let out = env
            .cmd()
            .env("CAIRN_REPOSITORY", "s3:cairn-test/backups/host1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .args(&a)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cairn {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("media.bin"), random_bytes(2_000_000, 41)).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("etc/f{i}.conf")), format!("setting = {i}\n")).unwrap();
    }
    run(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1", "--pack-size-mib", "1"]);
    run(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("etc/f3.conf"), "setting = changed\n").unwrap();
    let second: serde_json::Value = serde_json::from_str(&run(&["--json", "backup", src.to_str().unwrap()])).unwrap();
    assert_eq!(second["files_changed"], 1, "{second}");
    assert_eq!(second["files_unchanged"], 20, "{second}");

    // A no-change backup makes a handful of requests: config, key, lists of
    // keys, snapshots, plans and index, one index file, the parent's tree
    // pack, the run marker (written, updated, deleted) and the snapshot.
    let out = env
        .cmd()
        .env("CAIRN_REPOSITORY", "s3:cairn-test/backups/host1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .args(["-o", &endpoint, "-v", "-q", "backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let requests: u64 = err
        .split("cairn: ")
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {err:?}"));
    eprintln!("no-change backup on S3: {}", err.trim());
    assert!(requests > 0 && requests <= 20, "{err}");

    let target = env.path("restored");
    run(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap(), "--verify"]);
    assert_same_tree(&src, &target);
    assert!(run(&["check", "--read-data"]).contains("no errors"));
    run(&["forget", "--keep-last", "1", "--prune"]);
    assert!(run(&["check", "--read-data"]).contains("no errors"));
    let snaps: serde_json::Value = serde_json::from_str(&run(&["--json", "snapshots"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let again = env.path("again");
    run(&["restore", &format!("latest:{}", src.display()), "--target", again.to_str().unwrap()]);
    assert_same_tree(&src, &again);
});

cairn_test!(s3_errors_name_the_cause_in_one_line, |env| {
    let server = S3Server::start();
    let run = |repo: &str, endpoint: &str| {
        env.cmd()
            .env("CAIRN_REPOSITORY", repo)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .args(["-o", &format!("s3.endpoint={endpoint}"), "init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"])
            .output()
            .unwrap()
    };
    let out = run("s3:no-such-bucket/x", &server.endpoint());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bucket does not exist") && err.lines().count() == 1, "{err}");
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = run("s3:any-bucket/x", &format!("http://127.0.0.1:{closed}"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unreachable") && err.lines().count() == 1, "{err}");
});
