#!/usr/bin/env python3
"""Throughput of cairn on remote storage against the same on a local folder.

One run, same machine, same data: for each target and repetition

  init -> initial backup of the shared dataset -> full restore (checked with
  verify-tree.py) -> check --read-data

with the repository in a local folder (fs), in a bucket of s3s-fs (an S3
server, crates.io) on 127.0.0.1, and optionally (--sftp) on OpenSSH's sshd
on 127.0.0.1. Everything (dataset, repositories, the servers' storage,
restores) lives on one fresh loop-mounted ext4 image, as in compare.py.

Reports wall time per step, the throughput ratio remote/fs (fs wall time /
remote wall time: 1.0 means as fast as the local folder), the storage
requests cairn made (its -v line), the server's CPU time in each step,
and the number and mean size of data packs.

On a small machine the server competes with cairn for the same cores, and
its CPU then bounds the remote throughput rather than cairn's.
--server-cpus K gives the servers the last K cores and cairn (on every
target, the local folder included) the others: the closest this one
machine comes to a storage server with cores of its own.

Needs root (losetup, mount); installs s3s-fs with cargo when missing.

Usage: sudo benches/remote.py [--scale 1] [--reps 3] [--sftp] [--server-cpus 1]
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import GEN, PASSWORD, ROOT, VERIFY, LoopFs, du, log, measure, sh  # noqa: E402

CAIRN = os.path.join(ROOT, "target/release/cairn")
STEPS = ["initial", "restore", "check"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"{what} did not start on port {port}")


def s3s_fs_binary():
    for cand in (shutil.which("s3s-fs"), os.path.expanduser("~/.cargo/bin/s3s-fs")):
        if cand and os.path.exists(cand):
            return cand
    log("installing s3s-fs (cargo install, a few minutes)")
    sh(["cargo", "install", "-q", "s3s-fs@0.14.1", "--features", "binary", "--locked"])
    return os.path.expanduser("~/.cargo/bin/s3s-fs")


# CPU lists for taskset, or None to let everything share every core.
CAIRN_CPUS = None
SERVER_CPUS = None


def pinned(cmd, cpus):
    return ["taskset", "-c", cpus] + cmd if cpus else cmd


def cpu_seconds(pid):
    """CPU seconds (user + system) a running process and its finished
    children have used so far: sshd serves each connection in a child."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Target:
    def __init__(self, name, repo, env, options, packs_dir, server=None):
        self.name, self.repo, self.env, self.options, self.packs_dir = name, repo, env, options, packs_dir
        self.server = server

    def server_cpu(self):
        if self.server is None:
            return 0.0
        # Time for sshd to reap the connection's child, whose CPU then counts.
        time.sleep(0.3)
        return cpu_seconds(self.server.pid)

    def cmd(self, *args):
        out = pinned([CAIRN], CAIRN_CPUS)
        for o in self.options:
            out += ["-o", o]
        return out + list(args)


def start_s3s(mnt):
    root = os.path.join(mnt, "s3s-root")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "bench"))
    port = free_port()
    proc = subprocess.Popen(pinned([s3s_fs_binary(), "--host", "127.0.0.1", "--port", str(port), "--access-key",
                                    "bench", "--secret-key", "benchsecret", root], SERVER_CPUS),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "s3s-fs")
    env = dict(os.environ, CAIRN_REPOSITORY="s3:bench/repo", CAIRN_PASSWORD=PASSWORD,
               AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="benchsecret", AWS_REGION="us-east-1",
               CAIRN_CACHE_DIR=os.path.join(mnt, "cache-s3"))
    t = Target("s3 (s3s-fs)", "s3:bench/repo", env, [f"s3.endpoint=http://127.0.0.1:{port}"],
               os.path.join(root, "bench", "repo", "data"), proc)
    return proc, t


