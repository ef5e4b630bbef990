//! `cairn serve` over real HTTP on 127.0.0.1: every endpoint of the
//! OpenAPI document answers, snapshots list and filter, folders browse,
//! downloads equal the files and ranges are exact, `..` in any spelling
//! is refused, and an address off loopback is refused before anything
//! is served (no authentication or TLS exists yet).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};

use crate::cairn_test;
use crate::util::{Env, random_bytes};

/// A running `cairn serve`, killed when dropped.
struct Served {
    child: Child,
    at: At,
}

/// Where a server is, and the token requests show (none: anonymous).
#[derive(Clone)]
struct At {
    addr: SocketAddr,
    token: Option<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cairn serve` with `args`; returns it and the lines it wrote
/// before serving (the address, and where this run's token is).
/// With `config_repo`, the repository comes from the config (-r and the
/// password are not given).
fn start(env: &Env, args: &[&str], token_line: bool, config_repo: bool) -> (Child, SocketAddr, Vec<String>) {
    let mut cmd = env.cmd();
    if config_repo {
        cmd.env_remove("CAIRN_REPOSITORY").env_remove("CAIRN_PASSWORD");
    }
    let mut child = cmd
        .arg("serve")
        .args(["--state-dir", env.path("state").to_str().unwrap()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cairn serve");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut lines = vec![String::new()];
    err.read_line(&mut lines[0]).unwrap();
    let addr = lines[0]
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {:?}", lines[0]));
    let mut more = String::new();
    if token_line {
        err.read_line(&mut more).unwrap();
        lines.push(more);
    }
    (child, addr, lines)
}

/// `cairn serve` on 127.0.0.1 with this run's own token, which it wrote
/// owner-only into the state folder.
fn serve(env: &Env) -> Served {
    let (child, addr, lines) = start(env, &["--config", "/dev/null", "--listen", "127.0.0.1:0"], true, false);
    let file = env.path("state").join(format!("serve-{}.token", addr.port()));
    assert!(lines[1].contains(file.to_str().unwrap()), "{lines:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&file).unwrap();
    Served { child, at: At { addr, token: Some(token) } }
}

/// Writes a config with repository `a` (the test's, its password in a
/// file) and `jobs` (`[job.NAME]` sections); its path and the state folder.
fn config_with(env: &Env, jobs: &str) -> (String, std::path::PathBuf) {
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let config = env.path("cairn.toml");
    let head =
        format!("[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n\n", env.repo.display(), pass.display());
    std::fs::write(&config, head + jobs).unwrap();
    (config.to_str().unwrap().to_string(), env.path("state"))
}

/// `cairn serve --config CONFIG ARGS` on 127.0.0.1 with this run's token;
/// with `config_repo`, serving the config's repository (no -r given).
fn serve_config(env: &Env, config: &str, args: &[&str], config_repo: bool) -> (Served, Vec<String>) {
    let all = [&["--config", config, "--listen", "127.0.0.1:0"][..], args].concat();
    let (child, addr, lines) = start(env, &all, true, config_repo);
    let token = std::fs::read_to_string(env.path("state").join(format!("serve-{}.token", addr.port()))).unwrap();
    (Served { child, at: At { addr, token: Some(token) } }, lines)
}

/// One answer: status, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends `target` exactly as given (no client normalizes its dots), with
/// `extra` header lines, and reads the answer to the end.
fn get(at: &At, target: &str, extra: &[&str]) -> Answer {
    request(at, "GET", target, extra)
}

/// [`get`] with any method.
fn request(at: &At, method: &str, target: &str, extra: &[&str]) -> Answer {
    let mut s = TcpStream::connect(at.addr).unwrap();
    // No answer in this time is a server stuck, not a slow one.
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", at.addr);
    if let Some(t) = &at.token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("GET {target}: no whole answer within 30 s ({e})"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|t| t == "chunked") {
        let (mut out, mut rest) = (Vec::new(), &body[..]);
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + n]);
            rest = &rest[end + 4 + n..];
        }
        body = out;
    }
    Answer { status, headers, body }
}

cairn_test!(the_api_lists_browses_and_downloads_exactly_over_http, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let big = random_bytes(5 << 20 | 12_345, 7);
    std::fs::write(src.join("big"), &big).unwrap();
    std::fs::write(src.join("sub/a name.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink("sub/a name.txt", src.join("link")).unwrap();
    env.ok(&["backup", "--tag", "first", src.to_str().unwrap()]);
    std::fs::write(src.join("sub/deeper/new"), b"day two").unwrap();
    env.ok(&["backup", "--tag", "second", src.to_str().unwrap()]);
    let ids: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    let s = serve(&env);
    let at = &s.at;
    let rel = src.strip_prefix("/").unwrap().to_str().unwrap().to_string();

    // Nothing without this run's token, on loopback too: other users of the host could connect.
    let anonymous = At { addr: at.addr, token: None };
    let refused = get(&anonymous, "/api/v1/snapshots", &[]);
    assert_eq!((refused.status, refused.headers["www-authenticate"].as_str()), (401, "Bearer realm=\"cairn\""));
    assert_eq!(get(&anonymous, &format!("/api/v1/snapshots/latest/download/{rel}/big"), &[]).status, 401);
    let dav = request(&anonymous, "PROPFIND", "/dav/", &["Depth: 1"]);
    assert_eq!(dav.status, 401);
    assert!(dav.headers["www-authenticate"].starts_with("Basic"), "WebDAV clients are asked for Basic");

    // The list, oldest first, and its filters.
    let all = get(at, "/api/v1/snapshots", &[]);
    assert_eq!(all.status, 200);
    let listed: Vec<String> =
        all.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(listed, ids);
    let tagged = get(at, "/api/v1/snapshots?tag=first", &[]).json();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert_eq!(tagged[0]["id"], ids[0].as_str());
    assert_eq!(get(at, "/api/v1/snapshots?host=no-such-host", &[]).json(), serde_json::json!([]));
    assert_eq!(get(at, "/api/v1/snapshots?colour=red", &[]).status, 400, "unknown filters are refused");
    // One snapshot: by prefix, by `latest`; mistakes are told apart.
    assert_eq!(get(at, &format!("/api/v1/snapshots/{}", &ids[0][..8]), &[]).json()["tags"][0], "first");
    assert_eq!(get(at, "/api/v1/snapshots/latest", &[]).json()["id"], ids[1].as_str());
    assert_eq!(get(at, "/api/v1/snapshots/ffffffffffff", &[]).status, 404);
    assert_eq!(get(at, "/api/v1/snapshots/not-an-id", &[]).status, 400);

    // Browsing: the root, a folder, names with spaces, a symlink's target.
    let root = get(at, "/api/v1/snapshots/latest/browse", &[]).json();
    assert_eq!(root["path"], "/");
    let folder = get(at, &format!("/api/v1/snapshots/latest/browse/{rel}"), &[]).json();
    let names: Vec<&str> = folder["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["big", "link", "sub"]);
    let link = &folder["entries"][1];
    assert_eq!((link["type"].as_str(), link["target"].as_str()), (Some("symlink"), Some("sub/a name.txt")));
    assert_eq!(folder["entries"][0]["size"], big.len());
    let sub = get(at, &format!("/api/v1/snapshots/latest/browse/{rel}/sub/deeper"), &[]).json();
    assert_eq!(sub["entries"][0]["name"], "new");
    let first = get(at, &format!("/api/v1/snapshots/{}/browse/{rel}/sub/deeper", &ids[0][..8]), &[]).json();
    assert_eq!(first["entries"], serde_json::json!([]), "each snapshot shows its own tree");
    assert_eq!(get(at, &format!("/api/v1/snapshots/latest/browse/{rel}/nothing"), &[]).status, 404);
    assert_eq!(get(at, &format!("/api/v1/snapshots/latest/browse/{rel}/big"), &[]).status, 400);

    // Downloads: the whole file, exact ranges, names percent-encoded.
    let dl = format!("/api/v1/snapshots/latest/download/{rel}/big");
    let whole = get(at, &dl, &[]);
    assert_eq!((whole.status, whole.headers["accept-ranges"].as_str()), (200, "bytes"));
    assert!(whole.body == big, "the download equals the file");
    // A file from a snapshot never runs as a page of this server (an HTML
    // file in a backed-up home folder would otherwise act with the
    // operator's session); the dashboard runs only its own script.
    let csp = |a: &Answer| a.headers["content-security-policy"].clone();
    assert!(csp(&whole).contains("sandbox") && csp(&whole).contains("default-src 'none'"), "{}", csp(&whole));
    assert_eq!(whole.headers["x-content-type-options"], "nosniff");
    let page = get(&anonymous, "/", &[]);
    assert_eq!(page.status, 200, "the page holds no data and needs no token");
    assert!(csp(&page).contains("script-src 'self'") && csp(&page).contains("frame-ancestors 'none'"));
    let len = big.len();
    for (range, from, to) in [
        ("bytes=0-0".to_string(), 0, 1),
        ("bytes=1048570-1048590".to_string(), 1_048_570, 1_048_591),
        (format!("bytes={}-", len - 10), len - 10, len),
        ("bytes=-4097".to_string(), len - 4097, len),
        (format!("bytes=3000000-{}", len + 99), 3_000_000, len),
    ] {
        let part = get(at, &dl, &[&format!("Range: {range}")]);
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.headers["content-range"], format!("bytes {from}-{}/{len}", to - 1), "{range}");
        assert!(part.body == big[from..to], "{range}: bytes {from}..{to}");
    }
    let past = get(at, &dl, &[&format!("Range: bytes={len}-")]);
    assert_eq!((past.status, past.headers["content-range"].clone()), (416, format!("bytes */{len}")));
    let named = get(at, &format!("/api/v1/snapshots/latest/download/{rel}/sub/a%20name.txt"), &[]);
    assert_eq!((named.status, named.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(named.headers["content-disposition"], "attachment; filename*=UTF-8''a%20name.txt");
    assert_eq!(get(at, &format!("/api/v1/snapshots/latest/download/{rel}/sub"), &[]).status, 400);

    // `..` and `.` in every spelling a client may send: refused, never resolved.
    for bad in [
        format!("/api/v1/snapshots/latest/browse/{rel}/../../etc"),
        format!("/api/v1/snapshots/latest/browse/{rel}/%2e%2e/%2E%2E/etc"),
        format!("/api/v1/snapshots/latest/download/{rel}/sub/..%2f..%2fbig"),
        format!("/api/v1/snapshots/latest/download/{rel}/./big"),
        "/api/v1/snapshots/latest/browse/..".to_string(),
    ] {
        let a = get(at, &bad, &[]);
        assert_eq!(a.status, 400, "{bad}: {}", String::from_utf8_lossy(&a.body));
        assert!(a.json()["error"].as_str().unwrap().contains(".."), "{bad}");
    }
    assert_eq!(get(at, "/api/v1/nothing", &[]).status, 404);
});

cairn_test!(every_path_of_the_openapi_document_answers, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f"), b"content").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // A job with a run in the history, so the jobs' paths have something to show.
    let (c, state) =
        config_with(&env, &format!("[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\n", src.display()));
    env.ok(&["--config", &c, "job", "run", "--state-dir", state.to_str().unwrap()]);
    let (s, _) = serve_config(&env, &c, &["--repository", "a"], true);
    let doc = get(&s.at, "/api/v1/openapi.json", &[]).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let rel = src.strip_prefix("/").unwrap().to_str().unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 19, "{paths:?}");
    for (path, ops) in paths {
        let target = path
            .replace("{snapshot}", "latest")
            .replace("{name}", "app")
            .replace("{id}", "1")
            .replace("{path}", &if path.contains("download") { format!("{rel}/d/f") } else { format!("{rel}/d") });
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["responses"].is_object() && op["summary"].is_string(), "{method} {path} is described");
            if method != "get" {
                continue;
            }
            assert!(op["responses"]["200"].is_object(), "{path} documents its answer");
            if path == "/api/v1/events" || path == "/api/v1/operations/{id}" {
                continue; // a stream without end; no operation yet
            }
            let a = get(&s.at, &target, &[]);
            assert_eq!(a.status, 200, "{path} as {target}: {}", String::from_utf8_lossy(&a.body));
        }
    }
    // The changing methods are routed (their work is tested on its own):
    // with a job or snapshot that does not exist, they say so, not "no such endpoint".
    for (method, target) in [
        ("POST", "/api/v1/jobs/nope/run"),
        ("POST", "/api/v1/jobs/nope/drill"),
        ("DELETE", "/api/v1/snapshots/ffffffffffff"),
        ("POST", "/api/v1/snapshots/ffffffffffff/restore"),
    ] {
        let a = request(&s.at, method, target, &["Content-Type: application/json", "Content-Length: 2", "", "{}"]);
        let body = String::from_utf8_lossy(&a.body);
        assert!(
            ![404, 405].contains(&a.status) || !body.contains("no such endpoint"),
            "{method} {target}: {} {body}",
            a.status
        );
        assert!(a.status != 405 && a.status < 500, "{method} {target}: {} {body}", a.status);
    }
});

cairn_test!(an_address_off_loopback_is_refused_before_the_password_is_asked, |env| {
    env.init();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        let out = env
            .cmd()
            .args(["serve", "--config", "/dev/null", "--listen", addr])
            .env_remove("CAIRN_PASSWORD")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!((out.status.code(), err.lines().count()), (Some(1), 1), "{addr}: {err}");
        assert!(err.contains("needs tokens and TLS") && err.contains("ssh -L"), "{addr}: {err}");
    }
});

cairn_test!(a_port_in_use_or_an_unwritable_state_folder_is_one_line_and_exit_1_not_a_panic, |env| {
    env.init();
    let first = serve(&env);
    let out = env
        .cmd()
        .args(["serve", "--config", "/dev/null", "--state-dir", env.path("state2").to_str().unwrap()])
        .args(["--listen", &first.at.addr.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.starts_with(&format!("cairn: error: cannot listen on {}", first.at.addr)), "{err}");
    assert!(
        !env.path("state2").join(format!("serve-{}.token", first.at.addr.port())).exists(),
        "no token for a server that never ran"
    );
    // A state folder where the token cannot be written: nothing served (it would refuse everyone).
    let blocked = env.path("a-file");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let out = env
        .cmd()
        .args(["serve", "--config", "/dev/null", "--state-dir", blocked.join("state").to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("give a --state-dir you can write"), "{err}");
});

cairn_test!(a_folder_downloads_as_tar_and_zip_equal_to_the_snapshot, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("big"), random_bytes(3 << 20, 3)).unwrap();
    std::fs::write(src.join("sub/deeper/small"), b"small").unwrap();
    std::fs::write(src.join("sub/empty"), b"").unwrap();
    std::os::unix::fs::symlink("deeper/small", src.join("sub/link")).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let s = serve(&env);
    let rel = src.strip_prefix("/").unwrap().to_str().unwrap();

    // tar, the default: extracted, the same tree with its metadata.
    let tar = get(&s.at, &format!("/api/v1/snapshots/latest/archive/{rel}"), &[]);
    assert_eq!((tar.status, tar.headers["content-type"].as_str()), (200, "application/x-tar"));
    assert_eq!(tar.headers["content-disposition"], "attachment; filename*=UTF-8''src.tar");
    let out = env.path("from-tar");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(env.path("a.tar"), &tar.body).unwrap();
    let x = std::process::Command::new("tar").arg("-xf").arg(env.path("a.tar")).arg("-C").arg(&out).status();
    assert!(x.unwrap().success());
    crate::util::assert_same_tree(&src, &out.join(rel));

    // zip of one folder: the same names and contents (zip keeps no owners).
    let zip = get(&s.at, &format!("/api/v1/snapshots/latest/archive/{rel}/sub?format=zip"), &[]);
    assert_eq!((zip.status, zip.headers["content-type"].as_str()), (200, "application/zip"));
    std::fs::write(env.path("a.zip"), &zip.body).unwrap();
    let out = env.path("from-zip");
    let x = std::process::Command::new("unzip").arg("-q").arg(env.path("a.zip")).arg("-d").arg(&out).status();
    assert!(x.unwrap().success());
    for f in ["deeper/small", "empty"] {
        assert_eq!(
            std::fs::read(out.join(rel).join("sub").join(f)).unwrap(),
            std::fs::read(src.join("sub").join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(std::fs::read_link(out.join(rel).join("sub/link")).unwrap(), Path::new("deeper/small"));

    // The whole snapshot, and mistakes.
    let whole = get(&s.at, "/api/v1/snapshots/latest/archive", &[]);
    assert_eq!(whole.status, 200);
    assert!(whole.body.len() > 3 << 20, "the whole snapshot: {} bytes", whole.body.len());
    assert_eq!(get(&s.at, &format!("/api/v1/snapshots/latest/archive/{rel}?format=rar"), &[]).status, 400);
    assert_eq!(get(&s.at, &format!("/api/v1/snapshots/latest/archive/{rel}/../.."), &[]).status, 400);
});

cairn_test!(a_slow_archive_download_does_not_stall_other_requests_or_new_snapshots, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // More than the socket buffers and the server's pieces in flight hold.
    std::fs::write(src.join("big"), random_bytes(48 << 20, 5)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let s = serve(&env);
    // A client that asks for the whole snapshot as tar and stops reading.
    let mut slow = TcpStream::connect(s.at.addr).unwrap();
    let token = s.at.token.as_deref().unwrap();
    write!(
        slow,
        "GET /api/v1/snapshots/latest/archive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 1000];
    slow.read_exact(&mut first).unwrap();
    // A backup finishes meanwhile (new snapshot, new index file).
    std::fs::write(src.join("new"), b"day two").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Other requests are answered (they waited behind the archive before).
    let list = get(&s.at, "/api/v1/snapshots", &[]);
    assert_eq!(list.status, 200);
    let browse = get(&s.at, "/api/v1/snapshots/latest/browse", &[]);
    assert_eq!(browse.status, 200);
    // Once the slow client is done, the new snapshot shows.
    let mut rest = Vec::new();
    slow.read_to_end(&mut rest).unwrap();
    assert!(rest.len() > 48 << 20, "the archive came whole: {} bytes", rest.len());
    let start = std::time::Instant::now();
    while get(&s.at, "/api/v1/snapshots", &[]).json().as_array().unwrap().len() < 2 {
        assert!(start.elapsed().as_secs() < 20, "the second snapshot never showed");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
});

/// The hrefs of a PROPFIND answer, percent-decoded.
fn hrefs(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.split("<D:href>")
        .skip(1)
        .filter_map(|r| r.split("</D:href>").next())
        .map(|h| {
            let (b, mut out, mut i) = (h.as_bytes(), Vec::new(), 0);
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() {
                    out.push(u8::from_str_radix(&h[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
        .collect()
}

/// Copies the WebDAV folder at `href` (ending in `/`) into `to`, as a
/// client does: PROPFIND with depth 1, then GET each file.
fn dav_copy(at: &At, href: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let list = request(at, "PROPFIND", href, &["Depth: 1"]);
    assert_eq!(list.status, 207, "PROPFIND {href}: {}", String::from_utf8_lossy(&list.body));
    for h in hrefs(&list.body).into_iter().filter(|h| h != href) {
        let name = h.trim_end_matches('/').rsplit('/').next().unwrap().to_string();
        let encoded: String = h.replace(' ', "%20");
        if h.ends_with('/') {
            dav_copy(at, &encoded, &to.join(&name));
        } else {
            let file = get(at, &encoded, &[]);
            assert_eq!(file.status, 200, "GET {h}");
            std::fs::write(to.join(&name), &file.body).unwrap();
        }
    }
}

cairn_test!(webdav_lists_and_copies_a_snapshot_folder_equal_to_the_source_read_only, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("big"), random_bytes(4 << 20 | 777, 9)).unwrap();
    std::fs::write(src.join("sub/a name.txt"), b"hello").unwrap();
    std::fs::write(src.join("sub/deeper/empty"), b"").unwrap();
    env.ok(&["backup", "--tag", "daily", src.to_str().unwrap()]);
    let s = serve(&env);
    let rel = src.strip_prefix("/").unwrap().to_str().unwrap();

    // The mount's layout at the top.
    let top = request(&s.at, "PROPFIND", "/dav/", &["Depth: 1"]);
    assert_eq!(top.status, 207);
    let mut names = hrefs(&top.body);
    names.sort();
    assert_eq!(names, ["/dav/", "/dav/hosts/", "/dav/ids/", "/dav/snapshots/", "/dav/tags/"]);
    // A client's copy of the folder equals the source, through every way in.
    for way in ["snapshots/latest", "tags/daily/latest"] {
        let out = env.path(&format!("copy-{}", way.replace('/', "-")));
        dav_copy(&s.at, &format!("/dav/{way}/{rel}/"), &out);
        let mut got: Vec<_> =
            crate::util::files_under(&out).into_iter().map(|p| p.strip_prefix(&out).unwrap().to_path_buf()).collect();
        let mut want: Vec<_> =
            crate::util::files_under(&src).into_iter().map(|p| p.strip_prefix(&src).unwrap().to_path_buf()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{way}");
        for f in &want {
            assert!(
                std::fs::read(out.join(f)).unwrap() == std::fs::read(src.join(f)).unwrap(),
                "{way}: {}",
                f.display()
            );
        }
    }
    // rclone, a client users have, copies it equal too.
    let out = env.path("rclone-copy");
    let rclone = std::process::Command::new("rclone")
        .args(["copy", &format!(":webdav:snapshots/latest/{rel}")])
        .arg(&out)
        .args(["--webdav-url", &format!("http://{}/dav/", s.at.addr), "--config", "/dev/null"])
        .args(["--webdav-bearer-token", s.at.token.as_deref().unwrap()])
        .output()
        .expect("rclone (tests/run installs it)");
    assert!(rclone.status.success(), "{}", String::from_utf8_lossy(&rclone.stderr));
    for f in crate::util::files_under(&src) {
        let r = f.strip_prefix(&src).unwrap();
        assert!(std::fs::read(out.join(r)).unwrap() == std::fs::read(&f).unwrap(), "rclone: {}", r.display());
    }
    assert_eq!(crate::util::files_under(&out).len(), crate::util::files_under(&src).len());
    // Ranges, as clients resume downloads.
    let part = get(&s.at, &format!("/dav/snapshots/latest/{rel}/big"), &["Range: bytes=1000-1999"]);
    assert_eq!(part.status, 206);
    assert!(part.body == random_bytes(4 << 20 | 777, 9)[1000..2000]);
    // Read-only: every way of writing is refused, and nothing changes.
    for (method, target) in [
        ("PUT", format!("/dav/snapshots/latest/{rel}/new")),
        ("DELETE", format!("/dav/snapshots/latest/{rel}/big")),
        ("MKCOL", format!("/dav/snapshots/latest/{rel}/folder")),
    ] {
        let a = request(&s.at, method, &target, &["Content-Length: 0"]);
        assert!(a.status == 403 || a.status == 405, "{method} {target}: {}", a.status);
    }
    let a = request(&s.at, "PROPFIND", "/dav/snapshots/latest/../../etc/", &["Depth: 1"]);
    assert!(a.status >= 400, "a path out of /dav/ is refused: {}", a.status);
    // A new snapshot appears without a restart.
    std::fs::write(src.join("day2"), b"two").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let start = std::time::Instant::now();
    while hrefs(&request(&s.at, "PROPFIND", "/dav/ids/", &["Depth: 1"]).body).len() < 3 {
        assert!(start.elapsed().as_secs() < 20, "the new snapshot never showed in /dav/ids/");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let day2 = get(&s.at, &format!("/dav/snapshots/latest/{rel}/day2"), &[]);
    assert_eq!((day2.status, day2.body.as_slice()), (200, &b"two"[..]));
});

/// `curl -sS` with `args`; the status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A self-signed certificate for 127.0.0.1, made by openssl.
fn certificate(env: &Env) -> (String, String) {
    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=cairn-test", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string())
}

/// `cairn serve --new-token NAME`: the token and the config line.
fn new_token(env: &Env, name: &str) -> (String, String) {
    let out = env.ok(&["serve", "--new-token", name]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    (lines[1].to_string(), lines[3].to_string())
}

cairn_test!(off_loopback_only_a_token_over_tls_gets_in_and_a_cross_site_change_is_refused_and_audited, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("secret"), b"root's eyes only").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let (cert, key) = certificate(&env);
    let (token, line) = new_token(&env, "ops");
    assert!(line.starts_with("ops = \"$argon2id$"), "{line}");
    assert_ne!(token, new_token(&env, "ops").0, "tokens are random");
    let config = env.path("cairn.toml");
    let write = |extra: &str| {
        std::fs::write(&config, format!("[serve]\nlisten = \"0.0.0.0:0\"\n{extra}[serve.tokens]\n{line}\n")).unwrap()
    };
    // Tokens without TLS: refused before the password is asked.
    write("");
    let out = env
        .cmd()
        .args(["serve", "--state-dir", env.path("state").to_str().unwrap(), "--config", config.to_str().unwrap()])
        .env_remove("CAIRN_PASSWORD")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("needs TLS"), "{err}");

    write(&format!("tls-certificate = \"{cert}\"\ntls-key = \"{key}\"\n"));
    let (child, addr, lines) = start(&env, &["--config", config.to_str().unwrap()], false, false);
    let _served = Served { child, at: At { addr, token: None } };
    assert!(lines[0].starts_with("cairn: serving https://0.0.0.0:"), "{lines:?}");
    let base = format!("https://127.0.0.1:{}", addr.port());
    let tls = ["--cacert", cert.as_str()];
    let bearer = format!("Authorization: Bearer {token}");
    let list = format!("{base}/api/v1/snapshots");

    // Nobody gets in without the token, over TLS or not.
    assert_eq!(curl(&[&tls[..], &[list.as_str()]].concat()).0, 401);
    let wrong = format!("Authorization: Bearer {}", "x".repeat(43));
    assert_eq!(curl(&[&tls[..], &["-H", &wrong, &list]].concat()).0, 401);
    let plain = format!("http://127.0.0.1:{}/api/v1/snapshots", addr.port());
    assert_eq!(curl(&["-H", &bearer, &plain]).0, 0, "no plain HTTP on a TLS port");
    // The token gets in: as a bearer, and as Basic's password under its name (WebDAV clients).
    let (status, body) = curl(&[&tls[..], &["-H", &bearer, &list]].concat());
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap().as_array().unwrap().len(), 1);
    let dav = format!("{base}/dav/snapshots/latest/{}/secret", src.strip_prefix("/").unwrap().to_str().unwrap());
    assert_eq!(curl(&[&tls[..], &["-u", &format!("ops:{token}"), &dav]].concat()), (200, "root's eyes only".into()));
    assert_eq!(curl(&[&tls[..], &["-u", &format!("eve:{token}"), &dav]].concat()).0, 401);
    // The dashboard's page needs no token; it holds no data.
    assert_eq!(curl(&[&tls[..], &[&format!("{base}/api/v1/openapi.json")]].concat()).0, 200);

    // A session: the token shown once, then the cookie alone.
    let jar = env.path("jar");
    let jar = jar.to_str().unwrap();
    let session = format!("{base}/api/v1/session");
    let origin = format!("Origin: https://127.0.0.1:{}", addr.port());
    let (status, body) = curl(&[&tls[..], &["-c", jar, "-X", "POST", "-H", &bearer, "-H", &origin, &session]].concat());
    assert_eq!((status, body.contains("\"ops\"")), (200, true), "{body}");
    assert!(std::fs::read_to_string(jar).unwrap().contains("#HttpOnly_"), "the cookie is HttpOnly");
    assert_eq!(curl(&[&tls[..], &["-b", jar, &list]].concat()).0, 200);
    // Another site's page makes the browser send the cookie with a change: refused.
    let evil = ["-b", jar, "-X", "DELETE", "-H", "Origin: https://evil.example", session.as_str()];
    assert_eq!(curl(&[&tls[..], &evil[..]].concat()).0, 403);
    let no_origin = ["-b", jar, "-X", "DELETE", session.as_str()];
    assert_eq!(curl(&[&tls[..], &no_origin[..]].concat()).0, 403, "a cookie alone proves no origin");
    let sent_by = ["-b", jar, "-X", "DELETE", "-H", "Sec-Fetch-Site: cross-site", "-H", &origin, &session];
    assert_eq!(curl(&[&tls[..], &sent_by[..]].concat()).0, 403);
    assert_eq!(curl(&[&tls[..], &["-b", jar, &list]].concat()).0, 200, "the session outlived the forgeries");
    // The page itself signs out.
    assert_eq!(curl(&[&tls[..], &["-b", jar, "-X", "DELETE", "-H", &origin, &session]].concat()).0, 204);
    assert_eq!(curl(&[&tls[..], &["-b", jar, &list]].concat()).0, 401);

    // Every change and every refused one is in the audit log, owner-only.
    let log_path = env.path("state/audit.log");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777, 0o600);
    let log: Vec<serde_json::Value> =
        std::fs::read_to_string(&log_path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(String, String, u64, String)> = log
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap().to_string(),
                e["method"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let s = |w: &str, m: &str, c: u64, o: &str| (w.to_string(), m.to_string(), c, o.to_string());
    assert_eq!(
        summary,
        vec![
            s("ops", "POST", 200, "ok"),
            s("ops", "DELETE", 403, "refused"),
            s("ops", "DELETE", 403, "refused"),
            s("ops", "DELETE", 403, "refused"),
            s("ops", "DELETE", 204, "ok"),
        ]
    );
    assert!(log[1]["detail"].as_str().unwrap().contains("evil.example"), "{}", log[1]);
    assert!(log.iter().all(|e| e["from"].as_str().unwrap().starts_with("127.0.0.1:") && e["time"].is_string()));
});

/// `POST target` with a JSON body (and the bearer token).
fn post_json(at: &At, target: &str, body: &str) -> Answer {
    let len = format!("Content-Length: {}", body.len());
    let mut s = TcpStream::connect(at.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let auth = at.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "POST {target} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n{len}\r\nConnection: close\r\n\r\n{body}",
        at.addr
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer { status, headers: HashMap::new(), body: body.as_bytes().to_vec() }
}

/// Waits for operation `id` to end; its last state.
fn finished(at: &At, id: u64) -> serde_json::Value {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let op = get(at, &format!("/api/v1/operations/{id}"), &[]).json();
        if op["state"] != "running" {
            return op;
        }
        assert!(std::time::Instant::now() < until, "operation {id} still running: {op}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

cairn_test!(jobs_run_and_drill_restores_land_and_forget_refuses_protected_snapshots_through_the_api, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/app.conf"), b"port = 8080\n").unwrap();
    std::fs::write(src.join("data"), random_bytes(3 << 20, 11)).unwrap();
    let job = format!(
        "[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\nmax-age = \"1d\"\ndrill = {{ rto = \"10m\" }}\n",
        src.display()
    );
    let (c, state) = config_with(&env, &job);
    env.ok(&["--config", &c, "job", "run", "--state-dir", state.to_str().unwrap()]);
    // The config's only repository is served: no -r, no password given.
    let (served, lines) = serve_config(&env, &c, &[], true);
    let (addr, token) = (served.at.addr, served.at.token.clone().unwrap());
    let at = &served.at;
    assert!(lines[1].contains("token"), "{lines:?}");

    // The job as the history knows it: fresh, one good run.
    let jobs = get(at, "/api/v1/jobs", &[]).json();
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    let app = &jobs[0];
    assert_eq!(
        (app["job"].as_str(), app["stale"].as_bool(), app["runs"].as_u64()),
        (Some("app"), Some(false), Some(1))
    );
    assert_eq!((app["success_rate"].as_f64(), app["rpo_seconds"].as_f64()), (Some(1.0), Some(86_400.0)));

    // Server-sent events, listened to from before the run starts.
    let events = {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        write!(s, "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { break };
                if let Some(data) = line.strip_prefix("data: ") {
                    let op: serde_json::Value = serde_json::from_str(data).unwrap();
                    let done = op["kind"] == "job-run" && op["state"] != "running";
                    seen.push(op);
                    if done {
                        break;
                    }
                }
            }
            seen
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(src.join("etc/new.conf"), b"added on day two\n").unwrap();
    let started = post_json(at, "/api/v1/jobs/app/run", "");
    assert_eq!(started.status, 202, "{}", String::from_utf8_lossy(&started.body));
    let op = finished(at, started.json()["operation"].as_u64().unwrap());
    assert_eq!(op["state"], "succeeded", "{op}");
    assert!(op["result"].as_str().unwrap().starts_with("exit 0: job app: snapshot "), "{op}");
    let seen = events.join().unwrap();
    let states: Vec<&str> = seen.iter().map(|o| o["state"].as_str().unwrap()).collect();
    assert_eq!((states.first(), states.last()), (Some(&"running"), Some(&"succeeded")), "{seen:?}");
    assert_eq!(post_json(at, "/api/v1/jobs/nope/run", "").status, 404);
    let repos = get(at, "/api/v1/repositories", &[]).json();
    assert_eq!((repos[0]["name"].as_str(), repos[0]["snapshots"].as_u64()), (Some("a"), Some(2)), "{repos}");

    // A page of another site that makes the signed-in browser POST: refused, nothing started.
    let signed = request(at, "POST", "/api/v1/session", &["Content-Length: 0"]);
    let cookie = signed.headers["set-cookie"].split(';').next().unwrap().to_string();
    let browser = At { addr, token: None };
    let forged = request(
        &browser,
        "POST",
        "/api/v1/jobs/app/run",
        &[&format!("Cookie: {cookie}"), "Origin: https://evil.example", "Content-Length: 0"],
    );
    assert_eq!(forged.status, 403, "{}", String::from_utf8_lossy(&forged.body));
    let form = "target=/tmp/x";
    let as_form = request(
        &browser,
        "POST",
        "/api/v1/snapshots/latest/restore",
        &[
            &format!("Cookie: {cookie}"),
            &format!("Origin: http://{addr}"),
            "Content-Type: application/x-www-form-urlencoded",
            &format!("Content-Length: {}", form.len()),
            "",
            form,
        ],
    );
    assert_eq!(as_form.status, 415, "a form (which any site can send) is not JSON");
    assert_eq!(get(at, "/api/v1/operations", &[]).json().as_array().unwrap().len(), 1, "only the run above");
    let runs = get(at, "/api/v1/jobs/app/history", &[]).json();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    assert_eq!(get(at, "/api/v1/jobs/app", &[]).json()["runs"], 2);

    // A drill, and the metrics a scraper reads.
    let drill = post_json(at, "/api/v1/jobs/app/drill", "");
    assert_eq!(drill.status, 202);
    let op = finished(at, drill.json()["operation"].as_u64().unwrap());
    assert_eq!(op["state"], "succeeded", "{op}");
    let drills = get(at, "/api/v1/drills", &[]).json();
    assert_eq!((drills.as_array().unwrap().len(), drills[0]["outcome"].as_str()), (1, Some("success")), "{drills}");
    let metrics = get(at, "/metrics", &[]);
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("cairn_runs{job=\"app\",kind=\"backup\",outcome=\"success\"} 2.0"), "{text}");

    // A restore into a new folder on the server, equal to the source.
    let ids: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);
    let target = env.path("restored");
    let body = format!("{{\"path\": \"{}\", \"target\": \"{}\"}}", src.display(), target.display());
    let r = post_json(at, &format!("/api/v1/snapshots/{}/restore", ids[1]), &body);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let op = finished(at, r.json()["operation"].as_u64().unwrap());
    assert_eq!((op["state"].as_str(), op["done_bytes"].as_u64()), (Some("succeeded"), Some((3 << 20) + 29)), "{op}");
    // A folder of the snapshot restores as `cairn restore SNAPSHOT:PATH` does: its content in the target.
    let restored = &target;
    for f in ["data", "etc/app.conf", "etc/new.conf"] {
        assert_eq!(std::fs::read(restored.join(f)).unwrap(), std::fs::read(src.join(f)).unwrap(), "{f}");
    }
    // Never over anything: a folder that holds something, a relative or dotted target, a dotted path.
    let again = post_json(at, "/api/v1/snapshots/latest/restore", &format!("{{\"target\": \"{}\"}}", target.display()));
    assert_eq!(again.status, 409, "{}", String::from_utf8_lossy(&again.body));
    for (body, status) in [
        ("{\"target\": \"relative/dir\"}".to_string(), 400),
        (format!("{{\"target\": \"{}/../escape\"}}", target.display()), 400),
        (format!("{{\"path\": \"/../etc\", \"target\": \"{}\"}}", env.path("other").display()), 400),
        (format!("{{\"target\": \"{}\", \"overwrite\": true}}", env.path("other").display()), 422),
    ] {
        assert_eq!(post_json(at, "/api/v1/snapshots/latest/restore", &body).status, status, "{body}");
    }
    assert!(!env.path("other").exists() && !env.path("escape").exists());

    // Forget: never `latest`, never a protected snapshot; the other goes.
    env.ok(&["tag", "--protect", &ids[0]]);
    // The tag change gave it a new id; the old one is gone.
    assert_eq!(request(at, "DELETE", &format!("/api/v1/snapshots/{}", ids[0]), &[]).status, 404);
    let ids: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(request(at, "DELETE", &format!("/api/v1/snapshots/{}", ids[0]), &[]).status, 409);
    assert_eq!(request(at, "DELETE", "/api/v1/snapshots/latest", &[]).status, 400);
    let gone = request(at, "DELETE", &format!("/api/v1/snapshots/{}", &ids[1][..12]), &[]);
    assert_eq!(gone.status, 200, "{}", String::from_utf8_lossy(&gone.body));
    let left: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(left, ids[..1]);
    assert_eq!(get(at, "/api/v1/snapshots", &[]).json().as_array().unwrap().len(), 1, "the list shows it at once");

    // Each change, and how the work it started ended, is in the audit log.
    let log: Vec<serde_json::Value> = std::fs::read_to_string(state.join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = |path: &str| {
        log.iter().find(|e| e["path"].as_str().unwrap().starts_with(path)).unwrap_or_else(|| panic!("{path}: {log:?}"))
    };
    assert_eq!(
        (line("/api/v1/jobs/app/run")["status"].as_u64(), line("/api/v1/jobs/app/run")["who"].as_str()),
        (Some(202), Some("this-run"))
    );
    assert_eq!(line("operation 1: job-run app")["outcome"], "ok");
    assert_eq!(line(&format!("/api/v1/snapshots/{}", ids[0]))["status"], 409);
    assert_eq!(line("/api/v1/jobs/app/run")["who"], "this-run");
    assert!(log.iter().any(|e| e["status"] == 403 && e["detail"].as_str().unwrap().contains("evil.example")));
    assert!(line("operation 3: restore")["detail"].as_str().unwrap().starts_with("restored 3 files"));
});

cairn_test!(the_dashboard_in_chromium_shows_jobs_snapshots_and_charts_browses_a_folder_and_downloads_a_file, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc/nginx")).unwrap();
    std::fs::write(src.join("etc/nginx/site.conf"), b"server {\n    listen 80;\n    root /srv/www;\n}\n").unwrap();
    let data = random_bytes(2 << 20 | 777, 21);
    std::fs::write(src.join("data.bin"), &data).unwrap();
    let jobs = format!(
        "[job.web]\nrepositories = [\"a\"]\npaths = [\"{}\"]\nmax-age = \"1d\"\nschedule = \"daily 02:00\"\n\n[job.db]\nrepositories = [\"a\"]\ncommand = [{{ name = \"dump\", run = [\"sh\", \"-c\", \"echo half; exit 4\"] }}]\n",
        src.display()
    );
    let (c, state) = config_with(&env, &jobs);
    let c = c.as_str();
    for day in 0..2 {
        std::fs::write(src.join(format!("day{day}")), random_bytes(100_000 * (day + 1), day as u64)).unwrap();
        env.ok(&["--config", c, "job", "run", "web", "--state-dir", state.to_str().unwrap()]);
    }
    assert_eq!(
        env.run(&["--config", c, "job", "run", "db", "--state-dir", state.to_str().unwrap()]).status.code(),
        Some(1)
    );
    let ids: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    let (served, _) = serve_config(&env, c, &[], false);
    let (addr, token) = (served.at.addr, served.at.token.clone().unwrap());
    // Screenshots for the docs, when asked for: CAIRN_SCREENSHOTS=docs/screenshots.
    let shots = std::env::var_os("CAIRN_SCREENSHOTS").map(std::path::PathBuf::from);

    let mut b = crate::browser::Browser::start(&env.path("chromium"));
    // Without a token: the sign-in form, nothing else.
    b.goto(&format!("http://{addr}/"));
    b.wait_for("!document.querySelector('#login').hidden", "the sign-in form");
    assert_eq!(b.eval("document.querySelector('#home').hidden"), true);
    // The link cairn serve prints: signed in, the token gone from the address.
    b.goto(&format!("http://{addr}/#token={token}"));
    b.wait_for("document.body.dataset.loaded === 'home'", "the jobs, snapshots and charts");
    assert!(!b.eval("location.href").as_str().unwrap().contains(&token), "the token left the address bar");
    let jobs = b.eval(
        "[...document.querySelectorAll('.job')].map(e => e.dataset.job + ':' + e.querySelector('.badge').textContent)",
    );
    assert_eq!(jobs, serde_json::json!(["db:failed", "web:fresh"]));
    let rows = b.eval("[...document.querySelectorAll('#snapshots tbody tr')].map(r => r.dataset.snapshot)");
    assert_eq!(rows, serde_json::json!([ids[1], ids[0]]), "newest first");
    // Charts: growth over the two snapshots, and web's duration and bytes added per run.
    let charts = b.eval("[...document.querySelectorAll('.chart')].map(c => c.querySelector('h3').textContent + ':' + c.querySelectorAll('circle').length)");
    assert_eq!(
        charts,
        serde_json::json!([
            "Repository growth (bytes added, summed):2",
            "db: duration:1",
            "db: bytes added:1",
            "web: duration:2",
            "web: bytes added:2"
        ])
    );
    // Loaded again and again, each time whole and soon: a left page's event
    // stream once held a connection until the browser dropped the page, and
    // the fifth load waited 60 s for one of the six a browser allows.
    for i in 0..8 {
        b.goto(&format!("http://{addr}/?load={i}"));
        b.wait_for(
            &format!("location.search === '?load={i}' && document.body.dataset.loaded === 'home'"),
            "the page again",
        );
    }
    if let Some(dir) = &shots {
        std::fs::create_dir_all(dir).unwrap();
        b.screenshot(&dir.join("dashboard.png"));
        b.screen(390, 844, true);
        b.screenshot(&dir.join("dashboard-phone.png"));
        b.screen(1280, 900, false);
    }

    // Into the newest snapshot, folder by folder, as a user clicks.
    b.eval("document.querySelector('#snapshots tbody tr a').click()");
    b.wait_for("document.body.dataset.loaded === 'browse'", "the snapshot's top folder");
    for part in src.strip_prefix("/").unwrap().iter().map(|p| p.to_str().unwrap()) {
        let click =
            format!("[...document.querySelectorAll('#entries a.dir')].find(a => a.textContent === '{part}/').click()");
        b.eval(&click);
        b.wait_for(&format!("document.body.dataset.shown.endsWith('/{part}')"), part);
    }
    let names = b.eval("[...document.querySelectorAll('#entries tbody tr td:first-child')].map(t => t.textContent)");
    assert_eq!(names, serde_json::json!(["data.bin", "day0", "day1", "etc/"]));
    b.eval("[...document.querySelectorAll('#entries a.dir')].find(a => a.textContent === 'etc/').click()");
    b.wait_for("document.body.dataset.shown.endsWith('/etc')", "etc");
    b.eval("[...document.querySelectorAll('#entries a.dir')].find(a => a.textContent === 'nginx/').click()");
    b.wait_for("document.body.dataset.shown.endsWith('/etc/nginx')", "nginx");
    // A text file previews in the page.
    b.eval("document.querySelector('#entries a.file').click()");
    b.wait_for("document.querySelector('.file-preview')", "the preview");
    assert_eq!(
        b.eval("document.querySelector('.file-preview').textContent"),
        "server {\n    listen 80;\n    root /srv/www;\n}\n"
    );
    if let Some(dir) = &shots {
        b.screenshot(&dir.join("browse.png"));
    }
    // Back up two folders, and the 2 MiB file downloads equal to the source.
    b.eval("history.go(-2)");
    let top = src.to_str().unwrap().to_string();
    b.wait_for(&format!("document.body.dataset.shown === '{top}'"), "the source folder again");
    let downloads = env.path("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    b.downloads_to(&downloads);
    b.eval("[...document.querySelectorAll('#entries a.download')].find(a => a.download === 'data.bin').click()");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read(downloads.join("data.bin")).map(|d| d.len()).unwrap_or(0) != data.len() {
        assert!(
            std::time::Instant::now() < until,
            "no download: {:?}",
            std::fs::read_dir(&downloads).unwrap().collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(std::fs::read(downloads.join("data.bin")).unwrap() == data, "the download equals the file");
});
