//! Monitoring of jobs against real receivers on 127.0.0.1: the run
//! history, notifications (mail through a real SMTP server, webhooks and
//! pings through a real HTTP server), the metrics file read by Prometheus'
//! own parser, freshness against an RPO.

use std::time::{Duration, Instant};

use crate::cairn_test;
use crate::receivers::{Http, Smtp, closed_port};

/// A repository, a password file, a source folder and the config's head.
fn setup(env: &crate::util::Env) -> (String, std::path::PathBuf) {
    env.init();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), crate::util::random_bytes(300_000, 1)).unwrap();
    let head =
        format!("[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n", env.repo.display(), pass.display());
    (head, src)
}

fn job_run(env: &crate::util::Env, config: &std::path::Path) -> std::process::Output {
    let state = env.path("state");
    env.run(&["--config", config.to_str().unwrap(), "job", "run", "--state-dir", state.to_str().unwrap()])
}

cairn_test!(a_failed_job_reaches_a_mailbox_a_webhook_and_a_ping_url_and_is_in_the_history, |env| {
    let (head, src) = setup(&env);
    let (smtp, http) = (Smtp::start(), Http::start(200));
    let config = env.path("cairn.toml");
    let write = |command: &str| {
        let text = format!(
            r#"{head}
[notify.mail]
kind = "email"
server = "127.0.0.1"
port = {smtp}
security = "none"
from = "cairn@example.net"
to = ["ops@example.net", "oncall@example.net"]

[notify.chat]
kind = "webhook"
url = "{hook}"

[notify.hc]
kind = "ping"
url = "{ping}"

[job.app]
repositories = ["a"]
paths = ["{src}"]
command = [{{ name = "state", run = ["sh", "-c", "{command}"] }}]
"#,
            smtp = smtp.port,
            hook = http.url("/hook"),
            ping = http.url("/ping/6f1c"),
            src = src.display(),
        );
        std::fs::write(&config, text).unwrap();
    };
    // A dump that fails: exit 1, no snapshot; the mail names the job and the error.
    write("echo partial; exit 7");
    let out = job_run(&env, &config);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let mails = smtp.mails(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["to"], serde_json::json!(["ops@example.net", "oncall@example.net"]));
    let data = mail["data"].as_str().unwrap();
    assert!(data.contains("job app failed") && data.contains("exit status: 7"), "{data}");
    let hooks = http.to("/hook");
    assert_eq!(hooks.len(), 1, "failures only, not the start: {hooks:?}");
    let body: serde_json::Value = serde_json::from_str(&hooks[0].body).unwrap();
    assert_eq!((body["event"].as_str(), body["job"].as_str()), (Some("failure"), Some("app")));
    assert!(body["text"].as_str().unwrap().starts_with("job app failed"), "a Slack-style text: {body}");
    let pings: Vec<String> = http.to("/ping").iter().map(|r| r.path.clone()).collect();
    assert_eq!(pings, ["/ping/6f1c/start", "/ping/6f1c/fail"]);
    assert!(http.requests().iter().all(|r| r.method == "POST"));
    assert!(http.to("/ping/6f1c/fail")[0].body.contains("exit status: 7"));

    // Fixed: the ping gets a success, mail and webhook stay quiet (success is opt-in).
    write("echo all good");
    let out = job_run(&env, &config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pings: Vec<String> = http.to("/ping").iter().map(|r| r.path.clone()).collect();
    assert_eq!(pings[2..], ["/ping/6f1c/start", "/ping/6f1c"]);
    assert_eq!((smtp.mails(1, Duration::ZERO).len(), http.to("/hook").len()), (1, 1));

    // Both runs are in the history, the failure with its error.
    let state = env.path("state");
    let h = env.json(&["history", "--state-dir", state.to_str().unwrap()]);
    let runs = h.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{h}");
    assert_eq!((runs[0]["outcome"].as_str(), runs[1]["outcome"].as_str()), (Some("success"), Some("failure")));
    assert!(runs[1]["error"].as_str().unwrap().contains("exit status: 7"), "{h}");
    assert!(runs[1]["snapshot"].is_null());
    let snap = env.json(&["snapshots"]);
    assert_eq!(runs[0]["snapshot"], snap[0]["id"]);
    assert_eq!(runs[0]["bytes_read"].as_u64(), Some(300_000 + "all good\n".len() as u64));
    // `notify test` reaches every channel.
    let said = env.ok(&["--config", config.to_str().unwrap(), "notify", "test"]);
    assert!(said.contains("mail: sent") && said.contains("chat: sent") && said.contains("hc: sent"), "{said}");
    assert_eq!(smtp.mails(2, Duration::from_secs(20)).len(), 2);
});

cairn_test!(receivers_that_are_down_or_answer_500_delay_nothing_beyond_the_retry_budget, |env| {
    let (head, src) = setup(&env);
    let broken = Http::start(500);
    let down = closed_port();
    let config = env.path("cairn.toml");
    let write = |command: &str| {
        let text = format!(
            "{head}\n[notify.down]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{down}/x\"\nretries = 1\nevents = [\"failure\", \"success\"]\n\n[notify.broken]\nkind = \"ntfy\"\nurl = \"{broken}\"\nretries = 2\nevents = [\"failure\", \"success\"]\n\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{src}\"]\ncommand = [{{ name = \"c\", run = [\"sh\", \"-c\", \"{command}\"] }}]\n",
            broken = broken.url("/topic"),
            src = src.display(),
        );
        std::fs::write(&config, text).unwrap();
    };
    for (command, want) in [("echo fine", 0), ("exit 4", 1)] {
        write(command);
        let started = Instant::now();
        let out = job_run(&env, &config);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(want), "the run's own outcome: {err}");
        // Retry budgets: 1 s of backoff for `down`, 1 + 2 s for `broken`,
        // sent side by side.
        assert!(took < Duration::from_secs(15), "{took:?}");
        assert!(err.contains("to channel down not delivered after 2 attempt(s)"), "{err}");
        assert!(!err.contains(&format!(":{down}/x")), "a webhook URL is often its secret: not in logs: {err}");
        assert!(err.contains("to channel broken not delivered after 3 attempt(s): the receiver answered 500"), "{err}");
    }
    assert_eq!(broken.to("/topic").len(), 6, "3 attempts for each of the 2 runs");
    let ntfy = &broken.to("/topic")[3];
    assert_eq!(ntfy.headers.iter().find(|(k, _)| k == "priority").map(|(_, v)| v.as_str()), Some("high"));
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
});

