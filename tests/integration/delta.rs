//! Database dumps after a day of scattered row changes: stored as deltas
//! against yesterday's chunks, restored bit-exact, damage to a base found.

use crate::cairn_test;
use crate::util::Env;

/// A deterministic pg_dump-like text: `rows` INSERT lines of random words.
struct Dump {
    rows: Vec<String>,
    seed: u64,
}

impl Dump {
    fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    fn row(&mut self, id: usize, day: u32) -> String {
        const WORDS: &[&str] = &["alpha", "backup", "cairn", "delta", "euler", "fjord", "gamma", "harbor", "island"];
        let words: Vec<&str> = (0..6 + self.next() % 10).map(|_| WORDS[(self.next() % 9) as usize]).collect();
        let status = ["new", "paid", "shipped", "cancelled"][(self.next() % 4) as usize];
        format!(
            "INSERT INTO public.orders VALUES ({id}, '{}', {}, '{status}', '2026-11-{:02} 10:{:02}:00');\n",
            words.join(" "),
            self.next() % 100_000,
            day + 1,
            self.next() % 60
        )
    }

    fn new(rows: usize) -> Self {
        let mut d = Dump { rows: Vec::new(), seed: 0x9E37_79B9_7F4A_7C15 };
        d.rows = (0..rows).map(|i| d.row(i, 0)).collect();
        d
    }

    /// One day: 1% of rows rewritten in place, 0.25% inserted mid-table.
    fn mutate(&mut self, day: u32) {
        let n = self.rows.len();
        for _ in 0..n / 100 {
            let i = (self.next() % n as u64) as usize;
            self.rows[i] = self.row(i, day);
        }
        for k in 0..n / 400 {
            let at = (self.next() % self.rows.len() as u64) as usize;
            let row = self.row(n + k, day);
            self.rows.insert(at, row);
        }
    }

    fn text(&self) -> String {
        self.rows.concat()
    }

    /// One day as PostgreSQL's `pg_dump` shows it: an updated row is a new
    /// tuple wherever the heap has room, so 1% of rows leave their place
    /// (half to the end of the table, half into gaps elsewhere), and a
    /// table dumped before this one (`audit`, alphabetically first) grows by
    /// `audit` rows, moving everything after it by megabytes.
    fn heap_day(&mut self, day: u32, audit: &mut Vec<String>, grow: usize) {
        let n = self.rows.len();
        for k in 0..n / 100 {
            let from = (self.next() % self.rows.len() as u64) as usize;
            self.rows.remove(from);
            let row = self.row(n * day as usize + k, day);
            if k % 2 == 0 {
                self.rows.push(row);
            } else {
                let to = (self.next() % self.rows.len() as u64) as usize;
                self.rows.insert(to, row);
            }
        }
        for _ in 0..grow {
            let id = audit.len();
            let who = self.next();
            audit.push(format!("INSERT INTO public.audit VALUES ({id}, 'job {who:x}', 'day {day}');\n"));
        }
    }
}

