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

cairn_test!(metadata_changed_alone_is_recorded_in_the_next_snapshot, |env| {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A no-change backup takes files exactly as the parent has them
    // without building their nodes: a change of mode, owner or link count
    // alone must still make a new node.
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(src.join(name), format!("content of {name}\n")).unwrap();
    }
    env.init();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    std::fs::set_permissions(src.join("a"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // Only root can give a file away; elsewhere the owner part is left out.
    let chowned = std::os::unix::fs::chown(src.join("b"), Some(1234), Some(1234)).is_ok();
    std::fs::hard_link(src.join("c"), src.join("c2")).unwrap();
    env.ok(&["backup", s]);
    // An untouched file keeps the parent's node, metadata included.
    let again = env.json(&["backup", s]);
    assert_eq!(again["files_unchanged"], 4, "{again}");
    let snaps = env.json(&["snapshots"]);
    let n = snaps.as_array().unwrap().len();
    assert_eq!(snaps[n - 1]["tree"], snaps[n - 2]["tree"], "the same tree again");
    let target = env.path("restored");
    env.ok(&["restore", &format!("latest:{s}"), "--target", target.to_str().unwrap()]);
    let md = |name: &str| std::fs::symlink_metadata(target.join(name)).unwrap();
    assert_eq!(md("a").mode() & 0o7777, 0o600, "mode of a");
    if chowned {
        assert_eq!((md("b").uid(), md("b").gid()), (1234, 1234), "owner of b");
    }
    assert_eq!(md("c").ino(), md("c2").ino(), "c and c2 restored as one file");
    assert_eq!(md("c").nlink(), 2);
});
