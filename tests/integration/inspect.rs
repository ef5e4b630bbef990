//! Looking into a repository: diff, find, stats, and rebuilding the index.

use crate::cairn_test;
use crate::util::{assert_same_tree, random_bytes};

cairn_test!(diff_find_and_stats_report_what_changed, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("etc/nginx")).unwrap();
    std::fs::write(src.join("etc/nginx/nginx.conf"), "worker_processes 4;\n").unwrap();
    std::fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    std::fs::write(src.join("big.bin"), random_bytes(200_000, 5)).unwrap();
    std::fs::write(src.join("gone.txt"), "bye").unwrap();
    let first = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();

    std::fs::write(src.join("etc/nginx/nginx.conf"), "worker_processes 8;\n").unwrap();
    std::fs::remove_file(src.join("gone.txt")).unwrap();
    std::fs::write(src.join("new.conf"), "x=1\n").unwrap();
    let hosts = src.join("etc/hosts");
    std::fs::set_permissions(&hosts, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let second = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();

    let d = env.json(&["diff", &first[..8], &second[..8], "--metadata"]);
    let changes: Vec<(String, String)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let p = c["path"].as_str().unwrap();
            (p.rsplit('/').next().unwrap().to_string(), c["change"].as_str().unwrap().to_string())
        })
        .collect();
    let has = |name: &str, change: &str| changes.contains(&(name.to_string(), change.to_string()));
    assert!(has("nginx.conf", "modified"), "{changes:?}");
    assert!(has("gone.txt", "removed"), "{changes:?}");
    assert!(has("new.conf", "added"), "{changes:?}");
    assert!(has("hosts", "metadata"), "{changes:?}");
    assert!(!changes.iter().any(|(n, _)| n == "big.bin"), "unchanged file listed: {changes:?}");
    assert_eq!(d["summary"]["added"], 1);
    assert_eq!(d["summary"]["removed"], 1);
    let text = env.ok(&["diff", &first[..8], &second[..8]]);
    assert!(text.contains("M  ") && text.contains("nginx.conf"), "{text}");
    assert!(!text.contains("hosts"), "metadata changes only with --metadata: {text}");

    let f = env.json(&["find", "*.conf"]);
    let hits: Vec<usize> = f.as_array().unwrap().iter().map(|s| s["hits"].as_array().unwrap().len()).collect();
    assert_eq!(hits, vec![1, 2], "nginx.conf in both, new.conf in the second: {f}");
    let f = env.json(&["find", "gone.txt"]);
    assert_eq!(f.as_array().unwrap().len(), 1);
    assert_eq!(f[0]["snapshot"].as_str().unwrap(), first);

    let s = env.json(&["stats"]);
    assert_eq!(s["snapshots"], 2);
    assert_eq!(s["files"], 8, "4 files in each snapshot: {s}");
    let one = env.json(&["stats", &second[..8]]);
    assert_eq!(one["files"], 4);
    // big.bin is stored once for both snapshots: the restore size counts it
    // twice, the deduplicated size once.
    let (restore, raw) = (s["restore_size"].as_u64().unwrap(), s["raw_size"].as_u64().unwrap());
    assert!(restore >= 400_000 && raw < 300_000 + 20_000, "{s}");
    assert!(s["dedup_ratio"].as_f64().unwrap() > 1.3, "{s}");
    assert!(s["pack_bytes"].as_u64().unwrap() > 200_000);
});

cairn_test!(repair_index_rebuilds_from_pack_headers, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let data = random_bytes(500_000, 9);
    std::fs::write(src.join("f"), &data).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("g"), random_bytes(100_000, 10)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // Lose every index file.
    for f in env.repo_files("index") {
        std::fs::remove_file(f).unwrap();
    }
    assert_eq!(env.run(&["check"]).status.code(), Some(1), "without an index the snapshots' data is missing");
    let r = env.json(&["repair", "index"]);
    assert!(r["blobs"].as_u64().unwrap() > 10, "{r}");
    assert_eq!(env.repo_files("index").len(), 1);
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    let out = env.cmd().args(["dump", "latest", &format!("{}/f", src.display())]).output().unwrap();
    assert!(out.stdout == data);
});

