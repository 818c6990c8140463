"""An HTTP server that answers the read side of the Hetzner Cloud API for test worlds.

Each project is a token and a `World`. Behaviour an API client must cope with is reproduced:
pagination (`page`, `per_page` <= 50, `meta.pagination`), label selectors, status and name filters,
`{"error": {...}}` bodies, 401 for unknown tokens, a per-project token bucket of 3600 requests/hour
with `RateLimit-Limit/Remaining/Reset` headers, 429 on demand, per-request latency, and a request
log. `legacy_datacenter=True` adds the `datacenter` object that servers carried before the API
removed it, for clients that still need it.

Control endpoints (no token needed) live under /_sandbox/:
    GET  /_sandbox/requests   {"total": n, "by_path": {"GET /v1/servers": n, ...}, "log": [...],
                               "max_in_flight": most API requests served at the same time}
    POST /_sandbox/reset      zero the request log and refill every rate-limit bucket
    POST /_sandbox/config     {"latency_ms": 50, "legacy_datacenter": true, "throttle": {"count": 2, "reset_in": 1}}
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import selector
from .world import World, legacy_datacenter

MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 25
RATE_LIMIT = 3600  # requests per hour per project, refilled one per second
SERVER_STATUSES = {"initializing", "starting", "running", "stopping", "off", "deleting", "migrating",
                   "rebuilding", "unknown"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class Project:
    name: str
    token: str
    world: World
    rate_limit: int = RATE_LIMIT
    tokens: float = float(RATE_LIMIT)
    refilled_at: float = field(default_factory=time.monotonic)
    _encoded: dict[tuple[str, bool], list[bytes]] = field(default_factory=dict)

    def take(self) -> tuple[bool, int, int]:
        """Take one request from the bucket: (allowed, remaining, unix time when full again)."""
        now = time.monotonic()
        self.tokens = min(float(self.rate_limit), self.tokens + (now - self.refilled_at) * self.rate_limit / 3600)
        self.refilled_at = now
        allowed = self.tokens >= 1
        if allowed:
            self.tokens -= 1
        seconds_to_full = (self.rate_limit - self.tokens) * 3600 / self.rate_limit
        return allowed, int(self.tokens), int(time.time() + math.ceil(seconds_to_full))

    def encoded(self, kind: str, legacy: bool) -> list[bytes]:
        """Each resource pre-encoded once, so a page is a join of bytes (fast at 10 000 servers)."""
        key = (kind, legacy)
        if key not in self._encoded:
            items = getattr(self.world, kind)
            if kind == "servers" and legacy:
                items = [{**s, "datacenter": legacy_datacenter(s)} for s in items]
            self._encoded[key] = [json.dumps(i, separators=(",", ":")).encode() for i in items]
        return self._encoded[key]


class Sandbox:
    """Holds projects and settings; `serve()` starts the HTTP server on a thread."""

    def __init__(self, projects: list[Project], *, latency_ms: float = 0.0, legacy_datacenter: bool = False,
                 max_log: int = 10_000):
        names = [p.name for p in projects]
        tokens = [p.token for p in projects]
        if len(set(names)) != len(names) or len(set(tokens)) != len(tokens):
            raise ValueError("project names and tokens must be unique")
        self.projects = {p.token: p for p in projects}
        self.latency_ms = latency_ms
        self.legacy_datacenter = legacy_datacenter
        self.throttle_count = 0
        self.throttle_reset_in = 1.0
        self.max_log = max_log
        self.lock = threading.Lock()
        self.counter: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="hcloud-sandbox", daemon=True)
        self.thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self) -> Sandbox:
        if self.httpd is None:
            self.serve()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control -----------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.counter.clear()
            self.log.clear()
            self.max_in_flight = self.in_flight
            self.throttle_count = 0
            for project in self.projects.values():
                project.tokens = float(project.rate_limit)
                project.refilled_at = time.monotonic()

    def configure(self, settings: dict[str, Any]) -> None:
        unknown = set(settings) - {"latency_ms", "legacy_datacenter", "throttle"}
        if unknown:
            raise ApiError(400, "invalid_input", f"unknown sandbox settings: {', '.join(sorted(unknown))}")
        with self.lock:
            if "latency_ms" in settings:
                self.latency_ms = float(settings["latency_ms"])
            if "legacy_datacenter" in settings:
                self.legacy_datacenter = bool(settings["legacy_datacenter"])
            if "throttle" in settings:
                self.throttle_count = int(settings["throttle"].get("count", 1))
                self.throttle_reset_in = float(settings["throttle"].get("reset_in", 1))

    def requests(self) -> dict[str, Any]:
        with self.lock:
            return {"total": sum(self.counter.values()), "by_path": dict(self.counter), "log": list(self.log),
                    "max_in_flight": self.max_in_flight}

    # -- API ---------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._handle(method, raw_path, headers)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle(self, method: str, raw_path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        project = self.projects.get(token)
        with self.lock:
            self.counter[f"{method} {_template(path)}"] += 1
            if len(self.log) < self.max_log:
                self.log.append({"method": method, "path": path, "query": parts.query,
                                 "project": project.name if project else None, "time": time.time()})
            latency = self.latency_ms
            throttled = self.throttle_count > 0 and project is not None
            if throttled:
                self.throttle_count -= 1
                # the RateLimit-Reset this 429 sends (whole seconds, as the API), kept in the log
                throttle_reset = int(time.time() + math.ceil(self.throttle_reset_in))
                if self.log and len(self.log) <= self.max_log:
                    self.log[-1]["rate_limit_reset"] = throttle_reset
            if project is not None and not throttled:
                allowed, remaining, reset_at = project.take()
            else:
                allowed, remaining, reset_at = True, 0, int(time.time())
        if latency:
            time.sleep(latency / 1000)

        try:
            if project is None:
                raise ApiError(401, "unauthorized", "unable to authenticate")
            rl_headers = {"RateLimit-Limit": str(project.rate_limit), "RateLimit-Remaining": str(remaining),
                          "RateLimit-Reset": str(reset_at)}
            if throttled:
                raise ApiError(429, "rate_limit_exceeded", f"limit of {project.rate_limit} requests per hour reached",
                               {**rl_headers, "RateLimit-Remaining": "0",
                                "RateLimit-Reset": str(throttle_reset)})
            if not allowed:
                raise ApiError(429, "rate_limit_exceeded", f"limit of {project.rate_limit} requests per hour reached",
                               rl_headers)
            if method != "GET":
                raise ApiError(405, "method_not_allowed", f"{method} is not supported by the sandbox (read side only)")
            body = self._route(project, path, query)
            return 200, rl_headers, body
        except ApiError as err:
            payload = {"error": {"code": err.code, "message": err.message, "details": {}}}
            return err.status, err.headers, json.dumps(payload).encode()

    def _route(self, project: Project, path: str, query: dict[str, list[str]]) -> bytes:
        segments = path.split("/")
        if len(segments) < 3 or segments[1] != "v1":
            raise ApiError(404, "not_found", f"no such endpoint: {path}")
        kind = segments[2]
        kinds = {"servers", "networks", "locations", "server_types", "images"}
        if self.legacy_datacenter:
            kinds.add("datacenters")
        if kind not in kinds or len(segments) > 4:
            raise ApiError(404, "not_found", f"no such endpoint: {path}")
        if kind == "datacenters":
            items = _datacenters(project.world)
            encoded = [json.dumps(i).encode() for i in items]
        else:
            items = getattr(project.world, kind)
            encoded = project.encoded(kind, self.legacy_datacenter)
        if len(segments) == 4:
            try:
                wanted = int(segments[3])
            except ValueError as exc:
                raise ApiError(400, "invalid_input", f"invalid ID {segments[3]!r}") from exc
            for item, raw in zip(items, encoded):
                if item["id"] == wanted:
                    return b'{"' + kind[:-1].encode() + b'":' + raw + b"}"
            raise ApiError(404, "not_found", f"{kind[:-1]} with ID {wanted} not found")

        selected = self._filter(kind, items, query)
        page = _int_param(query, "page", 1, minimum=1)
        per_page = min(_int_param(query, "per_page", DEFAULT_PER_PAGE, minimum=1), MAX_PER_PAGE)
        total = len(selected)
        last_page = max(1, math.ceil(total / per_page))
        start = (page - 1) * per_page
        chunk = selected[start:start + per_page]
        meta = {"pagination": {"page": page, "per_page": per_page,
                               "previous_page": page - 1 if page > 1 else None,
                               "next_page": page + 1 if page < last_page else None,
                               "last_page": last_page, "total_entries": total}}
        return (b'{"' + kind.encode() + b'":[' + b",".join(encoded[i] for i in chunk) + b'],"meta":'
                + json.dumps(meta).encode() + b"}")

    @staticmethod
    def _filter(kind: str, items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[int]:
        """Indexes of the items the query selects."""
        allowed = {"page", "per_page", "name", "label_selector", "sort"}
        if kind == "servers":
            allowed.add("status")
        if kind == "images":
            allowed |= {"type", "architecture", "bound_to", "include_deprecated", "status"}
        unknown = set(query) - allowed
        if unknown:
            raise ApiError(400, "invalid_input", f"invalid query parameter: {sorted(unknown)[0]}")
        try:
            predicates = selector.parse(query.get("label_selector", [""])[0])
        except selector.SelectorError as exc:
            raise ApiError(400, "invalid_input", str(exc)) from exc
        statuses = set(query.get("status", [])) if kind == "servers" else set()
        bad = statuses - SERVER_STATUSES
        if bad:
            raise ApiError(400, "invalid_input", f"invalid status: {sorted(bad)[0]}")
        name = query.get("name", [None])[0]
        selected = []
        for index, item in enumerate(items):
            if name is not None and item.get("name") != name:
                continue
            if statuses and item.get("status") not in statuses:
                continue
            if predicates and not selector.matches(predicates, item.get("labels") or {}):
                continue
            selected.append(index)
        return selected


def _datacenters(world: World) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for loc in world.locations:
        dc = legacy_datacenter({"location": loc})
        seen[dc["name"]] = dc
    return list(seen.values())


def _template(path: str) -> str:
    """/v1/servers/42 -> /v1/servers/{id}, so the counter groups by endpoint."""
    segments = path.split("/")
    if len(segments) == 4 and segments[3].isdigit():
        segments[3] = "{id}"
    return "/".join(segments)


def _int_param(query: dict[str, list[str]], name: str, default: int, minimum: int) -> int:
    raw = query.get(name, [None])[0]
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_input", f"invalid {name}: {raw!r}") from exc
    if value < minimum:
        raise ApiError(400, "invalid_input", f"invalid {name}: {raw!r}")
    return value


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server_version = "hcloud-sandbox"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the request log is available at /_sandbox/requests."""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _control(self, method: str) -> bool:
        path = urlsplit(self.path).path.rstrip("/")
        if not path.startswith("/_sandbox"):
            return False
        try:
            if method == "GET" and path == "/_sandbox/requests":
                self._send(200, {}, json.dumps(self.sandbox.requests()).encode())
            elif method == "POST" and path == "/_sandbox/reset":
                self.sandbox.reset()
                self._send(200, {}, b"{}")
            elif method == "POST" and path == "/_sandbox/config":
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    settings = json.loads(self.rfile.read(length) or b"{}")
                except ValueError as exc:
                    raise ApiError(400, "invalid_input", f"config body is not JSON: {exc}") from exc
                self.sandbox.configure(settings)
                self._send(200, {}, b"{}")
            else:
                raise ApiError(404, "not_found", f"no such control endpoint: {method} {path}")
        except ApiError as err:
            self._send(err.status, {}, json.dumps({"error": {"code": err.code, "message": err.message}}).encode())
        return True

    def _api(self, method: str) -> None:
        if self._control(method):
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, body = self.sandbox.handle(method, self.path, headers)
        self._send(status, extra, body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._api("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._api("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._api("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._api("DELETE")
