//! The options a restic user reaches for: `backup --files-from`,
//! `--exclude-caches`, `--exclude-larger-than`, `snapshots --latest` and
//! `--group-by`. Each checked on what the snapshot holds or what is listed.

use crate::cairn_test;
use crate::util::Env;

/// The paths of a snapshot's entries (`ls --json`), without the common prefix.
fn listed(env: &Env, src: &std::path::Path) -> Vec<String> {
    let out = env.ok(&["--json", "ls", "latest"]);
    let prefix = src.to_str().unwrap();
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["path"].as_str().map(str::to_string))
        .filter_map(|p| p.strip_prefix(prefix).map(str::to_string))
        .filter(|p| !p.is_empty())
        .collect();
    v.sort();
    v
}

cairn_test!(files_from_backs_up_the_listed_paths_verbatim, |env| {
    env.init();
    let src = env.path("src");
    for d in ["a", "b", "c", "with space "] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        std::fs::write(src.join(d).join("f"), d).unwrap();
    }
    let list = env.path("list.txt");
    let text = format!(
        "# what to back up\n{}\n\n{}\r\n{}\n",
        src.join("a").display(),
        src.join("with space ").display(),
        src.join("b").display()
    );
    std::fs::write(&list, text).unwrap();
    env.ok(&["backup", "--files-from", list.to_str().unwrap()]);
    assert_eq!(listed(&env, &src), ["/a", "/a/f", "/b", "/b/f", "/with space ", "/with space /f"]);
    // With paths on the command line too, both are backed up.
    env.ok(&["backup", "--files-from", list.to_str().unwrap(), src.join("c").to_str().unwrap()]);
    assert!(listed(&env, &src).contains(&"/c/f".to_string()));
    // A list naming nothing is an error, not an empty snapshot.
    std::fs::write(&list, "# nothing\n\n").unwrap();
    let out = env.run(&["backup", "--files-from", list.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lists no paths"), "{err}");
});

cairn_test!(exclude_caches_skips_tagged_folders_and_larger_than_skips_big_files, |env| {
    env.init();
    let src = env.path("src");
    for d in ["cache", "fake", "keep"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        std::fs::write(src.join(d).join("f"), b"x").unwrap();
    }
    std::fs::write(src.join("cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n")
        .unwrap();
    // A tag without the signature marks nothing.
    std::fs::write(src.join("fake/CACHEDIR.TAG"), b"not a cache\n").unwrap();
    // A fifo under that name neither marks the folder nor stops the backup
    // (opening it to read the signature would wait for a writer forever).
    std::fs::create_dir_all(src.join("pipe")).unwrap();
    nix::unistd::mkfifo(&src.join("pipe/CACHEDIR.TAG"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::fs::write(src.join("keep/big"), vec![7u8; 300 * 1024]).unwrap();
    std::fs::write(src.join("keep/small"), vec![7u8; 200 * 1024]).unwrap();
    env.ok(&["backup", src.to_str().unwrap(), "--exclude-caches", "--exclude-larger-than", "256K"]);
    assert_eq!(
        listed(&env, &src),
        ["/fake", "/fake/CACHEDIR.TAG", "/fake/f", "/keep", "/keep/f", "/keep/small", "/pipe", "/pipe/CACHEDIR.TAG"],
        "the tagged cache folder and the 300 KiB file are left out"
    );
    // Without the options, everything is there.
    env.ok(&["backup", src.to_str().unwrap()]);
    assert!(listed(&env, &src).contains(&"/cache/CACHEDIR.TAG".to_string()));
    assert!(listed(&env, &src).contains(&"/keep/big".to_string()));
    let bad = env.run(&["backup", src.to_str().unwrap(), "--exclude-larger-than", "lots"]);
    assert_eq!(bad.status.code(), Some(2));
});

cairn_test!(snapshots_latest_and_group_by, |env| {
    env.init();
    let (a, b) = (env.path("a"), env.path("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for (dir, host, n) in [(&a, "web", 3), (&b, "web", 2), (&a, "db", 1)] {
        for i in 0..n {
            std::fs::write(dir.join("f"), format!("{host}{i}")).unwrap();
            env.ok(&["backup", dir.to_str().unwrap(), "--host", host, "--tag", &format!("t{i}")]);
        }
    }
    let all = env.json(&["snapshots"]);
    assert_eq!(all.as_array().unwrap().len(), 6);
    // The newest of each host and set of paths: web+a, web+b, db+a.
    let latest = env.json(&["snapshots", "--latest", "1"]);
    let ids: Vec<&str> = latest.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = [2usize, 4, 5].iter().map(|i| all[*i]["id"].as_str().unwrap()).collect();
    let mut got = ids.clone();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "{latest}");
    let grouped = env.json(&["snapshots", "--group-by", "host", "--latest", "2"]);
    let groups = grouped.as_array().unwrap();
    assert_eq!(groups.len(), 2, "{grouped}");
    assert_eq!(groups[0]["group_key"]["host"], "db");
    assert_eq!(groups[0]["snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(groups[1]["snapshots"].as_array().unwrap().len(), 2);
    let text = env.ok(&["snapshots", "--group-by", "host"]);
    assert!(text.contains("snapshots for host db:") && text.contains("snapshots for host web:"), "{text}");
    assert_eq!(env.run(&["snapshots", "--group-by", "colour"]).status.code(), Some(1));
});

cairn_test!(iexclude_and_iinclude_ignore_case_where_exclude_and_include_do_not, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for name in ["a.TMP", "b.tmp", "c.Tmp", "keep.txt", "IMG.JPG", "img2.jpg"] {
        std::fs::write(src.join(name), name).unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap(), "--exclude", "*.tmp"]);
    assert_eq!(listed(&env, &src), ["/IMG.JPG", "/a.TMP", "/c.Tmp", "/img2.jpg", "/keep.txt"]);
    env.ok(&["backup", src.to_str().unwrap(), "--iexclude", "*.tmp"]);
    assert_eq!(listed(&env, &src), ["/IMG.JPG", "/img2.jpg", "/keep.txt"]);
    let snap = env.json(&["snapshots", "--latest", "1"]);
    assert_eq!(snap[0]["excludes"], serde_json::json!(["(?i)*.tmp"]), "recorded, with its case rule");
    // Restore: --iinclude takes both spellings, --include one.
    let (t1, t2) = (env.path("r1"), env.path("r2"));
    env.ok(&["restore", "latest", "--target", t1.to_str().unwrap(), "--include", "*.jpg"]);
    env.ok(&["restore", "latest", "--target", t2.to_str().unwrap(), "--iinclude", "*.jpg"]);
    let names = |t: &std::path::Path| {
        let mut v: Vec<String> =
            crate::util::files_under(t).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&t1), ["img2.jpg"]);
    assert_eq!(names(&t2), ["IMG.JPG", "img2.jpg"]);
    let t3 = env.path("r3");
    env.ok(&["restore", "latest", "--target", t3.to_str().unwrap(), "--iexclude", "*.JPG"]);
    assert_eq!(names(&t3), ["keep.txt"]);
});

cairn_test!(restore_strip_components_drops_leading_folders_as_tar_does, |env| {
    env.init();
    let src = env.path("src");
    for (p, body) in
        [("app/readme.txt", "r"), ("app/data/top.txt", "t"), ("app/data/x/f1", "1"), ("app/data/y/f2", "2")]
    {
        std::fs::create_dir_all(src.join(p).parent().unwrap()).unwrap();
        std::fs::write(src.join(p), body).unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    let files = |t: &std::path::Path| {
        let mut v: Vec<String> = crate::util::files_under(t)
            .iter()
            .map(|p| p.strip_prefix(t).unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let spec = format!("latest:{}", src.join("app").display());
    for (n, want) in [
        ("0", vec!["data/top.txt", "data/x/f1", "data/y/f2", "readme.txt"]),
        ("1", vec!["top.txt", "x/f1", "y/f2"]),
        ("2", vec!["f1", "f2"]),
        ("3", vec![]),
    ] {
        let t = env.path(&format!("strip{n}"));
        env.ok(&["restore", &spec, "--target", t.to_str().unwrap(), "--strip-components", n]);
        assert_eq!(files(&t), want, "--strip-components {n}");
    }
    let t = env.path("strip1");
    assert_eq!(std::fs::read(t.join("x/f1")).unwrap(), b"1");
});

cairn_test!(backup_json_prints_status_lines_while_it_runs_and_a_summary_last, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), crate::util::random_bytes(3 << 20, 5)).unwrap();
    // 1 MiB/s to the repository: the backup takes about three seconds.
    let out = env.ok(&["--json", "--limit-upload", "1024", "backup", src.to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let (last, status) = lines.split_last().unwrap();
    assert_eq!(last["message_type"], "summary", "{out}");
    assert!(last["snapshot_id"].as_str().is_some_and(|s| s.len() == 64), "{out}");
    assert!(status.len() >= 2, "a status line a second: {out}");
    for s in status {
        assert_eq!(s["message_type"], "status", "{s}");
        assert_eq!((s["total_files"].as_u64(), s["total_bytes"].as_u64()), (Some(1), Some(3 << 20)), "{s}");
        assert!(s["percent_done"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)), "{s}");
    }
    // -q: the summary alone.
    std::fs::write(src.join("b"), crate::util::random_bytes(2 << 20, 6)).unwrap();
    let quiet = env.ok(&["--json", "-q", "--limit-upload", "1024", "backup", src.to_str().unwrap()]);
    assert_eq!(quiet.lines().count(), 1, "{quiet}");
});

cairn_test!(restore_delete_makes_the_target_equal_the_snapshot_and_never_follows_a_link, |env| {
    env.init();
    let src = crate::fusemount::source(&env);
    env.ok(&["backup", src.to_str().unwrap()]);
    let spec = format!("latest:{}", src.display());
    let target = env.path("target");
    env.ok(&["restore", &spec, "--target", target.to_str().unwrap()]);
    // What the target gained since: files, a folder with contents, a link
    // to a folder outside with something in it, and a kept-out pattern.
    let outside = env.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"mine").unwrap();
    std::fs::write(target.join("stray"), b"x").unwrap();
    std::fs::create_dir_all(target.join("sub/newdir/deeper")).unwrap();
    std::fs::write(target.join("sub/newdir/deeper/f"), b"x").unwrap();
    std::os::unix::fs::symlink(&outside, target.join("sub/to-outside")).unwrap();
    std::fs::write(target.join("keep.log"), b"log").unwrap();
    let args = |extra: &[&str]| {
        let mut v = vec!["restore", spec.as_str(), "--target", target.to_str().unwrap(), "--delete", "-e", "*.log"];
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        env.ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // The dry run names each, deletes nothing.
    let dry = run(&["--dry-run"]);
    for p in ["stray (file)", "sub/newdir (dir)", "sub/to-outside (symlink)"] {
        assert!(dry.contains(&format!("would delete {}", target.join(p).display())), "{p}: {dry}");
    }
    assert!(!dry.contains("keep.log"), "excluded paths are not the restore's business: {dry}");
    assert!(target.join("stray").exists() && target.join("sub/newdir/deeper/f").exists());
    let done = run(&[]);
    assert!(done.contains("3 extra entries deleted"), "{done}");
    std::fs::remove_file(target.join("keep.log")).unwrap();
    crate::util::assert_same_tree(&src, &target);
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"mine", "the link was removed, not followed");
    // A restore with an error deletes nothing: a link in the way of a
    // folder (kept, as without --delete) and a stray file next to it.
    std::fs::rename(target.join("sub"), env.path("sub-aside")).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("sub")).unwrap();
    std::fs::write(target.join("stray"), b"x").unwrap();
    let a = args(&[]);
    let failed = env.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(failed.status.code(), Some(1), "{}", String::from_utf8_lossy(&failed.stderr));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("nothing deleted"));
    assert!(target.join("stray").exists(), "nothing deleted after an error");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "nothing written through the link");
    // A single file restored with --delete leaves its siblings alone.
    let single = env.path("single");
    std::fs::create_dir_all(&single).unwrap();
    std::fs::write(single.join("neighbour"), b"n").unwrap();
    let file_spec = format!("latest:{}", src.join("big").display());
    env.ok(&["restore", &file_spec, "--target", single.to_str().unwrap(), "--delete"]);
    assert!(single.join("neighbour").exists() && single.join("big").exists());
});