cairn_test!(repair_snapshots_leaves_out_lost_data_and_names_it, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), random_bytes(3_000_000, 31)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first_packs = env.repo_files("data");
    assert!(first_packs.len() >= 3, "a.bin spans several packs");
    std::fs::write(src.join("b.txt"), "still here\n").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);

    // Lose one pack of a.bin for good; the index forgets it too.
    std::fs::remove_file(&first_packs[1]).unwrap();
    env.ok(&["repair", "index"]);
    assert_eq!(env.run(&["check"]).status.code(), Some(1));

    let dry = env.json(&["repair", "snapshots", "--dry-run"]);
    assert_eq!(dry.as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 2, "dry run changes nothing");
    let r = env.json(&["repair", "snapshots", "--forget"]);
    assert_eq!(r.as_array().unwrap().len(), 2);
    for s in r.as_array().unwrap() {
        let lost: Vec<&str> = s["lost"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert!(lost[0].ends_with("/a.bin"), "{lost:?}");
    }
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert!(snaps.as_array().unwrap().iter().all(|s| s["tags"].to_string().contains("repaired")));
    let check = env.ok(&["check"]);
    assert!(check.contains("no errors"), "{check}");
    let t = env.path("t");
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", t.to_str().unwrap(), "--verify"]);
    assert_eq!(std::fs::read_to_string(t.join("b.txt")).unwrap(), "still here\n");
    let a = std::fs::metadata(t.join("a.bin")).unwrap().len();
    assert!(a < 3_000_000 && a > 0, "a.bin keeps what was not lost: {a} bytes");
});

cairn_test!(dump_archive_tar_extracts_to_the_source_tree, |env| {
    env.init();
    let src = crate::fusemount::source(&env);
    env.ok(&["backup", src.to_str().unwrap()]);
    let tar_file = env.path("out.tar");
    let out = env.run(&["dump", "latest", src.to_str().unwrap(), "--archive", "tar"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&tar_file, &out.stdout).unwrap();
    // GNU tar, as a user would extract it.
    let dest = env.path("extracted");
    std::fs::create_dir_all(&dest).unwrap();
    let extract = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&tar_file)
        .arg("-C")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(extract.status.success(), "{}", String::from_utf8_lossy(&extract.stderr));
    assert_same_tree(&src, &dest.join(src.strip_prefix("/").unwrap()));
    // No path: the whole snapshot, every name relative.
    let whole = env.run(&["dump", "latest", "--archive", "tar"]);
    std::fs::write(&tar_file, &whole.stdout).unwrap();
    let list = std::process::Command::new("tar").arg("-tf").arg(&tar_file).output().unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    let big = format!("{}/big", src.strip_prefix("/").unwrap().display());
    assert!(names.lines().any(|l| l == big), "{names}");
    assert!(names.lines().all(|l| !l.starts_with('/')), "{names}");
    // Without --archive a folder is a one-line error; a file dumps as before.
    let folder = env.run(&["dump", "latest", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&folder.stderr);
    assert_eq!((folder.status.code(), err.lines().count()), (Some(1), 1), "{err}");
    assert!(err.contains("--archive tar"), "{err}");
    let file = env.run(&["dump", "latest", src.join("sub/medium").to_str().unwrap()]);
    assert_eq!(file.stdout, std::fs::read(src.join("sub/medium")).unwrap());
});

cairn_test!(dump_archive_zip_holds_the_files_with_their_modes_and_links, |env| {
    env.init();
    let src = crate::fusemount::source(&env);
    env.ok(&["backup", src.to_str().unwrap()]);
    let out = env.run(&["dump", "latest", src.to_str().unwrap(), "--archive", "zip"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let zip_file = env.path("out.zip");
    std::fs::write(&zip_file, &out.stdout).unwrap();
    // Python's zipfile, a reader independent of the writer: every regular
    // file's bytes and mode, the symlink as a link with its target.
    let script = r#"
import sys, zipfile, os, stat
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
src, prefix = sys.argv[2], sys.argv[3]
names = set(z.namelist())
for dp, ds, fs in os.walk(src):
    for f in fs:
        p = os.path.join(dp, f)
        rel = prefix + "/" + os.path.relpath(p, src)
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            info = z.getinfo(rel)
            assert z.read(info) == open(p, "rb").read(), rel
            assert (info.external_attr >> 16) & 0o7777 == st.st_mode & 0o7777, rel
        elif stat.S_ISLNK(st.st_mode):
            info = z.getinfo(rel)
            assert stat.S_ISLNK(info.external_attr >> 16), rel
            assert z.read(info).decode() == os.readlink(p), rel
        else:
            assert rel not in names, rel
print(len(names))
"#;
    let prefix = src.strip_prefix("/").unwrap().to_str().unwrap();
    let check = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&zip_file)
        .arg(&src)
        .arg(prefix)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
});