cairn_test!(the_metrics_file_parses_with_prometheus_own_parser_and_matches_the_run, |env| {
    let (head, src) = setup(&env);
    let config = env.path("cairn.toml");
    let metrics = env.path("textfile/cairn.prom");
    std::fs::create_dir_all(metrics.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "{head}\n[metrics]\ntextfile = \"{}\"\n\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\nmax-age = \"1d\"\n",
            metrics.display(),
            src.display()
        ),
    )
    .unwrap();
    assert!(job_run(&env, &config).status.success());
    let state = env.path("state");
    let run = env.json(&["history", "--state-dir", state.to_str().unwrap()])[0].clone();
    let parse = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
        out[key] = s.value
print(json.dumps(out))
"#;
    let got = std::process::Command::new("python3").args(["-c", parse]).arg(&metrics).output().unwrap();
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let m: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    let v = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {m}"));
    assert_eq!(v("cairn_job_last_run_success|job=app"), 1.0);
    assert_eq!(v("cairn_job_last_run_exit_code|job=app"), 0.0);
    assert_eq!(v("cairn_job_last_run_added_bytes|job=app"), run["bytes_added"].as_f64().unwrap());
    assert_eq!(v("cairn_job_last_run_read_bytes|job=app"), 300_000.0);
    assert_eq!(v("cairn_job_last_run_files|job=app"), 1.0);
    assert_eq!(v("cairn_job_rpo_seconds|job=app"), 86_400.0);
    assert_eq!(v("cairn_job_fresh|job=app"), 1.0);
    assert!(v("cairn_job_newest_snapshot_age_seconds|job=app") < 60.0);
    assert_eq!(v("cairn_runs|job=app|kind=backup|outcome=success"), 1.0);
    assert_eq!(v("cairn_repository_snapshots|repository=a"), 1.0);
    let packs: u64 = crate::util::files_under(&env.repo.join("data"))
        .iter()
        .chain(crate::util::files_under(&env.repo.join("tree")).iter())
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(v("cairn_repository_size_bytes|repository=a"), packs as f64);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&metrics).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "readable by the collector");
});

