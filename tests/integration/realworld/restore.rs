//! Restore: never through a symlink it did not make, never more readable
//! than the snapshot while it runs, and again over an earlier restore.
use super::*;

// Case 6a: a symlink already in the target where restore creates a folder
// (`target/tmp -> outside`) made restore write the whole folder outside and
// chmod it to the snapshot's mode; with --overwrite always too.
cairn_test!(restore_never_writes_through_a_symlink_planted_where_a_folder_goes, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("tmp/deep")).unwrap();
    std::fs::write(src.join("tmp/deep/file"), "data").unwrap();
    std::fs::set_permissions(src.join("tmp"), std::fs::Permissions::from_mode(0o777)).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = snapshot_of(&outside);
    let target = env.path("target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("tmp")).unwrap();

    let out = restore_into(&env, &id, &src, &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a symlink is in the way at tmp"), "{err}");
    assert_eq!(snapshot_of(&outside), before, "nothing written or chmodded outside the target");
    assert!(target.join("tmp").symlink_metadata().unwrap().file_type().is_symlink(), "the link is kept");

    // --overwrite always replaces the link with the folder; outside stays as it was.
    succeeded("restore --overwrite always", restore_into(&env, &id, &src, &target, &["--overwrite", "always"]));
    assert_eq!(snapshot_of(&outside), before);
    assert_same_tree(&src, &target);
});

// Case 6b: a symlink planted at the first name of a hard-link group got the
// other names linked to it and the link's target chmodded.
cairn_test!(restore_never_links_to_or_chmods_a_symlink_planted_at_a_hard_links_first_name, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "linked").unwrap();
    std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    let outside = env.path("outside-file");
    std::fs::write(&outside, "not yours").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = snapshot_of(&outside);
    let target = env.path("target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("a")).unwrap();

    let out = restore_into(&env, &id, &src, &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"), "{out:?}");
    assert_eq!(snapshot_of(&outside), before, "the link's target is not chmodded");
    assert!(target.join("b").symlink_metadata().is_err(), "no name is linked to the planted symlink");
    succeeded("restore --overwrite always", restore_into(&env, &id, &src, &target, &["--overwrite", "always"]));
    assert_eq!(snapshot_of(&outside), before);
    assert_same_tree(&src, &target);
});

// Case 6c: restoring snapshot A (where d/x is a symlink) and then B (where
// d/x is a folder) into one target put B's files outside the target.
cairn_test!(restoring_one_snapshot_over_another_never_follows_the_first_ones_symlinks, |env| {
    let src = env.path("src");
    let outside = env.path("outside");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("d/x")).unwrap();
    env.init();
    let a = backup_id(&env, &src);
    std::fs::remove_file(src.join("d/x")).unwrap();
    std::fs::create_dir_all(src.join("d/x")).unwrap();
    std::fs::write(src.join("d/x/f"), "b's file").unwrap();
    let b = backup_id(&env, &src);
    let target = env.path("target");
    succeeded("restore A", restore_into(&env, &a, &src, &target, &[]));
    let out = restore_into(&env, &b, &src, &target, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside the target");
    succeeded("restore B, replacing", restore_into(&env, &b, &src, &target, &["--overwrite", "always"]));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_same_tree(&src, &target);
});

// Case 7: while a restore runs, a private folder is never more readable
// than the snapshot says (folders were created 0755 and given their mode
// only at the end). The restore is killed half-way.
cairn_test!(a_restore_killed_half_way_leaves_nothing_more_readable_than_the_snapshot, |env| {
    use std::os::unix::fs::MetadataExt;
    let src = env.path("src");
    std::fs::create_dir_all(src.join("secret")).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("secret/f{i:02}")), random_bytes(100_000, i)).unwrap();
        std::fs::set_permissions(src.join(format!("secret/f{i:02}")), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o700)).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    let target = env.path("target");
    let spec = format!("{id}:{}", src.display());
    for verify in [false, true] {
        let _ = std::fs::remove_dir_all(&target);
        let mut cmd = env.cmd();
        // 4 MB at 400 KiB/s: about ten seconds, so the kill lands mid-run.
        cmd.args(["--limit-download", "400", "restore", &spec, "--target", target.to_str().unwrap()]);
        if verify {
            cmd.arg("--verify");
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::read_dir(target.join("secret")).map(|d| d.count()).unwrap_or(0) < 2 {
            assert!(std::time::Instant::now() < deadline, "the restore did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let n = std::fs::read_dir(target.join("secret")).unwrap().count();
        assert!(n < 40, "the kill landed after the restore had finished ({n} files)");
        for (path, mode) in snapshot_of(&target.join("secret")) {
            assert_eq!(mode & 0o077, 0, "{path} is {:o} mid-restore", mode & 0o7777);
        }
        assert_eq!(std::fs::metadata(target.join("secret")).unwrap().mode() & 0o777, 0o700);
    }
});

// Found by trying it: restoring again, as an ordinary user, over an earlier
// restore that holds a read-only folder (mode 0555 in the snapshot) failed
// with "Permission denied" for every file in it, even with --overwrite always.
cairn_test!(an_ordinary_user_restores_again_over_read_only_folders, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("ro")).unwrap();
    std::fs::write(src.join("ro/f"), "one").unwrap();
    std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    env.init();
    let id = backup_id(&env, &src);
    // The test folder, repository and snapshot must be the user's to use.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    if is_root() {
        let status = Command::new("chown").args(["-R", "65534:65534"]).arg(&env.repo).status().unwrap();
        assert!(status.success());
    }
    let target = env.path("target");
    let spec = format!("{id}:{}", src.display());
    let t = target.to_str().unwrap();
    succeeded("first restore", env.run_unprivileged(&["restore", &spec, "--target", t]));
    succeeded("again, replacing", env.run_unprivileged(&["restore", &spec, "--target", t, "--overwrite", "always"]));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(target.join("ro")).unwrap().mode() & 0o777, 0o555, "its own mode again");
    assert_eq!(std::fs::read(target.join("ro/f")).unwrap(), b"one");
});
