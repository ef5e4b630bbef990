#!/usr/bin/env python3
"""Many small files: cairn against restic, borg and bupstash as the tree grows.

For each size (--files, default 100000 and 1000000): the shared generator's
config tree (`gen-dataset.py --config-files N`, /etc-like folders of small
text files) on a fresh loop-mounted ext4 (direct I/O), then for each tool,
with the page cache emptied before every step:

  initial backup -> no-change backup -> 0.1% of the files changed (a line
  appended, deterministic) -> incremental backup -> `ls` of the snapshot ->
  restore (checked with verify-tree.py) -> check -> the initial snapshot
  forgotten (not timed) -> prune (restic `prune`, borg `compact`,
  bupstash `gc`; all packs with unused data repacked where the tool has
  the choice)

Reported per step: wall time and peak memory (GNU time's maximum resident
set), and how each grows from the smallest size to the largest. bupstash
has no `check` and no `ls` of a whole snapshot by default (`bupstash
list-contents` is used); it is built from crates.io (`cargo install
bupstash`, needs libsodium-dev) when missing. restic and borg come from
Debian's packages.

Needs root (losetup, mount, drop_caches).

Usage: sudo benches/many_files.py [--files 100000,1000000] [--tools cairn,restic,borg,bupstash]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the shared steps, tools and loop file system)
from compare import GEN, VERIFY, LoopFs, drop_caches, log, measure, sh  # noqa: E402

STEPS = ["initial", "nochange", "incremental", "ls", "restore", "check", "prune"]


def ls_cmd(tool):
    if tool.name == "cairn":
        return ["sh", "-c", f"{tool.bin} ls latest > /dev/null"]
    if tool.name == "restic":
        return ["sh", "-c", "restic ls latest > /dev/null"]
    if tool.name == "borg":
        return ["sh", "-c", f"borg list {tool.repo}::$(borg list --short --last 1 {tool.repo}) > /dev/null"]
    return tool.ls()





def forget_first(tool):
    """Removes the first of the three snapshots (the 0.1% of files changed
    since then lose their old versions)."""
    if tool.name == "cairn":
        return ["sh", "-c", f"{tool.bin} forget -q --keep-last 2"]
    if tool.name == "restic":
        return ["restic", "forget", "-q", "--keep-last", "2"]
    if tool.name == "borg":
        return ["borg", "prune", "--keep-last", "2", tool.repo]
    return ["sh", "-c", "bupstash rm name=s1"]


def prune_cmd(tool):
    if tool.name == "cairn":
        return [tool.bin, "prune", "-q", "--max-unused", "0%"]
    if tool.name == "restic":
        return ["restic", "prune", "-q", "--max-unused", "0%"]
    if tool.name == "borg":
        return ["borg", "compact", "--threshold", "0", tool.repo]
    return ["bupstash", "gc"]


def change_some(data, fraction):
    """Appends a line to every 1/fraction-th file, in sorted order."""
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(data) for f in fs)
    step = max(1, round(1 / fraction))
    for path in files[::step]:
        with open(path, "a") as f:
            f.write("# changed by many_files.py\n")
    return len(files[::step])


def run(tool_name, files, mnt, base, logf, rows):
    data = os.path.join(mnt, "data")
    repo = os.path.join(mnt, f"repo-{tool_name}")
    target = os.path.join(mnt, f"restore-{tool_name}")
    extra = compare.extra_paths(repo)
    compare.remove([data, repo, target] + extra)
    sh(["cp", "-a", base, data])
    t = compare.make_tool(tool_name, repo)
    sh(t.init(), env=t.env, stdout=logf, stderr=logf)

    def step(name, cmd, cwd=None):
        if cmd is None:
            return
        os.sync()
        drop_caches()
        wall, cpu, rss = measure(cmd, env=t.env, cwd=cwd, logf=logf)
        rows.append(dict(tool=tool_name, files=files, step=name, wall_s=round(wall, 2), rss_mib=round(rss, 1)))
        log(f"  {tool_name} {files} files {name}: {wall:.2f}s wall, {cpu:.2f}s cpu, {rss:.0f} MiB")

    step("initial", t.backup(data, 1))
    step("nochange", t.backup(data, 2))
    changed = change_some(data, 0.001)
    log(f"  changed {changed} files")
    step("incremental", t.backup(data, 3))
    step("ls", ls_cmd(t))
    os.makedirs(target)
    step("restore", t.restore(target, data), cwd=target)
    verdict = subprocess.run([sys.executable, VERIFY, data, t.restored(target, data)], capture_output=True, text=True)
    log(f"  {tool_name} restore check: {verdict.stdout.strip()}")
    rows[-1]["restore_ok"] = verdict.returncode == 0
    shutil.rmtree(target, ignore_errors=True)
    step("check", t.check())
    sh(forget_first(t), env=t.env, stdout=logf, stderr=logf)
    step("prune", prune_cmd(t))
    compare.remove([data, repo] + extra)


def table(rows, tools, sizes):
    out = ["| step | files | " + " | ".join(f"{t} s / MiB" for t in tools) + " |",
           "|---|---|" + "---|" * len(tools)]
    for step in STEPS:
        for n in sizes:
            cells = []
            for t in tools:
                r = [x for x in rows if x["tool"] == t and x["step"] == step and x["files"] == n]
                cells.append(f"{r[0]['wall_s']:.2f} / {r[0]['rss_mib']:.0f}" if r else "-")
            out.append(f"| {step} | {n:,} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default="100000,1000000")
    ap.add_argument("--tools", default="cairn,restic,borg,bupstash")
    ap.add_argument("--work", default=None, help="folder for the loop image")
    args = ap.parse_args()
    sizes = [int(x) for x in args.files.split(",")]
    tools = args.tools.split(",")
    compare.ensure_tools(tools)
    work = tempfile.mkdtemp(prefix="cairn-manyfiles-", dir=args.work)
    # About 4.7 KiB a file on disk for each of the tree, its copy and a
    # restore, and the repositories: 20 KiB a file (the image is sparse).
    # Three copies of the tree need three inodes a file, and more for the
    # repositories: one inode per 4 KiB (ext4's default, one per 16 KiB,
    # ran out at a million files).
    fs = LoopFs(work, max(4, max(sizes) * 20 // (1 << 20) + 2), bytes_per_inode=4096)
    rows = []
    try:
        with open(os.path.join(work, "log.txt"), "w") as logf:
            for n in sizes:
                base = os.path.join(fs.mnt, f"base-{n}")
                log(f"generating {n} files")
                sh([sys.executable, GEN, base, "--sql-mib", "0", "--media-mib", "0", "--config-files", str(n)],
                   stdout=logf, stderr=logf)
                for t in tools:
                    run(t, n, fs.mnt, base, logf, rows)
                shutil.rmtree(base)
    finally:
        fs.close()
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; loop-mounted ext4 (direct I/O); "
          f"page cache emptied before each step\n")
    print(table(rows, tools, sizes))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