cairn_test!(a_stale_job_fails_status_and_notifies_once_then_recovers_once, |env| {
    let (head, src) = setup(&env);
    let http = Http::start(200);
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "{head}\n[notify.chat]\nkind = \"webhook\"\nurl = \"{}\"\n\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\nmax-age = \"2s\"\n",
            http.url("/hook"),
            src.display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let state = env.path("state");
    let s = state.to_str().unwrap();
    // Never run: stale, status says so and exits 1.
    let out = env.run(&["--config", c, "status", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no good snapshot recorded yet"));
    assert!(job_run(&env, &config).status.success());
    let out = env.run(&["--config", c, "status", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    std::thread::sleep(Duration::from_millis(2500));
    // Past the RPO: stale; looked at three times, told once.
    for _ in 0..3 {
        let out = env.run(&["--config", c, "status", "--notify", "--state-dir", s]);
        assert_eq!(out.status.code(), Some(1));
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(said.contains("PROBLEM") && said.contains("stale: its newest good snapshot is"), "{said}");
    }
    let events = || -> Vec<String> {
        http.to("/hook")
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["event"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(events(), ["stale"]);
    // A good run: one `fresh`, and status is well again.
    assert!(job_run(&env, &config).status.success());
    assert_eq!(env.run(&["--config", c, "status", "--notify", "--state-dir", s]).status.code(), Some(0));
    assert_eq!(events(), ["stale", "fresh"]);
    let js = env.json(&["--config", c, "status", "--state-dir", s]);
    assert_eq!(js[0]["stale"], false);
});

cairn_test!(a_drill_restores_files_postgresql_and_sqlite_verifies_records_its_rto_and_fails_on_damage, |env| {
    let (head, src) = setup(&env);
    let pg = crate::databases::Postgres::start();
    pg.psql("postgres", "CREATE DATABASE app").unwrap();
    pg.psql("app", "CREATE TABLE users(id int PRIMARY KEY, name text); CREATE TABLE orders(id int, total int); INSERT INTO users SELECT i, md5(i::text) FROM generate_series(1, 3000) i")
        .unwrap();
    let my = crate::databases::Mariadb::start();
    my.sql("", "CREATE DATABASE shop").unwrap();
    my.sql("shop", "CREATE TABLE t(id INT PRIMARY KEY, v TEXT); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_500")
        .unwrap();
    let lite = env.path("sessions.sqlite3");
    let ok = std::process::Command::new("sqlite3")
        .arg(&lite)
        .arg("CREATE TABLE s(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO s(v) VALUES ('a'), ('b');")
        .status()
        .unwrap();
    assert!(ok.success());
    let http = Http::start(200);
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            r#"{head}
[notify.chat]
kind = "webhook"
url = "{hook}"

[job.app]
repositories = ["a"]
paths = ["{src}"]
database = [
  {{ name = "appdb", kind = "postgresql", database = "app", host = "{pg}", user = "postgres", globals = false }},
  {{ name = "sessions", kind = "sqlite", path = "{lite}" }},
  {{ name = "shop", kind = "mariadb", database = "shop", host = "{my}", user = "root" }},
]
drill = {{ rto = "10m", verify = {{ appdb = "SELECT 1 FROM users WHERE id = 3000", shop = "SELECT id FROM t WHERE id = 500" }} }}
"#,
            hook = http.url("/hook"),
            src = src.display(),
            pg = pg.socket.display(),
            my = my.socket.display(),
            lite = lite.display(),
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let state = env.path("state");
    let s = state.to_str().unwrap();
    assert!(job_run(&env, &config).status.success());
    let d = env.json(&["--config", c, "drill", "app", "--state-dir", s]);
    assert_eq!(d["files"].as_u64(), Some(4), "the source file and three dumps: {d}");
    let checked: Vec<String> =
        d["databases"].as_array().unwrap().iter().map(|x| format!("{}: {}", x["name"], x["checked"])).collect();
    assert_eq!(
        checked,
        [
            "\"appdb\": \"2 tables, 3000 rows as at backup, verify query returned rows\"",
            "\"sessions\": \"integrity_check ok, 1 tables, 2 rows as at backup\"",
            "\"shop\": \"1 tables, verify query returned rows\""
        ]
    );
    assert!(d["rto_seconds"].as_f64().unwrap() > 0.0 && d["rto_target_seconds"].as_f64() == Some(600.0));
    // The scratch database is gone again.
    assert_eq!(
        pg.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'cairn_drill_%'").unwrap(),
        "0"
    );
    let left = "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'cairn_drill_%'";
    assert_eq!(my.sql("", left).unwrap(), "0");
    let runs = env.json(&["history", "app", "--state-dir", s]);
    assert_eq!((runs[0]["kind"].as_str(), runs[0]["outcome"].as_str()), (Some("drill"), Some("success")));
    let status = env.json(&["--config", c, "status", "--state-dir", s]);
    assert!(status[0]["last_drill"]["outcome"] == "success" && status[0]["problems"].as_array().unwrap().is_empty());

    // A damaged pack: the drill fails, says which, is recorded, notifies,
    // and status reports it.
    let pack = env.repo_files("data").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let out = env.run(&["--config", c, "drill", "app", "--state-dir", s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("drill app"), "{err}");
    let sent: Vec<serde_json::Value> =
        http.to("/hook").iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    assert_eq!(sent.iter().filter(|b| b["event"] == "drill-failed").count(), 1, "{sent:?}");
    let runs = env.json(&["history", "app", "--state-dir", s]);
    assert_eq!(runs[0]["outcome"], "failure");
    let out = env.run(&["--config", c, "status", "--state-dir", s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("its last drill failed"));
});

cairn_test!(the_daemon_serves_metrics_and_tells_once_when_a_job_goes_stale, |env| {
    let (head, src) = setup(&env);
    let http = Http::start(200);
    let port = closed_port();
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "{head}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[notify.chat]\nkind = \"webhook\"\nurl = \"{}\"\n\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\nschedule = \"daily 02:00\"\nmax-age = \"4s\"\n",
            http.url("/hook"),
            src.display()
        ),
    )
    .unwrap();
    let state = env.path("state");
    std::fs::create_dir_all(state.join("jobs")).unwrap();
    let three_days_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72);
    std::fs::write(state.join("jobs/app.last"), format!("{three_days_ago}\n")).unwrap();
    let d = crate::jobs::Daemon::start(&env, &config, &state);
    d.until("finished");
    let scrape = || -> serde_json::Value {
        let parse = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
out = {}
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        out[s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))] = s.value
print(json.dumps(out))
"#;
        let url = format!("http://127.0.0.1:{port}/metrics");
        let got = std::process::Command::new("python3").args(["-c", parse, &url]).output().unwrap();
        assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
        serde_json::from_slice(&got.stdout).unwrap()
    };
    let m = scrape();
    let run = env.json(&["history", "--state-dir", state.to_str().unwrap()])[0].clone();
    assert_eq!(m["cairn_job_last_run_success|job=app"], 1.0, "{m}");
    assert_eq!(m["cairn_job_last_run_added_bytes|job=app"].as_f64(), run["bytes_added"].as_f64(), "{m}");
    assert_eq!(m["cairn_job_fresh|job=app"], 1.0, "{m}");
    // Past its max-age with no new run: one `stale`, however long it stays so.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.to("/hook").is_empty() {
        assert!(Instant::now() < deadline, "no stale notification");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let events: Vec<serde_json::Value> =
        http.to("/hook").iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], "stale");
    assert_eq!(scrape()["cairn_job_fresh|job=app"], 0.0);
    let (code, _) = d.term();
    assert_eq!(code, 0);
});

cairn_test!(slow_runs_growth_low_space_and_damage_each_notify, |env| {
    let (head, src) = setup(&env);
    let http = Http::start(200);
    let config = env.path("cairn.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "{}min-free = \"100%\"\n\n[notify.chat]\nkind = \"webhook\"\nurl = \"{}\"\nevents = [\"slow\", \"growth\", \"low-space\", \"damage\", \"failure\"]\n\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\ngrowth = \"25%\"\n{extra}",
                head,
                http.url("/hook"),
                src.display()
            ),
        )
        .unwrap()
    };
    let events = || -> Vec<String> {
        http.to("/hook")
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["event"].as_str().unwrap().to_string())
            .collect()
    };
    // A full file system (under a min-free of 100%, any is): low-space on
    // every run; a hook that makes the run longer than `slow`: slow.
    write("slow = \"1s\"\nhooks = { before = [\"sleep 1.5\"] }\n");
    assert!(job_run(&env, &config).status.success());
    assert_eq!(events(), ["low-space", "slow"]);
    // Growth: 100 kB after 300 kB is not; 2 MB after them is.
    write("");
    std::fs::write(src.join("b"), crate::util::random_bytes(100_000, 2)).unwrap();
    assert!(job_run(&env, &config).status.success());
    assert_eq!(events(), ["low-space", "slow", "low-space"]);
    std::fs::write(src.join("c"), crate::util::random_bytes(2_000_000, 3)).unwrap();
    assert!(job_run(&env, &config).status.success());
    assert_eq!(events()[3..], ["low-space", "growth"]);
    let growth: serde_json::Value = serde_json::from_str(&http.to("/hook")[4].body).unwrap();
    assert!(growth["title"].as_str().unwrap().contains("over the median of its recent runs"), "{growth}");
    // Damage found by the job's check: damage, and the failure itself.
    let pack = env.repo_files("data").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    write("check = { read-data-subset = \"100%\" }\n");
    assert_eq!(job_run(&env, &config).status.code(), Some(1));
    let last: Vec<String> = events()[5..].to_vec();
    assert_eq!(last, ["failure", "low-space", "damage"]);
    let state = env.path("state");
    let steps = env.json(&["history", "--state-dir", state.to_str().unwrap()]);
    let check = steps.as_array().unwrap().iter().find(|r| r["kind"] == "check").unwrap();
    assert_eq!(check["outcome"], "failure");
    assert!(check["error"].as_str().unwrap().contains("problem(s) in repository a"), "{check}");
});

