#!/usr/bin/python
# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until HTTP endpoints answer 2xx, or watch that they keep answering 2xx for a while."""

from __future__ import annotations

DOCUMENTATION = r"""
module: http_check
short_description: Health-gate a release - wait until endpoints answer, or watch that they keep answering
version_added: 0.5.0
description:
  - Runs on the host (so C(127.0.0.1) is the host's loopback) and requests every target once per
    O(interval) seconds.
  - O(mode=wait) succeeds as soon as every target answered a 2xx in the same round, and fails after
    O(retries) rounds without that, with each target's last answer.
  - O(mode=watch) fails at the first answer that is not a 2xx (or a connection error, a timeout)
    within O(duration) seconds, naming the target and the answer; it succeeds when the whole window
    passed without one.
  - A target may connect to one address and send another name (C(connect_to)), as C(curl --resolve)
    does, to check a site through the local reverse proxy with its real host name and TLS name.
  - Only reads; the result is never "changed".
author:
  - anvil.hetzner maintainers (@anvil-hetzner)
options:
  targets:
    description: What to request.
    type: list
    elements: dict
    required: true
    suboptions:
      url:
        description: C(http://) or C(https://) URL.
        type: str
        required: true
      connect_to:
        description: Connect to this address (and the URL's port) instead of the URL's host; the URL's host stays the Host header and TLS name.
        type: str
      validate_certs:
        description: Verify the TLS certificate (against the system's CAs or O(targets[].ca_path)).
        type: bool
        default: true
      ca_path:
        description: A CA bundle to verify with (a proxy's internal CA).
        type: path
  mode:
    description: C(wait) until healthy, or C(watch) that it stays healthy.
    type: str
    choices: [wait, watch]
    default: wait
  timeout:
    description: Seconds each request may take.
    type: float
    default: 2
  interval:
    description: Seconds between rounds.
    type: float
    default: 1
  retries:
    description: With O(mode=wait), how many rounds to try.
    type: int
    default: 30
  duration:
    description: With O(mode=watch), how many seconds to watch.
    type: float
    default: 30
extends_documentation_fragment:
  - anvil.hetzner.read_only
notes:
  - Used by the app_deploy role for the health gate before the switch and the watch window after it.
"""

EXAMPLES = r"""
- name: Wait until the new release is healthy
  anvil.hetzner.http_check:
    targets: [{url: "http://127.0.0.1:18001/health"}]
    retries: 60

- name: Watch the site through Caddy for 30 seconds
  anvil.hetzner.http_check:
    mode: watch
    duration: 30
    targets:
      - {url: "https://shop.example.com/health", connect_to: 127.0.0.1}
"""

RETURN = r"""
rounds:
  description: How many rounds of requests were made.
  returned: always
  type: int
  sample: 4
elapsed:
  description: Seconds from the first request to the result.
  returned: always
  type: float
answers:
  description: Each target's last answer, C(status) (0 when there was no HTTP answer) and C(detail).
  returned: always
  type: list
  elements: dict
  sample: [{"url": "http://127.0.0.1:18001/health", "status": 200, "detail": "ok"}]
"""

import http.client
import socket
import ssl
import time
import urllib.parse

from ansible.module_utils.basic import AnsibleModule


def _connection(target: dict, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(target["url"])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{target['url']!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = target.get("connect_to") or parts.hostname
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "http":
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
    else:
        context = ssl.create_default_context(cafile=target.get("ca_path"))
        if not target.get("validate_certs", True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = _NamedHTTPSConnection(address, port, server_name=parts.hostname, context=context, timeout=timeout)
    conn.anvil_host_header = parts.netloc.rsplit("@", 1)[-1]
    return conn, path


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one address with another TLS server name (curl --resolve)."""

    def __init__(self, host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._server_name = server_name
        self._anvil_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._anvil_context.wrap_socket(sock, server_hostname=self._server_name)


def request(target: dict, timeout: float) -> tuple[int, str]:
    """(status, detail) of one GET; status 0 when no HTTP answer came."""
    try:
        conn, path = _connection(target, timeout)
        try:
            conn.request("GET", path, headers={"Host": conn.anvil_host_header, "User-Agent": "anvil-http-check",
                                               "Connection": "close"})
            response = conn.getresponse()
            body = response.read(200).decode("utf-8", "replace").strip()
            return response.status, body
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError) as err:
        return 0, f"{type(err).__name__}: {err}"


def healthy(status: int) -> bool:
    return 200 <= status < 300


def run(targets: list[dict], mode: str, timeout: float, interval: float, retries: int, duration: float,
        clock=time.monotonic, sleep=time.sleep, get=request) -> dict:
    """The check itself (clock, sleep and get are replaceable for tests)."""
    start = clock()
    rounds = 0
    answers: list[dict] = []
    while True:
        rounds += 1
        answers = []
        for target in targets:
            status, detail = get(target, timeout)
            answers.append({"url": target["url"], "status": status, "detail": detail})
        bad = [a for a in answers if not healthy(a["status"])]
        elapsed = round(clock() - start, 3)
        if mode == "wait":
            if not bad:
                return {"failed": False, "rounds": rounds, "elapsed": elapsed, "answers": answers}
            if rounds >= retries:
                return {"failed": True, "rounds": rounds, "elapsed": elapsed, "answers": answers,
                        "msg": f"not healthy after {rounds} tries: " + describe(bad)}
        else:
            if bad:
                return {"failed": True, "rounds": rounds, "elapsed": elapsed, "answers": answers,
                        "msg": f"unhealthy {elapsed:.1f} s into the watch window: " + describe(bad)}
            if clock() - start >= duration:
                return {"failed": False, "rounds": rounds, "elapsed": elapsed, "answers": answers}
        sleep(interval)


def describe(answers: list[dict]) -> str:
    return "; ".join(f"{a['url']} answered {a['status'] or 'nothing'} ({a['detail'][:120]})" for a in answers)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "targets": {"type": "list", "elements": "dict", "required": True, "options": {
                "url": {"type": "str", "required": True},
                "connect_to": {"type": "str"},
                "validate_certs": {"type": "bool", "default": True},
                "ca_path": {"type": "path"},
            }},
            "mode": {"type": "str", "choices": ["wait", "watch"], "default": "wait"},
            "timeout": {"type": "float", "default": 2},
            "interval": {"type": "float", "default": 1},
            "retries": {"type": "int", "default": 30},
            "duration": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not p["targets"] or p["retries"] < 1 or p["timeout"] <= 0 or p["interval"] < 0 or p["duration"] < 0:
        module.fail_json(msg="http_check needs targets, retries >= 1, timeout > 0, interval and duration >= 0")
    result = run(p["targets"], p["mode"], p["timeout"], p["interval"], p["retries"], p["duration"])
    if result.pop("failed"):
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
