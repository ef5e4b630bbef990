#!/usr/bin/env python3
"""Side-by-side benchmark of cairn, restic and borg on the shared dataset.

One run, same machine, same data, for every tool and repetition:

  initial backup -> no-change backup -> gen-dataset.py --mutate -> incremental
  backup -> full restore (checked with verify-tree.py) -> check with full data read

and, separately, the database-dump case: the SQL dump streamed through stdin,
then again after a day's mutation (default, and with --update-burst 100),
reporting the bytes each tool added.

For each step: wall time, CPU time (user + system), peak RSS (the child's
ru_maxrss from wait4) and repository size. Output: a CSV of every measurement
and a Markdown table of medians with the ratios cairn/restic and cairn/borg.

Everything (dataset, repositories, restores) lives on a fresh loop-mounted
ext4 image (sparse file, losetup --direct-io=on), as DESIGN.md asks: on the
root file system kernel writeback makes restore times swing threefold.

Needs root (losetup, mount). Installs restic and borgbackup from Debian's
packages when missing, builds cairn in release mode.

Usage: sudo benches/compare.py [--scale 1] [--reps 3] [--tools cairn,restic,borg,bupstash]
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = os.path.join(os.path.dirname(ROOT), "shared", "bench")
GEN = os.path.join(BENCH, "gen-dataset.py")
VERIFY = os.path.join(BENCH, "verify-tree.py")
PASSWORD = "benchmark password"
STEPS = ["initial", "nochange", "incremental", "restore", "check"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    """Runs a setup command (not measured); fails loudly."""
    subprocess.run(cmd, check=True, **kw)


def measure(cmd, env=None, cwd=None, stdin_path=None, logf=None):
    """Runs cmd; returns (wall s, cpu s, peak RSS MiB) of that child alone.
    The CPU time and peak come from GNU time, which forks cmd from its own
    small process: os.wait4 of a child of this Python counted the Python's
    memory into the child's peak (the kernel folds the old address space's
    high-water mark in at exec), a floor of some 15-20 MiB before 2026-12-06."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    with tempfile.NamedTemporaryFile("r") as out:
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", out.name] + cmd, env=env, cwd=cwd,
                           stdin=stdin, stdout=logf, stderr=logf)
        wall = time.perf_counter() - start
        if stdin_path:
            stdin.close()
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode} (see the log)")
        user, system, kib = out.read().split()[-3:]
    return wall, float(user) + float(system), int(kib) / 1024


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class Tool:
    """How one tool does each step. `restored(target, data)` is where the
    restored copy of `data` ends up."""

    def __init__(self, name, repo, env):
        self.name, self.repo, self.env = name, repo, env


class Cairn(Tool):
    def __init__(self, repo, binary):
        env = dict(os.environ, CAIRN_REPOSITORY=repo, CAIRN_PASSWORD=PASSWORD)
        super().__init__("cairn", repo, env)
        self.bin = binary

    def init(self):
        return [self.bin, "init", "-q"]

    def backup(self, data, n):
        return [self.bin, "backup", "-q", data]

    def backup_stdin(self, name, n):
        return [self.bin, "backup", "-q", "--stdin", "--stdin-filename", name]

    def restore(self, target, data):
        return [self.bin, "restore", "-q", f"latest:{data}", "--target", target]

    def restored(self, target, data):
        return target

    def check(self):
        return [self.bin, "check", "-q", "--read-data"]


class Restic(Tool):
    def __init__(self, repo):
        env = dict(os.environ, RESTIC_REPOSITORY=repo, RESTIC_PASSWORD=PASSWORD,
                   RESTIC_CACHE_DIR=repo + "-cache")
        super().__init__("restic", repo, env)

    def init(self):
        return ["restic", "init", "-q"]

    def backup(self, data, n):
        return ["restic", "backup", "-q", data]

    def backup_stdin(self, name, n):
        return ["restic", "backup", "-q", "--stdin", "--stdin-filename", name]

    def restore(self, target, data):
        return ["restic", "restore", "-q", "latest", "--target", target]

    def restored(self, target, data):
        return os.path.join(target, data.lstrip("/"))

    def check(self):
        return ["restic", "check", "-q", "--read-data"]


