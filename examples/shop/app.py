"""A tiny shop service, standing in for a Django or Flask app in davit's example pipeline.

Endpoints: `/` (the storefront, with its version in X-App-Version), `/health` (JSON with status and
version, what davit's health gate and switch verification read), `/metrics` (Prometheus text).
The version comes from DAVIT_VERSION, which davit passes to every container it starts.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("DAVIT_VERSION") or os.environ.get("APP_VERSION", "dev")
STARTED = time.monotonic()

# Seconds after start when the storefront starts failing. None in a good release; the example
# pipeline's "bad release" run sets it to show an automatic rollback.
FAIL_AFTER = None

_counts = {}
_lock = threading.Lock()


def healthy():
    return FAIL_AFTER is None or time.monotonic() - STARTED < FAIL_AFTER


def storefront():
    """The page body and status: what the tests check."""
    if not healthy():
        return 500, "storefront is broken\n"
    return 200, f"welcome to the shop ({VERSION})\n"


def health():
    status = "ok" if healthy() else "failing"
    return (200 if healthy() else 500), json.dumps({"status": status, "version": VERSION})


def metrics_text():
    with _lock:
        lines = ["# TYPE http_requests_total counter"]
        for (path, code), n in sorted(_counts.items()):
            lines.append(f'http_requests_total{{path="{path}",code="{code}"}} {n}')
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        if self.path == "/health":
            code, body, ctype = *health(), "application/json"
        elif self.path == "/metrics":
            code, body, ctype = 200, metrics_text(), "text/plain; version=0.0.4"
        elif self.path == "/":
            code, body, ctype = *storefront(), "text/plain"
        else:
            code, body, ctype = 404, "not found\n", "text/plain"
        with _lock:
            key = (self.path if self.path in ("/", "/health", "/metrics") else "other", code)
            _counts[key] = _counts.get(key, 0) + 1
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", VERSION)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    print(f"shop {VERSION} listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
