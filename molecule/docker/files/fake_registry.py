"""A registry's login endpoint for the docker scenario: GET /v2/ answers 200 to the right Basic
credentials and 401 otherwise, and logs each attempt (user and outcome, never the password)."""

import base64
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

USER, PASSWORD = sys.argv[1], sys.argv[2]
PORT = int(sys.argv[3])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        header = self.headers.get("Authorization", "")
        user, ok = "-", False
        if header.startswith("Basic "):
            name, _unused, secret = base64.b64decode(header[6:]).decode(errors="replace").partition(":")
            user, ok = name, (name == USER and secret == PASSWORD)
        print(f"login {user} {'ok' if ok else 'refused'} {self.path}", flush=True)
        self.send_response(200 if ok else 401)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if not ok:
            self.send_header("WWW-Authenticate", 'Basic realm="anvil-test"')
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
