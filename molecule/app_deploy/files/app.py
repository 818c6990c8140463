"""The scenario's app: answers / and /health with its version (APP_VERSION, baked into the image).
APP_NEVER_HEALTHY=1: /health answers 500 (a release that never becomes healthy);
APP_SICK_AFTER=N: /health turns 500 N seconds after start (a release that fails later).
`app.py worker` idles like a queue worker; `app.py migrate` records that it ran (APP_MIGRATE_FAILS=1: exits 1).
/visit counts a visit in the accessory kv (KV_URL, default http://kv:7000, reached by its network alias,
token KV_TOKEN); /kv-info is the accessory's /_info."""

import http.server
import os
import signal
import sys
import time
import urllib.request

# the release's settings baked into the image (/app/release.env), the environment wins
for _line in open(os.path.join(os.path.dirname(__file__), "release.env"), encoding="utf-8"):
    if "=" in _line:
        _key, _value = _line.strip().split("=", 1)
        os.environ.setdefault(_key, _value)

VERSION = os.environ.get("APP_VERSION", "unknown")
STARTED = time.monotonic()


def healthy() -> bool:
    if os.environ.get("APP_NEVER_HEALTHY") == "1":
        return False
    sick_after = int(os.environ.get("APP_SICK_AFTER", "0"))
    return not sick_after or time.monotonic() - STARTED < sick_after


def kv(path: str) -> tuple[int, str]:
    """/visit: POST /incr/visits to the accessory; /kv-info: its /_info. 502 when it cannot be reached."""
    base = os.environ.get("KV_URL", "http://kv:7000")
    request = urllib.request.Request(f"{base}/incr/visits", data=b"", method="POST",
                                     headers={"X-Token": os.environ.get("KV_TOKEN", "")}) \
        if path == "/visit" else urllib.request.Request(f"{base}/_info")
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status, response.read().decode()
    except OSError as exc:
        return 502, f"kv unreachable: {exc.__class__.__name__}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            status, body = (200, f"ok {VERSION}") if healthy() else (500, f"sick {VERSION}")
        elif self.path == "/secret-length":
            status, body = 200, str(len(os.environ.get("SECRET_KEY", "")))
        elif self.path in ("/visit", "/kv-info"):
            status, body = kv(self.path)
        else:
            status, body = 200, VERSION
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write(f"{VERSION} {self.address_string()} {fmt % args}\n")


def main() -> None:
    # PID 1 in its container: without a handler SIGTERM is ignored and `docker stop` waits for its timeout
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    mode = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if mode == "migrate":
        print(f"migration of {VERSION}", flush=True)
        sys.exit(1 if os.environ.get("APP_MIGRATE_FAILS") == "1" else 0)
    if mode == "worker":
        print(f"worker {VERSION} idling", flush=True)
        while True:
            time.sleep(3600)
    print(f"serving {VERSION} on 8000", flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()


if __name__ == "__main__":
    main()
