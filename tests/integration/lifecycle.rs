//! Lifecycle commands through the binary: forget by policy, tags and
//! protection.

use crate::cairn_test;
use crate::util::Env;

/// One small backup per given day (at 02:00 UTC), returns the snapshot ids.
fn daily_backups(env: &Env, days: &[&str], tags: &[&str]) -> Vec<String> {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    days.iter()
        .enumerate()
        .map(|(i, day)| {
            std::fs::write(src.join("file"), format!("version {i}")).unwrap();
            let time = format!("{day}T02:00:00Z");
            let mut args = vec!["backup", src.to_str().unwrap(), "--time", &time];
            let tag_arg;
            if !tags[i].is_empty() {
                tag_arg = tags[i].to_string();
                args.extend(["--tag", &tag_arg]);
            }
            env.json(&args)["snapshot_id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    let v = env.json(&["snapshots"]);
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

cairn_test!(forget_applies_the_policy_and_spares_tags_and_protected_snapshots, |env| {
    env.init();
    let days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-02-10", "2026-02-11", "2026-02-12"];
    let ids = daily_backups(&env, &days, &["", "archive", "", "", "", ""]);
    // Protect the oldest: its id changes, the content does not.
    let out = env.json(&["tag", "--protect", &ids[0][..12]]);
    let protected = out[0]["new"].as_str().unwrap().to_string();
    assert_ne!(protected, ids[0]);

    // Dry run: nothing removed, the plan lists reasons.
    let plan = env.json(&["forget", "--keep-daily", "2", "--keep-tag", "archive", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    let group = &plan["groups"][0]["snapshots"];
    let reasons: Vec<String> = group.as_array().unwrap().iter().map(|d| d["reasons"].to_string()).collect();
    assert_eq!(group.as_array().unwrap().len(), 6, "{reasons:?}");
    assert_eq!(snapshot_ids(&env).len(), 6);

    let plan = env.json(&["forget", "--keep-daily", "2", "--keep-tag", "archive"]);
    let removed: Vec<String> =
        plan["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    // Kept: the two newest days, the tagged one, the protected one.
    let mut want_removed = vec![ids[2].clone(), ids[3].clone()];
    want_removed.sort();
    let mut got = removed.clone();
    got.sort();
    assert_eq!(got, want_removed);
    let mut left = snapshot_ids(&env);
    left.sort();
    let mut want_left = vec![protected.clone(), ids[1].clone(), ids[4].clone(), ids[5].clone()];
    want_left.sort();
    assert_eq!(left, want_left);

    // A protected snapshot cannot be removed by id until unprotected.
    let out = env.run(&["forget", &protected[..10]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("protected"));
    let out = env.json(&["tag", "--unprotect", "--add", "old", &protected[..10]]);
    let unprotected = out[0]["new"].as_str().unwrap().to_string();
    env.ok(&["forget", &unprotected[..10]]);
    assert_eq!(snapshot_ids(&env).len(), 3);

    // A policy that keeps nothing is refused.
    let out = env.run(&["forget"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no policy"));
    env.ok(&["check"]);
});
