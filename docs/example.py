#!/usr/bin/env python3
"""The recorded series behind the README's ticket example: 200 minutes of a quiet
host, then 8 minutes in which the disk sdb is saturated, then 40 quiet minutes.
Deterministic (seeded); writes CSV to stdout."""
import math
import random

rng = random.Random(42)
cols = [
    'cpu_utilization_ratio{mode="user"}',
    "memory_used_ratio",
    'disk_busy_ratio{device="sdb"}',
    'disk_write_latency_seconds{device="sdb"}',
    'network_receive_bytes_per_second{interface="eth0"}',
]
print("timestamp," + ",".join('"' + c.replace('"', '""') + '"' for c in cols))
start = 1700000000  # 2023-11-14 22:13:20 UTC
for m in range(248):
    t = start + 60 * m
    cpu = 0.20 + 0.03 * math.sin(m / 30) + rng.gauss(0, 0.01)
    mem = 0.41 + rng.gauss(0, 0.003)
    busy = 0.11 + rng.gauss(0, 0.006)
    lat = 0.0020 + rng.gauss(0, 0.0002)
    rx = 2.0e6 + rng.gauss(0, 1.0e5)
    if 200 <= m < 208:  # the fault
        busy = 0.97 + rng.gauss(0, 0.01)
        lat = 0.045 + 0.004 * (m - 200) + rng.gauss(0, 0.002)
    ts = __import__("datetime").datetime.fromtimestamp(t, __import__("datetime").timezone.utc)
    print(ts.strftime("%Y-%m-%d %H:%M:%S") + "," + ",".join(f"{v:.6g}" for v in (cpu, mem, busy, lat, rx)))
