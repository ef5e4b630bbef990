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
