//! Memory that follows a snapshot's width, not its size: restore, ls and
//! find of generated trees of 20,000 and 80,000 files, and check of
//! 300,000 and 600,000 blobs, each command's peak memory read by GNU time
//! (`/usr/bin/time -f %M`, which forks the command from its own small
//! process).

use std::path::Path;

use crate::util::Env;

/// Writes `files` small files below `root`: folders of 500 (wide), and a
/// chain of 64 nested folders (deep) holding one file each.
fn make_tree(root: &Path, files: usize) {
    let mut made = 0;
    let mut deep = root.join("deep");
    for level in 0..64 {
        deep = deep.join(format!("level-{level}"));
        std::fs::create_dir_all(&deep).expect("deep folder");
        std::fs::write(deep.join("file.txt"), format!("level {level}\n")).expect("deep file");
        made += 1;
    }
    let mut folder = 0;
    while made < files {
        let dir = root.join(format!("wide/group-{:02}/folder-{folder:04}", folder % 16));
        std::fs::create_dir_all(&dir).expect("folder");
        for k in 0..500.min(files - made) {
            std::fs::write(dir.join(format!("config-{k:03}.conf")), format!("folder {folder} file {k}\n"))
                .expect("file");
            made += 1;
        }
        folder += 1;
    }
}

/// Peak resident memory of `cairn args` in KiB; the command must succeed.
fn peak_kib(env: &Env, args: &[&str]) -> u64 {
    let report = env.path("time.out");
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .envs(env.cmd().get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
        .stdout(std::process::Stdio::null())
        .output()
        .expect("run /usr/bin/time (GNU time)");
    assert!(out.status.success(), "cairn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&report).expect("GNU time's report");
    text.trim().lines().last().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("GNU time said {text:?}"))
}

/// The least peak of three runs: a multi-threaded run's peak depends on
/// how its threads happen to interleave (index files decoded at once).
/// Allocator arenas were the larger part: with glibc's arena per thread,
/// check's peak over the same two repositories measured 89.5 then 121.6 MiB
/// on a busy machine and 104 then 108 MiB on a quiet one; check now runs
/// with one arena (crates/cli/main.rs).
fn least_peak_kib(env: &Env, args: &[&str]) -> u64 {
    (0..3).map(|_| peak_kib(env, args)).min().unwrap_or(0)
}

crate::cairn_test!(restore_ls_and_find_hold_memory_that_does_not_grow_with_the_number_of_files, |env| {
    env.ok(crate::util::INIT_SMALL);
    let mut peaks = Vec::new();
    for files in [20_000, 80_000] {
        let src = env.path(&format!("tree-{files}"));
        make_tree(&src, files);
        let src = src.to_str().expect("utf-8 path").to_string();
        env.ok(&["backup", "-q", &src]);
        let target = env.path(&format!("restored-{files}"));
        let target = target.to_str().expect("utf-8 path");
        let spec = format!("latest:{src}");
        let restore = peak_kib(&env, &["restore", "-q", &spec, "--target", target]);
        assert_eq!(crate::util::files_under(Path::new(target)).len(), files, "every file restored");
        let ls = peak_kib(&env, &["ls", "latest"]);
        // One name in 500: the walk's memory, not the list of hits found.
        let find = peak_kib(&env, &["find", "latest", "config-007.conf"]);
        eprintln!("{files} files: peak restore {restore} KiB, ls {ls} KiB, find {find} KiB");
        peaks.push([restore, ls, find]);
        std::fs::remove_dir_all(target).expect("remove the restore");
    }
    // Four times the files, 60,000 more. A plan of every file, as restore
    // held before, grew by 1.1 KiB a file (42 MiB here, with the caches);
    // what may grow is the index (36 bytes a blob, about 126 while an index
    // file is decoded) and caches of fixed size filling up (decoded trees,
    // 8 MiB; tree packs, 16 MiB).
    for (k, name) in ["restore", "ls", "find"].iter().enumerate() {
        let growth = peaks[1][k].saturating_sub(peaks[0][k]);
        assert!(growth < 28 << 10, "{name}: peak memory grew by {growth} KiB from 20,000 to 80,000 files");
    }
});

crate::cairn_test!(check_and_prune_hold_memory_that_does_not_grow_with_every_index_entry, |env| {
    // 1-4 KiB chunks: `seq`'s numbers give a blob every 2 KiB or so, every
    // one different, compressing about 9x.
    env.ok(&[
        "init",
        "--kdf-memory-mib",
        "1",
        "--kdf-iterations",
        "1",
        "--chunk-min-kib",
        "1",
        "--chunk-avg-kib",
        "2",
        "--chunk-max-kib",
        "4",
    ]);
    let mut peaks = Vec::new();
    for (name, from, to) in [("first.txt", 1, 80_000_000), ("second.txt", 100_000_000, 180_000_000)] {
        let (from, to) = (from.to_string(), to.to_string());
        env.ok(&["backup", "-q", "--stdin-from-command", "--stdin-filename", name, "--", "seq", &from, &to]);
        let check = least_peak_kib(&env, &["check"]);
        let read = least_peak_kib(&env, &["check", "--read-data"]);
        // Something for prune to delete: a snapshot of other numbers, forgotten.
        let scratch = format!("scratch-{name}");
        env.ok(&[
            "backup",
            "-q",
            "--stdin-from-command",
            "--stdin-filename",
            &scratch,
            "--",
            "seq",
            "900000000",
            "901000000",
        ]);
        let id = env.json(&["snapshots"]).as_array().and_then(|s| s.last()).expect("a snapshot")["id"].clone();
        env.ok(&["forget", "-q", id.as_str().expect("an id")]);
        let prune = peak_kib(&env, &["prune", "--max-unused", "0%"]);
        eprintln!("{name}: peak check {check} KiB, check --read-data {read} KiB, prune {prune} KiB");
        peaks.push([check, read, prune]);
    }
    env.ok(&["check", "--read-data"]);
    // About 300,000 blobs, then 600,000, each many times a batch of the
    // pack pass. Every index entry decoded at once, as check held them
    // before, grew the peak by 54 MiB (180 bytes a blob), and prune's
    // tables of every index entry by 149 MiB (about 500 bytes a blob); what
    // may grow is the index (36 bytes a blob: 10 MiB) and prune's set of
    // used blobs (16 bytes of each id in a hash table that doubles: 9-13 MiB).
    // The bounds leave room for how much a peak moves between runs in the
    // dev profile the tests build: `check --read-data` of one repository
    // of 600,000 blobs peaked at 90-106 MiB in six runs on a quiet machine,
    // and grew by 34 MiB here once on a busy CI machine (least of three);
    // prune grew by 21 MiB in one run and 42 MiB in the next. They still
    // fail the code they were written against (54 and 149 MiB).
    for (k, name) in ["check", "check --read-data", "prune"].iter().enumerate() {
        let growth = peaks[1][k].saturating_sub(peaks[0][k]);
        let bound = if k == 2 { 50 << 10 } else { 40 << 10 };
        assert!(growth < bound, "{name}: peak memory grew by {growth} KiB from 300,000 to 600,000 blobs");
    }
});