/// Bytes `zstd -3 --patch-from=prev` codes `cur` in: what really changed.
fn patch_from(prev: &std::path::Path, cur: &std::path::Path) -> u64 {
    let out = std::process::Command::new("zstd")
        .args(["-q", "-3", "--patch-from"])
        .args([prev, cur])
        .arg("-c")
        .output()
        .expect("zstd (tests/run installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.len() as u64
}

fn backup_dump(env: &Env, file: &std::path::Path) -> serde_json::Value {
    let f = file.to_str().unwrap();
    env.json(&["backup", "--stdin-from-command", "--stdin-filename", "dump.sql", "--", "cat", f])
}

cairn_test!(changed_dump_is_stored_as_small_deltas_and_restores_exactly, |env| {
    env.init_with(None);
    let file = env.path("dump.sql");
    let mut dump = Dump::new(250_000);
    let mut days = Vec::new();
    for day in 0..7u32 {
        if day > 0 {
            dump.mutate(day);
        }
        let text = dump.text();
        std::fs::write(&file, &text).unwrap();
        let b = backup_dump(&env, &file);
        let added = b["bytes_added"].as_u64().unwrap();
        // Shown when the test fails: how many of the day's blobs were stored as deltas.
        let deltas = env.json(&["stats"])["delta_blobs"].as_u64().unwrap_or(0);
        eprintln!("day {day}: {} bytes of dump, {added} bytes added, {deltas} delta blobs in all", text.len());
        days.push((b["snapshot_id"].as_str().unwrap().to_string(), text, added));
    }
    assert!(days[0].1.len() > 20 << 20, "a dump of several chunks: {}", days[0].1.len());
    // Every later day adds a fraction of what the first one did (the whole
    // dump compressed): without deltas each would add about as much, since
    // 1% scattered changes touch every 1 MiB chunk. Day 5 codes against the
    // chain's root (chains stop at 4 steps), five days apart. Each run has
    // its own chunker key, so the figures vary: typically 0.12-0.3 MB a day
    // and 0.6-1 MB on day 5 against 5.6 MB, with a tail (1.97 MB once, on
    // day 4, in CI) from chunks paired with the wrong base and stored whole.
    let first = days[0].2;
    for (day, (_, _, added)) in days.iter().enumerate().skip(1) {
        assert!(*added * 2 < first, "day {day} added {added} bytes, day 0 {first}");
    }
    let total: u64 = days.iter().skip(1).map(|d| d.2).sum();
    assert!(total < first, "six days of deltas, {total} bytes, cost less than day 0 alone, {first}");
    for (id, text, _) in &days {
        let out = env.cmd().args(["dump", id, "dump.sql"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == text.as_bytes(), "snapshot {id} restores the dump of its day");
    }
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    // Deltas are verified with their base's plaintext at hand: each blob once.
    let check = env.json(&["check", "--read-data"]);
    let stats = env.json(&["stats"]);
    assert!(stats["delta_blobs"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(check["blobs_verified"], stats["index_blobs"], "{check} {stats}");
    // `cat index` shows each delta blob's base (it left them out).
    let bases: usize = env
        .repo_files("index")
        .iter()
        .map(|f| env.json(&["cat", "index", f.file_name().unwrap().to_str().unwrap()]))
        .flat_map(|i| i["packs"].as_array().unwrap().clone())
        .flat_map(|p| p["blobs"].as_array().unwrap().clone())
        .filter(|b| b["base"].is_string())
        .count();
    assert_eq!(bases as u64, stats["delta_blobs"].as_u64().unwrap());
});

/// A dump backed up on day 0 and, changed, on day 1 (stored as deltas
/// against day 0): the two snapshot ids and the data packs of day 0.
fn two_days(env: &Env) -> (String, Vec<std::path::PathBuf>, String) {
    env.init_with(None);
    let file = env.path("dump.sql");
    let mut dump = Dump::new(100_000);
    std::fs::write(&file, dump.text()).unwrap();
    let day0 = backup_dump(env, &file)["snapshot_id"].as_str().unwrap().to_string();
    let day0_packs = env.repo_files("data");
    dump.mutate(1);
    std::fs::write(&file, dump.text()).unwrap();
    let day1 = backup_dump(env, &file)["snapshot_id"].as_str().unwrap().to_string();
    (day0, day0_packs, day1)
}

cairn_test!(damaged_delta_is_reported_for_its_snapshot_only, |env| {
    let (day0, day0_packs, day1) = two_days(&env);

    // Damage the first blob of each pack day 1 added: its deltas.
    let day1_packs: Vec<_> = env.repo_files("data").into_iter().filter(|p| !day0_packs.contains(p)).collect();
    assert!(!day1_packs.is_empty());
    for p in &day1_packs {
        let mut bytes = std::fs::read(p).unwrap();
        bytes[40] ^= 0x40;
        std::fs::write(p, bytes).unwrap();
    }
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(report.contains(&format!("{} /dump.sql", &day1[..8])), "day 1 named: {report}");
    assert!(!report.contains(&format!("{} /dump.sql", &day0[..8])), "day 0 intact: {report}");
    assert!(report.contains("data blob"), "the damaged blob is named: {report}");
});

cairn_test!(damaged_base_is_named_for_the_snapshots_whose_deltas_need_it, |env| {
    let (day0, day0_packs, day1) = two_days(&env);

    // Damage every pack of day 0: day 1 stored only deltas against them.
    for p in &day0_packs {
        let mut bytes = std::fs::read(p).unwrap();
        bytes[100] ^= 0x40;
        std::fs::write(p, bytes).unwrap();
    }
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(report.contains(&format!("{} /dump.sql", &day1[..8])), "day 1 named: {report}");
    assert!(report.contains(&format!("{} /dump.sql", &day0[..8])), "day 0 named: {report}");

    // The dump of day 1 fails rather than giving wrong bytes.
    let out = env.run(&["dump", &day1, "dump.sql"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let restore = env.path("r");
    let out = env.run(&["restore", &day1, "--target", restore.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!restore.join("dump.sql").exists(), "no damaged file is left behind");
});

cairn_test!(moved_rows_and_a_renamed_dump_cost_about_what_zstd_patch_from_does, |env| {
    env.init_with(None);
    let dir = env.path("dumps");
    std::fs::create_dir(&dir).unwrap();
    let (mut dump, mut audit) = (Dump::new(250_000), Vec::new());
    let text = |dump: &Dump, audit: &[String]| audit.concat() + &dump.text();
    // Each day's dump alone in the folder: `app.sql` on days 0 and 1, then
    // a dated name as cron scripts write (no file of that name before).
    let names = ["app.sql", "app.sql", "app-20261203.sql"];
    let mut kept: Vec<std::path::PathBuf> = Vec::new();
    let mut days = Vec::new();
    for (day, name) in names.iter().enumerate() {
        if day > 0 {
            dump.heap_day(day as u32, &mut audit, 25_000);
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        let t = text(&dump, &audit);
        std::fs::write(dir.join(name), &t).unwrap();
        let copy = env.path(&format!("day{day}.sql"));
        std::fs::write(&copy, &t).unwrap();
        let b = env.json(&["backup", dir.to_str().unwrap()]);
        let added = b["bytes_added"].as_u64().unwrap();
        let reference = kept.last().map(|prev| patch_from(prev, &copy));
        eprintln!("day {day}: {} bytes of dump, {added} bytes added; zstd --patch-from {reference:?}", t.len());
        kept.push(copy);
        days.push((b["snapshot_id"].as_str().unwrap().to_string(), name, t, added, reference));
    }
    assert!(days[0].2.len() > 20 << 20, "a dump of many chunks: {}", days[0].2.len());
    // The audit rows alone (2.5 MB a day) push every row after them past
    // a whole chunk, and the moved rows leave no chunk as it was: paired
    // by position, or with no parent file of the same name, each later day
    // cost about as much as day 0. Found by content, within twice what
    // `zstd --patch-from` (the whole previous dump as its window) needs,
    // plus the day's tree and index.
    for (day, (_, name, _, added, reference)) in days.iter().enumerate().skip(1) {
        let reference = reference.unwrap();
        assert!(
            *added <= 2 * reference + 64 * 1024,
            "day {day} ({name}): {added} bytes added, zstd --patch-from {reference}"
        );
    }
    for (id, name, t, _, _) in &days {
        let out = env.cmd().args(["dump", id, &format!("{}/{name}", dir.display())]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == t.as_bytes(), "snapshot {id} restores its day's dump");
    }
});

/// Backs up `n` days of a heap-ordered dump at `dumps/app.sql`, one
/// snapshot a day; `each` may add files to the folder before a day's
/// backup. Returns the folder and each day's snapshot id and dump.
fn back_up_days(
    env: &Env,
    n: u32,
    each: impl Fn(u32, &std::path::Path),
) -> (std::path::PathBuf, Vec<(String, String)>) {
    let dir = env.path("dumps");
    std::fs::create_dir(&dir).unwrap();
    let (mut dump, mut audit) = (Dump::new(150_000), Vec::new());
    let mut days = Vec::new();
    for day in 0..n {
        if day > 0 {
            dump.heap_day(day, &mut audit, 5_000);
        }
        let t = audit.concat() + &dump.text();
        std::fs::write(dir.join("app.sql"), &t).unwrap();
        each(day, &dir);
        let b = env.json(&["backup", dir.to_str().unwrap()]);
        days.push((b["snapshot_id"].as_str().unwrap().to_string(), t));
    }
    (dir, days)
}

cairn_test!(delta_chains_restore_exactly_after_prune_and_after_repair_packs, |env| {
    env.init_with(None);
    // Seven days: chains grow to four steps, then start again from a root.
    let (dir, days) = back_up_days(&env, 7, |day, dir| {
        if day == 6 {
            // One more blob in the last day's pack, to be damaged below.
            let noise: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            std::fs::write(dir.join("other.bin"), noise).unwrap();
        }
    });
    let deltas = |env: &Env| env.json(&["stats"])["delta_blobs"].as_u64().unwrap();
    assert!(deltas(&env) >= 10, "most chunks of days 1-6 are deltas: {}", deltas(&env));
    let dump_of = |env: &Env, id: &str| {
        let out = env.cmd().args(["dump", id, &format!("{}/app.sql", dir.display())]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };

    // Prune: the first four days go, and with them every blob no kept
    // snapshot needs, but not the bases the kept days' deltas are coded
    // against (day 0's chunks are the roots of most chains).
    let out = env.json(&["forget", "--keep-last", "3", "--prune"]);
    assert_eq!(out["removed"].as_array().unwrap().len(), 4, "{out}");
    assert!(deltas(&env) >= 6, "the kept days' deltas stay deltas: {}", deltas(&env));
    for (id, t) in &days[4..] {
        assert!(dump_of(&env, id) == t.as_bytes(), "snapshot {id} restores its day's dump after prune");
    }
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");

    // Damage other.bin's blob: `repair packs` salvages the rest of that
    // pack (day 6's deltas among it) and drops only that blob.
    let blobs: Vec<(String, serde_json::Value)> = env
        .repo_files("index")
        .iter()
        .map(|f| env.json(&["cat", "index", f.file_name().unwrap().to_str().unwrap()]))
        .flat_map(|i| i["packs"].as_array().unwrap().clone())
        .flat_map(|p| {
            let pack = p["id"].as_str().unwrap().to_string();
            p["blobs"].as_array().unwrap().iter().map(move |b| (pack.clone(), b.clone())).collect::<Vec<_>>()
        })
        .collect();
    let (pack, blob) = blobs.iter().find(|(_, b)| b["raw_length"] == 300_000).expect("other.bin's blob");
    let file = env.repo_files("data").into_iter().find(|f| f.file_name().unwrap() == pack.as_str()).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[blob["offset"].as_u64().unwrap() as usize + 100] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let repaired = env.json(&["repair", "packs"]);
    assert_eq!(repaired["lost"].as_array().map(Vec::len), Some(1), "{repaired}");
    for (id, t) in &days[4..] {
        assert!(dump_of(&env, id) == t.as_bytes(), "snapshot {id} restores its day's dump after repair packs");
    }
});

cairn_test!(a_damaged_base_costs_only_the_saving_the_backup_stores_the_chunks_whole, |env| {
    env.init_with(None);
    let file = env.path("dump.sql");
    let mut dump = Dump::new(100_000);
    std::fs::write(&file, dump.text()).unwrap();
    backup_dump(&env, &file);
    // Every blob of day 0 damaged (a byte in every 4 KiB): each base the
    // next backup picks (by sketch, or to look for a cut) fails to read.
    for p in env.repo_files("data") {
        let mut bytes = std::fs::read(&p).unwrap();
        for at in (100..bytes.len()).step_by(4096) {
            bytes[at] ^= 0x40;
        }
        std::fs::write(&p, bytes).unwrap();
    }
    dump.mutate(1);
    let text = dump.text();
    std::fs::write(&file, &text).unwrap();
    let b = backup_dump(&env, &file);
    let id = b["snapshot_id"].as_str().unwrap();
    // About the whole dump compressed, not a few deltas.
    assert!(b["bytes_added"].as_u64().unwrap() > text.len() as u64 / 10, "{b}");
    let out = env.cmd().args(["dump", id, "dump.sql"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == text.as_bytes(), "day 1 restores exactly without its bases");
});

cairn_test!(delta_chains_restore_exactly_while_a_tenth_of_reads_fail, |env| {
    // A restore reads each chunk's delta bases all at once, a batch of
    // chunks ahead: those reads retried after transient failures must
    // still give each chunk its own bases.
    env.init_with(None);
    let (dir, days) = back_up_days(&env, 6, |_, _| {});
    assert!(env.json(&["stats"])["delta_blobs"].as_u64().unwrap() >= 10, "chains were written");
    for (k, (id, t)) in days.iter().enumerate().skip(3) {
        let target = env.path(&format!("restored-{k}"));
        let out = env
            .cmd()
            .env("CAIRN_TEST_FAULTS", "fail=0.1,latency_ms=2")
            .args(["restore", id, "--target", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let restored = std::fs::read(target.join(dir.strip_prefix("/").unwrap()).join("app.sql")).unwrap();
        assert!(restored == t.as_bytes(), "day {k} restores exactly");
    }
});

cairn_test!(no_deltas_stores_each_new_chunk_whole_and_a_later_backup_codes_against_it, |env| {
    env.init_with(None);
    let file = env.path("dump.sql");
    let mut dump = Dump::new(250_000);
    let f = file.to_str().unwrap().to_string();
    let backup = |extra: &[&str]| {
        let mut args = vec!["backup"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--stdin-from-command", "--stdin-filename", "dump.sql", "--", "cat", &f]);
        env.json(&args)
    };
    let deltas = || env.json(&["stats"])["delta_blobs"].as_u64().unwrap();
    let mut texts = Vec::new();
    std::fs::write(&file, dump.text()).unwrap();
    let first = backup(&[])["bytes_added"].as_u64().unwrap();
    texts.push(dump.text());
    // Day 1 with --no-deltas: scattered changes touch every chunk, each
    // stored whole.
    dump.mutate(1);
    std::fs::write(&file, dump.text()).unwrap();
    let whole = backup(&["--no-deltas"])["bytes_added"].as_u64().unwrap();
    texts.push(dump.text());
    assert_eq!(deltas(), 0, "no delta blob after --no-deltas");
    assert!(whole * 2 > first, "day 1 stored whole: {whole} bytes added, day 0 {first}");
    // Day 2 without it: coded against day 1's blobs, found by the sketches
    // the --no-deltas run recorded.
    dump.mutate(2);
    std::fs::write(&file, dump.text()).unwrap();
    let coded = backup(&[])["bytes_added"].as_u64().unwrap();
    texts.push(dump.text());
    assert!(deltas() > 0, "day 2 stored as deltas");
    assert!(coded * 4 < whole, "day 2 added {coded} bytes, day 1 {whole}");
    let ids: Vec<String> =
        env.json(&["snapshots"]).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3);
    for (id, text) in ids.iter().zip(&texts) {
        let out = env.cmd().args(["dump", id, "dump.sql"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == text.as_bytes(), "snapshot {id} restores the dump of its day");
    }
});