cairn_test!(backup_dry_run_reports_what_would_be_added_and_writes_nothing, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), crate::util::random_bytes(300_000, 1)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("b"), crate::util::random_bytes(200_000, 2)).unwrap();
    let before: Vec<_> = crate::util::files_under(&env.repo);
    let dry = env.json(&["backup", "--dry-run", src.to_str().unwrap()]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!((dry["files_new"].as_u64(), dry["files_unchanged"].as_u64()), (Some(1), Some(1)), "{dry}");
    assert!(dry["bytes_added_raw"].as_u64().is_some_and(|n| n >= 200_000), "{dry}");
    assert!(dry.get("snapshot_id").is_none(), "{dry}");
    let mut after = crate::util::files_under(&env.repo);
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "a dry run writes nothing to the repository, not even a run marker");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    // The real run adds what the dry run said.
    let real = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(real["bytes_added_raw"], dry["bytes_added_raw"], "{real}");
    let text = env.ok(&["backup", "-n", src.to_str().unwrap()]);
    assert!(text.starts_with("dry run, nothing saved"), "{text}");
});

cairn_test!(restore_delete_leaves_alone_what_the_folders_above_the_backed_up_paths_hold, |env| {
    env.init();
    let src = env.path("data/docs");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"backed up").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // The target already has a copy of the folders above the backed-up
    // one, holding things the backup never saw.
    let target = env.path("target");
    let above = target.join(env.path("data").strip_prefix("/").unwrap());
    std::fs::create_dir_all(above.join("docs")).unwrap();
    std::fs::write(above.join("sibling"), b"never backed up").unwrap();
    std::fs::write(target.join("unrelated"), b"never backed up").unwrap();
    std::fs::write(above.join("docs/stray"), b"not in the snapshot").unwrap();
    let done = env.ok(&["restore", "latest", "--target", target.to_str().unwrap(), "--delete"]);
    assert!(done.contains("1 extra entries deleted"), "{done}");
    assert!(!above.join("docs/stray").exists(), "inside the backed-up folder, --delete deletes");
    assert_eq!(std::fs::read(above.join("docs/f")).unwrap(), b"backed up");
    assert!(above.join("sibling").exists() && target.join("unrelated").exists(), "above it, nothing is deleted");
});

