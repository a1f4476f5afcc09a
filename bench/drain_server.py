#!/usr/bin/env python3
"""Upload sink for the proxy benchmarks (standard library only, loopback only).

Answers every request (any method) after reading the WHOLE request body (Content-Length or chunked),
with 200 (201 for PUT) and `{"bytes": <n>}`. Used as the end of the upload path so that the direct
upload and the proxied ones are measured against the same sink.

    python3 bench/drain_server.py 127.0.0.1 <port>
"""
import http.server
import ipaddress
import json
import socketserver
import sys

CHUNK = 1 << 20


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _drain(self):
        n = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return n
                left = size
                while left:
                    got = self.rfile.readinto(view[: min(left, CHUNK)])
                    if not got:
                        return n
                    left -= got
                    n += got
                self.rfile.readline(16)
        left = int(self.headers.get("Content-Length") or 0)
        while left:
            got = self.rfile.readinto(view[: min(left, CHUNK)])
            if not got:
                break
            left -= got
            n += got
        return n

    def _any(self):
        n = self._drain()
        body = json.dumps({"bytes": n}).encode()
        self.send_response(201 if self.command == "PUT" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PROPFIND = do_PATCH = do_DELETE = _any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit("drain_server.py: loopback addresses only")
    Server((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
