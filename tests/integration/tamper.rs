//! One flipped byte anywhere is detected and named; damaged data is never
//! restored as if it were good.

use std::path::{Path, PathBuf};

use crate::cairn_test;
use crate::util::{Env, random_bytes};

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

fn short(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap()[..8].to_string()
}

fn setup(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), random_bytes(200_000, 3)).unwrap();
    std::fs::write(src.join("b.txt"), "unaffected file").unwrap();
    env.init();
    env.ok(&["backup", src.to_str().unwrap()]);
    src
}

fn check_fails_naming(env: &Env, args: &[&str], name: &str) -> String {
    let out = env.run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "check should fail: {err}");
    assert!(err.contains(name), "error names {name}: {err}");
    err
}

cairn_test!(flipped_pack_data_is_found_by_read_data_and_never_restored, |env| {
    let src = setup(&env);
    let pack = env.repo_files("data").into_iter().next().unwrap();
    // The middle of the pack lies in a.bin's chunks (b.txt's blob is tiny).
    let len = std::fs::metadata(&pack).unwrap().len() as usize;
    flip(&pack, len / 2);
    let err = check_fails_naming(&env, &["check", "--read-data"], &short(&pack));
    assert!(err.contains("a.bin"), "names the affected path: {err}");

    let t = env.path("t");
    let out = env.run(&["restore", &format!("latest:{}", src.display()), "--target", t.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.bin"), "{err}");
    assert!(!t.join("a.bin").exists(), "a damaged file must not be written");
    assert_eq!(std::fs::read_to_string(t.join("b.txt")).unwrap(), "unaffected file");
    let leftovers: Vec<_> = std::fs::read_dir(&t).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
});

cairn_test!(flipped_pack_header_is_found_by_check, |env| {
    setup(&env);
    let pack = env.repo_files("data").into_iter().next().unwrap();
    let len = std::fs::metadata(&pack).unwrap().len() as usize;
    flip(&pack, len - 10);
    check_fails_naming(&env, &["check"], &short(&pack));
});

cairn_test!(flipped_tree_pack_is_found_by_check, |env| {
    setup(&env);
    let pack = env.repo_files("tree").into_iter().next().unwrap();
    flip(&pack, 50);
    check_fails_naming(&env, &["check", "--read-data"], &short(&pack));
});

cairn_test!(flipped_index_is_found_by_check, |env| {
    setup(&env);
    let idx = env.repo_files("index").into_iter().next().unwrap();
    flip(&idx, 60);
    check_fails_naming(&env, &["check"], &format!("index {}", short(&idx)));
});

cairn_test!(flipped_snapshot_is_found_by_check, |env| {
    setup(&env);
    let snap = env.repo_files("snapshots").into_iter().next().unwrap();
    flip(&snap, 60);
    check_fails_naming(&env, &["check"], &format!("snapshot {}", short(&snap)));
});

cairn_test!(deleted_pack_names_affected_snapshot_paths, |env| {
    setup(&env);
    let pack = env.repo_files("data").into_iter().next().unwrap();
    std::fs::remove_file(&pack).unwrap();
    let err = check_fails_naming(&env, &["check"], &short(&pack));
    assert!(err.contains("missing"), "{err}");
    assert!(err.contains("a.bin"), "{err}");
});

cairn_test!(large_file_is_restored_in_segments_and_never_partly, |env| {
    // 96 MiB with a 24 MiB hole: restored by several workers side by side.
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut big = random_bytes(40 << 20, 11);
    big.extend(std::iter::repeat_n(0u8, 24 << 20));
    big.extend(random_bytes(32 << 20, 12));
    std::fs::write(src.join("big.img"), &big).unwrap();
    std::fs::write(src.join("small.txt"), "small").unwrap();
    env.init_with(None);
    env.ok(&["backup", src.to_str().unwrap()]);

    let t = env.path("t");
    let sel = format!("latest:{}", src.display());
    env.ok(&["restore", &sel, "--target", t.to_str().unwrap(), "--verify"]);
    assert!(std::fs::read(t.join("big.img")).unwrap() == big, "restored bytes equal the source");
    use std::os::unix::fs::MetadataExt;
    let allocated = std::fs::metadata(t.join("big.img")).unwrap().blocks() * 512;
    assert!(
        allocated < (big.len() as u64) - (12 << 20),
        "the zero run (whole zero chunks of it) stays a hole: {allocated} bytes allocated"
    );

    // Damage one data pack in the middle of the file: no big.img at all.
    let packs = env.repo_files("data");
    assert!(packs.len() > 3, "the file spans several packs");
    let mut sizes: Vec<(u64, &PathBuf)> = packs.iter().map(|p| (std::fs::metadata(p).unwrap().len(), p)).collect();
    sizes.sort();
    let victim = sizes.last().unwrap().1;
    let len = std::fs::metadata(victim).unwrap().len() as usize;
    flip(victim, len / 2);
    let t2 = env.path("t2");
    let out = env.run(&["restore", &sel, "--target", t2.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("big.img"));
    let left: Vec<_> = std::fs::read_dir(&t2).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("small.txt")], "no partial or temporary big.img");
});
