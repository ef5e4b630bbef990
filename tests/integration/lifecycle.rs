//! Lifecycle commands through the binary: forget by policy, tags and
//! protection.

use crate::cairn_test;
use crate::util::{Env, Files, assert_restores, copy_dir, files_under, random_bytes, write_round};

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

cairn_test!(forget_and_prune_free_the_space_and_keep_the_rest, |env| {
    env.init();
    let src = env.path("src");
    let mut rounds = Vec::new();
    for round in 0..4 {
        let files = write_round(&src, round, 3, 500_000);
        let id = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
        rounds.push((id, files));
    }
    let before = env.repo_size();
    let out = env.json(&["forget", "--keep-last", "2", "--prune"]);
    assert_eq!(out["removed"].as_array().unwrap().len(), 2);
    let after = env.repo_size();
    // Two rounds of 1.5 MB of unique random data are gone; the shared file
    // and the two kept rounds stay.
    let freed = before - after;
    eprintln!("repository {before} -> {after} bytes ({freed} freed)");
    assert!(freed > 2_800_000 && freed < 3_400_000, "freed {freed} bytes");
    assert!(out["prune"]["packs_deleted"].as_u64().unwrap() > 0);
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    for (id, files) in &rounds[2..] {
        assert_restores(&env, id, &src, files);
    }
    // Nothing left to do the second time.
    let again = env.json(&["prune"]);
    assert_eq!(again["packs_deleted"], 0);
    assert!(env.repo_files("deletions").is_empty() && env.repo_files("running").is_empty());
});

