#!/usr/bin/env python3
"""Load benchmark for the HTTP server (issue #18): hostile and honest clients at once.

    cargo build --release && python3 benches/load.py [--binary target/release/anomalyd] [--seconds 30]

Starts anomalyd on loopback (1 s sampling, basic auth with a bcrypt cost-10 hash,
http.max_connections 2048) and, for --seconds, runs at the same time:
  - 1,000 keep-alive scrapers, each GET /metrics with the right password once a second;
  - 500 slowloris connections, each sending a header a line a second (the server
    cuts them at header_timeout, 5 s; they reconnect at once);
  - 50 clients sending a wrong password as fast as they get answers (own process).
Then every client goes away and, 15 s later, RSS is measured again.

It prints, and checks (exit 1 if any fails):
  - the longest gap between two samples (anomalyd_sampling_longest_gap_seconds) <= 1.1 s;
  - valid scrape latency p99 <= 50 ms (and no valid scrape failed);
  - RSS after the load within 2 MB of RSS before it.
Only 127.0.0.1 is used; every loop ends by itself.
"""

import argparse
import asyncio
import base64
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# bcrypt, cost 10, of "bench-pass" (libxcrypt: crypt("bench-pass", "$2b$10$abcdefghijklmnopqrstuu")).
HASH = "$2b$10$abcdefghijklmnopqrstuuLVlL25aAOw6CLM3S7qZkxTQJ8weyDqC"
GOOD = "Basic " + base64.b64encode(b"prom:bench-pass").decode()
BAD = "Basic " + base64.b64encode(b"prom:wrong-pass").decode()


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def thread_cpu(pid):
    """CPU seconds used so far by each of the process's threads, by thread name."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[name] = out.get(name, 0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def read_response(reader):
    """Status of one HTTP/1.1 response, its body read (Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


def request(auth):
    return f"GET /metrics HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n\r\n".encode()


async def scraper(port, stop_at, latencies, failures, offset):
    await asyncio.sleep(offset)
    reader = writer = None
    next_at = time.monotonic()
    while time.monotonic() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            writer.write(request(GOOD))
            status = await asyncio.wait_for(read_response(reader), 10)
            latencies.append(time.monotonic() - t0)
            if status != 200:
                failures.append(status)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            failures.append(type(e).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
        next_at += 1.0
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if writer is not None:
        writer.close()


async def slowloris(port, stop_at, cut, offset):
    await asyncio.sleep(offset)
    while time.monotonic() < stop_at:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n")
            while time.monotonic() < stop_at:
                await asyncio.sleep(1.0)
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
                if reader.at_eof():
                    raise ConnectionResetError
                try:
                    # The server closes a connection it cut: EOF shows here.
                    data = await asyncio.wait_for(reader.read(1), 0.001)
                    if not data:
                        raise ConnectionResetError
                except asyncio.TimeoutError:
                    pass
        except (OSError, asyncio.IncompleteReadError):
            cut[0] += 1
        finally:
            if writer is not None:
                writer.close()


def wrong_passwords(port, seconds, clients, out):
    """Its own process, so its busy loop does not slow the scrapers' measurements."""

    async def client(stop_at, counts):
        reader = writer = None
        while time.monotonic() < stop_at:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request(BAD))
                status = await asyncio.wait_for(read_response(reader), 10)
                counts[status] = counts.get(status, 0) + 1
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                counts["reconnect"] = counts.get("reconnect", 0) + 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)

    async def main():
        counts = {}
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(client(stop_at, counts) for _ in range(clients)))
        out.put(counts)

    asyncio.run(main())


def scraper_proc(port, seconds, n, out):
    raise_fd_limit()

    async def main():
        latencies, failures = [], []
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(scraper(port, stop_at, latencies, failures, i / n) for i in range(n)))
        out.put((latencies, failures))

    asyncio.run(main())


