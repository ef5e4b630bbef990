#!/usr/bin/env python3
"""Benchmark of `cairn serve` against the targets of issue 20, on the
shared dataset (scale 1 by default) plus one folder of 1,000 files:

  list       GET .../browse/<folder of 1,000 entries>, warm server
             (the first request, cold, reported apart); target <= 50 ms
  api        GET .../download/db/dump.sql (512 MiB at scale 1), streamed
  dav        the same file over WebDAV (/dav/snapshots/latest/...)
  dump       `cairn dump latest .../db/dump.sql > /dev/null`, the yardstick:
             api and dav target >= 0.8x its throughput
  dashboard  headless Chromium loads the dashboard anew (session cookie
             set, server warm, the page's site open in the browser) and
             the page reports the milliseconds from the request to
             everything shown (jobs, snapshots, charts); target <= 200 ms.
             Also from a blank tab, where the browser first starts a
             process for the site (its own cost, reported apart)

The dataset and repository live under --work; the page cache stays warm
(every step reads what the previous read), since the targets are for a
warm server. Nothing here has a peer: restic and borg have no HTTP
server of their own (Backrest's folder listing is the issue's anchor: about
4 s on a 17 GB backup, by its users' reports).

Needs chromium (Debian's package) and websocket-client (PyPI) for the
dashboard step; installs them when missing.

Usage: benches/serve.py [--scale 1] [--reps 5] [--work DIR]
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import GEN, ROOT, PASSWORD, log, sh  # noqa: E402

BIN = os.path.join(ROOT, "target", "release", "cairn")


def ensure():
    if shutil.which("chromium") is None:
        sh(["apt-get", "install", "-y", "-qq", "chromium"], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    try:
        import websocket  # noqa: F401
    except ImportError:
        sh([sys.executable, "-m", "pip", "install", "-q", "--break-system-packages", "websocket-client==1.8.0"])
    sh(["cargo", "build", "--release", "-q"], cwd=ROOT)


def get(conn, path, token, sink=False):
    """One GET on a kept-alive connection; (status, seconds, body, or
    its length when `sink`)."""
    start = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r = conn.getresponse()
    n = 0
    if sink:
        while True:
            piece = r.read(1 << 20)
            if not piece:
                break
            n += len(piece)
    else:
        n = r.read()
    return r.status, time.perf_counter() - start, n


def dashboard_ms(port, token, reps):
    """Milliseconds from request to complete first screen, as the page
    measures it (performance.now() when all is shown), in Chromium."""
    import websocket
    profile = os.path.join("/tmp", f"cairn-bench-chromium-{os.getpid()}")
    proc = subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                             f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in proc.stderr:
            if "DevTools listening on " in line:
                url = line.split("DevTools listening on ", 1)[1].strip()
                break
        ws = websocket.create_connection(url)
        seq = [0]

        def call(method, params=None, session=None):
            seq[0] += 1
            msg = {"id": seq[0], "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            ws.send(json.dumps(msg))
            while True:
                v = json.loads(ws.recv())
                if v.get("id") == seq[0]:
                    if "error" in v:
                        raise RuntimeError(f"{method}: {v['error']}")
                    return v["result"]

        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

        def value(expr):
            r = call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, s)
            return r["result"].get("value")

        def load(url):
            call("Page.navigate", {"url": url}, s)
            until = time.time() + 60
            while time.time() < until:
                ms = value("document.body && document.body.dataset.loaded === 'home' && document.body.dataset.readyMs")
                if ms:
                    return int(ms)
                time.sleep(0.02)
            raise RuntimeError("the dashboard did not finish loading in 60 s")

        load(f"http://127.0.0.1:{port}/#token={token}")  # signs in; warms the server
        again, fresh = [], []
        for i in range(reps):
            # A new load of the page, in a browser that has it open.
            again.append(load(f"http://127.0.0.1:{port}/?load={i}"))
        for i in range(reps):
            # From a blank tab: the browser also starts a process for the site.
            call("Page.navigate", {"url": "about:blank"}, s)
            time.sleep(0.2)
            fresh.append(load(f"http://127.0.0.1:{port}/?blank={i}"))
        return again, fresh
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-work", "serve"))
    args = ap.parse_args()
    ensure()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    data, repo, state = (os.path.join(args.work, d) for d in ("data", "repo", "state"))
    logf = open(os.path.join(args.work, "serve.log"), "w")
    log(f"generating the dataset (scale {args.scale})")
    sh([sys.executable, GEN, data, "--scale", str(args.scale), "--seed", str(args.seed)], stdout=logf, stderr=logf)
    many = os.path.join(data, "many")
    os.makedirs(many)
    for i in range(1000):
        with open(os.path.join(many, f"file-{i:04}.txt"), "w") as f:
            f.write(f"entry {i}\n")
    env = dict(os.environ, CAIRN_REPOSITORY=repo, CAIRN_PASSWORD=PASSWORD, CAIRN_CACHE_DIR=os.path.join(args.work, "cache"))
    pw = os.path.join(args.work, "password")
    with open(pw, "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pw, 0o600)
    config = os.path.join(args.work, "cairn.toml")
    with open(config, "w") as f:
        f.write(f'[repository.main]\nlocation = "{repo}"\npassword-file = "{pw}"\n\n'
                f'[job.files]\nrepositories = ["main"]\npaths = ["{data}"]\nmax-age = "1d"\n')
    sh([BIN, "init", "-q"], env=env, stdout=logf, stderr=logf)
    log("backing up (a job run, so the dashboard has a job with history)")
    sh([BIN, "--config", config, "job", "run", "--state-dir", state], env=env, stdout=logf, stderr=logf)
    proc = subprocess.Popen([BIN, "--config", config, "serve", "--listen", "127.0.0.1:0", "--state-dir", state],
                            env=env, stdout=logf, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = int(line.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        proc.stderr.readline()
        with open(os.path.join(state, f"serve-{port}.token")) as f:
            token = f.read().strip()
        rel = data.lstrip("/")
        conn = http.client.HTTPConnection("127.0.0.1", port)
        rows = {}
        status, first, body = get(conn, f"/api/v1/snapshots/latest/browse/{rel}/many", token)
        assert status == 200 and len(json.loads(body)["entries"]) == 1000, (status, body[:200])
        rows["list_first_ms"] = [first * 1000]
        rows["list_ms"] = [get(conn, f"/api/v1/snapshots/latest/browse/{rel}/many", token)[1] * 1000 for _ in range(50)]
        size = os.path.getsize(os.path.join(data, "db", "dump.sql"))
        for step, path in (("api_s", f"/api/v1/snapshots/latest/download/{rel}/db/dump.sql"),
                           ("dav_s", f"/dav/snapshots/latest/{rel}/db/dump.sql")):
            rows[step] = []
            for _ in range(args.reps):
                status, secs, got = get(conn, path, token, sink=True)
                assert status == 200 and got == size, (step, status, got, size)
                rows[step].append(secs)
        rows["dump_s"] = []
        for _ in range(args.reps):
            start = time.perf_counter()
            sh(["sh", "-c", f"'{BIN}' dump latest '{data}/db/dump.sql' > /dev/null"], env=env, stderr=logf)
            rows["dump_s"].append(time.perf_counter() - start)
        rows["dashboard_ms"], rows["dashboard_blank_ms"] = dashboard_ms(port, token, args.reps)
    finally:
        proc.terminate()
        proc.wait()
    med = {k: statistics.median(v) for k, v in rows.items()}
    mib = size / (1 << 20)
    out = [f"scale {args.scale}, {args.reps} repetitions (listing: 50), medians (min-max); "
           f"download of db/dump.sql, {mib:.0f} MiB", "",
           "| step | median | min-max | target | met |", "|---|---|---|---|---|"]

    def span(k, f):
        return f"{f(min(rows[k]))}-{f(max(rows[k]))}"
    ms = lambda v: f"{v:.1f} ms"  # noqa: E731
    out.append(f"| list 1,000 entries, first | {ms(med['list_first_ms'])} | - | - | - |")
    out.append(f"| list 1,000 entries, warm | {ms(med['list_ms'])} | {span('list_ms', ms)} | <= 50 ms | "
               f"{'yes' if med['list_ms'] <= 50 else 'no'} |")
    for k, name in (("api_s", "API download"), ("dav_s", "WebDAV download"), ("dump_s", "cairn dump")):
        ratio = med["dump_s"] / med[k]
        target = "(yardstick)" if k == "dump_s" else ">= 0.8x dump"
        met = "-" if k == "dump_s" else ("yes" if ratio >= 0.8 else "no")
        out.append(f"| {name} | {med[k]:.2f} s, {mib / med[k]:.0f} MiB/s, {ratio:.2f}x dump | "
                   f"{span(k, lambda v: f'{v:.2f}')} s | {target} | {met} |")
    out.append(f"| dashboard first screen | {ms(med['dashboard_ms'])} | {span('dashboard_ms', ms)} | <= 200 ms | "
               f"{'yes' if med['dashboard_ms'] <= 200 else 'no'} |")
    out.append(f"| same, from a blank tab | {ms(med['dashboard_blank_ms'])} | {span('dashboard_blank_ms', ms)} | - | - |")
    print("\n".join(out))
    with open(os.path.join(args.work, "serve-results.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
