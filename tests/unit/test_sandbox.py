"""The Hetzner Cloud API sandbox answers like the API: its own tests, over real HTTP on loopback."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from hcloud_sandbox import Project, Sandbox, build_world, generate_world, projects_from_fixture
from hcloud_sandbox import selector

LABELS = {"role": "web", "env": "prod", "example.com/tier": "front"}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("role=web", True),
        ("role==web", True),
        ("role=db", False),
        ("role!=db", True),
        ("missing!=x", True),
        ("role", True),
        ("!role", False),
        ("!missing", True),
        ("role in (db, web)", True),
        ("role in (db,cache)", False),
        ("missing in (a)", False),
        ("role notin (db,cache)", True),
        ("missing notin (a)", True),
        ("role=web,env=prod", True),
        ("role=web,env=staging", False),
        ("role in (web,db),!decommissioned,env!=staging", True),
        ("example.com/tier=front", True),
        ("", True),
    ],
)
def test_selector_semantics(expr: str, expected: bool) -> None:
    assert selector.matches(selector.parse(expr), LABELS) is expected


@pytest.mark.parametrize("expr", ["role=web,", "role in (web", "role in web)", "=web", "role=we b", "role=web!", ",x"])
def test_selector_rejects_bad_syntax(expr: str) -> None:
    with pytest.raises(selector.SelectorError):
        selector.parse(expr)


def test_generated_world_has_the_awkward_servers() -> None:
    world = generate_world(200, networks=2)
    servers = world.servers
    assert len({s["name"] for s in servers}) == 200
    ipv6_only = [s for s in servers if s["public_net"]["ipv4"] is None and s["public_net"]["ipv6"]]
    private_only = [s for s in servers if s["public_net"]["ipv4"] is None and s["public_net"]["ipv6"] is None]
    imageless = [s for s in servers if s["image"] is None]
    two_networks = [s for s in servers if len(s["private_net"]) == 2]
    assert ipv6_only and private_only and imageless and two_networks
    assert all(s["private_net"] for s in private_only)
    assert {n["name"] for n in world.networks} == {"net-1", "net-2"}
    assert all("datacenter" not in s and s["location"]["network_zone"] for s in servers)
    # network objects list their members, as the API does
    members = {sid for n in world.networks for sid in n["servers"]}
    assert members == {s["id"] for s in servers}
    assert generate_world(200, 2) == generate_world(200, 2)


def test_fixture_world_checks_networks() -> None:
    world = build_world({"networks": [{"name": "app", "ip_range": "10.0.0.0/16"}],
                         "servers": [{"name": "a", "ipv4": None, "networks": {"app": "10.0.0.2"}}]})
    assert world.servers[0]["public_net"]["ipv4"] is None
    assert world.servers[0]["private_net"][0]["network"] == world.networks[0]["id"]
    with pytest.raises(ValueError, match="unknown network"):
        build_world({"servers": [{"name": "a", "networks": {"nope": "10.0.0.2"}}]})
    with pytest.raises(ValueError, match="unknown location"):
        build_world({"servers": [{"name": "a", "location": "mars1"}]})


@pytest.fixture(scope="module")
def sandbox() -> Any:
    projects = projects_from_fixture({"projects": [
        {"name": "alpha", "token": "token-alpha", "generate": {"servers": 120, "networks": 2}},
        {"name": "beta", "token": "token-beta", "rate_limit": 5,
         "servers": [{"name": "b-1", "labels": {"role": "db"}}]},
    ]})
    with Sandbox(projects) as box:
        yield box


def call(box: Sandbox, path: str, token: str | None = "token-alpha", method: str = "GET",
         body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    base = box.url if not path.startswith("/_sandbox") else box.url.removesuffix("/v1")
    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_pagination_walks_every_server_once(sandbox: Sandbox) -> None:
    seen, page = [], 1
    while page:
        status, _unused, body = call(sandbox, f"/servers?page={page}&per_page=50")
        assert status == 200
        seen.extend(s["id"] for s in body["servers"])
        meta = body["meta"]["pagination"]
        assert meta["per_page"] == 50 and meta["total_entries"] == 120 and meta["last_page"] == 3
        page = meta["next_page"]
    assert len(seen) == len(set(seen)) == 120
    # default page size 25, and per_page above 50 is capped at 50
    assert len(call(sandbox, "/servers")[2]["servers"]) == 25
    assert call(sandbox, "/servers?per_page=500")[2]["meta"]["pagination"]["per_page"] == 50
    status, _unused, body = call(sandbox, "/servers?page=0")
    assert status == 400 and body["error"]["code"] == "invalid_input"


def test_filters(sandbox: Sandbox) -> None:
    _unused, _unused, body = call(sandbox, "/servers?per_page=50&label_selector=role%20in%20(db,cache),env!=staging")
    assert body["servers"] and all(s["labels"]["role"] in ("db", "cache") and s["labels"]["env"] != "staging"
                                   for s in body["servers"])
    _unused, _unused, body = call(sandbox, "/servers?per_page=50&status=off&status=starting")
    assert body["servers"] and {s["status"] for s in body["servers"]} == {"off", "starting"}
    _unused, _unused, body = call(sandbox, "/servers?name=alpha-00007")
    assert [s["name"] for s in body["servers"]] == ["alpha-00007"]
    status, _unused, body = call(sandbox, "/servers?label_selector=role%3D")
    assert status == 200  # an empty value is valid syntax
    status, _unused, body = call(sandbox, "/servers?label_selector=role%20in%20(web")
    assert status == 400 and body["error"]["code"] == "invalid_input" and "label selector" in body["error"]["message"]
    status, _unused, body = call(sandbox, "/servers?status=sleeping")
    assert status == 400


def test_resources_and_errors(sandbox: Sandbox) -> None:
    status, _unused, body = call(sandbox, "/servers/10000001")
    assert status == 200 and body["server"]["name"] == "alpha-00001"
    status, _unused, body = call(sandbox, "/servers/1")
    assert status == 404 and body["error"]["code"] == "not_found"
    for kind in ("networks", "locations", "server_types", "images"):
        status, _unused, body = call(sandbox, f"/{kind}")
        assert status == 200 and body[kind], kind
    assert call(sandbox, "/datacenters")[0] == 404  # removed from the API
    status, _unused, body = call(sandbox, "/servers", token="wrong")
    assert status == 401 and body == {"error": {"code": "unauthorized", "message": "unable to authenticate",
                                                "details": {}}}
    assert call(sandbox, "/servers", token=None)[0] == 401
    # projects are isolated
    _unused, _unused, body = call(sandbox, "/servers", token="token-beta")
    assert [s["name"] for s in body["servers"]] == ["b-1"]


def test_rate_limit_headers_and_bucket(sandbox: Sandbox) -> None:
    call(sandbox, "/_sandbox/reset", method="POST", body={})
    remaining = []
    for _unused in range(5):
        status, headers, _unused = call(sandbox, "/servers", token="token-beta")
        assert status == 200 and headers["RateLimit-Limit"] == "5"
        remaining.append(int(headers["RateLimit-Remaining"]))
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    status, headers, body = call(sandbox, "/servers", token="token-beta")
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert int(headers["RateLimit-Reset"]) > time.time()
    call(sandbox, "/_sandbox/reset", method="POST", body={})
    assert call(sandbox, "/servers", token="token-beta")[0] == 200


def test_throttle_on_demand_latency_and_counter(sandbox: Sandbox) -> None:
    call(sandbox, "/_sandbox/reset", method="POST", body={})
    assert call(sandbox, "/_sandbox/config", method="POST", body={"throttle": {"count": 2, "reset_in": 3}})[0] == 200
    for _unused in range(2):
        status, headers, _unused = call(sandbox, "/servers")
        assert status == 429 and headers["RateLimit-Remaining"] == "0"
        assert 1 <= int(headers["RateLimit-Reset"]) - time.time() <= 4
    assert call(sandbox, "/servers")[0] == 200
    call(sandbox, "/_sandbox/config", method="POST", body={"latency_ms": 200})
    try:
        started = time.monotonic()
        call(sandbox, "/locations")
        # the delay is a feature under test here, not a performance claim about our code
        assert time.monotonic() - started >= 0.2
    finally:
        call(sandbox, "/_sandbox/config", method="POST", body={"latency_ms": 0})
    _unused, _unused, counts = call(sandbox, "/_sandbox/requests")
    assert counts["by_path"]["GET /v1/servers"] == 3
    assert counts["by_path"]["GET /v1/locations"] == 1
    assert counts["log"][0]["project"] == "alpha"
    assert call(sandbox, "/_sandbox/config", method="POST", body={"nonsense": 1})[0] == 400


def test_legacy_datacenter_switch(sandbox: Sandbox) -> None:
    call(sandbox, "/_sandbox/config", method="POST", body={"legacy_datacenter": True})
    try:
        _unused, _unused, body = call(sandbox, "/servers?per_page=1")
        server = body["servers"][0]
        assert server["datacenter"]["location"] == server["location"]
        assert server["datacenter"]["name"].startswith(server["location"]["name"] + "-dc")
        assert call(sandbox, "/datacenters")[0] == 200
    finally:
        call(sandbox, "/_sandbox/config", method="POST", body={"legacy_datacenter": False})
    assert "datacenter" not in call(sandbox, "/servers?per_page=1")[2]["servers"][0]


def test_hcloud_library_reads_the_sandbox(sandbox: Sandbox) -> None:
    """The official Python client parses every server (IPv6-only, image-less, several networks)."""
    from hcloud import Client

    client = Client(token="token-alpha", api_endpoint=sandbox.url)
    servers = client.servers.get_all()
    assert len(servers) == 120
    assert any(s.image is None for s in servers)
    assert any(s.public_net.ipv4 is None and s.public_net.ipv6 is not None for s in servers)
    assert {s.location.name for s in servers} >= {"fsn1", "nbg1", "hel1"}
    assert len(client.servers.get_all(label_selector="role=db")) == 20


def test_unique_projects() -> None:
    world = generate_world(1)
    with pytest.raises(ValueError):
        Sandbox([Project("a", "t", world), Project("a", "u", world)])
