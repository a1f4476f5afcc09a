#!/usr/bin/env python3
"""Sequential request latency of `GET <path>` over ONE keep-alive HTTP/1.1 connection.

Standard library only. Two sub-commands:

  wait    HOST PORT PATH [--timeout S]    poll until the URL answers 200 (bounded), exit 1 otherwise
  measure HOST PORT PATH [--warmup N] [--requests N] [--deadline S] [--label L]
          send N warm-up requests (discarded) then N timed requests, one after the other, on a single
          keep-alive connection; every answer must be 200 with the JSON body {"status":"ok"}.
          Prints p50/p90/p99/max in microseconds, and one machine-readable line starting with RESULT.

Only loopback addresses are accepted. Every loop is bounded in count and in wall time.
"""

import argparse
import http.client
import ipaddress
import json
import socket
import sys
import time

EXPECTED = {"status": "ok"}


def loopback_only(host: str) -> str:
    addr = ipaddress.ip_address(socket.gethostbyname(host))
    if not addr.is_loopback:
        sys.exit(f"refusing non-loopback host {host} ({addr})")
    return host


def cmd_wait(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    attempts = 0
    while time.monotonic() < deadline and attempts < 10_000:
        attempts += 1
        try:
            conn = http.client.HTTPConnection(args.host, args.port, timeout=1)
            conn.request("GET", args.path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.05)
    print(f"not ready after {args.timeout}s: http://{args.host}:{args.port}{args.path}", file=sys.stderr)
    return 1


def percentile(sorted_ns: list[int], p: float) -> int:
    """Nearest-rank percentile (p in 0..100) of an ascending list."""
    if not sorted_ns:
        raise ValueError("no samples")
    rank = max(1, -(-len(sorted_ns) * p // 100))  # ceil(n*p/100), at least 1
    return sorted_ns[int(rank) - 1]


def cmd_measure(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.deadline
    conn = http.client.HTTPConnection(args.host, args.port, timeout=5)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    first_sock = conn.sock
    reconnects = 0
    samples: list[int] = []
    resp_bytes = 0
    total = args.warmup + args.requests
    for i in range(total):
        if time.monotonic() > deadline:
            print(f"deadline of {args.deadline}s reached after {i} requests", file=sys.stderr)
            return 1
        t0 = time.perf_counter_ns()
        conn.request("GET", args.path)
        resp = conn.getresponse()
        body = resp.read()
        t1 = time.perf_counter_ns()
        if resp.status != 200 or json.loads(body) != EXPECTED:
            print(f"unexpected answer {resp.status} {body[:200]!r}", file=sys.stderr)
            return 1
        if conn.sock is None or conn.sock is not first_sock:
            # http.client reopens transparently after `Connection: close`; count it, it skews latency.
            reconnects += 1
            if conn.sock is None:
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            first_sock = conn.sock
        if i >= args.warmup:
            samples.append(t1 - t0)
        if i == 0:
            resp_bytes = len(body) + sum(len(k) + len(v) + 4 for k, v in resp.getheaders())
    conn.close()
    samples.sort()
    us = lambda ns: ns / 1000.0  # noqa: E731
    res = {
        "label": args.label,
        "requests": len(samples),
        "warmup": args.warmup,
        "p50_us": round(us(percentile(samples, 50)), 1),
        "p90_us": round(us(percentile(samples, 90)), 1),
        "p99_us": round(us(percentile(samples, 99)), 1),
        "max_us": round(us(samples[-1]), 1),
        "min_us": round(us(samples[0]), 1),
        "mean_us": round(us(sum(samples) / len(samples)), 1),
        "reconnects": reconnects,
        "response_bytes_approx": resp_bytes,
    }
    print(
        f"{args.label}: {res['requests']} sequential requests (after {args.warmup} warm-up), one keep-alive "
        f"connection: p50 {res['p50_us']} us, p90 {res['p90_us']} us, p99 {res['p99_us']} us, "
        f"max {res['max_us']} us (min {res['min_us']}, mean {res['mean_us']}, reconnects {reconnects})"
    )
    print("RESULT " + json.dumps(res))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("wait", "measure"):
        p = sub.add_parser(name)
        p.add_argument("host", type=loopback_only)
        p.add_argument("port", type=int)
        p.add_argument("path")
        if name == "wait":
            p.add_argument("--timeout", type=float, default=15.0)
        else:
            p.add_argument("--warmup", type=int, default=100)
            p.add_argument("--requests", type=int, default=1000)
            p.add_argument("--deadline", type=float, default=60.0, help="give up after this many seconds")
            p.add_argument("--label", default="server")
    args = ap.parse_args()
    if args.cmd == "wait":
        return cmd_wait(args)
    if not (1 <= args.requests <= 1_000_000 and 0 <= args.warmup <= 1_000_000):
        sys.exit("requests/warmup out of range")
    return cmd_measure(args)


if __name__ == "__main__":
    sys.exit(main())
