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
    assert!(err.contains("holds a password and others may read it (mode 0644): run chmod 600"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["config", "check", "--config", f]);

    // No such file.
    let out = env.run(&["config", "check", "--config", env.path("missing.toml").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot read config") && err.contains("missing.toml"), "{err}");
});
