//! Key files: add, remove, change the password, rotate the encryption key.

use crate::cairn_test;
use crate::util::{Env, random_bytes};

fn with_password(env: &Env, pw: &str, args: &[&str]) -> std::process::Output {
    env.cmd().env("CAIRN_PASSWORD", pw).args(args).output().unwrap()
}

fn keys(env: &Env, pw: &str) -> Vec<serde_json::Value> {
    let out = with_password(env, pw, &["--json", "key", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

cairn_test!(add_remove_and_change_passwords, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "alpha").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first = keys(&env, "correct horse");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["current"], true);

    let out = env.cmd().env("CAIRN_NEW_PASSWORD", "second").args(["--json", "key", "add"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second: String =
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].as_str().unwrap().into();
    assert_eq!(keys(&env, "second").len(), 2);
    assert!(with_password(&env, "second", &["snapshots"]).status.success());

    // Not the one in use without --force; by prefix otherwise.
    let mine = first[0]["id"].as_str().unwrap().to_string();
    let out = env.run(&["key", "remove", &mine[..10]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    env.ok(&["key", "remove", &second[..10]]);
    assert_eq!(with_password(&env, "second", &["snapshots"]).status.code(), Some(12));
    // Never the last one, even with --force.
    let out = env.run(&["key", "remove", &mine[..10], "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only key"));

    let out = env.cmd().env("CAIRN_NEW_PASSWORD", "third").args(["key", "passwd"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.run(&["snapshots"]).status.code(), Some(12), "the old password no longer opens it");
    assert!(with_password(&env, "third", &["check"]).status.success());
    assert_eq!(keys(&env, "third").len(), 1);
});

cairn_test!(rotation_locks_the_old_key_out_of_new_data_and_keeps_old_data, |env| {
    env.init();
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let old_data = random_bytes(300_000, 1);
    std::fs::write(src.join("old"), &old_data).unwrap();
    let before = env.json(&["backup", src.to_str().unwrap()])["snapshot_id"].as_str().unwrap().to_string();
    // The key file as someone might have stolen it, with its password.
    let leaked = std::fs::read(&env.repo_files("keys")[0]).unwrap();

    // Another key blocks the rotation unless it goes too.
    let out = env.cmd().env("CAIRN_NEW_PASSWORD", "other").args(["key", "add"]).output().unwrap();
    assert!(out.status.success());
    let out = env.run(&["key", "rotate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("other key"));
    let r = env.json(&["key", "rotate", "--remove-other-keys"]);
    assert_eq!(r["epoch"], 1);
    assert_eq!(r["keys_removed"], 1);
    assert_eq!(r["snapshots"], 1);

    let new_data = random_bytes(300_000, 2);
    std::fs::write(src.join("new"), &new_data).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    let target = env.path("t");
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    assert!(std::fs::read(target.join("old")).unwrap() == old_data, "data sealed before rotation restores");
    assert!(std::fs::read(target.join("new")).unwrap() == new_data);

    // The leaked keyring opens none of the new objects: config, index,
    // snapshots (re-encrypted) and the data written after the rotation.
    let file = cairn_format::keyfile::KeyFile::decode(&leaked).unwrap();
    let old_ring =
        cairn_crypto::Keyring::unwrap(b"correct horse", &file.salt().unwrap(), file.params(), &file.wrapped().unwrap())
            .unwrap();
    let config = std::fs::read(env.repo.join("config")).unwrap();
    assert!(old_ring.open(cairn_crypto::ObjectKind::Config, &[0; 32], &config).is_err());
    let snapshots = env.repo_files("snapshots");
    assert_eq!(snapshots.len(), 2);
    for s in &snapshots {
        let bytes = std::fs::read(s).unwrap();
        assert!(old_ring.open(cairn_crypto::ObjectKind::Snapshot, &[0; 32], &bytes).is_err(), "{}", s.display());
    }
    for i in env.repo_files("index") {
        let bytes = std::fs::read(&i).unwrap();
        assert!(old_ring.open(cairn_crypto::ObjectKind::Index, &[0; 32], &bytes).is_err());
    }
    // `prune --reencrypt` rewrites the old packs under the new epoch: after
    // it the leaked keyring opens no pack header and no blob.
    let r = env.json(&["prune", "--reencrypt"]);
    assert!(r["packs_reencrypted"].as_u64().unwrap() > 0, "{r}");
    assert!(r["packs_deleted"].as_u64().unwrap() > 0, "{r}");
    for p in env.repo_files("data").into_iter().chain(env.repo_files("tree")) {
        let bytes = std::fs::read(&p).unwrap();
        let epoch = u32::from_le_bytes(bytes[1..5].try_into().unwrap());
        assert_eq!(epoch, 1, "first blob of {} sealed under the new epoch", p.display());
    }
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    let target = env.path("t2");
    env.ok(&["restore", &format!("latest:{}", src.display()), "--target", target.to_str().unwrap()]);
    assert!(std::fs::read(target.join("old")).unwrap() == old_data);
    // The snapshot from before kept its content under a new id.
    let ids: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["original"].to_string()).collect();
    assert!(ids.iter().any(|o| o.contains(&before)), "{ids:?}");
});
