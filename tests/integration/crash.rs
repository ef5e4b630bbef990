//! Crash consistency: backups and prunes killed with SIGKILL at random
//! moments (docs/RELIABILITY.md, "Crash consistency").
//!
//! After every kill: `check` passes (packs an interrupted run left behind
//! are reported as leftovers, not damage), every snapshot that existed
//! before restores bit-exact, a snapshot the dying run managed to write
//! restores to what that run read, and the next backup succeeds.
//!
//! CI runs at least 50 kills; `CAIRN_CRASH_KILLS=500` runs a long mode and
//! `CAIRN_CRASH_SEED` repeats a run (both printed on failure).

use std::time::{Duration, Instant};

use crate::cairn_test;
use crate::util::{Env, Files, assert_restores, write_round};

/// xorshift64*: reproducible choices from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Snapshot ids in the repository, in listing order.
fn snapshot_ids(env: &Env) -> Vec<String> {
    let v = env.json(&["snapshots"]);
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// Starts `cairn args`, kills it with SIGKILL after `delay`; returns true
/// when the kill landed (false: it had finished, successfully, before).
fn run_and_kill(env: &Env, args: &[&str], delay: Duration, what: &str) -> bool {
    let mut child =
        env.cmd().args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(status.success(), "{what} failed before the kill: {}", String::from_utf8_lossy(&out.stderr));
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill(); // SIGKILL on Unix.
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => true,
        _ => {
            assert!(status.success(), "{what} ended with {status:?} instead of being killed");
            false
        }
    }
}

cairn_test!(backups_and_prunes_killed_at_random_moments_lose_nothing, |env| {
    let want_kills = env_number("CAIRN_CRASH_KILLS", 50);
    let seed = env_number("CAIRN_CRASH_SEED", 0x00C0_FFEE_u64 ^ std::process::id() as u64).max(1);
    eprintln!("crash harness: seed {seed}, {want_kills} kills (CAIRN_CRASH_SEED / CAIRN_CRASH_KILLS to repeat)");
    let mut rng = Rng(seed);
    env.init();
    let src = env.path("src");
    let src_arg = src.to_str().unwrap().to_string();

    // Snapshots that must restore exactly: id -> what the run read.
    let mut expected: Vec<(String, Files)> = Vec::new();
    let files = write_round(&src, 0, 6, 150_000);
    let first = env.json(&["backup", &src_arg]);
    expected.push((first["snapshot_id"].as_str().unwrap().to_string(), files));

    // How long an undisturbed backup and prune take, so kills land anywhere
    // from the start to past the end of a run.
    let t = Instant::now();
    let files = write_round(&src, 1, 6, 150_000);
    let id = env.json(&["backup", &src_arg])["snapshot_id"].as_str().unwrap().to_string();
    expected.push((id, files));
    let backup_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    env.ok(&["forget", "--keep-last", "6", "--prune", "--max-unused", "0%"]);
    let prune_ms = t.elapsed().as_millis() as u64;
    eprintln!("undisturbed: backup {backup_ms} ms, forget --prune {prune_ms} ms");

    let (mut kills, mut backup_kills, mut rounds) = (0u64, 0u64, 0u64);
    while kills < want_kills {
        rounds += 1;
        assert!(rounds < want_kills * 4, "only {kills} of {rounds} runs were killed before they finished");
        let round = rounds + 1;
        // Each round changes some files and keeps others, so a run has both
        // new data to write and old data to deduplicate.
        let files = write_round(&src, round, 6, 150_000);
        let kill_prune = rng.below(4) == 0 && expected.len() > 3;
        let (args, took): (Vec<&str>, u64) = if kill_prune {
            (vec!["forget", "--keep-last", "3", "--prune", "--max-unused", "0%"], prune_ms)
        } else {
            (vec!["backup", &src_arg], backup_ms)
        };
        let delay = Duration::from_millis(rng.below(took * 5 / 4 + 1));
        let what = format!("round {round} (seed {seed}): {args:?} killed after {delay:?}");
        let before = snapshot_ids(&env);
        let killed = run_and_kill(&env, &args, delay, &what);
        if killed {
            kills += 1;
            backup_kills += u64::from(!kill_prune);
        }

        // The repository is sound: check finds no damage.
        let check = env.ok(&["check"]);
        assert!(check.contains("no errors"), "{what}: {check}");
        // Every snapshot still listed restores exactly; a new one can only
        // be the killed backup's, and holds what it read.
        let now = snapshot_ids(&env);
        if kill_prune {
            expected.retain(|(id, _)| now.contains(id));
        } else {
            assert!(before.iter().all(|id| now.contains(id)), "{what}: a backup removed a snapshot");
            for id in now.iter().filter(|id| !before.contains(id)) {
                expected.push((id.clone(), files.clone()));
            }
        }
        assert_eq!(now.len(), expected.len(), "{what}: snapshots {now:?}");
        for (id, want) in &expected {
            assert_restores(&env, id, &src, want);
        }
        // The next run succeeds: a backup of the same round, and (to keep
        // the repository small) a prune once enough snapshots piled up.
        let id = env.json(&["backup", &src_arg])["snapshot_id"].as_str().unwrap().to_string();
        expected.push((id, files));
        if expected.len() > 6 {
            env.ok(&["forget", "--keep-last", "4", "--prune", "--max-unused", "0%"]);
            let now = snapshot_ids(&env);
            expected.retain(|(id, _)| now.contains(id));
        }
    }
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    eprintln!(
        "crash harness: {kills} kills survived ({backup_kills} backups, {} prunes) in {rounds} runs, seed {seed}",
        kills - backup_kills
    );
});