def slowloris_proc(port, seconds, n, out):
    """Its own process too: only the scrapers' event loop is timed."""
    raise_fd_limit()

    async def main():
        cut = [0]
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(slowloris(port, stop_at, cut, i / n) for i in range(n)))
        out.put(cut[0])

    asyncio.run(main())


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/anomalyd")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--scrapers", type=int, default=1000)
    ap.add_argument("--slowloris", type=int, default=500)
    ap.add_argument("--wrong", type=int, default=50)
    ap.add_argument("--procs", type=int, default=4, help="processes the scrapers are spread over")
    args = ap.parse_args()
    raise_fd_limit()
    work = tempfile.mkdtemp(prefix="anomalyd-load-")
    port = free_port()
    with open(os.path.join(work, "web.yml"), "w") as f:
        f.write(f"basic_auth_users:\n  prom: '{HASH}'\n")
    with open(os.path.join(work, "anomalyd.yaml"), "w") as f:
        f.write(
            f"interval: 1s\nlisten: 127.0.0.1:{port}\nstate_dir: {work}/state\n"
            f"web_config_file: {work}/web.yml\n"
            "http:\n  max_connections: 2048\n  header_timeout: 5s\n  idle_timeout: 60s\n"
        )
    log = open(os.path.join(work, "anomalyd.log"), "w")
    daemon = subprocess.Popen(
        [args.binary, "run", "--config", os.path.join(work, "anomalyd.yaml")],
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192)),
    )
    try:
        return run(args, work, port, daemon)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def run(args, work, port, daemon):
    deadline = time.monotonic() + 30
    while "first sample taken" not in open(os.path.join(work, "anomalyd.log")).read():
        if time.monotonic() > deadline or daemon.poll() is not None:
            sys.exit("anomalyd did not start; see " + os.path.join(work, "anomalyd.log"))
        time.sleep(0.2)

    async def warm():
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(GOOD))
            assert await read_response(reader) == 200, "the right password was refused"
            writer.close()

    asyncio.run(warm())
    time.sleep(5)
    rss_before = rss_kb(daemon.pid)
    print(f"RSS before: anonymous {rss_kb(daemon.pid, 'RssAnon') / 1024:.1f} MB, "
          f"file {rss_kb(daemon.pid, 'RssFile') / 1024:.1f} MB")

    out, slow_out = multiprocessing.Queue(), multiprocessing.Queue()
    wrong = multiprocessing.Process(target=wrong_passwords, args=(port, args.seconds, args.wrong, out))
    slow = multiprocessing.Process(target=slowloris_proc, args=(port, args.seconds, args.slowloris, slow_out))
    latencies, failures, cut, rss_peak = [], [], [0], [rss_before]
    load_start = time.time()

    # The scrapers are spread over processes (one event loop each), so what is timed
    # is the server, not one Python loop queueing 1,000 coroutines.
    lat_out = multiprocessing.Queue()
    per = -(-args.scrapers // args.procs)
    scrapers = [
        multiprocessing.Process(target=scraper_proc, args=(port, args.seconds, per, lat_out))
        for _ in range(args.procs)
    ]
    cpu_before = thread_cpu(daemon.pid)
    wrong.start()
    slow.start()
    for p in scrapers:
        p.start()
    stop_at = time.monotonic() + args.seconds
    while time.monotonic() < stop_at:
        rss_peak[0] = max(rss_peak[0], rss_kb(daemon.pid))
        time.sleep(0.5)
    for _ in scrapers:
        lats, fails = lat_out.get(timeout=60)
        latencies.extend(lats)
        failures.extend(fails)
    for p in scrapers:
        p.join()
    cpu_after = thread_cpu(daemon.pid)
    wrong_counts = out.get(timeout=60)
    cut[0] = slow_out.get(timeout=60)
    wrong.join()
    slow.join()
    load_end = time.time()
    time.sleep(15)
    rss_after = rss_kb(daemon.pid)
    anon_file = (rss_kb(daemon.pid, "RssAnon"), rss_kb(daemon.pid, "RssFile"))

    # The daemon's own record of its longest gap between two samples since it
    # started (the history is stored compressed; this needs no decoder).
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": GOOD})
    body = urllib.request.urlopen(req, timeout=10).read().decode()
    max_gap = next(
        (float(line.split()[-1]) for line in body.splitlines()
         if line.startswith("anomalyd_sampling_longest_gap_seconds ")),
        float("inf"),
    )
    lat = sorted(latencies)

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("inf")

    print(f"load: {args.scrapers} keep-alive scrapers ({args.procs} processes), {args.slowloris} slowloris, "
          f"{args.wrong} wrong-password clients, {args.seconds:.0f} s")
    print(f"longest gap between two samples since the daemon started: {max_gap:.3f} s")
    print(f"valid scrapes: {len(lat)} ok, {len(failures)} failed; latency p50 {pct(0.5):.1f} ms, "
          f"p99 {pct(0.99):.1f} ms, max {pct(1.0):.1f} ms")
    print(f"slowloris connections cut by the server: {cut[0]}")
    print(f"wrong-password answers: {dict(sorted((str(k), v) for k, v in wrong_counts.items()))}")
    print(f"RSS: before {rss_before / 1024:.1f} MB, peak {rss_peak[0] / 1024:.1f} MB, "
          f"15 s after {rss_after / 1024:.1f} MB ({(rss_after - rss_before) / 1024:+.1f} MB; "
          f"anonymous {anon_file[0] / 1024:.1f} MB, file {anon_file[1] / 1024:.1f} MB)")
    busy = {k: (v - cpu_before.get(k, 0)) / args.seconds for k, v in cpu_after.items()}
    print("daemon CPU during the load (share of one core, by thread): "
          + ", ".join(f"{k} {v:.0%}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1]) if v >= 0.005))
    print(f"machine load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    checks = [
        ("no tick gap over 1.1 s", max_gap <= 1.1),
        ("valid scrape p99 <= 50 ms", pct(0.99) <= 50 and not failures),
        ("RSS back within 2 MB", rss_after - rss_before <= 2048),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
