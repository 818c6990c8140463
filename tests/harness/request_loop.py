"""A bounded request loop: COUNT GETs of https://NAME/ through 127.0.0.1:443 (the site's TLS name,
certificate not verified: Caddy's internal CA), spread evenly over SECONDS, then a JSON summary.
It stops by itself. Used by the app_deploy scenario (a deploy while traffic flows) and by
tests/harness/bench-deploy.sh.

    python3 request_loop.py NAME COUNT SECONDS OUT.json
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import time


class Connection(http.client.HTTPSConnection):
    def __init__(self, name: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__("127.0.0.1", 443, context=context, timeout=5)
        self._name = name
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", 443), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._name)


def main(name: str, count: int, seconds: float, out: str) -> None:
    results = []
    start = time.monotonic()
    for i in range(count):
        due = start + seconds * i / count
        time.sleep(max(0.0, due - time.monotonic()))
        sent = time.monotonic() - start
        try:
            # a new connection per request: each one meets whatever Caddy and the upstream are now
            conn = Connection(name)
            conn.request("GET", "/", headers={"Host": name, "Connection": "close"})
            response = conn.getresponse()
            body = response.read(200).decode("utf-8", "replace").strip()
            conn.close()
            results.append({"t": round(sent, 3), "status": response.status, "body": body})
        except (OSError, http.client.HTTPException) as err:
            results.append({"t": round(sent, 3), "status": 0, "body": f"{type(err).__name__}: {err}"})
    versions: list[str] = []
    for r in results:
        if r["status"] == 200 and (not versions or versions[-1] != r["body"]):
            versions.append(r["body"])
    summary = {
        "total": len(results),
        "ok": sum(1 for r in results if 200 <= r["status"] < 300),
        "non_2xx": sum(1 for r in results if r["status"] and not 200 <= r["status"] < 300),
        "errors": sum(1 for r in results if r["status"] == 0),
        "versions_in_order": versions,
        "seconds": round(time.monotonic() - start, 2),
        "failures": [r for r in results if not 200 <= r["status"] < 300][:20],
    }
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(summary, handle)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
