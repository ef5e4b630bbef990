#!/usr/bin/env python3
"""Deduplication on real database dumps: cairn against restic and borg,
with `zstd --patch-from` and `diff | zstd` as references for what really
changed.

A throwaway PostgreSQL server (initdb into a temporary folder, Unix socket
only, never a system service) is loaded with `pgbench -i -s SCALE`, the
accounts' filler made pseudo-random text (pgbench leaves it blank; real
rows hold text and compress about 2x). Then, for DAYS days: the database is
dumped in plain (`-Fp`) and custom (`-Fc`) format, and a day of changes
follows: `pgbench` TPC-B transactions from 2 clients, rows inserted into
an audit table, the oldest 1% of the history deleted, a batch update of
contiguous accounts. Beside it an SQLite database under a random insert /
update / delete workload, dumped with `sqlite3 .dump` each day.

Each tool backs up each day's dump into a repository of its own per
dataset and per naming style: the same path every day (`app.sql`), or a
new dated name every day (`app-DAY.sql`, the only file in the folder, as
most cron scripts leave it). Reported: bytes each day adds to the
repository, backup wall time and peak memory, and the restore of the last
day against two yardsticks without deltas to decode: the same dump stored
alone in a repository of its own, and (cairn) the same days backed up with
`--no-deltas`; medians of ROUNDS alternated rounds, each from an emptied
page cache and again warm, and peak memory. The references: `zstd -3
--patch-from` of the previous day's dump, and `diff previous current |
zstd -3`.

Usage: sudo benches/real_dumps.py [--scale 30] [--days 3] [--transactions 70000]
                                  [--tools cairn,restic,borg] [--seed 1] [--restore-rounds 3]
Needs root (the server runs as user 65534), PostgreSQL's server binaries,
pgbench, sqlite3, zstd and GNU time; installs restic and borgbackup when
missing.
"""
import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import drop_caches, du, ensure_tools, log, make_tool, measure, sh, version  # noqa: E402
from dump_formats import Server  # noqa: E402

MIB = 1 << 20