class Borg(Tool):
    def __init__(self, repo):
        env = dict(os.environ, BORG_PASSPHRASE=PASSWORD, BORG_CACHE_DIR=repo + "-cache",
                   BORG_BASE_DIR=repo + "-base", BORG_RELOCATED_REPO_ACCESS_IS_OK="yes")
        super().__init__("borg", repo, env)

    def init(self):
        return ["borg", "init", "--encryption=repokey-blake2", self.repo]

    def backup(self, data, n):
        return ["borg", "create", "--compression", "zstd,3", f"{self.repo}::s{n}", data]

    def backup_stdin(self, name, n):
        return ["borg", "create", "--compression", "zstd,3", "--stdin-name", name, f"{self.repo}::d{n}", "-"]

    def restore(self, target, data):
        last = subprocess.run(["borg", "list", "--short", "--last", "1", self.repo], env=self.env,
                              check=True, capture_output=True, text=True).stdout.strip()
        return ["borg", "extract", f"{self.repo}::{last}"]

    def restored(self, target, data):
        return os.path.join(target, data.lstrip("/"))

    def check(self):
        return ["borg", "check", "--verify-data", self.repo]


class Bupstash(Tool):
    """bupstash 0.12 (built from crates.io when missing): no `check`, and its
    send log (kept next to the repository) is what its no-change backups
    compare against."""

    def __init__(self, repo):
        key = repo + ".key"
        env = dict(os.environ, BUPSTASH_REPOSITORY=repo, BUPSTASH_KEY=key,
                   BUPSTASH_SEND_LOG=repo + ".sendlog", BUPSTASH_QUERY_CACHE=repo + ".querycache")
        super().__init__("bupstash", repo, env)
        self.key = key

    def init(self):
        return ["sh", "-c", f"bupstash init && bupstash new-key -o {self.key}"]

    def backup(self, data, n):
        return ["bupstash", "put", "-q", f"name=s{n}", data]

    def backup_stdin(self, name, n):
        return ["bupstash", "put", "-q", f"name={name}", "-"]

    def ls(self):
        return ["sh", "-c", "bupstash list-contents -q \"id=$(bupstash list --format=jsonl1 | tail -1 | "
                "python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[\"id\"])')\" > /dev/null"]

    def restore(self, target, data):
        return ["sh", "-c", "bupstash restore --into . \"id=$(bupstash list --format=jsonl1 | tail -1 | "
                "python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[\"id\"])')\""]

    def restored(self, target, data):
        return target

    def check(self):
        return None

    def leftovers(self):
        return [self.repo + s for s in (".key", ".sendlog", ".querycache")]


class LoopFs:
    """A fresh ext4 file system in a sparse image, mounted at `mnt`."""

    def __init__(self, work, gib, bytes_per_inode=None, mkfs_args=(), mount_args=()):
        self.img = os.path.join(work, "bench.img")
        self.mnt = os.path.join(work, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        subprocess.run(["umount", self.mnt], stderr=subprocess.DEVNULL)
        with open(self.img, "wb") as f:
            f.truncate(gib << 30)
        self.dev = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", self.img],
                                  check=True, capture_output=True, text=True).stdout.strip()
        inodes = ["-i", str(bytes_per_inode)] if bytes_per_inode else []
        sh(["mkfs.ext4", "-q", "-F"] + inodes + list(mkfs_args) + [self.dev])
        sh(["mount"] + list(mount_args) + [self.dev, self.mnt])

    def close(self):
        subprocess.run(["umount", self.mnt])
        subprocess.run(["losetup", "-d", self.dev])
        os.unlink(self.img)