cairn_test!(prune_alongside_backups_loses_nothing_twenty_rounds, |env| {
    env.init();
    let src = env.path("src");
    let mut expected: Vec<(String, Files)> = Vec::new();
    for round in 0..20u64 {
        let files = write_round(&src, round, 8, 150_000);
        let backup = env
            .cmd()
            .args(["--json", "backup", src.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Start the prune at varying moments into the backup.
        std::thread::sleep(std::time::Duration::from_millis((round * 37) % 200));
        let prune = env.run(&["forget", "--keep-last", "3", "--prune", "--max-unused", "0%"]);
        let out = backup.wait_with_output().unwrap();
        assert!(out.status.success(), "round {round} backup: {}", String::from_utf8_lossy(&out.stderr));
        assert!(prune.status.success(), "round {round} prune: {}", String::from_utf8_lossy(&prune.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        expected.push((v["snapshot_id"].as_str().unwrap().to_string(), files));
        let check = env.ok(&["check"]);
        assert!(check.contains("no errors"), "round {round}: {check}");
    }
    // Finish any waiting plans, then every snapshot left must be whole.
    env.ok(&["prune", "--max-unused", "0%"]);
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    let left = snapshot_ids(&env);
    assert!(left.len() >= 3, "{left:?}");
    for id in &left {
        let (_, files) = expected.iter().find(|(e, _)| e == id).expect("a snapshot of this test");
        assert_restores(&env, id, &src, files);
    }
});

cairn_test!(prune_killed_at_every_step_leaves_a_repository_check_accepts, |env| {
    env.init();
    let src = env.path("src");
    let mut rounds = Vec::new();
    for round in 0..8 {
        let files = write_round(&src, round, 2, 700_000);
        let id = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
        rounds.push((id, files));
    }
    env.ok(&["forget", "--keep-last", "2"]);
    let pristine = env.path("pristine");
    copy_dir(&env.repo, &pristine);
    let mut points = 0;
    for k in 0.. {
        let _ = std::fs::remove_dir_all(&env.repo);
        copy_dir(&pristine, &env.repo);
        let out = env
            .cmd()
            .env("CAIRN_TEST_CRASH_AFTER", k.to_string())
            .args(["prune", "--max-unused", "0%"])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert_eq!(out.status.code(), None, "killed by a signal at step {k}: {}", String::from_utf8_lossy(&out.stderr));
        points += 1;
        let check = env.ok(&["check"]);
        assert!(check.contains("no errors"), "after a kill at step {k}: {check}");
        for (id, files) in &rounds[6..] {
            assert_restores(&env, id, &src, files);
        }
        // The next prune sees the dead one's marker is of a process gone
        // from this host, and completes the job.
        env.ok(&["prune", "--max-unused", "0%"]);
        let check = env.ok(&["check", "--read-data"]);
        assert!(check.contains("no errors"), "after a kill at step {k} and a new prune: {check}");
        assert!(env.repo_files("deletions").is_empty(), "step {k}: plans done");
    }
    eprintln!("prune killed at {points} points, each survived");
    assert!(points >= 20, "only {points} kill points");
});

cairn_test!(copy_to_a_repository_with_other_keys_restores_exactly_and_twice_adds_nothing, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(700_000, 21)).unwrap();
    std::fs::write(src.join("sub/small.txt"), "small file\n").unwrap();
    std::os::unix::fs::symlink("sub/small.txt", src.join("link")).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("sub/added.txt"), random_bytes(50_000, 22)).unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--tag", "second"]);

    // A second repository: another password, so other keys and another
    // chunker secret; content must be re-chunked.
    let other = env.path("other");
    let in_other = |args: &[&str]| {
        env.cmd()
            .env("CAIRN_REPOSITORY", &other)
            .env("CAIRN_PASSWORD", "other password")
            .env("CAIRN_FROM_PASSWORD", "correct horse")
            .args(args)
            .output()
            .unwrap()
    };
    let out = in_other(&["init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let from = env.repo.to_str().unwrap().to_string();
    let out = in_other(&["--json", "copy", "--from-repo", &from]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["copied"].as_array().unwrap().len(), 2, "{v}");
    let size = crate::util::files_under(&other).iter().map(|p| p.metadata().unwrap().len()).sum::<u64>();

    let target = env.path("restored");
    let sel = format!("latest:{}", src.display());
    let out = in_other(&["restore", &sel, "--target", target.to_str().unwrap(), "--verify", "--tag", "second"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    crate::util::assert_same_tree(&src, &target);
    let out = in_other(&["check", "--read-data"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no errors"), "{}", String::from_utf8_lossy(&out.stdout));

    // Again: both snapshots are there already; nothing is read or added.
    let out = in_other(&["--json", "copy", "--from-repo", &from]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["copied"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["blobs_added"], 0);
    let after = crate::util::files_under(&other).iter().map(|p| p.metadata().unwrap().len()).sum::<u64>();
    assert_eq!(size, after, "copying twice adds nothing");
    // Copying into itself is refused.
    let out =
        env.cmd().env("CAIRN_FROM_PASSWORD", "correct horse").args(["copy", "--from-repo", &from]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
});

fn size_of(files: &[std::path::PathBuf]) -> u64 {
    files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).sum()
}

cairn_test!(prune_removes_what_a_killed_backup_left_in_tmp_once_it_is_an_hour_old, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(3_000_000, 31)).unwrap();
    let tmp = env.repo.join("tmp");
    // Kill the backup at successive storage writes until one dies with a
    // pack staged under tmp/ (how much of it is written by then depends on
    // the threads' timing).
    let mut left = Vec::new();
    for k in 0..20 {
        let out =
            env.cmd().env("CAIRN_TEST_CRASH_AFTER", k.to_string()).args(["backup", src.to_str().unwrap()]).output();
        let out = out.unwrap();
        assert_eq!(out.status.code(), None, "killed at step {k}: {}", String::from_utf8_lossy(&out.stderr));
        left = files_under(&tmp);
        if !left.is_empty() {
            break;
        }
    }
    assert!(!left.is_empty(), "a killed backup left its pack's staging file");
    let staged = size_of(&left);

    // Fresh: it could be a live write's.
    assert_eq!(env.json(&["prune"])["staging_removed"], 0);
    assert_eq!(files_under(&tmp), left);

    // Untouched for two hours, with no run alive: a leftover.
    let old = filetime::FileTime::from_unix_time(filetime::FileTime::now().unix_seconds() - 7200, 0);
    for f in &left {
        filetime::set_file_mtime(f, old).unwrap();
    }
    let dry = env.json(&["prune", "--dry-run"]);
    assert_eq!(dry["staging_removed"], left.len());
    assert_eq!(files_under(&tmp), left, "a dry run removes nothing");
    let done = env.json(&["prune"]);
    assert_eq!(done["staging_removed"], left.len());
    assert_eq!(done["staging_bytes"], staged);
    assert!(files_under(&tmp).is_empty());
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    // The interrupted backup's file is backed up whole by the next one.
    let id = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    let out = env.cmd().args(["dump", &id, &format!("{}/big.bin", src.display())]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(src.join("big.bin")).unwrap());
});
