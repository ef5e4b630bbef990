#!/usr/bin/env python3
"""Side-by-side benchmark of browsing a mounted snapshot: `cairn mount`
against `restic mount` and `borg mount`, on the shared dataset.

Each tool backs the dataset up once (not measured), then mounts it, and
with the page cache emptied before each step:

  visible  from starting the mount until the snapshot's files are there
  find     `find` over the mounted snapshot (every entry)
  seq      reading the 512 MiB SQL dump (db/dump.sql) start to end
  tar      reading every file: `tar -cf - . | cat > /dev/null`
  random   200 random 64 KiB reads spread over the dump and the media files

plus, for cairn only, the references the targets are set against:
`cairn dump` of the same dump (sequential read without FUSE) and
`cairn restore` of the same snapshot. Peak memory is the mount process's
VmHWM just before unmounting. Everything lives on a fresh loop-mounted
ext4 image, as compare.py does.

Needs root (losetup, mount, FUSE), fuse3, restic, borgbackup and
python3-llfuse (borg mount); installs them when missing.

Usage: sudo benches/mount.py [--scale 1] [--reps 1] [--tools cairn,restic,borg]
"""
import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import (GEN, ROOT, LoopFs, drop_caches, du, ensure_tools, log, make_tool,  # noqa: E402
                     measure, sh, version)

STEPS = ["visible", "find", "seq", "tar", "random"]


def read_random(paths, count, size, seed):
    """Python source for the random-read step, run as its own process."""
    return (
        "import os, random\n"
        f"paths = {paths!r}\n"
        f"rng = random.Random({seed})\n"
        "sizes = [os.path.getsize(p) for p in paths]\n"
        f"for _ in range({count}):\n"
        "    i = rng.randrange(len(paths))\n"
        f"    off = rng.randrange(max(1, sizes[i] - {size}))\n"
        "    with open(paths[i], 'rb') as f:\n"
        "        f.seek(off)\n"
        f"        assert len(f.read({size})) == min({size}, sizes[i] - off)\n"
    )


class Mounted:
    """A tool's mount process on `at`; `root` is where the dataset shows."""

    def __init__(self, tool, at, data, logf):
        self.tool, self.at = tool, at
        os.makedirs(at, exist_ok=True)
        if tool.name == "cairn":
            cmd = [tool.bin, "mount", at]
            self.root = os.path.join(at, "snapshots", "latest", data.lstrip("/"))
        elif tool.name == "restic":
            cmd = ["restic", "mount", at]
            self.root = os.path.join(at, "snapshots", "latest", data.lstrip("/"))
        else:
            cmd = ["borg", "mount", "-f", tool.repo, at]
            self.root = os.path.join(at, "s1", data.lstrip("/"))
        start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=tool.env, stdout=logf, stderr=logf)
        while not os.path.exists(os.path.join(self.root, "db", "dump.sql")):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{tool.name} mount exited {self.proc.returncode} (see the log)")
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"{tool.name} mount: files not visible after 300 s")
            time.sleep(0.01)
        self.visible = time.perf_counter() - start

    def peak_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def close(self):
        if self.tool.name == "borg":
            subprocess.run(["borg", "umount", self.at], env=self.tool.env)
        else:
            subprocess.run(["umount", self.at])
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            subprocess.run(["umount", "-l", self.at])