cairn_test!(a_run_with_unreadable_files_is_a_warning_in_the_history_and_to_the_channels, |env| {
    use std::os::unix::fs::PermissionsExt;
    // Root reads everything: the job runs as user 65534 when the tests run
    // as root, and everything it needs is made accessible to it.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let init = env.run_unprivileged(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(src.join("ok.txt"), "fine").unwrap();
    std::fs::write(src.join("secret.txt"), "no").unwrap();
    std::fs::set_permissions(src.join("secret.txt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let http = Http::start(200);
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n\n[notify.chat]\nkind = \"webhook\"\nurl = \"{}\"\n\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\n",
            env.repo.display(),
            pass.display(),
            http.url("/hook"),
            src.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = env.path("state");
    let (c, s) = (config.to_str().unwrap(), state.to_str().unwrap());
    let out = env.run_unprivileged(&["--config", c, "job", "run", "--state-dir", s]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // Which file, on stderr (it said nothing) and in the notification.
    assert!(err.contains("secret.txt") && err.contains("Permission denied"), "{err}");
    let sent: Vec<serde_json::Value> =
        http.to("/hook").iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["event"], "warning");
    assert!(sent[0]["title"].as_str().unwrap().contains("1 file(s) could not be read"), "{}", sent[0]);
    assert!(sent[0]["body"].as_str().unwrap().contains("secret.txt"), "{}", sent[0]);
    let runs = env.run_unprivileged(&["history", "--json", "--state-dir", s]);
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!((runs[0]["outcome"].as_str(), runs[0]["exit_code"].as_i64()), (Some("warning"), Some(3)), "{runs}");
    assert_eq!(runs[0]["warnings"], 1);
    assert!(runs[0]["snapshot"].is_string(), "a warning still wrote a snapshot: {runs}");
});
