//! The config file of repositories and jobs, through `cairn config check`
//! (crates/jobs has the unit tests of each mistake).

use std::os::unix::fs::PermissionsExt;

use crate::cairn_test;

const SOUND: &str = r#"
[repository.local]
location = "/srv/backup/cairn"
password-file = "/etc/cairn/local.pass"
keep = { daily = 30 }

[repository.offsite]
location = "s3:backups/app"
options = { "s3.endpoint" = "http://127.0.0.1:9000" }
password-command = "cat /etc/cairn/offsite.pass"
keep = { daily = 90, monthly = 12 }

[job.app]
repositories = ["local", "offsite"]
schedule = "daily 02:00"
paths = ["/etc"]
database = [{ name = "sessions", kind = "sqlite", path = "/var/lib/app/sessions.sqlite3" }]
"#;

cairn_test!(config_check_accepts_a_sound_file_and_names_file_line_and_key_of_a_mistake, |env| {
    let file = env.path("cairn.toml");
    std::fs::write(&file, SOUND).unwrap();
    let f = file.to_str().unwrap();
    let out = env.ok(&["config", "check", "--config", f]);
    assert!(out.contains("sound; 2 repositories (local, offsite), 1 jobs (app)"), "{out}");
    // Found through CAIRN_CONFIG too.
    let out = env.cmd().env("CAIRN_CONFIG", f).args(["config", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Each mistake: exit 1, one line naming the file, the line and the key.
    let cases = [
        (SOUND.replace("keep = { daily = 30 }", "keep = { daily = 30 }\npasword = \"x\""), 6, "pasword"),
        (SOUND.replace("paths = [\"/etc\"]", "paths = \"/etc\""), 16, "paths"),
        (SOUND.replace("[\"local\", \"offsite\"]", "[\"local\", \"offsite\", \"cloud\"]"), 14, "job.app.repositories"),
    ];
    for (text, line, key) in cases {
        std::fs::write(&file, text).unwrap();
        let out = env.run(&["config", "check", "--config", f]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("{f}:{line}: {key}: ")), "{err}");
    }

    // A password in the file, readable by others: refused until chmod 600.
    std::fs::write(&file, SOUND.replace("password-file = \"/etc/cairn/local.pass\"", "password = \"hunter2\""))
        .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["config", "check", "--config", f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{f}:4: repository.local.password: a password in a file others may read (mode 0644): run chmod 600"
        )),
        "{err}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["config", "check", "--config", f]);

    // No such file.
    let out = env.run(&["config", "check", "--config", env.path("missing.toml").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read config") && err.contains("missing.toml"), "{err}");
});

/// A config of two repositories and one job over `src`, a SQLite file and
/// a command whose output is `command`; hooks append to `log`.
fn job_config(env: &crate::util::Env, src: &std::path::Path, db: &std::path::Path, command: &str) -> String {
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let log = env.path("hooks.log");
    let hook = |what: &str| format!("echo {what} >> {}", log.display());
    format!(
        r#"
[repository.a]
location = "{a}"
password-file = "{pass}"
keep = {{ last = 1 }}

[repository.b]
location = "{b}"
password-command = "cat {pass}"
keep = {{ last = 2 }}

[job.app]
repositories = ["a", "b"]
paths = ["{src}"]
database = [{{ name = "sessions", kind = "sqlite", path = "{db}" }}]
command = [{{ name = "redis.rdb", run = ["sh", "-c", "{command}"] }}]
hooks = {{ before = ["{before}"], after = ["{after}"], on-failure = ["{failure}"], finally = ["{finally}"] }}
"#,
        a = env.repo.display(),
        b = env.path("repo-b").display(),
        pass = pass.display(),
        src = src.display(),
        db = db.display(),
        command = command,
        before = hook("before"),
        after = hook("after"),
        failure = hook("on-failure"),
        finally = hook("finally"),
    )
}

cairn_test!(a_job_puts_folders_a_database_and_a_command_in_one_snapshot_or_none, |env| {
    if std::process::Command::new("sqlite3").arg("-version").output().is_err() {
        panic!("sqlite3 is missing; tests/run installs it");
    }
    env.init();
    let b = env.path("repo-b");
    let out = env.cmd().args(["init", "-r", b.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("app.conf"), "listen 8080\n").unwrap();
    let db = env.path("sessions.sqlite3");
    let sql = "CREATE TABLE s(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO s(v) VALUES ('alpha'), ('beta');";
    assert!(std::process::Command::new("sqlite3").arg(&db).arg(sql).status().unwrap().success());
    let config = env.path("cairn.toml");
    std::fs::write(&config, job_config(&env, &src, &db, "printf REDIS0011")).unwrap();
    let state = env.path("state");
    let job = |extra: &[&str]| {
        let mut args = vec!["job", "run", "--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()];
        args.extend_from_slice(extra);
        env.run(&args)
    };
    let snapshots = |repo: &std::path::Path| {
        let out = env.cmd().args(["snapshots", "--json", "-r", repo.to_str().unwrap()]).output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().len()
    };

    // A dry run says what would run and runs nothing.
    let out = job(&["--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("/databases/sessions.sql <- sqlite3 -readonly -bail"), "{said}");
    assert_eq!(snapshots(&env.repo), 0);

    // Two runs: one snapshot each, with everything in it; retention keeps
    // 1 in a and 2 in b, as configured. A writer keeps inserting into the
    // SQLite database meanwhile.
    let writer_script = format!(
        "i=0; while true; do sqlite3 {} \"INSERT INTO s(v) VALUES ('w$i')\" || exit 1; i=$((i+1)); done",
        db.display()
    );
    let mut writer = std::process::Command::new("sh").args(["-c", &writer_script]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for round in 0..2 {
        std::fs::write(src.join("app.conf"), format!("listen 808{round}\n")).unwrap();
        let out = job(&[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("copied to b") && said.contains("retention: a -"), "{said}");
    }
    let _ = writer.kill();
    let _ = writer.wait();
    assert_eq!((snapshots(&env.repo), snapshots(&b)), (1, 2));
    let dump = env.ok(&["dump", "latest", "/databases/sessions.sql"]);
    assert!(dump.contains("INSERT INTO s VALUES(2,'beta');"), "{dump}");
    assert_eq!(env.ok(&["dump", "latest", "/commands/redis.rdb"]), "REDIS0011");
    let conf = env.ok(&["dump", "latest", src.join("app.conf").to_str().unwrap()]);
    assert_eq!(conf, "listen 8081\n");
    let hooks = std::fs::read_to_string(env.path("hooks.log")).unwrap();
    assert_eq!(hooks, "before\nafter\nfinally\nbefore\nafter\nfinally\n");

    // The SQLite dump back into a new file: the same rows, and sound.
    let copy = env.path("restored.sqlite3");
    env.ok(&["--config", config.to_str().unwrap(), "db", "restore", "sessions", "--into", copy.to_str().unwrap()]);
    let query = |file: &std::path::Path, sql: &str| {
        let out = std::process::Command::new("sqlite3").arg(file).arg(sql).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(query(&copy, "PRAGMA integrity_check"), "ok");
    // A consistent copy taken while the writer went on: every row up to
    // some point, none missing in between, fewer than there are now.
    let (copied, live) = (query(&copy, "SELECT count(*) FROM s"), query(&db, "SELECT count(*) FROM s"));
    assert_eq!(query(&copy, "SELECT count(*) = max(id) FROM s"), "1", "{copied} rows");
    assert!(copied.parse::<u64>().unwrap() > 2, "the writer's rows are in: {copied}");
    assert!(copied.parse::<u64>().unwrap() <= live.parse::<u64>().unwrap(), "{copied} vs {live}");
    assert_eq!(query(&copy, "SELECT v FROM s WHERE id <= 2 ORDER BY id"), "alpha\nbeta");
    // Over the live file only with --replace.
    let out = env.run(&["--config", config.to_str().unwrap(), "db", "restore", "sessions"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));

    // A source failing half-way: exit 1, one line, no snapshot anywhere,
    // the on-failure and finally hooks run.
    std::fs::write(&config, job_config(&env, &src, &db, "printf partial; exit 4")).unwrap();
    let out = job(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("job app:") && err.contains("failed") && err.contains("no snapshot"), "{err}");
    assert_eq!((snapshots(&env.repo), snapshots(&b)), (1, 2));
    let hooks = std::fs::read_to_string(env.path("hooks.log")).unwrap();
    assert!(hooks.ends_with("before\non-failure\nfinally\n"), "{hooks}");

    // Two runs of one job never overlap: the second is refused at once.
    let slow = job_config(&env, &src, &db, "printf REDIS0011").replacen("before = [\"", "before = [\"sleep 3; ", 1);
    std::fs::write(&config, slow).unwrap();
    let mut first = env
        .cmd()
        .args(["job", "run", "--config", config.to_str().unwrap(), "--state-dir", state.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let out = job(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("job app is already running"), "{err}");
    assert!(first.wait().unwrap().success());
    // The lock went with the process: the job runs again.
    assert!(job(&[]).status.success());
});

cairn_test!(schedules_become_systemd_units_that_systemd_accepts_and_agrees_with, |env| {
    let file = env.path("cairn.toml");
    let schedules =
        ["daily 02:00", "hourly :15", "weekly mon 03:30", "monthly 1 04:00", "0,30 8-9 * * sat,sun", "*/20 * * * *"];
    let mut text = String::from("[repository.a]\nlocation = \"/srv/backup\"\npassword-file = \"/etc/cairn/pass\"\n");
    for (i, s) in schedules.iter().enumerate() {
        text += &format!("[job.j{i}]\nrepositories = [\"a\"]\npaths = [\"/etc\"]\nschedule = \"{s}\"\n");
    }
    text += "[job.manual]\nrepositories = [\"a\"]\npaths = [\"/etc\"]\n";
    // A drill on its own schedule: units of its own.
    text += "[job.drilled]\nrepositories = [\"a\"]\npaths = [\"/etc\"]\ndrill = { schedule = \"monthly 1 05:00\" }\n";
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();

    // systemd computes the same next run as `schedule list` (both in UTC here).
    let list = env.cmd().env("TZ", "UTC").args(["--config", f, "schedule", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.lines().count(), schedules.len() + 1, "the unscheduled job is not listed: {list}");
    assert!(list.contains("drilled (drill): monthly 1 05:00"), "{list}");
    for line in list.lines() {
        let next = line.split("(next ").nth(1).and_then(|r| r.split(';').next()).unwrap();
        let calendar = line.split("systemd ").nth(1).unwrap().trim_end_matches(')');
        let out = std::process::Command::new("systemd-analyze")
            .env("TZ", "UTC")
            .args(["calendar", calendar])
            .output()
            .expect("systemd-analyze (package systemd; tests/run installs it)");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{calendar}: {said}");
        let elapse = said.lines().find_map(|l| l.trim().strip_prefix("Next elapse: ")).unwrap();
        // "Sun 2026-12-06 08:30:00 UTC" against "2026-12-06 08:30:00".
        assert!(elapse.contains(next), "{line}: systemd says {elapse}");
    }

    // The units: written 0644, accepted by systemd-analyze verify.
    let units = env.path("units");
    env.ok(&["--config", f, "schedule", "install", "--unit-dir", units.to_str().unwrap(), "--no-enable"]);
    let mut written: Vec<String> =
        std::fs::read_dir(&units).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    assert_eq!(written.len(), 2 * schedules.len() + 2, "{written:?}");
    let drill = std::fs::read_to_string(units.join("cairn-drill-drilled.service")).unwrap();
    assert!(drill.contains(&format!("--config {f} drill drilled\n")), "{drill}");
    for n in &written {
        let mode = std::fs::metadata(units.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{n}");
    }
    let timer = std::fs::read_to_string(units.join("cairn-job-j0.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 02:00:00\n") && timer.contains("Persistent=true"), "{timer}");
    let service = std::fs::read_to_string(units.join("cairn-job-j0.service")).unwrap();
    assert!(service.contains(&format!("--config {f} job run j0\n")), "{service}");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(written.iter().map(|n| units.join(n)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // Where systemd is not running (a container), enabling fails with a
    // line that says what to do instead.
    if !std::path::Path::new("/run/systemd/system").exists() {
        let out = env.run(&["--config", f, "schedule", "install", "--unit-dir", units.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("run the schedules with `cairn daemon` or install them with --cron"), "{err}");
    }

    // Crontab lines instead.
    let cron = env.ok(&["--config", f, "schedule", "install", "--cron"]);
    assert!(
        cron.lines().any(|l| l.starts_with("0 2 * * * ") && l.ends_with(&format!("--config {f} job run j0"))),
        "{cron}"
    );
    assert!(cron.contains("15 * * * * "), "{cron}");

    // Removed again.
    env.ok(&["--config", f, "schedule", "remove", "--unit-dir", units.to_str().unwrap(), "--no-enable"]);
    assert_eq!(std::fs::read_dir(&units).unwrap().count(), 0);
});

/// The daemon's event lines, as they come.
pub struct Daemon {
    pub child: std::process::Child,
    lines: crossbeam_channel::Receiver<serde_json::Value>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test leaves no daemon behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    pub fn start(env: &crate::util::Env, config: &std::path::Path, state: &std::path::Path) -> Daemon {
        let mut child = env
            .cmd()
            .args(["--config", config.to_str().unwrap(), "daemon", "--state-dir", state.to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")));
            }
        });
        Daemon { child, lines }
    }

    /// Events up to and including the first `event`.
    pub fn until(&self, event: &str) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let e = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {event} in {seen:?}"));
            let done = e["event"] == event;
            seen.push(e);
            if done {
                return seen;
            }
        }
    }

    pub fn term(mut self) -> (i32, Vec<serde_json::Value>) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let rest = self.until("stopped");
        (self.child.wait().unwrap().code().unwrap_or(-1), rest)
    }
}

cairn_test!(the_daemon_catches_up_a_missed_run_never_overlaps_a_job_and_stops_cleanly, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "alpha").unwrap();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let config = env.path("cairn.toml");
    let text = format!(
        "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\nschedule = \"daily 02:00\"\nhooks = {{ before = [\"sleep 2\"] }}\n",
        env.repo.display(),
        pass.display(),
        src.display()
    );
    std::fs::write(&config, text).unwrap();
    let state = env.path("state");
    std::fs::create_dir_all(state.join("jobs")).unwrap();
    let three_days_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72);
    let snapshots = || env.json(&["snapshots"]).as_array().unwrap().len();

    // Last run three days ago: the missed run happens at once. SIGTERM while
    // it runs (in its 2 s hook) lets it finish; then the daemon stops, 0.
    std::fs::write(state.join("jobs/app.last"), format!("{three_days_ago}\n")).unwrap();
    let d = Daemon::start(&env, &config, &state);
    let seen = d.until("run");
    assert_eq!(seen[0]["event"], "started");
    let (code, rest) = d.term();
    assert_eq!(code, 0, "{rest:?}");
    let events: Vec<&str> = rest.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["stopping", "finished", "stopped"], "{rest:?}");
    assert!(rest[1]["snapshot"].is_string(), "{rest:?}");
    assert_eq!(snapshots(), 1);
    env.ok(&["check"]);

    // Caught up, it is not due again before tomorrow 02:00: idle, it stops at once.
    let d = Daemon::start(&env, &config, &state);
    d.until("started");
    let (code, rest) = d.term();
    assert_eq!((code, rest.len()), (0, 1), "{rest:?}");

    // A manual run in progress counts as the run that was due: the daemon
    // starts none beside it.
    std::fs::write(state.join("jobs/app.last"), format!("{three_days_ago}\n")).unwrap();
    let mut manual = env
        .cmd()
        .args(["--config", config.to_str().unwrap(), "job", "run", "--state-dir", state.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let d = Daemon::start(&env, &config, &state);
    d.until("started");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (code, rest) = d.term();
    assert_eq!((code, rest.len()), (0, 1), "only stopped: {rest:?}");
    assert!(manual.wait().unwrap().success());
    assert_eq!(snapshots(), 2, "the manual run's snapshot, and no other");

    // Whoever holds the job's lock when its time comes (here this test),
    // the daemon skips that time rather than run the job twice at once.
    std::fs::write(state.join("jobs/app.last"), format!("{three_days_ago}\n")).unwrap();
    let lock = std::fs::OpenOptions::new().write(true).open(state.join("jobs/app.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let d = Daemon::start(&env, &config, &state);
    let seen = d.until("skipped");
    assert_eq!(seen.last().unwrap()["reason"], "already running", "{seen:?}");
    let (code, _) = d.term();
    assert_eq!(code, 0);
    drop(held);
    assert_eq!(snapshots(), 2);
});

cairn_test!(postgresql_databases_back_up_in_a_job_and_restore_by_name_with_the_same_rows, |env| {
    let pg = crate::databases::Postgres::start();
    for (db, rows) in [("app", 2000), ("crm", 300)] {
        pg.psql("postgres", &format!("CREATE DATABASE {db}")).unwrap();
        let sql = format!(
            "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, {rows}) i"
        );
        pg.psql(db, &sql).unwrap();
    }
    let checksum =
        |db: &str| pg.psql(db, "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM t").unwrap();
    let (app, crm) = (checksum("app"), checksum("crm"));
    env.init();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "x").unwrap();
    let config = env.path("cairn.toml");
    let host = pg.socket.display();
    let text = format!(
        "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\ndatabase = [\n  {{ name = \"appdb\", kind = \"postgresql\", database = \"app\", host = \"{host}\", user = \"postgres\" }},\n  {{ name = \"crmdb\", kind = \"postgresql\", database = \"crm\", host = \"{host}\", user = \"postgres\" }},\n]\n",
        env.repo.display(),
        pass.display(),
        src.display()
    );
    std::fs::write(&config, &text).unwrap();
    let c = config.to_str().unwrap();
    let state = env.path("state");
    let job = env.run(&["--config", c, "job", "run", "--state-dir", state.to_str().unwrap()]);
    assert!(job.status.success(), "{}", String::from_utf8_lossy(&job.stderr));
    let listed = env.ok(&["--config", c, "db", "list"]);
    assert!(listed.contains("appdb\tjob app") && listed.contains("crmdb\tjob app"), "{listed}");

    // Each database into a new one: the same rows.
    for (name, db, want) in [("appdb", "app", &app), ("crmdb", "crm", &crm)] {
        let into = format!("{db}_restored");
        env.ok(&["--config", c, "db", "restore", name, "--into", &into, "--create"]);
        assert_eq!(&checksum(&into), want, "{name}");
    }

    // Changes after the backup; a restore over the live database is refused
    // without --replace, and with it the replaced rows are kept in a
    // pre-restore snapshot first.
    pg.psql("app", "INSERT INTO t VALUES (1000001, 'written after the backup')").unwrap();
    let out = env.run(&["--config", c, "db", "restore", "appdb"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("app holds data: give --replace"), "{err}");
    assert_eq!(pg.psql("app", "SELECT count(*) FROM t").unwrap(), "2001", "nothing changed");
    let said = env.ok(&["--config", c, "db", "restore", "appdb", "--replace"]);
    assert!(said.contains("tag pre-restore"), "{said}");
    assert_eq!(checksum("app"), app, "the snapshot's rows are back");
    let saved = env.json(&["snapshots", "--tag", "pre-restore"]);
    let saved = saved[0]["id"].as_str().unwrap().to_string();
    let kept = env.ok(&["dump", &saved, "/databases/appdb.sql"]);
    assert!(kept.contains("written after the backup"), "the replaced rows are in the pre-restore snapshot");
    // And they come back from it by name, as any snapshot's dump does.
    env.ok(&["--config", c, "db", "restore", "appdb", "--snapshot", &saved, "--into", "app_before", "--create"]);
    assert_eq!(pg.psql("app_before", "SELECT v FROM t WHERE id = 1000001").unwrap(), "written after the backup");
    let plan = env.ok(&["--config", c, "db", "restore", "appdb", "--replace", "--dry-run"]);
    assert!(!plan.contains(&saved[..8]), "`latest` is the job's own snapshot, not the pre-restore one: {plan}");

    // A database that cannot be dumped: no snapshot, exit 1.
    let before = env.json(&["snapshots"]).as_array().unwrap().len();
    std::fs::write(&config, text.replace("database = \"crm\"", "database = \"missing\"")).unwrap();
    let out = env.run(&["--config", c, "job", "run", "--state-dir", state.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), before);
});

cairn_test!(a_postgresql_cluster_and_the_roles_beside_a_database_restore_onto_another_server, |env| {
    let (old, new) = (crate::databases::Postgres::start(), crate::databases::Postgres::start());
    old.psql("postgres", "CREATE ROLE app_owner LOGIN PASSWORD 'secret'").unwrap();
    for db in ["app", "crm"] {
        old.psql("postgres", &format!("CREATE DATABASE {db} OWNER app_owner")).unwrap();
        old.psql(db, "SET ROLE app_owner; CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 700) i")
            .unwrap();
    }
    let sum = |pg: &crate::databases::Postgres, db: &str| {
        pg.psql(db, "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) || ':' || pg_get_userbyid(relowner) FROM t, pg_class WHERE relname = 't' GROUP BY relowner")
            .unwrap()
    };
    let (app, crm) = (sum(&old, "app"), sum(&old, "crm"));
    assert!(app.ends_with(":app_owner"), "{app}");
    env.init();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let config = |host: &std::path::Path| {
        let file = env.path(&format!("{}.toml", host.parent().unwrap().file_name().unwrap().to_string_lossy()));
        let host = host.display();
        let text = format!(
            "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n[job.pg]\nrepositories = [\"a\"]\ndatabase = [\n  {{ name = \"cluster\", kind = \"postgresql\", database = \"all\", host = \"{host}\", user = \"postgres\" }},\n  {{ name = \"appdb\", kind = \"postgresql\", database = \"app\", host = \"{host}\", user = \"postgres\" }},\n]\n",
            env.repo.display(),
            pass.display(),
        );
        std::fs::write(&file, text).unwrap();
        file.to_str().unwrap().to_string()
    };
    let (on_old, on_new) = (config(&old.socket), config(&new.socket));
    let state = env.path("state");
    let out = env.run(&["--config", &on_old, "job", "run", "--state-dir", state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = env.ok(&["--config", &on_old, "db", "list"]);
    for name in ["cluster\t", "appdb\t", "appdb.globals\t"] {
        assert!(listed.contains(name), "{name}: {listed}");
    }
    assert!(env.ok(&["dump", "latest", "/databases/appdb.globals.sql"]).contains("CREATE ROLE app_owner"));

    // On a new server the database alone cannot load: its owner is missing.
    let out = env.run(&["--config", &on_new, "db", "restore", "appdb", "--create"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("role \"app_owner\" does not exist"), "{err}");
    // The roles first (the server's own superuser already exists: not an
    // error), then the database: the same rows, the same owner.
    env.ok(&["--config", &on_new, "db", "restore", "appdb.globals"]);
    assert_eq!(new.psql("postgres", "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_owner'").unwrap(), "t");
    env.ok(&["--config", &on_new, "db", "restore", "appdb"]);
    assert_eq!(sum(&new, "app"), app);
    // The roles again: they exist now, so that is a replacement.
    let out = env.run(&["--config", &on_new, "db", "restore", "appdb.globals"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds data: give --replace"));

    // The whole cluster onto the new server: it holds `app` now, so only
    // with --replace, and what it held is saved first.
    new.psql("app", "INSERT INTO t VALUES (1000001, 'only on the new server')").unwrap();
    let out = env.run(&["--config", &on_new, "db", "restore", "cluster"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let plan = env.ok(&["--config", &on_new, "db", "restore", "cluster", "--replace", "--dry-run"]);
    assert!(plan.contains("pg_dumpall") && plan.contains("dropdb") && plan.contains(" app"), "{plan}");
    env.ok(&["--config", &on_new, "db", "restore", "cluster", "--replace"]);
    assert_eq!((sum(&new, "app"), sum(&new, "crm")), (app, crm));
    let saved = env.json(&["snapshots", "--tag", "pre-restore"]);
    let kept = env.ok(&["dump", saved[0]["id"].as_str().unwrap(), "/databases/cluster.sql"]);
    assert!(kept.contains("only on the new server"), "the replaced cluster is in the pre-restore snapshot");
    // --into makes no sense for a cluster.
    let out = env.run(&["--config", &on_new, "db", "restore", "cluster", "--into", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--into is for a single database"));
});

cairn_test!(a_job_checks_its_repository_after_the_backup_and_stops_a_hook_at_its_time_out, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), crate::util::random_bytes(3 << 20, 7)).unwrap();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let config = env.path("cairn.toml");
    let base = format!(
        "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\n",
        env.repo.display(),
        pass.display(),
        src.display()
    );
    let state = env.path("state");
    let run = |extra: &str| {
        std::fs::write(&config, format!("{base}{extra}")).unwrap();
        env.run(&["--config", config.to_str().unwrap(), "job", "run", "--state-dir", state.to_str().unwrap()])
    };
    // The check's group moves on each run: 1/2, then 2/2, then 1/2.
    for want in ["checked 1/2 of the data", "checked 2/2 of the data", "checked 1/2 of the data"] {
        let out = run("check = { read-data-subset = \"1/2\" }\n");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && said.contains(want), "{said}{}", String::from_utf8_lossy(&out.stderr));
    }
    // Damage in a data pack: the job's check finds it and the job fails.
    let pack = env.repo_files("data").into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let out = run("check = { read-data-subset = \"100%\" }\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the check after the backup found") && err.contains("cairn check --read-data"), "{err}");

    // A hook past its time-out is stopped, with what it started, and the
    // job fails without a snapshot.
    let before = env.json(&["snapshots"]).as_array().unwrap().len();
    let started = std::time::Instant::now();
    let out = run("hooks = { before = [\"sleep 31.5 & wait\"], timeout = \"1s\" }\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("before hook") && err.contains("stopped after 1s, its time-out"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    let left = std::process::Command::new("pgrep").args(["-f", "sleep 31.5"]).output().unwrap();
    assert!(left.stdout.is_empty(), "the hook's own process is gone too");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), before);
});

cairn_test!(a_mariadb_database_backs_up_in_a_job_and_restores_by_name_with_the_same_rows, |env| {
    let my = crate::databases::Mariadb::start();
    my.sql("", "CREATE DATABASE shop").unwrap();
    my.sql("shop", "CREATE TABLE t(id INT PRIMARY KEY, v TEXT); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_3000")
        .unwrap();
    let checksum = |db: &str| my.sql(db, "SELECT COUNT(*), MD5(GROUP_CONCAT(id, v ORDER BY id)) FROM t").unwrap();
    let want = checksum("shop");
    env.init();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n[job.shop]\nrepositories = [\"a\"]\npaths = [\"{}\"]\ndatabase = [{{ name = \"shopdb\", kind = \"mariadb\", database = \"shop\", host = \"{}\", user = \"root\" }}]\n",
            env.repo.display(),
            pass.display(),
            src.display(),
            my.socket.display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let state = env.path("state");
    let out = env.run(&["--config", c, "job", "run", "--state-dir", state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(&["--config", c, "db", "restore", "shopdb", "--into", "shop_restored", "--create"]);
    assert_eq!(checksum("shop_restored"), want);
    // Over the live one: refused, then saved first with --replace.
    my.sql("shop", "INSERT INTO t VALUES (999999, 'written after the backup')").unwrap();
    let out = env.run(&["--config", c, "db", "restore", "shopdb"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(&["--config", c, "db", "restore", "shopdb", "--replace"]);
    assert_eq!(checksum("shop"), want);
    let saved = env.json(&["snapshots", "--tag", "pre-restore"]);
    let kept = env.ok(&["dump", saved[0]["id"].as_str().unwrap(), "/databases/shopdb.sql"]);
    assert!(kept.contains("written after the backup"));
});

cairn_test!(one_job_holds_two_postgresql_a_mariadb_and_a_live_sqlite_database_a_folder_and_a_command, |env| {
    let pg = crate::databases::Postgres::start();
    let my = crate::databases::Mariadb::start();
    for db in ["app", "crm"] {
        pg.psql("postgres", &format!("CREATE DATABASE {db}")).unwrap();
        pg.psql(db, "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 500) i")
            .unwrap();
    }
    my.sql("", "CREATE DATABASE shop").unwrap();
    my.sql("shop", "CREATE TABLE t(id INT PRIMARY KEY, v TEXT); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_500")
        .unwrap();
    let lite = env.path("live.sqlite3");
    let ok = std::process::Command::new("sqlite3")
        .arg(&lite)
        .arg("CREATE TABLE s(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO s(v) VALUES ('first');")
        .status()
        .unwrap();
    assert!(ok.success());
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("app.conf"), "listen 8080\n").unwrap();
    env.init();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let (pg_host, my_host) = (pg.socket.display().to_string(), my.socket.display().to_string());
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            r#"[repository.a]
location = "{repo}"
password-file = "{pass}"
[job.all]
repositories = ["a"]
paths = ["{src}"]
database = [
  {{ name = "app", kind = "postgresql", database = "app", host = "{pg_host}", user = "postgres" }},
  {{ name = "crm", kind = "postgresql", database = "crm", host = "{pg_host}", user = "postgres" }},
  {{ name = "shop", kind = "mariadb", database = "shop", host = "{my_host}", user = "root" }},
  {{ name = "live", kind = "sqlite", path = "{lite}" }},
]
command = [{{ name = "motd", run = ["printf", "hello"] }}]
"#,
            repo = env.repo.display(),
            pass = pass.display(),
            src = src.display(),
            lite = lite.display(),
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let writer_script =
        format!("while true; do sqlite3 {} \"INSERT INTO s(v) VALUES ('w')\" || exit 1; done", lite.display());
    let mut writer = std::process::Command::new("sh").args(["-c", &writer_script]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let state = env.path("state");
    let out = env.run(&["--config", c, "job", "run", "--state-dir", state.to_str().unwrap()]);
    let _ = writer.kill();
    let _ = writer.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1, "one snapshot for everything");
    let mut paths: Vec<String> =
        snaps[0]["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    paths.sort();
    let mut want = vec![
        "/commands/motd".to_string(),
        "/databases/app.globals.sql".into(),
        "/databases/app.sql".into(),
        "/databases/crm.globals.sql".into(),
        "/databases/crm.sql".into(),
        "/databases/live.sql".into(),
        "/databases/shop.sql".into(),
        src.display().to_string(),
    ];
    want.sort();
    assert_eq!(paths, want);
    assert_eq!(env.ok(&["dump", "latest", "/commands/motd"]), "hello");
    // Each database back under a new name: the same rows.
    let pg_sum =
        |db: &str| pg.psql(db, "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM t").unwrap();
    for db in ["app", "crm"] {
        env.ok(&["--config", c, "db", "restore", db, "--into", &format!("{db}_copy"), "--create"]);
        assert_eq!(pg_sum(&format!("{db}_copy")), pg_sum(db));
    }
    let my_sum = |db: &str| my.sql(db, "SELECT COUNT(*), MD5(GROUP_CONCAT(id, v ORDER BY id)) FROM t").unwrap();
    env.ok(&["--config", c, "db", "restore", "shop", "--into", "shop_copy", "--create"]);
    assert_eq!(my_sum("shop_copy"), my_sum("shop"));
    let copy = env.path("copy.sqlite3");
    env.ok(&["--config", c, "db", "restore", "live", "--into", copy.to_str().unwrap()]);
    let q = |sql: &str| {
        let out = std::process::Command::new("sqlite3").arg(&copy).arg(sql).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(q("PRAGMA integrity_check"), "ok");
    assert_eq!(q("SELECT count(*) = max(id) FROM s"), "1");
});

cairn_test!(a_repository_is_pruned_after_a_job_when_its_prune_schedule_is_due, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\nkeep = {{ last = 1 }}\nprune = \"monthly 1 04:00\"\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\n",
            env.repo.display(),
            pass.display(),
            src.display()
        ),
    )
    .unwrap();
    let state = env.path("state");
    let run = |seed: u64| {
        std::fs::write(src.join("big"), crate::util::random_bytes(2 << 20, seed)).unwrap();
        let out =
            env.run(&["--config", config.to_str().unwrap(), "job", "run", "--state-dir", state.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // Never pruned here: the first run prunes.
    assert!(run(1).contains("; pruned a ("), "first run");
    // Just pruned, and monthly: not again before the 1st.
    let second = run(2);
    assert!(!second.contains("pruned"), "{second}");
    // The last prune 40 days ago: due; the first snapshot's data, which
    // retention dropped, is found unused.
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(40 * 24);
    std::fs::write(state.join("repositories/a.pruned"), format!("{long_ago}\n")).unwrap();
    let third = run(3);
    let unused: usize = third.split("; pruned a (").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(unused > 0, "{third}");
    env.ok(&["check"]);
});

cairn_test!(two_daemons_on_an_every_minute_schedule_never_run_the_job_twice_at_once, |env| {
    // A job due every minute that takes seconds, two daemons on the same
    // state folder (as when one is started twice by mistake), three missed
    // minutes: the runs never overlap, the missed minutes are caught up once,
    // and at the next minute one daemon runs it while the other skips.
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "alpha").unwrap();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let log = env.path("hook.log");
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\nschedule = \"* * * * *\"\nhooks = {{ before = [\"echo start >> {log}; sleep 4; echo end >> {log}\"] }}\n",
            env.repo.display(),
            pass.display(),
            src.display(),
            log = log.display(),
        ),
    )
    .unwrap();
    let state = env.path("state");
    std::fs::create_dir_all(state.join("jobs")).unwrap();
    let three_minutes_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(3);
    std::fs::write(state.join("jobs/app.last"), format!("{three_minutes_ago}\n")).unwrap();
    let hook_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let first = Daemon::start(&env, &config, &state);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !hook_log().contains("start") {
        assert!(std::time::Instant::now() < deadline, "the missed minutes were not caught up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The first run is recorded: a second daemon started now does not run
    // the job again for those missed minutes.
    let second = Daemon::start(&env, &config, &state);
    // Until the next minute's run has ended too: both daemons wake for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(80);
    while hook_log().matches("end").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "no run at the next minute: {}", hook_log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (a, mut events) = first.term();
    let (b, more) = second.term();
    assert_eq!((a, b), (0, 0));
    events.extend(more);
    // Strictly start, end, start, end: never two at once.
    let lines: Vec<String> = hook_log().lines().map(str::to_string).collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l, if i % 2 == 0 { "start" } else { "end" }, "{lines:?}");
    }
    let count = |what: &str| events.iter().filter(|e| e["event"] == what).count();
    let runs = lines.len() / 2;
    assert_eq!(count("finished"), runs, "{events:?}");
    assert_eq!(count("run"), count("finished") + count("skipped"), "every due time ran or was skipped: {events:?}");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), runs, "one snapshot per run");
    // Three missed minutes, one catch-up run; then one per minute (a third
    // if a minute passed while the test stopped the daemons).
    assert!((2..=3).contains(&runs), "{lines:?} {events:?}");
    env.ok(&["check"]);
});

cairn_test!(an_interrupted_job_run_stops_its_dump_runs_its_finally_hooks_and_leaves_no_snapshot, |env| {
    // `before` stops a service and `finally` starts it again: SIGTERM in the
    // middle of the backup must not leave it stopped, nor the dump running.
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "alpha").unwrap();
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let (started, failed, finally) = (env.path("started"), env.path("failed"), env.path("finally"));
    let config = env.path("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[repository.a]\nlocation = \"{}\"\npassword-file = \"{}\"\n[job.app]\nrepositories = [\"a\"]\npaths = [\"{}\"]\ncommand = [{{ name = \"slow\", run = [\"sh\", \"-c\", \"head -c 3000000 /dev/urandom; touch {}; sleep 41.5\"] }}]\nhooks = {{ on-failure = [\"touch {}\"], finally = [\"touch {}\"] }}\n",
            env.repo.display(),
            pass.display(),
            src.display(),
            started.display(),
            failed.display(),
            finally.display(),
        ),
    )
    .unwrap();
    let state = env.path("state");
    let c = config.to_str().unwrap();
    // Not from a terminal (as from a timer): the dump runs in a process
    // group of its own, which cairn stops whole.
    let run = env
        .cmd()
        .args(["--config", c, "job", "run", "--state-dir", state.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline, "the dump never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(run.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(sent.elapsed() < std::time::Duration::from_secs(20), "{:?}", sent.elapsed());
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert!(failed.exists() && finally.exists(), "on-failure and finally ran: {err}");
    let left = std::process::Command::new("pgrep").args(["-f", "sleep 41.5"]).output().unwrap();
    assert!(left.stdout.is_empty(), "the dump command is stopped with cairn");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 0);
    env.ok(&["check"]);
    // The daemon's second signal stops the dump too.
    std::fs::remove_file(&started).unwrap();
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace("[job.app]\n", "[job.app]\nschedule = \"daily 02:00\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(state.join("jobs")).unwrap();
    std::fs::write(state.join("jobs/app.last"), "2026-01-01T00:00:00Z\n").unwrap();
    let d = Daemon::start(&env, &config, &state);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(30), "the dump never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    d.until("stopping");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut d = d;
    assert_eq!(d.child.wait().unwrap().code(), Some(143));
    let left = std::process::Command::new("pgrep").args(["-f", "sleep 41.5"]).output().unwrap();
    assert!(left.stdout.is_empty(), "the dump command is stopped with the daemon");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 0);
    env.ok(&["check"]);
});