def start_sshd(mnt):
    d = tempfile.mkdtemp(prefix="cairn-bench-sshd-")
    os.makedirs("/run/sshd", exist_ok=True)
    for k in ("host", "client"):
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, k)])
    shutil.copy(os.path.join(d, "client.pub"), os.path.join(d, "authorized_keys"))
    port = free_port()
    cfg = os.path.join(d, "sshd_config")
    with open(cfg, "w") as f:
        f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/pid\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n"
                "PasswordAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n")
    proc = subprocess.Popen(pinned(["/usr/sbin/sshd", "-D", "-e", "-f", cfg], SERVER_CPUS), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port, proc, "sshd")
    path = os.path.join(mnt, "repo-sftp")
    repo = f"sftp:root@127.0.0.1:{port}{path}"
    env = dict(os.environ, CAIRN_REPOSITORY=repo, CAIRN_PASSWORD=PASSWORD,
               CAIRN_CACHE_DIR=os.path.join(mnt, "cache-sftp"))
    t = Target("sftp (sshd)", repo, env, [f"sftp.key={d}/client", "sftp.known_hosts=accept"],
               os.path.join(path, "data"), proc)
    return proc, t


def packs(d):
    sizes = []
    for dirpath, _, files in os.walk(d):
        sizes += [os.path.getsize(os.path.join(dirpath, f)) for f in files if len(f) == 64]
    return sizes


def run(t, rep, mnt, base, logf, rows):
    target = os.path.join(mnt, "restore")
    shutil.rmtree(target, ignore_errors=True)
    for p in ("repo-fs", "repo-sftp", os.path.join("s3s-root", "bench", "repo"), "cache-s3", "cache-sftp"):
        shutil.rmtree(os.path.join(mnt, p), ignore_errors=True)
    sh(t.cmd("init", "-q"), env=t.env, stdout=logf, stderr=logf)

    def step(name, *args, cwd=None):
        # No step pays for the one before: the servers do not fsync what
        # they store (cairn does, on a local folder), and half a gigabyte
        # of their dirty pages otherwise goes to disk during the next step.
        os.sync()
        server_before = t.server_cpu()
        with tempfile.TemporaryFile("w+") as out:
            wall, cpu, rss = measure(t.cmd("-v", *args), env=t.env, cwd=cwd, logf=out)
            out.seek(0)
            text = out.read()
        server = t.server_cpu() - server_before
        logf.write(text)
        m = re.search(r"cairn: (\d+) storage requests", text)
        rows.append(dict(target=t.name, rep=rep, step=name, wall_s=wall, cpu_s=cpu, rss_mib=rss,
                         server_cpu_s=server, requests=int(m.group(1)) if m else None))
        log(f"  {t.name} rep {rep} {name}: {wall:.2f}s wall, {cpu:.2f}s cpu, {rss:.0f} MiB, "
            f"{rows[-1]['requests']} requests, server {server:.2f}s cpu")

    step("initial", "backup", "-q", base)
    sizes = packs(t.packs_dir)
    rows[-1]["packs"] = len(sizes)
    rows[-1]["pack_mib"] = statistics.mean(sizes) / 2**20 if sizes else 0
    os.makedirs(target)
    step("restore", "restore", "-q", f"latest:{base}", "--target", target, cwd=target)
    verdict = subprocess.run([sys.executable, VERIFY, base, target], capture_output=True, text=True)
    rows[-1]["restore_ok"] = verdict.returncode == 0
    log(f"  {t.name} restore check: {verdict.stdout.strip()}")
    step("check", "check", "-q", "--read-data")
    shutil.rmtree(target, ignore_errors=True)


