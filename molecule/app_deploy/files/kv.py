"""The scenario's accessory: a tiny key/value store over HTTP on port 7000, its data in /data (a
named volume). Writes need the token in KV_TOKEN (X-Token header); KV_GENERATION is shown by /_info
(a changed environment must recreate the container). KV_NEVER_HEALTHY=1: /health answers 500.
`kv.py check` is its Docker health check (exit 0 when /health answers 200)."""

import http.server
import json
import os
import re
import signal
import sys
import time
import urllib.request

DATA = "/data"
STARTED = time.time()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def key_path(self, key: str) -> str | None:
        return os.path.join(DATA, key) if re.fullmatch(r"[a-z0-9_-]{1,40}", key) else None

    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            ok = os.environ.get("KV_NEVER_HEALTHY") != "1" and os.access(DATA, os.W_OK)
            self.answer(200 if ok else 500, "ok" if ok else "sick")
        elif self.path == "/_info":
            self.answer(200, json.dumps({"generation": os.environ.get("KV_GENERATION", ""), "started": STARTED}))
        else:
            path = self.key_path(self.path.lstrip("/"))
            if path and os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    self.answer(200, f.read())
            else:
                self.answer(404, "no such key")

    def do_POST(self):  # noqa: N802
        """POST /incr/<key>: the counter plus one (the token required)."""
        if self.headers.get("X-Token") != os.environ.get("KV_TOKEN") or not os.environ.get("KV_TOKEN"):
            self.answer(403, "bad token")
            return
        path = self.key_path(self.path.removeprefix("/incr/"))
        if not path or not self.path.startswith("/incr/"):
            self.answer(404, "POST /incr/<key>")
            return
        value = int(open(path, encoding="utf-8").read()) + 1 if os.path.exists(path) else 1
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(str(value))
        os.replace(path + ".tmp", path)
        self.answer(200, str(value))

    def log_message(self, fmt, *args):
        sys.stderr.write(f"kv {self.address_string()} {fmt % args}\n")


def main() -> None:
    if sys.argv[1:] == ["check"]:
        try:
            with urllib.request.urlopen("http://127.0.0.1:7000/health", timeout=2) as response:
                sys.exit(0 if response.status == 200 else 1)
        except OSError:
            sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"kv serving on 7000, generation {os.environ.get('KV_GENERATION', '')}", flush=True)
    if os.environ.get("KV_NEVER_HEALTHY") == "1":
        print("kv: told never to be healthy (KV_NEVER_HEALTHY=1)", flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", 7000), Handler).serve_forever()


if __name__ == "__main__":
    main()