def pg_day(pg, day, args, rng):
    """One day of changes, as an application and its batch jobs make them."""
    sh(pg.client("pgbench") + ["-n", "-c", "2", "-j", "2", "-t", str(args.transactions // 2), "app"],
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pg.sql("app", "INSERT INTO audit (at, who, what) SELECT now(), md5(random()::text), "
                  "md5(random()::text) || md5(random()::text) FROM generate_series(1, 50000)")
    pg.sql("app", "DELETE FROM pgbench_history WHERE ctid IN "
                  "(SELECT ctid FROM pgbench_history ORDER BY mtime LIMIT (SELECT count(*) / 100 FROM pgbench_history))")
    accounts = 100000 * args.scale
    start = rng.randrange(1, max(2, accounts - 20000))
    pg.sql("app", f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN {start} AND {start + 19999}")


def sqlite_day(db, day, rng):
    """Random inserts, updates and deletes of one day."""
    con = sqlite3.connect(db)
    if day == 1:
        con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, payload TEXT, updated INTEGER)")
        con.executemany("INSERT INTO items (name, payload, updated) VALUES (?, ?, 0)",
                        ((f"item {i}", rng.randbytes(60).hex()) for i in range(200000)))
    else:
        top = con.execute("SELECT max(id) FROM items").fetchone()[0]
        con.executemany("INSERT INTO items (name, payload, updated) VALUES (?, ?, ?)",
                        ((f"new {day} {i}", rng.randbytes(60).hex(), day) for i in range(5000)))
        con.executemany("UPDATE items SET payload = ?, updated = ? WHERE id = ?",
                        ((rng.randbytes(60).hex(), day, rng.randrange(1, top)) for _ in range(5000)))
        con.executemany("DELETE FROM items WHERE id = ?", ((rng.randrange(1, top),) for _ in range(2000)))
    con.commit()
    con.close()


def reference(prev, cur):
    """Bytes of `zstd --patch-from` and of `diff | zstd` from prev to cur."""
    patch = subprocess.run(["zstd", "-q", "-3", "--patch-from", prev, cur, "-c"], check=True,
                           capture_output=True).stdout
    diff = subprocess.run(["diff", "-a", prev, cur], capture_output=True).stdout
    z = subprocess.run(["zstd", "-q", "-3", "-c"], input=diff, check=True, capture_output=True).stdout
    return len(patch), len(z)


def restore_last(t, target, data, name, logf):
    """Restores the latest snapshot into `target`, checks the dump's size,
    removes it; wall time, CPU time and peak memory of the restore."""
    os.makedirs(target)
    m = measure(t.restore(target, data), env=t.env, cwd=target, logf=logf)
    got = os.path.join(t.restored(target, data), name)
    if not os.path.exists(got) or os.path.getsize(got) != os.path.getsize(os.path.join(data, name)):
        raise RuntimeError(f"{type(t).__name__} restored {got} wrong")
    shutil.rmtree(target)
    return m


def timed_restores(tools, target, data, name, logf, rounds):
    """Restores of the last dump from each of `tools` (repositories holding
    it), alternated for `rounds` rounds, each after emptying the page cache
    (cold) and again right after (warm): the sub-second times of one run
    each were too noisy to compare. Per tool, medians of wall time (warm,
    cold); and the first tool's peak memory."""
    walls = {(k, cold): [] for k in range(len(tools)) for cold in (False, True)}
    peak = 0
    for _ in range(rounds):
        for k, tool in enumerate(tools):
            # Cold first: the warm restore right after it finds in the
            # page cache what this repository's restore reads.
            for cold in (True, False):
                if cold:
                    drop_caches()
                wall, _, rss = restore_last(tool, f"{target}-{k}", data, name, logf)
                walls[(k, cold)].append(wall)
                if k == 0:
                    peak = max(peak, rss)
    return [(statistics.median(walls[(k, False)]), statistics.median(walls[(k, True)])) for k in range(len(tools))], peak


def make_dumps(work, dumps, args, rng):
    """DAYS days of dumps of a PostgreSQL and an SQLite database under their workloads."""
    pg = Server(os.path.join(work, "pg"))
    try:
        pg.load_pgbench("app", args.scale)
        pg.sql("app", "CREATE TABLE audit (id bigserial PRIMARY KEY, at timestamptz, who text, what text)")
        lite = os.path.join(work, "app.sqlite3")
        for day in range(1, args.days + 1):
            if day > 1:
                log(f"day {day}: traffic")
                pg_day(pg, day, args, rng)
            sqlite_day(lite, day, rng)
            sh(pg.client("pg_dump") + ["--format=plain", "--file", f"{dumps}/pg{day}.sql", "app"])
            sh(pg.client("pg_dump") + ["--format=custom", "--file", f"{dumps}/pgc{day}.dump", "app"])
            with open(f"{dumps}/lite{day}.sql", "wb") as out:
                sh(["sqlite3", lite, ".dump"], stdout=out)
            log(f"day {day}: dumps {os.path.getsize(f'{dumps}/pg{day}.sql') / MIB:.1f} MiB plain, "
                f"{os.path.getsize(f'{dumps}/pgc{day}.dump') / MIB:.1f} MiB custom, "
                f"{os.path.getsize(f'{dumps}/lite{day}.sql') / MIB:.1f} MiB sqlite")
    finally:
        pg.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=30)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--transactions", type=int, default=70000)
    ap.add_argument("--tools", default="cairn,restic,borg")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--restore-rounds", type=int, default=3,
                    help="alternated restores of the last day and of it stored alone, warm and cold")
    ap.add_argument("--work", default=None, help="folder for the server, dumps and repositories")
    ap.add_argument("--dumps", default=None,
                    help="keep the dumps in this folder, and reuse them when it already holds DAYS days")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the server runs as user 65534")
    tools = args.tools.split(",")
    ensure_tools(tools)
    for prog in ("zstd", "sqlite3", "pgbench"):
        if shutil.which(prog) is None:
            sys.exit(f"needs {prog}")
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="cairn-realdumps-", dir=args.work)
    os.chmod(work, 0o755)
    dumps = os.path.abspath(args.dumps) if args.dumps else os.path.join(work, "dumps")
    os.makedirs(dumps, exist_ok=True)
    os.chmod(dumps, 0o777)
    if all(os.path.exists(os.path.join(dumps, f"lite{d}.sql")) for d in range(1, args.days + 1)):
        log(f"reusing the dumps in {dumps}")
    else:
        make_dumps(work, dumps, args, rng)
    datasets = {"pg plain": ("pg{}.sql", "sql"), "pg custom": ("pgc{}.dump", "dump"),
                "sqlite": ("lite{}.sql", "sql")}
    results = []
    refs = {}
    for ds, (pattern, ext) in datasets.items():
        for d in range(2, args.days + 1):
            prev, cur = (os.path.join(dumps, pattern.format(x)) for x in (d - 1, d))
            refs[(ds, d)] = reference(prev, cur)
        for style in ("same name", "dated name"):
            for tool in tools:
                slug = f"{ds}-{style}-{tool}".replace(" ", "_")
                repo, data = os.path.join(work, "repo-" + slug), os.path.join(work, "data-" + slug)
                os.makedirs(data)
                t = make_tool(tool, repo)
                logf = open(os.path.join(work, slug + ".log"), "w")
                measure(t.init(), env=t.env, logf=logf)
                added, walls, rss = [], [], []
                for d in range(1, args.days + 1):
                    for f in os.listdir(data):
                        os.remove(os.path.join(data, f))
                    name = f"app.{ext}" if style == "same name" else f"app-202612{d:02d}.{ext}"
                    shutil.copyfile(os.path.join(dumps, pattern.format(d)), os.path.join(data, name))
                    before = du(repo)
                    wall, _, peak = measure(t.backup(data, d), env=t.env, cwd=data, logf=logf)
                    added.append(du(repo) - before)
                    walls.append(wall)
                    rss.append(peak)
                # The yardsticks of restore speed, no delta to decode: the
                # same last dump in a repository of its own, and (cairn) the
                # same days backed up with --no-deltas, whose chunks lie in
                # as many packs as the deltas' do.
                alone = make_tool(tool, repo + "-alone")
                measure(alone.init(), env=alone.env, logf=logf)
                measure(alone.backup(data, 1), env=alone.env, cwd=data, logf=logf)
                yardsticks = [alone]
                if tool == "cairn":
                    whole = make_tool(tool, repo + "-whole")
                    measure(whole.init(), env=whole.env, logf=logf)
                    for d in range(1, args.days + 1):
                        for f in os.listdir(data):
                            os.remove(os.path.join(data, f))
                        name = f"app.{ext}" if style == "same name" else f"app-202612{d:02d}.{ext}"
                        shutil.copyfile(os.path.join(dumps, pattern.format(d)), os.path.join(data, name))
                        measure(whole.backup(data, d) + ["--no-deltas"], env=whole.env, cwd=data, logf=logf)
                    yardsticks.append(whole)
                times, rrss = timed_restores([t] + yardsticks, os.path.join(work, "restore-" + slug), data, name,
                                             logf, args.restore_rounds)
                for y in yardsticks:
                    shutil.rmtree(y.repo)
                shutil.rmtree(repo)
                logf.close()
                results.append((ds, style, tool, added, statistics.median(walls[1:] or walls), max(rss), times, rrss))
                log(f"{ds}, {style}, {tool}: added {[round(a / MIB, 2) for a in added]} MiB")
    shutil.rmtree(work)

    print(f"\nPostgreSQL pgbench scale {args.scale}, {args.transactions} transactions a day, {args.days} days, "
          f"seed {args.seed}; " + "; ".join(version(t) for t in tools) + "\n")
    if args.days > 4:
        # Many days: the total, and the first and last few days.
        shown = [2, 3, args.days - 1, args.days]
    else:
        shown = list(range(2, args.days + 1))
    later = [f"day {d} MiB" for d in shown] + ([f"days 2-{args.days} MiB"] if args.days > 4 else [])
    print("| dump | naming | tool | " + " | ".join(later) + " | backup s (median) | backup peak MiB "
          "| restore s, warm / cold | restore peak MiB | stored alone: restore s, speed ratio (warm / cold) "
          "| same days with --no-deltas: restore s, speed ratio (warm / cold) |")
    print("|---|---|---|" + "---|" * (len(later) + 6))
    for ds, style, tool, added, bwall, brss, times, rrss in results:
        cells = [f"{added[d - 1] / MIB:.1f}" for d in shown]
        if args.days > 4:
            cells.append(f"{sum(added[1:]) / MIB:.1f}")
        (rwarm, rcold), yardsticks = times[0], times[1:]
        ys = [f"{w:.2f} / {c:.2f} s, {w / rwarm:.2f}x / {c / rcold:.2f}x" for w, c in yardsticks]
        ys += ["-"] * (2 - len(ys))
        print(f"| {ds} | {style} | {tool} | {' | '.join(cells)} | {bwall:.2f} | {brss:.0f} "
              f"| {rwarm:.2f} / {rcold:.2f} | {rrss:.0f} | {ys[0]} | {ys[1]} |")
    for ds in datasets:
        cells = [f"{refs[(ds, d)][0] / MIB:.1f} / {refs[(ds, d)][1] / MIB:.1f}" for d in shown]
        if args.days > 4:
            total = [sum(refs[(ds, d)][i] for d in range(2, args.days + 1)) / MIB for i in (0, 1)]
            cells.append(f"{total[0]:.1f} / {total[1]:.1f}")
        print(f"| {ds} | reference | zstd --patch-from / diff\\|zstd | {' | '.join(cells)} | | | | | | |")


if __name__ == "__main__":
    main()
