"""A webhook receiver for the scenarios: each POST body becomes one line of /root/webhook.log; answers
204. On the host's loopback port 8099 by default; `webhook.py ADDRESS PORT DIR` listens there instead
and writes each body to DIR/<first segment of the path>.log (the monitoring scenario's receivers
and heartbeat: /alerts/ops-... goes to DIR/alerts.log, /heartbeat/... to DIR/heartbeat.log), each
line the path, a tab, then the body."""

import http.server
import os
import sys

ADDRESS, PORT, DIRECTORY = (sys.argv[1], int(sys.argv[2]), sys.argv[3]) if len(sys.argv) == 4 else ("127.0.0.1", 8099, "")


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if DIRECTORY:
            name = (self.path.strip("/").split("/")[0] or "root").replace(".", "_")
            with open(os.path.join(DIRECTORY, name + ".log"), "ab") as log:
                log.write(self.path.encode() + b"\t" + body.replace(b"\n", b" ") + b"\n")
        else:
            with open("/root/webhook.log", "ab") as log:
                log.write(body + b"\n")
        self.send_response(204)
        self.end_headers()


http.server.HTTPServer((ADDRESS, PORT), Hook).serve_forever()
