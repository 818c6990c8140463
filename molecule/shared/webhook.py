"""A webhook receiver for the scenarios (on the host's loopback): each POST body becomes one line of
/root/webhook.log; answers 204."""

import http.server


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open("/root/webhook.log", "ab") as log:
            log.write(body + b"\n")
        self.send_response(204)
        self.end_headers()


http.server.HTTPServer(("127.0.0.1", 8099), Hook).serve_forever()