def run_tool(name, rep, mnt, base, logf, rows):
    data = os.path.join(mnt, "data")
    repo = os.path.join(mnt, f"repo-{name}")
    at = os.path.join(mnt, f"view-{name}")
    for p in (data, repo, repo + "-cache", repo + "-base"):
        shutil.rmtree(p, ignore_errors=True)
    sh(["cp", "-a", base, data])
    t = make_tool(name, repo)
    sh(t.init(), env=t.env, stdout=logf, stderr=logf)
    sh(t.backup(data, 1), env=t.env, stdout=logf, stderr=logf)

    def row(step, wall, cpu=None):
        rows.append(dict(tool=name, rep=rep, step=step, wall_s=round(wall, 3),
                         cpu_s=None if cpu is None else round(cpu, 3)))
        log(f"  {name} rep {rep} {step}: {wall:.2f}s")

    if name == "cairn":
        drop_caches()
        wall, cpu, _ = measure(["sh", "-c", f"'{t.bin}' dump latest '{data}/db/dump.sql' > /dev/null"],
                               env=t.env, logf=logf)
        row("ref_dump", wall, cpu)
        target = os.path.join(mnt, "restore-cairn")
        shutil.rmtree(target, ignore_errors=True)
        drop_caches()
        wall, cpu, _ = measure(t.restore(target, data), env=t.env, logf=logf)
        row("ref_restore", wall, cpu)
        shutil.rmtree(target, ignore_errors=True)
    drop_caches()
    m = Mounted(t, at, data, logf)
    try:
        row("visible", m.visible)
        root = m.root
        drop_caches()
        row("find", measure(["find", root], logf=subprocess.DEVNULL)[0])
        drop_caches()
        row("seq", measure(["cat", os.path.join(root, "db", "dump.sql")], logf=subprocess.DEVNULL)[0])
        drop_caches()
        row("tar", measure(["sh", "-c", "tar -cf - . | cat > /dev/null"], cwd=root, logf=logf)[0])
        media = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(base, "media")) for f in fs)
        paths = [os.path.join(root, "db", "dump.sql")] + [os.path.join(root, os.path.relpath(p, base)) for p in media]
        drop_caches()
        row("random", measure([sys.executable, "-c", read_random(paths, 200, 64 << 10, rep)], logf=logf)[0])
        peak = m.peak_mib()
        rows.append(dict(tool=name, rep=rep, step="peak_mib", wall_s=peak))
        log(f"  {name} rep {rep} mount peak memory: {peak:.0f} MiB")
    finally:
        m.close()
    for p in (data, repo, repo + "-cache", repo + "-base"):
        shutil.rmtree(p, ignore_errors=True)


def median(rows, tool, step):
    vals = [r["wall_s"] for r in rows if r["tool"] == tool and r["step"] == step and r["wall_s"] is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tools", default="cairn,restic,borg")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-work"))
    args = ap.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if os.geteuid() != 0:
        sys.exit("mount.py needs root (losetup, mount, FUSE): run it with sudo")
    ensure_tools(tools)
    if shutil.which("fusermount3") is None or ("borg" in tools and subprocess.run(
            ["/usr/bin/python3", "-c", "import llfuse"], capture_output=True).returncode != 0):
        sh(["apt-get", "install", "-y", "-qq", "fuse3", "python3-llfuse"],
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    os.makedirs(args.work, exist_ok=True)
    fs = LoopFs(args.work, max(4, int(8 * args.scale) + 3))
    rows = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = os.path.join(args.work, f"mount-{stamp}.log")
    try:
        with open(log_path, "w") as logf:
            base = os.path.join(fs.mnt, "base")
            log(f"generating the dataset (scale {args.scale}) on {fs.dev}")
            sh([sys.executable, GEN, base, "--scale", str(args.scale), "--seed", str(args.seed)], stdout=logf, stderr=logf)
            for rep in range(1, args.reps + 1):
                order = tools[rep - 1:] + tools[:rep - 1]
                for tool in order:
                    run_tool(tool, rep, fs.mnt, base, logf, rows)
    finally:
        fs.close()
    peers = [t for t in tools if t != "cairn"]
    head = ["step"] + tools + [f"cairn/{p}" for p in peers]
    out = [f"scale {args.scale}, {args.reps} repetition(s), medians of wall seconds (peak_mib: MiB); "
           + ", ".join(version(t) for t in tools), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step in STEPS + ["peak_mib", "ref_dump", "ref_restore"]:
        vals = {t: median(rows, t, step) for t in tools}
        if all(v is None for v in vals.values()):
            continue
        cells = [step] + [f"{vals[t]:.2f}" if vals[t] is not None else "n/a" for t in tools]
        cells += [f"{vals['cairn'] / vals[p]:.2f}" if vals.get("cairn") and vals[p] else "n/a" for p in peers]
        out.append("| " + " | ".join(cells) + " |")
    c = {s: median(rows, "cairn", s) for s in ("seq", "ref_dump", "tar", "ref_restore")}
    if c["seq"] and c["ref_dump"]:
        out.append(f"\ncairn: mount sequential read throughput / `cairn dump`'s: {c['ref_dump'] / c['seq']:.2f}")
    if c["tar"] and c["ref_restore"]:
        out.append(f"cairn: tar over the mount / `cairn restore`: {c['tar'] / c['ref_restore']:.2f}")
    md_path = os.path.join(args.work, f"mount-{stamp}.md")
    with open(md_path, "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))
    print(f"Markdown: {md_path}\nlog: {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
