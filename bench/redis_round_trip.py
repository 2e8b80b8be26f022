"""What one Redis round trip costs the thread that makes it, by how long Redis had been idle.

The web process's one durable write per ack is an `LPUSH` on the intake. Timed in one thread,
back to back, it looks cheap; in gunicorn, between acks, Redis has gone to sleep each time, and
waking it (another core, on a virtual machine) costs the sender. This pushes a 300-byte
document the way `jobs.Handoff` does (hiredis packs it, redis-py's connection sends it and
reads the reply) after `--gaps` microseconds of the thread's own work, and prints the thread's
CPU per push: sending, reading the reply, and in all. Redis is the local one, under a key of
its own that is removed at the end. About 10 seconds. Rerun with

    .venv/bin/python bench/redis_round_trip.py [--pushes 3000] [--gaps 0 100 300 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import hiredis
import redis

from swapbot.testing.services import REDIS_TEST_URL


def busy(microseconds: float) -> None:
    """The thread's own work between pushes (Bolt's, in gunicorn): Redis sits idle meanwhile."""
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--gaps", type=float, nargs="+", default=[0, 100, 300, 1000])
    args = parser.parse_args()
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=2)
    key = f"swapbot-bench:{uuid.uuid4().hex[:8]}:round-trip"
    conn = client.connection_pool.make_connection()
    packed = hiredis.pack_command(("LPUSH", key, "x" * 300))
    print(f"thread CPU per LPUSH, {args.pushes} pushes each (redis-py connection, hiredis)")
    print(
        f"{'Redis idle before':>18} {'send us':>8} {'reply us':>9} {'in all us':>10} {'wall us':>8}"
    )
    try:
        for gap in args.gaps:
            send = reply = wall = 0.0
            for _ in range(args.pushes):
                busy(gap)
                t0, w0 = time.thread_time(), time.perf_counter()
                conn.send_packed_command([packed], check_health=False)
                t1 = time.thread_time()
                conn.read_response()
                send += t1 - t0
                reply += time.thread_time() - t1
                wall += time.perf_counter() - w0
            n = args.pushes / 1e6
            print(
                f"{gap:15.0f} us {send / n:8.1f} {reply / n:9.1f} {(send + reply) / n:10.1f}"
                f" {wall / n:8.1f}"
            )
    finally:
        client.delete(key)
        conn.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