cairn_test!(restore_delete_never_deletes_the_repository_it_reads_from, |env| {
    // A site folder backed up into a repository inside it, excluded from
    // the backup; restoring the folder onto itself with --delete would
    // delete the repository as an extra.
    let site = env.path("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), b"v1").unwrap();
    let repo = site.join("backup/repo");
    let r = repo.to_str().unwrap();
    env.ok(&["-r", r, "init", "--kdf-memory-mib", "1", "--kdf-iterations", "1"]);
    env.ok(&["-r", r, "backup", site.to_str().unwrap(), "--exclude", site.join("backup").to_str().unwrap()]);
    std::fs::write(site.join("index.html"), b"v2 broken").unwrap();
    let spec = format!("latest:{}", site.display());
    // Named as a path, and as `fs:PATH`.
    for r in [r.to_string(), format!("fs:{r}")] {
        let args =
            ["-r", &r, "restore", &spec, "--target", site.to_str().unwrap(), "--delete", "--overwrite", "always"];
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{r}: {err}");
        assert!(err.contains("holds the repository being restored from"), "{err}");
    }
    assert_eq!(std::fs::read(site.join("index.html")).unwrap(), b"v2 broken", "nothing was restored");
    env.ok(&["-r", r, "check"]);
    // Without --delete the restore goes ahead.
    env.ok(&["-r", r, "restore", &spec, "--target", site.to_str().unwrap(), "--overwrite", "always"]);
    assert_eq!(std::fs::read(site.join("index.html")).unwrap(), b"v1");
});

cairn_test!(restore_save_replaced_keeps_what_it_overwrites_and_deletes_in_a_snapshot, |env| {
    env.init();
    let live = env.path("live");
    std::fs::create_dir_all(live.join("sub")).unwrap();
    std::fs::write(live.join("a"), b"v1").unwrap();
    std::fs::write(live.join("sub/b"), b"unchanged").unwrap();
    env.ok(&["backup", live.to_str().unwrap()]);
    std::fs::write(live.join("a"), b"edited since").unwrap();
    std::fs::write(live.join("sub/new"), b"made since").unwrap();
    let spec = format!("latest:{}", live.display());
    let restore = |extra: &[&str]| {
        let mut v = vec!["restore", spec.as_str(), "--target", live.to_str().unwrap(), "--save-replaced"];
        v.extend_from_slice(extra);
        env.run(&v)
    };
    // Nothing can be replaced without --overwrite or --delete: said, not ignored.
    let out = restore(&[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("give one of them"), "{out:?}");
    let plan =
        String::from_utf8_lossy(&restore(&["--overwrite", "always", "--delete", "--dry-run"]).stdout).to_string();
    // `always` replaces even the unchanged file.
    assert!(plan.contains("would first save 3 replaced or deleted path(s)"), "{plan}");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1, "a dry run saves nothing");
    // `if-changed` keeps the unchanged file, and the dry run says so (it
    // said "replace").
    let plan =
        String::from_utf8_lossy(&restore(&["--overwrite", "if-changed", "--delete", "--dry-run"]).stdout).to_string();
    assert!(plan.contains("would first save 2 replaced or deleted path(s)"), "{plan}");
    assert!(plan.contains(&format!("would keep {}", live.join("sub/b").display())), "{plan}");
    let out = restore(&["--overwrite", "if-changed", "--delete"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("(tag pre-restore)"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(live.join("a")).unwrap(), b"v1");
    assert!(!live.join("sub/new").exists());
    // What was replaced and deleted comes back from the pre-restore snapshot.
    let saved = env.json(&["snapshots", "--tag", "pre-restore"]);
    let saved = saved[0]["id"].as_str().unwrap().to_string();
    assert_eq!(env.ok(&["dump", &saved, live.join("a").to_str().unwrap()]), "edited since");
    assert_eq!(env.ok(&["dump", &saved, live.join("sub/new").to_str().unwrap()]), "made since");
    // Only those: the unchanged file, which `if-changed` kept, was not part of it.
    let listed = env.ok(&["ls", &saved]);
    assert!(!listed.contains("sub/b"), "{listed}");
});
