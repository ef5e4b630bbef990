//! Property test: random trees restore bit-exact with their metadata.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use cairn_backend::Backend;
use cairn_backup::{BackupOptions, Excludes, NoProgress, ParentChoice};
use cairn_repo::{InitOptions, Repository};
use cairn_restore::{Matcher, RestoreOptions};
use proptest::prelude::*;

use crate::cairn_test;
use crate::util::{assert_same_tree, copy_dir, random_bytes};

#[derive(Debug, Clone)]
enum Entry {
    File { name: Vec<u8>, size: usize, zeros: bool, mode: u32, mtime: i64 },
    Link { name: Vec<u8>, target: Vec<u8> },
    HardLink { name: Vec<u8>, to: usize },
    Dir { name: Vec<u8>, mode: u32, children: Vec<Entry> },
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9_.-]{1,12}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(1u8..=255, 1..10).prop_map(|v| v.into_iter().filter(|b| *b != b'/').collect()),
    ]
    .prop_filter("valid name", |n: &Vec<u8>| !n.is_empty() && n != b"." && n != b"..")
}

fn entry() -> impl Strategy<Value = Entry> {
    let file = (
        name(),
        prop_oneof![Just(0usize), 1usize..100, 100usize..200_000],
        any::<bool>(),
        prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o444, 0o640]),
        0i64..2_000_000_000,
    )
        .prop_map(|(name, size, zeros, mode, mtime)| Entry::File { name, size, zeros, mode, mtime });
    let link = (name(), name()).prop_map(|(name, target)| Entry::Link { name, target });
    let hard = (name(), 0usize..50).prop_map(|(name, to)| Entry::HardLink { name, to });
    let leaf = prop_oneof![6 => file, 1 => link, 1 => hard];
    leaf.prop_recursive(3, 40, 8, |inner| {
        (name(), prop::sample::select(vec![0o755u32, 0o700, 0o750]), proptest::collection::vec(inner, 0..8))
            .prop_map(|(name, mode, children)| Entry::Dir { name, mode, children })
    })
}

/// Writes entries under `dir`; returns created files for hard links to target.
fn build(
    dir: &Path,
    entries: &[Entry],
    files: &mut Vec<std::path::PathBuf>,
    dir_modes: &mut Vec<(std::path::PathBuf, u32)>,
) {
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let n = match e {
            Entry::File { name, .. }
            | Entry::Link { name, .. }
            | Entry::HardLink { name, .. }
            | Entry::Dir { name, .. } => name,
        };
        if !seen.insert(n.clone()) {
            continue;
        }
        let p = dir.join(std::ffi::OsStr::from_bytes(n));
        match e {
            Entry::File { size, zeros, mode, mtime, .. } => {
                let data = if *zeros { vec![0u8; *size] } else { random_bytes(*size, *mtime as u64) };
                std::fs::write(&p, data).unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
                filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(*mtime, (*mtime % 1000) as u32 * 1000))
                    .unwrap();
                files.push(p);
            }
            Entry::Link { target, .. } => std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &p).unwrap(),
            Entry::HardLink { to, .. } => {
                if files.is_empty() {
                    continue;
                }
                let src = files[*to % files.len()].clone();
                std::fs::hard_link(src, &p).unwrap();
            }
            Entry::Dir { mode, children, .. } => {
                std::fs::create_dir(&p).unwrap();
                build(&p, children, files, dir_modes);
                dir_modes.push((p, *mode));
            }
        }
    }
}