def med(rows, target, step, key):
    vals = [r[key] for r in rows if r["target"] == target and r["step"] == step and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--sftp", action="store_true", help="also measure SFTP to a local sshd")
    ap.add_argument("--server-cpus", type=int, default=0,
                    help="give the servers the last K cores and cairn the others (default: all share)")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-work"))
    args = ap.parse_args()
    global CAIRN_CPUS, SERVER_CPUS
    cores = sorted(os.sched_getaffinity(0))
    if args.server_cpus:
        if not 0 < args.server_cpus < len(cores):
            sys.exit(f"--server-cpus must leave cairn at least one of the {len(cores)} cores")
        CAIRN_CPUS = ",".join(map(str, cores[:-args.server_cpus]))
        SERVER_CPUS = ",".join(map(str, cores[-args.server_cpus:]))
    if os.geteuid() != 0:
        sys.exit("remote.py needs root (losetup, mount): run it with sudo")
    log("building cairn (release)")
    sh(["cargo", "build", "--release", "-q", "--bin", "cairn"], cwd=ROOT)
    os.makedirs(args.work, exist_ok=True)
    fs = LoopFs(args.work, max(4, int(6 * args.scale) + 3))
    rows, procs = [], []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_path = os.path.join(args.work, f"remote-{stamp}.log")
    try:
        with open(log_path, "w") as logf:
            base = os.path.join(fs.mnt, "base")
            log(f"generating the dataset (scale {args.scale}) on {fs.dev}")
            sh([sys.executable, GEN, base, "--scale", str(args.scale), "--seed", str(args.seed)], stdout=logf,
               stderr=logf)
            dataset = du(base)
            log(f"dataset: {dataset / 2**20:.0f} MiB")
            local = os.path.join(fs.mnt, "repo-fs")
            targets = [Target("fs", local, dict(os.environ, CAIRN_REPOSITORY=local, CAIRN_PASSWORD=PASSWORD), [],
                              os.path.join(local, "data"))]
            p, t = start_s3s(fs.mnt)
            procs.append(p)
            targets.append(t)
            if args.sftp:
                p, t = start_sshd(fs.mnt)
                procs.append(p)
                targets.append(t)
            for rep in range(1, args.reps + 1):
                order = targets[(rep - 1) % len(targets):] + targets[:(rep - 1) % len(targets)]
                for t in order:
                    run(t, rep, fs.mnt, base, logf, rows)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        fs.close()
    names = [r["target"] for r in rows if r["step"] == "initial"]
    names = list(dict.fromkeys(names))
    lines = [f"scale {args.scale} ({dataset / 2**20:.0f} MiB), {args.reps} repetitions, medians; "
             f"machine: {os.cpu_count()} cores, {os.uname().release}; loop-mounted ext4 (direct I/O); "
             + (f"cairn on cores {CAIRN_CPUS}, servers on {SERVER_CPUS}" if CAIRN_CPUS else "all share every core"),
             "",
             "| target | step | wall s | MiB/s | throughput vs fs | requests | cairn CPU s | server CPU s "
             "| peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        for s in STEPS:
            w = med(rows, n, s, "wall_s")
            fsw = med(rows, "fs", s, "wall_s")
            req = med(rows, n, s, "requests")
            lines.append(f"| {n} | {s} | {w:.2f} | {dataset / 2**20 / w:.0f} | {fsw / w:.2f} | "
                         f"{req if req is not None else '-'} | {med(rows, n, s, 'cpu_s'):.2f} | "
                         f"{med(rows, n, s, 'server_cpu_s'):.2f} | {med(rows, n, s, 'rss_mib'):.0f} |")
    lines.append("")
    for n in names:
        lines.append(f"{n}: {med(rows, n, 'initial', 'packs'):.0f} data packs of "
                     f"{med(rows, n, 'initial', 'pack_mib'):.1f} MiB on average after the initial backup")
    bad = [r for r in rows if r.get("restore_ok") is False]
    if bad:
        lines.append("RESTORE MISMATCH: " + ", ".join(f"{r['target']} rep {r['rep']}" for r in bad))
    md_path = os.path.join(args.work, f"remote-{stamp}.md")
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"Markdown: {md_path}\nlog: {log_path}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
