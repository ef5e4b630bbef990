#!/usr/bin/env python3
"""Ten million files restored on a host limited to 4 GiB (issue 21).

A tree of tiny files of that count does not fit the disk at the shared
generator's sizes (100 B - 8 KiB a file: 47 GB), so this builds a tree of
the same shape with files of a line each: 10,000,000 files in folders of
1,000 (100 groups of 100 folders), every file's content different (one
blob each, as small config files are). What a restore holds grows with the
number of entries and blobs, not with their size, so the shape is what
matters here.

Steps, on a fresh loop-mounted ext4 (inline data: a line lives in its
inode), page cache emptied before each step:

  make the tree -> cairn backup -> cairn restore inside a memory cgroup
  limited to --limit (default 4G) -> count the files restored and compare
  every 1,000th with its source

Reports wall time and peak memory (GNU time) of the backup and the
restore, the cgroup's peak usage and whether it hit its limit. The restore
must succeed: a process the limit kills fails the run.

Needs root (losetup, mount, cgroups), about 12 GB free on --work's file
system and about 25 minutes on 2 cores.

Usage: sudo python3 benches/restore_limit.py [--files 10000000] [--limit 4G] [--work DIR]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the loop file system, measuring, building cairn)
from compare import PASSWORD, ROOT, drop_caches, log, measure, sh  # noqa: E402

PER_FOLDER = 1000
CGROUP = "cairn-restore-limit"


def content(i):
    return f"file {i} of the restore-limit tree\n".encode()


def path_of(root, i):
    folder = i // PER_FOLDER
    return os.path.join(root, f"group-{folder % 100:02}", f"folder-{folder:05}", f"f{i % PER_FOLDER:03}.conf")


def make_tree(root, files):
    """Writes the tree with two processes (one per core), each a half."""
    def part(lo, hi):
        for folder in range(lo // PER_FOLDER, (hi + PER_FOLDER - 1) // PER_FOLDER):
            os.makedirs(os.path.dirname(path_of(root, folder * PER_FOLDER)), exist_ok=True)
            for i in range(folder * PER_FOLDER, min(hi, (folder + 1) * PER_FOLDER)):
                fd = os.open(path_of(root, i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, content(i))
                os.close(fd)

    half = (files // 2) // PER_FOLDER * PER_FOLDER
    pid = os.fork()
    if pid == 0:
        try:
            part(half, files)
        finally:
            os._exit(0)
    part(0, half)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit("making the tree failed in the second process")


class MemoryCgroup:
    """A memory cgroup (v2 when mounted, else v1) the restore runs in."""

    def __init__(self, limit_bytes):
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if os.path.exists(v2):
            self.dir = os.path.join("/sys/fs/cgroup", CGROUP)
            self.files = dict(limit="memory.max", peak="memory.peak", events="memory.events")
        else:
            self.dir = os.path.join("/sys/fs/cgroup/memory", CGROUP)
            self.files = dict(limit="memory.limit_in_bytes", peak="memory.max_usage_in_bytes",
                              events="memory.oom_control")
        if os.path.isdir(self.dir):
            os.rmdir(self.dir)
        os.makedirs(self.dir)
        self.write("limit", str(limit_bytes))

    def write(self, key, value):
        with open(os.path.join(self.dir, self.files[key]), "w") as f:
            f.write(value)

    def read(self, key):
        try:
            with open(os.path.join(self.dir, self.files[key])) as f:
                return f.read().strip()
        except OSError:
            return "n/a"

    def wrap(self, cmd):
        """`cmd` run from a shell that first moves itself into the cgroup."""
        procs = os.path.join(self.dir, "cgroup.procs")
        return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"] + cmd

    def close(self):
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * units[s[-1].upper()]) if s[-1].upper() in units else int(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000_000)
    ap.add_argument("--limit", default="4G", help="the restore's memory limit")
    ap.add_argument("--work", default=None, help="folder for the loop image")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("restore_limit.py needs root (losetup, mount, cgroups): run it with sudo")
    compare.ensure_tools(["cairn"])
    cairn = os.path.join(ROOT, "target/release/cairn")
    work = tempfile.mkdtemp(prefix="cairn-restore-limit-", dir=args.work)
    # Two inodes a file (the tree and its restore) and the repository's files.
    fs = compare.LoopFs(work, max(8, args.files * 2 * 1024 // (1 << 30) + 8),
                        mkfs_args=["-O", "inline_data", "-N", str(args.files * 2 + 200_000)],
                        # Inode tables are written as used, not zeroed ahead (5 GB).
                        mount_args=["-o", "noinit_itable"])
    cg = None
    try:
        data = os.path.join(fs.mnt, "data")
        repo = os.path.join(fs.mnt, "repo")
        target = os.path.join(fs.mnt, "restore")
        env = dict(os.environ, CAIRN_REPOSITORY=repo, CAIRN_PASSWORD=PASSWORD)
        with open(os.path.join(work, "log.txt"), "w") as logf:
            log(f"making {args.files:,} files")
            t0 = time.monotonic()
            make_tree(data, args.files)
            os.sync()
            log(f"  made in {time.monotonic() - t0:.0f} s")
            sh([cairn, "init", "-q"], env=env, stdout=logf, stderr=logf)
            drop_caches()
            wall, cpu, rss = measure([cairn, "backup", "-q", data], env=env, logf=logf)
            log(f"  backup: {wall:.1f} s wall, {cpu:.1f} s cpu, {rss:.0f} MiB peak")
            stats = subprocess.run([cairn, "stats"], env=env, capture_output=True, text=True).stdout
            log("  " + " / ".join(line.strip() for line in stats.splitlines() if line.strip()))
            os.sync()
            drop_caches()
            cg = MemoryCgroup(parse_size(args.limit))
            os.makedirs(target)
            restore = [cairn, "restore", "-q", f"latest:{data}", "--target", target]
            t0 = time.monotonic()
            wall, cpu, rss = measure(cg.wrap(restore), env=env, logf=logf)
            peak = cg.read("peak")
            peak_mib = f"{int(peak) / 2**20:.0f} MiB" if peak.isdigit() else peak
            log(f"  restore under {args.limit}: {wall:.1f} s wall, {cpu:.1f} s cpu, {rss:.0f} MiB peak RSS, "
                f"cgroup peak {peak_mib} (page cache included); events: {cg.read('events').split()}")
            log("  counting and comparing every 1,000th file")
            restored = sum(len(fs_) for _, _, fs_ in os.walk(target))
            wrong = [i for i in range(0, args.files, 1000)
                     if open(path_of(target, i), "rb").read() != content(i)]
            log(f"  restored {restored:,} of {args.files:,} files; {len(wrong)} of the sampled differ")
            if restored != args.files or wrong:
                return 1
        print(f"files: {args.files:,}; restore under {args.limit}: {wall:.1f} s, peak RSS {rss:.0f} MiB, "
              f"cgroup peak {peak_mib}")
        return 0
    finally:
        if cg:
            cg.close()
        fs.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
