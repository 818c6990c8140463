"""A request loop that witnesses a deploy: GETs of https://NAME/ through 127.0.0.1:443 (the site's
TLS name, certificate not verified: Caddy's internal CA; --address for another address), one every INTERVAL seconds, until the
deploy is over, then a JSON summary in OUT.json. Used by the app_deploy scenario (a deploy while
traffic flows) and by tests/harness/bench-deploy.sh.

    python3 request_loop.py NAME OUT.json --stop-file PATH [--interval 0.05] [--max-seconds 600]
                                          [--after-stop 1]

It runs until PATH exists (the caller creates it when the deploy process has ended), then AFTER_STOP
seconds more (the answers after the switch). It does not depend on the machine's speed: a slow deploy
gets a longer loop. Bounded all the same: at MAX_SECONDS it stops, writes the summary with
"timed_out": true and exits 1, and the caller's check fails on it loudly.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import sys
import time


class Connection(http.client.HTTPSConnection):
    def __init__(self, name: str, address: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(address, 443, context=context, timeout=5)
        self._address = address
        self._name = name
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, 443), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._name)


def request(name: str, address: str = "127.0.0.1") -> tuple[int, str]:
    try:
        # a new connection per request: each one meets whatever Caddy and the upstream are now
        conn = Connection(name, address)
        conn.request("GET", "/", headers={"Host": name, "Connection": "close"})
        response = conn.getresponse()
        body = response.read(200).decode("utf-8", "replace").strip()
        conn.close()
        return response.status, body
    except (OSError, http.client.HTTPException) as err:
        return 0, f"{type(err).__name__}: {err}"


def summarize(results: list[dict], seconds: float, timed_out: bool, stopped_at: float | None) -> dict:
    versions: list[str] = []
    for r in results:
        if r["status"] == 200 and (not versions or versions[-1] != r["body"]):
            versions.append(r["body"])
    return {
        "total": len(results),
        "ok": sum(1 for r in results if 200 <= r["status"] < 300),
        "non_2xx": sum(1 for r in results if r["status"] and not 200 <= r["status"] < 300),
        "errors": sum(1 for r in results if r["status"] == 0),
        "versions_in_order": versions,
        "seconds": round(seconds, 2),
        "stop_seen_at": stopped_at,
        "timed_out": timed_out,
        "failures": [r for r in results if not 200 <= r["status"] < 300][:20],
    }


def run(name: str, stop_file: str, interval: float, max_seconds: float, after_stop: float,
        address: str = "127.0.0.1") -> dict:
    results: list[dict] = []
    start = time.monotonic()
    stop_seen: float | None = None
    timed_out = False
    i = 0
    while True:
        now = time.monotonic() - start
        if stop_seen is None and os.path.exists(stop_file):
            stop_seen = now
        if stop_seen is not None and now >= stop_seen + after_stop:
            break
        if now >= max_seconds:
            timed_out = True
            break
        status, body = request(name, address)
        results.append({"t": round(now, 3), "status": status, "body": body})
        i += 1
        time.sleep(max(0.0, start + i * interval - time.monotonic()))
    return summarize(results, time.monotonic() - start, timed_out,
                     None if stop_seen is None else round(stop_seen, 3))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("out")
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--after-stop", type=float, default=1.0)
    parser.add_argument("--address", default="127.0.0.1", help="the address of Caddy's port 443 (default 127.0.0.1)")
    args = parser.parse_args(argv)
    summary = run(args.name, args.stop_file, args.interval, args.max_seconds, args.after_stop, args.address)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(summary, handle)
    os.replace(tmp, args.out)  # the caller waits for OUT: it never sees half a summary
    if summary["timed_out"]:
        print(f"request loop: no stop file {args.stop_file} after {args.max_seconds} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
