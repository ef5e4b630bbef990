//! Command-line behaviour: dates, dry runs, patterns, JSON times.
use super::*;

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
