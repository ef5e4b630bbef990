#!/usr/bin/env python3
"""Which `pg_dump` format deduplicates best in cairn, measured on a real
PostgreSQL server under real traffic (the choice behind a job's database
sources, docs/CONFIG.md).

Starts a throwaway PostgreSQL server (initdb into a temporary folder, a
Unix socket there only, never a system service), loads it with `pgbench -i
-s SCALE` (the accounts' filler column made pseudo-random text, as real
rows hold, instead of pgbench's blanks), and for DAYS days: dumps the database in each format to the
same file name, backs each format's file up into its own cairn repository,
then runs a day of traffic (`pgbench` TPC-B transactions from 2 clients,
rows inserted into a history table, a batch update of contiguous
accounts). Reports per format the dump's size and what each day's backup
added to its repository.

Formats: plain SQL (`-Fp`, what cairn uses), custom (`-Fc`, compressed
with zlib by default), custom uncompressed (`-Fc -Z0`), tar (`-Ft`).

Usage: benches/dump_formats.py [--scale 10] [--days 3] [--transactions 20000]
Needs root (the server runs as user 65534), PostgreSQL's server binaries
and pgbench (postgresql, postgresql-contrib).
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, du, log, sh  # noqa: E402

FORMATS = {
    "plain (-Fp)": ["--format=plain"],
    "custom (-Fc)": ["--format=custom"],
    "custom -Z0": ["--format=custom", "--compress=0"],
    "tar (-Ft)": ["--format=tar"],
}
MIB = 1 << 20


def as_nobody(argv):
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + argv


class Server:
    """A PostgreSQL server in `dir`, reached through its socket folder."""

    def __init__(self, dir):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            sys.exit("needs PostgreSQL's server binaries (apt-get install postgresql)")
        self.bin = bins[-1]
        self.data, self.socket = os.path.join(dir, "data"), os.path.join(dir, "socket")
        os.makedirs(dir)
        os.chmod(dir, 0o755)
        for d in (self.data, self.socket):
            os.makedirs(d)
            os.chown(d, 65534, 65534)
        os.chmod(self.data, 0o700)
        sh(as_nobody([f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync",
                      "-E", "UTF8"]), stdout=subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            as_nobody([f"{self.bin}/postgres", "-D", self.data, "-k", self.socket, "-c", "listen_addresses=",
                       "-c", "fsync=off"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            if subprocess.run(self.client("psql") + ["-d", "postgres", "-c", "SELECT 1"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        sys.exit("PostgreSQL did not start")

    def client(self, prog):
        # trust authentication: nothing ever prompts (pgbench has no --no-password)
        return [prog, "--host", self.socket, "--username", "postgres"]

    def sql(self, db, text):
        sh(self.client("psql") + ["-d", db, "-q", "-v", "ON_ERROR_STOP=1", "-c", text], stdout=subprocess.DEVNULL)

    def load_pgbench(self, db, scale):
        """Database `db` loaded by `pgbench -i -s scale`, its accounts'
        filler made text: pgbench leaves it blank, which every format
        compresses to almost nothing; real rows hold text (hex here,
        about 2x with zstd)."""
        self.sql("postgres", f"CREATE DATABASE {db}")
        log(f"pgbench -i -s {scale}")
        sh(self.client("pgbench") + ["-i", "-q", "-s", str(scale), db], stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        self.sql(db, "UPDATE pgbench_accounts SET filler = "
                     "substr(md5(random()::text) || md5(random()::text) || md5(random()::text), 1, 84)")
        self.sql(db, "VACUUM FULL pgbench_accounts")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def traffic(pg, day, transactions):
    """One day of changes: TPC-B transactions, new rows, a batch update."""
    sh(pg.client("pgbench") + ["-n", "-c", "2", "-j", "2", "-t", str(transactions // 2), "app"],
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pg.sql("app", "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, filler) "
                  f"SELECT 1 + i % 10, 1, i, i % 1000, now(), left(md5(i::text || '{day}'), 22) "
                  "FROM generate_series(1, 20000) i")
    start = 1 + (day * 20000) % 500000
    pg.sql("app", f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN {start} AND {start + 9999}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--transactions", type=int, default=20000)
    ap.add_argument("--work", default=None, help="folder for the server, dumps and repositories")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the server runs as user 65534")
    cairn = os.path.join(ROOT, "target/release/cairn")
    if not os.path.exists(cairn):
        sh(["cargo", "build", "--release", "--locked", "-p", "cairn"], cwd=ROOT)
    work = tempfile.mkdtemp(prefix="cairn-dumpfmt-", dir=args.work)
    os.chmod(work, 0o755)  # the server's user passes through it
    pg = Server(os.path.join(work, "pg"))
    env = dict(os.environ, CAIRN_PASSWORD="benchmark password")
    try:
        pg.load_pgbench("app", args.scale)
        rows = {}
        for name, flags in FORMATS.items():
            slug = name.split()[0] + ("-z0" if "-Z0" in name else "")
            repo, folder = os.path.join(work, "repo-" + slug), os.path.join(work, "dumps-" + slug)
            os.makedirs(folder)
            sh([cairn, "-q", "-r", repo, "init"], env=env)
            rows[name] = {"repo": repo, "folder": folder, "sizes": [], "added": []}
        for day in range(1, args.days + 1):
            for name, flags in FORMATS.items():
                r = rows[name]
                dump = os.path.join(r["folder"], "app.dump")
                sh(pg.client("pg_dump") + flags + ["--file", dump, "app"])
                before = du(r["repo"])
                sh([cairn, "-q", "-r", r["repo"], "backup", r["folder"]], env=env)
                r["sizes"].append(os.path.getsize(dump))
                r["added"].append(du(r["repo"]) - before)
                log(f"day {day} {name}: dump {r['sizes'][-1] / MIB:.1f} MiB, "
                    f"added {r['added'][-1] / MIB:.2f} MiB")
            if day < args.days:
                traffic(pg, day, args.transactions)
    finally:
        pg.stop()
    days = range(1, args.days + 1)
    print(f"\npgbench scale {args.scale}, {args.transactions} transactions a day, {args.days} days; "
          "MiB (dump size / added to the repository)\n")
    print("| format | " + " | ".join(f"day {d}" for d in days) + " | days 2.. added |")
    print("|---|" + "---|" * (len(days) + 1))
    for name, r in rows.items():
        cells = [f"{s / MIB:.1f} / {a / MIB:.2f}" for s, a in zip(r["sizes"], r["added"])]
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(r['added'][1:]) / MIB:.2f} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
