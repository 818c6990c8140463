"""An HTTP server that answers the Hetzner Cloud API (reads, writes and actions) for test worlds.

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
    POST /_sandbox/config     {"latency_ms": 50, "legacy_datacenter": true, "throttle": {"count": 2, "reset_in": 1},
                               "action_polls": 2, "action_seconds": 0.5}
    GET/POST /_sandbox/faults  pending faults / add faults (see faults.py); reset clears them

Writes are handled in resources.py, servers.py and load_balancers.py; their actions run in
actions.py against the project's backend (backend.py).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import load_balancers, resources, selector, servers  # noqa: F401 pylint: disable=unused-import  # they register the write handlers
from .actions import Engine
from .backend import RecordBackend
from .context import ACTIONS, SINGULAR, WRITES, Ctx
from .errors import ApiError
from .faults import Faults
from .state import StateFile
from .validate import Body, parse_json
from .world import World, legacy_datacenter

if TYPE_CHECKING:
    from .backend import Backend

MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 25
RATE_LIMIT = 3600  # requests per hour per project, refilled one per second
SERVER_STATUSES = {"initializing", "starting", "running", "stopping", "off", "deleting", "migrating",
                   "rebuilding", "unknown"}


# Extra equality filters per kind (beyond name and label_selector), as the API accepts them.
FILTERS = {"servers": {"status"}, "images": {"type", "architecture", "bound_to", "include_deprecated", "status"},
           "volumes": {"status"}, "primary_ips": {"ip"}, "ssh_keys": {"fingerprint"}, "placement_groups": {"type"},
           "isos": {"architecture", "include_architecture_wildcard"}}
LISTABLE = {"servers", "networks", "locations", "server_types", "images", "ssh_keys", "firewalls",
            "placement_groups", "volumes", "primary_ips", "load_balancers", "load_balancer_types", "isos"}
ACTION_STATUSES = {"running", "success", "error"}


@dataclass
class Project:
    name: str
    token: str
    world: World
    rate_limit: int = RATE_LIMIT
    tokens: float = float(RATE_LIMIT)
    refilled_at: float = field(default_factory=time.monotonic)
    _encoded: dict[tuple[str, bool], list[bytes]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    engine: Engine | None = None  # set by the Sandbox

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
        """Each resource pre-encoded once, so a page is a join of bytes (fast at 10 000 servers);
        `changed()` drops the cache after every write."""
        key = (kind, legacy)
        if key not in self._encoded:
            items = getattr(self.world, kind)
            if kind in ("servers", "primary_ips") and legacy:
                items = [{**s, "datacenter": legacy_datacenter(s)} for s in items]
            self._encoded[key] = [json.dumps(i, separators=(",", ":")).encode() for i in items]
        return self._encoded[key]

    def changed(self) -> None:
        self._encoded.clear()


class Sandbox:
    """Holds projects and settings; `serve()` starts the HTTP server on a thread."""

    def __init__(self, projects: list[Project], *, latency_ms: float = 0.0, legacy_datacenter: bool = False,
                 max_log: int = 10_000, backend: Backend | None = None, state_file: Path | None = None,
                 action_polls: int = 2, action_seconds: float = 0.5):
        names = [p.name for p in projects]
        tokens = [p.token for p in projects]
        if len(set(names)) != len(names) or len(set(tokens)) != len(tokens):
            raise ValueError("project names and tokens must be unique")
        self.projects = {p.token: p for p in projects}
        self.latency_ms = latency_ms
        self.legacy_datacenter = legacy_datacenter
        self.backend: Backend = backend if backend is not None else RecordBackend()
        self.action_polls = action_polls
        self.action_seconds = action_seconds
        self.faults = Faults()
        self.closing = False
        for project in projects:
            project.engine = Engine(project, self)
        self.state = StateFile(Path(state_file)) if state_file else None
        if self.state is not None:
            self.state.start(projects)
        self.throttle_count = 0
        self.throttle_reset_in = 1.0
        self.max_log = max_log
        self.lock = threading.Lock()
        self.counter: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.httpd: _Server | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self.httpd = _Server((host, port), handler)
        # a short poll interval makes close() (shutdown) quick: tests start and stop many sandboxes
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="hcloud-sandbox", daemon=True)
        self.thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def close(self) -> None:
        """Stop answering; running actions end as soon as their backend call returns (bounded)."""
        self.closing = True
        for project in self.projects.values():
            # bounded: a request stuck in a backend call holds its project's lock (it ends within
            # the backend's own bound); closing goes on without waking that project's workers
            if project.lock.acquire(timeout=30):
                try:
                    project.engine.cond.notify_all()
                finally:
                    project.lock.release()
        self.wait_idle(timeout=30)
        if self.httpd is not None:
            stopper = threading.Thread(target=self.httpd.shutdown, name="hcloud-sandbox-shutdown", daemon=True)
            stopper.start()
            stopper.join(timeout=30)  # the serving thread is a daemon: it goes with the process
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self) -> Sandbox:
        if self.httpd is None:
            self.serve()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control -----------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no project has a running action (tests; shutdown)."""
        deadline = time.monotonic() + timeout
        return all(p.engine.wait_idle(max(0.0, deadline - time.monotonic())) for p in self.projects.values())

    def persist(self, project: Project) -> None:
        """Write the state file (caller holds the project's lock)."""
        if self.state is not None:
            self.state.save(project, list(self.projects.values()))

    def reset(self) -> None:
        with self.lock:
            self.counter.clear()
            self.log.clear()
            self.max_in_flight = self.in_flight
            self.throttle_count = 0
            self.faults.clear()
            for project in self.projects.values():
                project.tokens = float(project.rate_limit)
                project.refilled_at = time.monotonic()

    def configure(self, settings: dict[str, Any]) -> None:
        unknown = set(settings) - {"latency_ms", "legacy_datacenter", "throttle", "action_polls", "action_seconds"}
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
            if "action_polls" in settings:
                self.action_polls = int(settings["action_polls"])
            if "action_seconds" in settings:
                self.action_seconds = float(settings["action_seconds"])

    def requests(self) -> dict[str, Any]:
        with self.lock:
            return {"total": sum(self.counter.values()), "by_path": dict(self.counter), "log": list(self.log),
                    "max_in_flight": self.max_in_flight}

    # -- API ---------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str],
               body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._handle(method, raw_path, headers, body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle(self, method: str, raw_path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes]:
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
            if method == "GET":
                with project.lock:
                    return 200, rl_headers, self._route(project, path, query)
            fault = self.faults.take_write_error()
            if fault is not None:
                if fault.code == "rate_limit_exceeded":
                    fault.headers = {**rl_headers, "RateLimit-Remaining": "0"}
                raise fault
            status, payload = self._write(project, method, path, parse_json(body))
            return status, rl_headers, b"" if payload is None else json.dumps(payload).encode()
        except ApiError as err:
            return err.status, err.headers, json.dumps(err.body()).encode()

    def _write(self, project: Project, method: str, path: str, data: dict[str, Any]) -> tuple[int, Any]:
        """POST/PUT/DELETE: find the handler, run it under the project's lock, persist."""
        segments = path.split("/")
        if len(segments) < 3 or segments[1] != "v1":
            raise ApiError(404, "not_found", f"no such endpoint: {path}")
        kind, rest = segments[2], segments[3:]
        with project.lock:
            assert project.engine is not None
            ctx = Ctx(project, project.engine, self.backend, self.legacy_datacenter)
            body = Body(data)
            if not rest and (method, kind) in WRITES:
                result = WRITES[(method, kind)](ctx, body)
            elif len(rest) == 1 and (method, kind) in WRITES:
                result = WRITES[(method, kind)](ctx, kind, ctx.get(kind, _path_id(rest[0])), body)
            elif len(rest) == 3 and rest[1] == "actions" and method == "POST" and (kind, rest[2]) in ACTIONS:
                record = ctx.get(kind, _path_id(rest[0]))
                result = ACTIONS[(kind, rest[2])](ctx, record, body, rest[2], kind)
            elif kind in LISTABLE or kind == "actions":
                raise ApiError(405 if len(rest) <= 1 else 404, "method_not_allowed" if len(rest) <= 1 else "not_found",
                               f"{method} {path} is not implemented by the sandbox (see its README)")
            else:
                raise ApiError(404, "not_found", f"no such endpoint: {path}")
            project.changed()
            self.persist(project)
            return result

    def _route(self, project: Project, path: str, query: dict[str, list[str]]) -> bytes:
        segments = path.split("/")
        if len(segments) < 3 or segments[1] != "v1":
            raise ApiError(404, "not_found", f"no such endpoint: {path}")
        kind = segments[2]
        if kind == "actions" or "actions" in segments[3:5]:
            return self._actions(project, segments[2:], query)
        kinds = set(LISTABLE)
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
            wanted = _path_id(segments[3])
            for item, raw in zip(items, encoded):
                if item["id"] == wanted:
                    return b'{"' + SINGULAR.get(kind, kind[:-1]).encode() + b'":' + raw + b"}"
            raise ApiError(404, "not_found", f"{SINGULAR.get(kind, kind[:-1])} with ID {wanted} not found")
        return _page(kind, encoded, self._filter(kind, items, query), query)

    def _actions(self, project: Project, parts: list[str], query: dict[str, list[str]]) -> bytes:
        """/actions[/{id}], /<kind>/actions[/{id}], /<kind>/{id}/actions[/{id}]; each action shown
        counts as one poll of it (see actions.py)."""
        assert project.engine is not None
        kind, actions = parts[0], project.world.actions
        if kind != "actions":
            if kind not in SINGULAR or kind not in LISTABLE:
                raise ApiError(404, "not_found", f"no such endpoint: /v1/{'/'.join(parts)}")
            resource = SINGULAR[kind]
            if parts[1] == "actions":  # /<kind>/actions[/{id}]
                actions = [a for a in actions if any(r["type"] == resource for r in a["resources"])]
                parts = parts[1:]
            else:  # /<kind>/{id}/actions[/{id}]
                ident = _path_id(parts[1])
                actions = [a for a in actions if {"type": resource, "id": ident} in a["resources"]]
                parts = parts[2:]
        if len(parts) == 2:
            wanted = _path_id(parts[1])
            for found in actions:
                if found["id"] == wanted:
                    project.engine.seen(found)
                    return json.dumps({"action": found}).encode()
            raise ApiError(404, "not_found", f"action with ID {wanted} not found")
        if len(parts) > 2:
            raise ApiError(404, "not_found", "no such endpoint")
        unknown = set(query) - {"id", "status", "sort", "page", "per_page"}
        if unknown:
            raise ApiError(400, "invalid_input", f"invalid query parameter: {sorted(unknown)[0]}")
        ids = {_path_id(i) for i in query.get("id", [])}
        statuses = set(query.get("status", []))
        if statuses - ACTION_STATUSES:
            raise ApiError(400, "invalid_input", f"invalid status: {sorted(statuses - ACTION_STATUSES)[0]}")
        chosen = [a for a in actions if (not ids or a["id"] in ids) and (not statuses or a["status"] in statuses)]
        for found in chosen:
            project.engine.seen(found)
        encoded = [json.dumps(a).encode() for a in chosen]
        return _page("actions", encoded, list(range(len(chosen))), query)

    @staticmethod
    def _filter(kind: str, items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[int]:
        """Indexes of the items the query selects."""
        allowed = {"page", "per_page", "name", "label_selector", "sort"} | FILTERS.get(kind, set())
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
        equal = {key: set(query[key]) for key in FILTERS.get(kind, set()) & set(query)
                 if key not in ("include_deprecated", "include_architecture_wildcard", "bound_to")}
        name = query.get("name", [None])[0]
        selected = []
        for index, item in enumerate(items):
            if name is not None and item.get("name") != name:
                continue
            if any(str(item.get(key)) not in values for key, values in equal.items()):
                continue
            if predicates and not selector.matches(predicates, item.get("labels") or {}):
                continue
            selected.append(index)
        return selected


def _page(kind: str, encoded: list[bytes], selected: list[int], query: dict[str, list[str]]) -> bytes:
    """One page of the selected items with the API's `meta.pagination`."""
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


def _datacenters(world: World) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for loc in world.locations:
        dc = legacy_datacenter({"location": loc})
        seen[dc["name"]] = dc
    return list(seen.values())


def _template(path: str) -> str:
    """/v1/servers/42/actions/7 -> /v1/servers/{id}/actions/{id}, so the counter groups by endpoint."""
    return "/".join("{id}" if index >= 3 and part.isdigit() else part for index, part in enumerate(path.split("/")))


def _path_id(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_input", f"invalid ID {raw!r}") from exc


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


class _Server(ThreadingHTTPServer):
    """The listening side. The backlog is a class attribute because listen() runs in the constructor:
    set on the instance afterwards it stays at socketserver's 5, and a burst of connections under load
    waits on the kernel's handshake retries."""

    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection dropped before any handler ran (the handler thread could not start): say so."""
        print(f"hcloud-sandbox: connection from {client_address} closed without an answer:", file=sys.stderr)
        traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    disable_nagle_algorithm = True  # headers and body are two writes: without this each answer waits ~40 ms
    server_version = "hcloud-sandbox"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the request log is available at /_sandbox/requests."""

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        if status != 204:
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
            elif method == "POST" and path in ("/_sandbox/config", "/_sandbox/faults"):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    settings = json.loads(self.rfile.read(length) or b"{}")
                except ValueError as exc:
                    raise ApiError(400, "invalid_input", f"control body is not JSON: {exc}") from exc
                if path.endswith("config"):
                    self.sandbox.configure(settings)
                else:
                    self.sandbox.faults.configure(settings)
                self._send(200, {}, b"{}")
            elif method == "GET" and path == "/_sandbox/faults":
                self._send(200, {}, json.dumps(self.sandbox.faults.pending()).encode())
            else:
                raise ApiError(404, "not_found", f"no such control endpoint: {method} {path}")
        except ApiError as err:
            self._send(err.status, {}, json.dumps({"error": {"code": err.code, "message": err.message}}).encode())
        return True

    def _api(self, method: str) -> None:
        try:
            if self._control(method):
                return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = self.sandbox.handle(method, self.path, headers, raw)
        except Exception as exc:  # noqa: BLE001 - a sandbox bug answers 500 with its reason, never a dropped connection
            traceback.print_exc()
            status, extra = 500, {}
            body = json.dumps({"error": {"code": "server_error",
                                         "message": f"sandbox bug: {type(exc).__name__}: {exc}"}}).encode()
        self._send(status, extra, body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._api("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._api("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._api("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._api("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802 - answered honestly: the API has no PATCH
        self._api("PATCH")
