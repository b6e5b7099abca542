"""A demo backend: answers every request with what it received, and counts them.

`GET /__stats` (not counted) returns {"requests": N}, so tests can prove a denied request never
arrived.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

STATS_PATH = "/__stats"


class Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def increment(self) -> int:
        with self._lock:
            self.value += 1
            return self.value


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx's upstream keepalive expects
    # Headers and body go out in two writes; with Nagle on, the second waits for a delayed ACK.
    disable_nagle_algorithm = True
    counter = Counter()

    def _answer(self) -> None:
        if self.path == STATS_PATH:
            self._send({"requests": self.counter.value})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        self._send(
            {
                "request": self.counter.increment(),
                "method": self.command,
                "path": target.path,
                "query": target.query,
                "body_bytes": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "approov_did": self.headers.get_all("X-Approov-Did") or [],
                "request_id": self.headers.get("X-Request-ID"),
            }
        )

    def _send(self, payload: dict[str, object]) -> None:
        data = (json.dumps(payload) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: nginx's access log already records every request."""

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer


class BackendServer(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: under load a proxy opening connections (Envoy does,
    # per concurrent request) has its SYNs dropped, and its connect timeout answers 503.
    request_queue_size = 1024
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    BackendServer((args.host, args.port), EchoHandler).serve_forever()


if __name__ == "__main__":
    main()