fn round_trip(entries: &[Entry]) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut files = Vec::new();
    let mut dir_modes = Vec::new();
    build(&src, entries, &mut files, &mut dir_modes);
    // Directory modes and times last, deepest first (their content is written by then).
    for (d, mode) in &dir_modes {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(*mode)).unwrap();
        filetime::set_file_mtime(d, filetime::FileTime::from_unix_time(1_600_000_000, 0)).unwrap();
    }

    let backend = Backend::memory().unwrap();
    let repo = Repository::init(backend.clone(), b"pw", &InitOptions::fast_for_tests()).unwrap();
    let opts = BackupOptions {
        sources: cairn_backup::Sources::paths(vec![src.clone()]),
        excludes: Excludes::default(),
        tags: vec![],
        hostname: "test".into(),
        parent: ParentChoice::Auto,
        force: false,
        time: None,
        workers: Some(2),
        writes: Default::default(),
        deltas: Default::default(),
    };
    let out = cairn_backup::backup(repo.load_index().unwrap(), &opts, Arc::new(NoProgress)).unwrap();
    assert_eq!(out.snapshot.summary.as_ref().unwrap().errors, 0);

    let repo = Repository::open(backend, b"pw").unwrap().load_index().unwrap();
    let target = tmp.path().join("restored");
    let none = Matcher::default();
    let select = cairn_restore::Select {
        path: Some(src.to_str().unwrap()),
        include: &none,
        exclude: &none,
        strip_components: 0,
    };
    let opts = RestoreOptions { verify: true, ..Default::default() };
    let s = cairn_restore::restore(&repo, &out.snapshot.tree, &select, &target, &opts, &()).unwrap();
    assert_eq!(s.errors, 0, "{s:?}");
    assert_same_tree(&src, &target);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_restore_bit_exact(entries in proptest::collection::vec(entry(), 0..12)) {
        round_trip(&entries);
    }
}

/// A folder's files go to the readers in batches (by count and by bytes)
/// and small blobs are sealed where they are read, gathered before the
/// packer: every file must still get its own content, in a folder of
/// more files than a batch holds, with a large file closing a batch in the
/// middle, folders between the files, and files changed in the middle of
/// batches for the next backup.
fn folder_of_many_files(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let sizes = [0usize, 1, 100, 3_000, 70_000, 12_345];
    for i in 0..300u64 {
        if i % 60 == 30 {
            let sub = dir.join(format!("f{i:03}-dir"));
            std::fs::create_dir(&sub).unwrap();
            for j in 0..3 {
                std::fs::write(sub.join(format!("g{j}")), random_bytes(500 * j, i * 10 + j as u64)).unwrap();
            }
            continue;
        }
        let size = if i == 151 { 3 << 20 } else { sizes[i as usize % sizes.len()] };
        std::fs::write(dir.join(format!("f{i:03}")), random_bytes(size, i)).unwrap();
    }
}

cairn_test!(files_read_in_batches_each_restore_with_their_own_content, |env| {
    env.init();
    let src = env.path("src");
    folder_of_many_files(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let first = env.path("first");
    copy_dir(&src, &first);
    for i in [2u64, 127, 128, 149, 151, 299] {
        let f = src.join(format!("f{i:03}"));
        let mut data = std::fs::read(&f).unwrap();
        data.extend_from_slice(format!("changed {i}").as_bytes());
        std::fs::write(&f, data).unwrap();
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    let ids: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);
    for (id, want) in [(&ids[0], &first), (&ids[1], &src)] {
        let target = env.path(&format!("restored-{id}"));
        env.ok(&["restore", &format!("{id}:{}", src.display()), "--target", target.to_str().unwrap(), "--verify"]);
        assert_same_tree(want, &target);
    }
});

// A file whose chunks alternate between the packs of two backups (every
// other stretch of it changed since the first) restores reading about
// its own size from storage (33.6 MB for a 33.6 MB file). Each chunk read
// 4 MiB ahead in its pack and the next chunk, in the other pack, threw that
// away: 65.6 MB.
cairn_test!(a_file_spread_over_two_backups_packs_restores_without_reading_past_what_it_needs, |env| {
    env.init_with(None);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("disk.img");
    let size = 32 << 20;
    let mut data = random_bytes(size, 7);
    std::fs::write(&file, &data).unwrap();
    env.ok(&["backup", "--no-deltas", src.to_str().unwrap()]);
    for at in (1 << 20..size).step_by(2 << 20) {
        data[at] ^= 0xff;
    }
    std::fs::write(&file, &data).unwrap();
    env.ok(&["backup", "--no-deltas", src.to_str().unwrap()]);
    let target = env.path("restored");
    let out = env.run(&["-v", "restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(std::fs::read(target.join("disk.img")).unwrap() == data, "restored content differs");
    let read: u64 = stderr
        .lines()
        .find_map(|l| l.split("; ").nth(1)?.strip_suffix(" bytes read, 0 written")?.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {stderr:?}"));
    assert!(read < size as u64 * 5 / 4, "{read} bytes read from storage to restore a file of {size}");
});