def ensure_tools(tools):
    missing = [pkg for tool, pkg in (("restic", "restic"), ("borg", "borgbackup"))
               if tool in tools and shutil.which(tool) is None]
    if missing:
        log(f"installing {' '.join(missing)}")
        sh(["apt-get", "update", "-qq"])
        sh(["apt-get", "install", "-y", "-qq"] + missing, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if "bupstash" in tools and shutil.which("bupstash") is None:
        log("building bupstash 0.12 from crates.io")
        sh(["apt-get", "install", "-y", "-qq", "libsodium-dev", "pkg-config"],
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        sh(["cargo", "install", "--locked", "bupstash@0.12.0"])
    if "cairn" in tools:
        log("building cairn (release)")
        sh(["cargo", "build", "--release", "-q", "--bin", "cairn"], cwd=ROOT)


def version(tool):
    cmd = {"cairn": [os.path.join(ROOT, "target/release/cairn"), "--version"],
           "restic": ["restic", "version"], "borg": ["borg", "--version"],
           "bupstash": ["bupstash", "version"]}[tool]
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().split("\n")[0]


def make_tool(name, repo):
    if name == "cairn":
        return Cairn(repo, os.path.join(ROOT, "target/release/cairn"))
    return {"restic": Restic, "borg": Borg, "bupstash": Bupstash}[name](repo)


def remove(paths):
    for p in paths:
        if os.path.isdir(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.exists(p):
            os.unlink(p)


def extra_paths(repo):
    """What a tool keeps beside its repository (caches, bupstash's key and send log)."""
    return [repo + s for s in ("-cache", "-base", ".key", ".sendlog", ".querycache")]


def drop_caches():
    """Empties the page cache, so every tool's sequence starts with the
    same free memory: otherwise a tool running after others pays the
    kernel's reclaim of their cached files for every page it writes (the
    same restore binary took 1.6 s or 3.7 s depending on its turn)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def run_files(tool_name, rep, mnt, base, seed, logf, rows):
    """The five steps on a fresh copy of the dataset."""
    data = os.path.join(mnt, "data")
    repo = os.path.join(mnt, f"repo-{tool_name}")
    target = os.path.join(mnt, f"restore-{tool_name}")
    remove([data, repo, target] + extra_paths(repo))
    drop_caches()
    # The copy brings the dataset back into the page cache: every tool
    # reads it from memory, as before.
    sh(["cp", "-a", base, data])
    os.sync()
    t = make_tool(tool_name, repo)
    sh(t.init(), env=t.env, stdout=logf, stderr=logf)

    def step(name, cmd, cwd=None):
        if cmd is None:
            return
        before = du(repo)
        # Nothing of the previous step (or the mutation) is still being
        # written back to the image while this one is timed.
        os.sync()
        wall, cpu, rss = measure(cmd, env=t.env, cwd=cwd, logf=logf)
        after = du(repo)
        rows.append(dict(tool=tool_name, rep=rep, step=name, wall_s=round(wall, 3), cpu_s=round(cpu, 3),
                         rss_mib=round(rss, 1), repo_bytes=after, added_bytes=after - before))
        log(f"  {tool_name} rep {rep} {name}: {wall:.2f}s wall, {cpu:.2f}s cpu, {rss:.0f} MiB, +{(after - before) / 2**20:.1f} MiB")

    step("initial", t.backup(data, 1))
    step("nochange", t.backup(data, 2))
    sh([sys.executable, GEN, data, "--mutate", "--seed", str(seed)], stdout=logf, stderr=logf)
    step("incremental", t.backup(data, 3))
    os.makedirs(target)
    step("restore", t.restore(target, data), cwd=target)
    verdict = subprocess.run([sys.executable, VERIFY, data, t.restored(target, data)], capture_output=True, text=True)
    rows[-1]["restore_ok"] = verdict.returncode == 0
    log(f"  {tool_name} restore check: {verdict.stdout.strip()}")
    step("check", t.check())
    remove([data, repo, target] + extra_paths(repo))


def run_dump(tool_name, mnt, base, seed, burst, logf, rows):
    """The SQL dump through stdin, before and after one day's mutation."""
    data = os.path.join(mnt, "dumpdata")
    repo = os.path.join(mnt, f"dumprepo-{tool_name}")
    remove([data, repo] + extra_paths(repo))
    drop_caches()
    sh(["cp", "-a", base, data])
    t = make_tool(tool_name, repo)
    sh(t.init(), env=t.env, stdout=logf, stderr=logf)
    dump = os.path.join(data, "db", "dump.sql")
    os.sync()
    measure(t.backup_stdin("dump.sql", 1), env=t.env, stdin_path=dump, logf=logf)
    day1 = du(repo)
    args = [sys.executable, GEN, data, "--mutate", "--seed", str(seed)]
    if burst > 1:
        args += ["--update-burst", str(burst)]
    sh(args, stdout=logf, stderr=logf)
    os.sync()
    wall, cpu, rss = measure(t.backup_stdin("dump.sql", 2), env=t.env, stdin_path=dump, logf=logf)
    added = du(repo) - day1
    name = "dump_added" if burst <= 1 else f"dump_added_burst{burst}"
    rows.append(dict(tool=tool_name, rep=0, step=name, wall_s=round(wall, 3), cpu_s=round(cpu, 3),
                     rss_mib=round(rss, 1), repo_bytes=du(repo), added_bytes=added))
    log(f"  {tool_name} {name}: +{added / 2**20:.1f} MiB (day 1 repository {day1 / 2**20:.1f} MiB)")
    remove([data, repo] + extra_paths(repo))


def median(rows, tool, step, key):
    vals = [r[key] for r in rows if r["tool"] == tool and r["step"] == step]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def table(rows, tools):
    out = []
    peers = [t for t in tools if t != "cairn"]
    head = ["step", "metric"] + tools + [f"cairn/{p}" for p in peers if "cairn" in tools]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    metrics = [("wall_s", "wall s"), ("cpu_s", "cpu s"), ("rss_mib", "peak RSS MiB"), ("added_bytes", "added MiB")]
    for step in STEPS + ["dump_added", "dump_added_burst100"]:
        for key, label in metrics:
            if step.startswith("dump") and key != "added_bytes":
                continue
            if key == "added_bytes" and step not in ("initial", "incremental") and not step.startswith("dump"):
                continue
            vals = {t: median(rows, t, step, key) for t in tools}
            if all(v is None for v in vals.values()):
                continue
            if key == "added_bytes":
                vals = {t: (v / 2**20 if v is not None else None) for t, v in vals.items()}
            cells = [step, label] + [f"{vals[t]:.2f}" if vals[t] is not None else "n/a" for t in tools]
            if "cairn" in tools:
                cells += [ratio(vals["cairn"], vals[p]) for p in peers]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tools", default="cairn,restic,borg")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-work"))
    ap.add_argument("--image-gib", type=int, default=0, help="loop image size (default: from --scale)")
    ap.add_argument("--no-dump", action="store_true", help="skip the database-dump runs")
    args = ap.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if os.geteuid() != 0:
        sys.exit("compare.py needs root (losetup, mount): run it with sudo")
    ensure_tools(tools)
    os.makedirs(args.work, exist_ok=True)
    gib = args.image_gib or max(4, int(8 * args.scale) + 3)
    fs = LoopFs(args.work, gib)
    rows = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = os.path.join(args.work, f"compare-{stamp}.log")
    try:
        with open(log_path, "w") as logf:
            base = os.path.join(fs.mnt, "base")
            log(f"generating the dataset (scale {args.scale}) on {fs.dev}")
            sh([sys.executable, GEN, base, "--scale", str(args.scale), "--seed", str(args.seed)], stdout=logf, stderr=logf)
            log(f"dataset: {du(base) / 2**20:.0f} MiB")
            for rep in range(1, args.reps + 1):
                # Rotate the order so no tool always runs first on a cold cache.
                order = tools[rep - 1:] + tools[:rep - 1]
                for tool in order:
                    run_files(tool, rep, fs.mnt, base, args.seed, logf, rows)
            if not args.no_dump:
                for tool in tools:
                    run_dump(tool, fs.mnt, base, args.seed, 1, logf, rows)
                    run_dump(tool, fs.mnt, base, args.seed, 100, logf, rows)
    finally:
        fs.close()
    csv_path = os.path.join(args.work, f"compare-{stamp}.csv")
    keys = ["tool", "rep", "step", "wall_s", "cpu_s", "rss_mib", "repo_bytes", "added_bytes", "restore_ok"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})
    bad = [r for r in rows if r.get("restore_ok") is False]
    md = [f"scale {args.scale}, {args.reps} repetitions, medians; {', '.join(version(t) for t in tools)}",
          f"machine: {os.cpu_count()} cores, {os.uname().release}; loop-mounted ext4 (direct I/O)", "",
          table(rows, tools), ""]
    if bad:
        md.append("RESTORE MISMATCH: " + ", ".join(f"{r['tool']} rep {r['rep']}" for r in bad))
    md_path = os.path.join(args.work, f"compare-{stamp}.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"CSV: {csv_path}\nMarkdown: {md_path}\nlog: {log_path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
