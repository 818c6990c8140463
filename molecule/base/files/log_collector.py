"""The scenario's log collectors, as a team's would receive the hosts' logs (a test tool, not shipped).

    python3 log_collector.py syslog-tls PORT CERT KEY OUT   # syslog over TLS (RFC 5425 octet counting or lines)
    python3 log_collector.py journal PORT OUT               # systemd-journal-remote's HTTP upload (POST /upload)

Each appends what it receives to OUT, raw, so that the test finds the messages in it. One connection
at a time is enough for one host; every socket has a timeout, so a client that hangs is dropped.
"""

from __future__ import annotations

import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def syslog_tls(port: int, cert: str, key: str, out: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
    while True:
        raw, _peer = listener.accept()
        raw.settimeout(300)
        try:
            with context.wrap_socket(raw, server_side=True) as conn, open(out, "ab", buffering=0) as sink:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    sink.write(data)
        except (OSError, ssl.SSLError) as err:
            with open(out + ".errors", "a", encoding="utf-8") as errors:
                errors.write(f"{type(err).__name__}: {err}\n")


def journal(port: int, out: str) -> None:
    class Upload(BaseHTTPRequestHandler):
        timeout = 300

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            with open(out, "ab", buffering=0) as sink:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        sink.write(self.rfile.read(size))
                        self.rfile.readline()
                else:
                    sink.write(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    HTTPServer(("127.0.0.1", port), Upload).serve_forever()


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "syslog-tls":
        syslog_tls(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    elif kind == "journal":
        journal(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(f"unknown collector {kind!r}")
