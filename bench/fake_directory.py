#!/usr/bin/env python3
"""Fake Nextcloud user/group directory for bench/events.sh (standard library only, loopback only).

  fake_directory.py serve HOST PORT [--users N] [--groups G]
  fake_directory.py page HOST PORT [--limit L] [--expect N]   # baseline client: pages users/details

Serves OCS JSON envelopes:
  GET /ocs/v2.php/cloud/capabilities              -> theming.instanceid "ocbench"
  GET /ocs/v{1,2}.php/cloud/users/admin           -> {"id":"admin","groups":["admin"]}
  GET /ocs/v{1,2}.php/cloud/groups?limit&offset   -> {"groups":[g0000…]} paged
  GET /ocs/v{1,2}.php/cloud/users/details?limit&offset -> {"users":{uid:{…}}} paged
User i is u%05d, in group g%04d (i % G). Pages are built on demand (nothing precomputed but names).
"""
import argparse
import http.client
import ipaddress
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def loopback_only(host):
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"refusing non-loopback address {host}")


def envelope(data, v1=True):
    code = 100 if v1 else 200
    return json.dumps({"ocs": {"meta": {"status": "ok", "statuscode": code, "message": "OK"}, "data": data}},
                      separators=(",", ":")).encode()


def make_handler(n_users, n_groups):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def send(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urlsplit(self.path)
            q = parse_qs(u.query)
            limit = max(0, min(int(q.get("limit", ["500"])[0] or 500), 100000))
            offset = max(0, int(q.get("offset", ["0"])[0] or 0))
            p = u.path
            v1 = "/v1.php/" in p
            if p.endswith("/cloud/capabilities"):
                return self.send(200, envelope({"capabilities": {"theming": {"instanceid": "ocbench"}}}, v1))
            if p.endswith("/cloud/users/admin"):
                return self.send(200, envelope({"id": "admin", "groups": ["admin"]}, v1))
            if p.endswith("/cloud/groups"):
                gs = [f"g{i:04d}" for i in range(offset, min(offset + limit, n_groups))]
                return self.send(200, envelope({"groups": gs}, v1))
            if p.endswith("/cloud/users/details"):
                users = {}
                for i in range(offset, min(offset + limit, n_users)):
                    uid = f"u{i:05d}"
                    users[uid] = {"id": uid, "displayname": f"User {i}", "email": f"u{i}@example.com",
                                  "enabled": True, "groups": [f"g{i % n_groups:04d}"]}
                # an empty page: PHP encodes the empty array as []
                return self.send(200, envelope({"users": users or []}, v1))
            self.send(404, envelope(None, v1).replace(b'"ok"', b'"failure"'))

    return Handler


def serve(a):
    loopback_only(a.host)
    srv = ThreadingHTTPServer((a.host, a.port), make_handler(a.users, a.groups))
    srv.daemon_threads = True
    print(f"fake directory on {a.host}:{a.port}: {a.users} users, {a.groups} groups", flush=True)
    srv.serve_forever()


def page(a):
    """Baseline: one keep-alive client pages users/details like Waggle does; times it."""
    loopback_only(a.host)
    conn = http.client.HTTPConnection(a.host, a.port, timeout=30)
    t0 = time.perf_counter()
    total, offset, pages, nbytes = 0, 0, 0, 0
    for _ in range(100000):  # bounded
        conn.request("GET", f"/ocs/v1.php/cloud/users/details?limit={a.limit}&offset={offset}")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"HTTP {r.status}")
        nbytes += len(body)
        data = json.loads(body)["ocs"]["data"]
        n = len(data.get("users", {})) if isinstance(data, dict) else 0
        total += n
        pages += 1
        if n < a.limit:
            break
        offset += n
    dt = time.perf_counter() - t0
    if a.expect and total != a.expect:
        sys.exit(f"expected {a.expect} users, got {total}")
    print(f"paged {total} users in {pages} pages, {nbytes} bytes, {dt * 1000:.0f} ms "
          f"({total / dt:.0f} users/s)")
    print("RESULT " + json.dumps({"users": total, "pages": pages, "bytes": nbytes, "ms": round(dt * 1000, 1),
                                  "users_per_s": round(total / dt)}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--users", type=int, default=10000)
    s.add_argument("--groups", type=int, default=1000)
    p = sub.add_parser("page")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--expect", type=int, default=0)
    a = ap.parse_args()
    serve(a) if a.cmd == "serve" else page(a)


if __name__ == "__main__":
    main()
