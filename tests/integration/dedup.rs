//! Deduplication and incremental backups, measured on the repository.

use crate::cairn_test;
use crate::util::random_bytes;

const MIB: usize = 1024 * 1024;

cairn_test!(same_100_mib_twice_grows_repository_under_one_percent, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..4 {
        std::fs::write(src.join(format!("part{i}")), random_bytes(25 * MIB, i)).unwrap();
    }
    env.init_with(None);
    env.ok(&["backup", src.to_str().unwrap()]);
    let first = env.repo_size();
    assert!(first > 100 * MIB as u64, "repository holds the data: {first}");

    // Re-read everything (--force) and add a renamed copy of one part.
    std::fs::copy(src.join("part0"), src.join("copy-of-part0")).unwrap();
    let b = env.json(&["backup", src.to_str().unwrap(), "--force"]);
    assert_eq!(b["bytes_read"].as_u64().unwrap(), 125 * MIB as u64);
    let second = env.repo_size();
    let growth = (second - first) as f64 / first as f64;
    eprintln!("repository {first} -> {second} bytes: growth {:.4}%", growth * 100.0);
    assert!(growth < 0.01, "grew by {:.3}%", growth * 100.0);
});

cairn_test!(inserting_100_bytes_adds_about_one_chunk, |env| {
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut data = random_bytes(64 * MIB, 7);
    std::fs::write(src.join("big.db"), &data).unwrap();
    env.init_with(None);
    env.ok(&["backup", src.to_str().unwrap()]);
    let mid = data.len() / 2;
    data.splice(mid..mid, random_bytes(100, 99));
    std::fs::write(src.join("big.db"), &data).unwrap();
    let b = env.json(&["backup", src.to_str().unwrap()]);
    let added = b["bytes_added_raw"].as_u64().unwrap();
    let blobs = b["blobs_added"].as_u64().unwrap();
    eprintln!("100-byte insertion into 64 MiB: {blobs} blobs, {added} bytes added");
    // One changed chunk (average 1 MiB, at most 8 MiB), maybe its neighbour,
    // plus the new tree blobs: far from the whole 64 MiB.
    assert!(blobs <= 3 + 4, "{blobs} blobs added");
    assert!(added < 10 * MIB as u64, "{added} bytes added");
});

cairn_test!(unchanged_tree_is_not_read_again, |env| {
    let src = env.path("src");
    for d in 0..5 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..20 {
            std::fs::write(src.join(format!("d{d}/f{f}")), random_bytes(5000 + f * 100, d as u64 * 100 + f as u64))
                .unwrap();
        }
    }
    env.init();
    let first = env.json(&["backup", src.to_str().unwrap()]);
    assert!(first["bytes_read"].as_u64().unwrap() > 500_000);
    let second = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["files_unchanged"], 100);
    assert_eq!(second["blobs_added"], 0);
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps[1]["parent"], snaps[0]["id"], "the first snapshot is the parent");

    // One changed file is read again, the rest are not.
    std::fs::write(src.join("d2/f3"), "changed").unwrap();
    let third = env.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(third["bytes_read"], 7);
    assert_eq!(third["files_changed"], 1);
    assert_eq!(third["files_unchanged"], 99);
});
