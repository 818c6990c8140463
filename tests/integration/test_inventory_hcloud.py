"""`ansible-inventory --list` with anvil.hetzner.hcloud against the Hetzner API sandbox on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from hcloud_sandbox import Sandbox, projects_from_fixture

BIN = Path(sys.executable).parent
PROD = {
    "name": "prod", "token": "tok-prod",
    "networks": [{"name": "app", "ip_range": "10.0.0.0/16"}, {"name": "db", "ip_range": "10.1.0.0/16"}],
    "servers": [
        {"name": "web-1", "labels": {"role": "web.worker", "env": "prod", "team": "core"}, "location": "fsn1",
         "server_type": "cx22", "image": "debian-12", "ipv4": "203.0.113.1", "ipv6": "2001:db8:1::/64",
         "networks": {"app": "10.0.0.11", "db": "10.1.0.11"}},
        {"name": "web-2", "labels": {"role": "web", "env": "prod"}, "location": "nbg1", "server_type": "cx32",
         "image": "debian-13", "ipv4": "203.0.113.2", "ipv6": None, "networks": {"app": "10.0.0.12"}},
        {"name": "v6-1", "labels": {"role": "web"}, "location": "hel1", "image": "debian-13", "ipv4": None,
         "ipv6": "2001:db8:3::/64"},
        {"name": "db-1", "labels": {"role": "db", "env": "prod"}, "location": "ash", "server_type": "cax21",
         "image": None, "ipv4": None, "ipv6": None, "networks": {"db": "10.1.0.14"}},
        {"name": "old-1", "labels": {"role": "web", "env": "staging"}, "status": "off", "image": "ubuntu-22.04"},
        {"name": "bare-1", "ipv4": None, "ipv6": None, "image": "ubuntu-24.04"},
    ],
}
STAGING = {"name": "staging", "token": "tok-staging",
           "servers": [{"name": "web-1", "labels": {"role": "web", "env": "staging"}, "ipv4": "203.0.113.50"}]}
BIG = {"name": "big", "token": "tok-big", "generate": {"servers": 520, "networks": 2}}
TIGHT = {"name": "tight", "token": "tok-tight", "rate_limit": 8, "generate": {"servers": 520, "networks": 2}}
TOKENS = {"prod": "tok-prod", "staging": "tok-staging", "big": "tok-big"}


@pytest.fixture(scope="module")
def sandbox() -> Any:
    with Sandbox(projects_from_fixture({"projects": [PROD, STAGING, BIG, TIGHT]})) as box:
        yield box


@pytest.fixture(autouse=True)
def clean(sandbox: Sandbox) -> Any:
    sandbox.reset()
    sandbox.configure({"latency_ms": 0, "legacy_datacenter": False})
    yield


def _unwrap(obj: dict[str, Any]) -> Any:
    return obj["__ansible_unsafe"] if obj.keys() == {"__ansible_unsafe"} else obj


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str], output: Path):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        # ansible-inventory marks strings from inventory plugins as unsafe: {"__ansible_unsafe": "..."}
        self.data: dict[str, Any] = json.loads(output.read_text(), object_hook=_unwrap) if proc.returncode == 0 else {}

    @property
    def hostvars(self) -> dict[str, dict[str, Any]]:
        return self.data["_meta"]["hostvars"]

    def group(self, name: str) -> set[str]:
        return set(self.data.get(name, {}).get("hosts", []))


def inventory(tmp_path: Path, sandbox: Sandbox, config: dict[str, Any], *args: str,
              env: dict[str, str] | None = None, name: str = "test.hcloud.yml") -> Result:
    config = {"plugin": "anvil.hetzner.hcloud", **config}
    if "projects" not in config:
        config.setdefault("api_endpoint", sandbox.url)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "HCLOUD_"))}
    run_env.update({
        "PATH": f"{BIN}:{run_env.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "HCLOUD_ENDPOINT": sandbox.url,
    })
    run_env.update(env or {})
    output = tmp_path / "inventory.json"
    output.unlink(missing_ok=True)
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(path), "--list", "--output", str(output), *args],
                          cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300, check=False)
    return Result(proc, output)


def assert_clean_error(result: Result, *needles: str) -> None:
    assert result.rc != 0, result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_hosts_variables_groups_and_addresses(tmp_path: Path, sandbox: Sandbox) -> None:
    res = inventory(tmp_path, sandbox, {"api_token": "tok-prod"})
    assert res.rc == 0, res.stderr
    hv = res.hostvars
    assert set(hv) == {"web-1", "web-2", "v6-1", "db-1", "old-1", "bare-1"}
    web = hv["web-1"]
    assert web["ansible_host"] == "203.0.113.1"
    assert web["hcloud_server_type"] == "cx22" and web["hcloud_server_type_cores"] == 2
    assert web["hcloud_location"] == "fsn1" and web["hcloud_network_zone"] == "eu-central"
    assert web["hcloud_image_os_flavor"] == "debian" and web["hcloud_image_os_version"] == "12"
    assert web["hcloud_ipv6"] == "2001:db8:1::1" and web["hcloud_ipv6_network_mask"] == "64"
    assert [(n["name"], n["ip"]) for n in web["hcloud_private_networks"]] == [("app", "10.0.0.11"), ("db", "10.1.0.11")]
    assert web["hcloud_labels"] == {"role": "web.worker", "env": "prod", "team": "core"}
    assert web["hcloud_project"] == "default" and web["hcloud_created"]
    # fallbacks: IPv6-only and private-only servers still get an address
    assert hv["v6-1"]["ansible_host"] == "2001:db8:3::1"
    assert hv["db-1"]["ansible_host"] == "10.1.0.14"
    assert hv["db-1"]["hcloud_image_name"] is None and hv["db-1"]["hcloud_ipv4"] is None
    assert "ansible_host" not in hv["bare-1"]
    assert "1 server(s) have no address" in res.stderr and "bare-1" in res.stderr
    # groups without keyed_groups
    assert res.group("web") == {"web-1", "web-2", "v6-1", "old-1"}
    assert res.group("worker") == {"web-1"}
    assert res.group("db") == {"db-1"}
    assert res.group("location_ash") == {"db-1"} and res.group("network_zone_us_east") == {"db-1"}
    assert res.group("server_type_cax21") == {"db-1"}
    assert res.group("os_ubuntu_24_04") == {"bare-1"}
    assert res.group("os_debian") == {"web-1", "web-2", "v6-1"} and res.group("os_debian_13") == {"web-2", "v6-1"}
    assert res.group("status_off") == {"old-1"}
    assert res.group("project_default") == set(hv)
    assert set(res.data["hcloud"]["hosts"]) == set(hv)
    # one request per 50 servers plus one per 50 networks: nothing per server or per network
    assert sandbox.requests()["by_path"] == {"GET /v1/servers": 1, "GET /v1/networks": 1}


@pytest.mark.parametrize(
    ("config", "hosts"),
    [
        ({"label_selector": "env=prod"}, {"web-1", "web-2", "db-1"}),
        ({"label_selector": "role in (web,db),env!=staging,!team"}, {"web-2", "v6-1", "db-1"}),
        ({"status": ["off"]}, {"old-1"}),
        ({"status": ["running", "starting"]}, {"web-1", "web-2", "v6-1", "db-1", "bare-1"}),
        ({"images": ["ubuntu"]}, {"old-1", "bare-1"}),
        ({"locations": ["fsn1", "hel1"]}, {"web-1", "v6-1", "old-1", "bare-1"}),
        ({"network_zones": ["us-east"]}, {"db-1"}),
        ({"types": ["cax21", "cx32"]}, {"db-1", "web-2"}),
        ({"images": ["debian"]}, {"web-1", "web-2", "v6-1"}),
        ({"images": ["ubuntu-22.04"]}, {"old-1"}),
        ({"network": "db"}, {"web-1", "db-1"}),
        ({"label_selector": "env=prod", "locations": ["fsn1"]}, {"web-1"}),
    ],
)
def test_filters(tmp_path: Path, sandbox: Sandbox, config: dict[str, Any], hosts: set[str]) -> None:
    res = inventory(tmp_path, sandbox, {"api_token": "tok-prod", **config})
    assert res.rc == 0, res.stderr
    assert set(res.hostvars) == hosts
    queries = [entry["query"] for entry in sandbox.requests()["log"] if entry["path"].endswith("/servers")]
    if "label_selector" in config:  # evaluated by the API, not after fetching everything
        assert all("label_selector=" in q for q in queries), queries
    if "status" in config:
        assert all(q.count("status=") == len(config["status"]) for q in queries), queries


def test_network_selects_the_private_address(tmp_path: Path, sandbox: Sandbox) -> None:
    network_id = next(n["id"] for n in sandbox.projects["tok-prod"].world.networks if n["name"] == "db")
    for network in ("db", str(network_id)):
        res = inventory(tmp_path, sandbox, {"api_token": "tok-prod", "network": network,
                                            "connect_with": ["private_ipv4", "public_ipv4"]})
        assert res.rc == 0, res.stderr
        assert res.hostvars["web-1"]["ansible_host"] == "10.1.0.11"  # the db network, not the first one
        assert res.hostvars["web-1"]["hcloud_private_ipv4"] == "10.1.0.11"
        assert res.hostvars["db-1"]["ansible_host"] == "10.1.0.14"


@pytest.mark.parametrize(
    ("connect_with", "expected"),
    [
        ("public_ipv4", {"web-1": "203.0.113.1", "v6-1": None}),
        ("public_ipv6", {"web-1": "2001:db8:1::1", "web-2": None}),
        ("hostname", {"web-1": "web-1", "bare-1": "bare-1"}),
        ("ipv4_dns_ptr", {"web-2": "static.2.113.0.203.clients.your-server.de", "v6-1": None}),
        (["private_ipv4", "public_ipv6"], {"web-1": "10.0.0.11", "v6-1": "2001:db8:3::1"}),
    ],
)
def test_connect_with(tmp_path: Path, sandbox: Sandbox, connect_with: Any, expected: dict[str, Any]) -> None:
    res = inventory(tmp_path, sandbox, {"api_token": "tok-prod", "connect_with": connect_with})
    assert res.rc == 0, res.stderr
    for host, address in expected.items():
        assert res.hostvars[host].get("ansible_host") == address, host


def test_several_projects_keep_colliding_names_apart(tmp_path: Path, sandbox: Sandbox) -> None:
    res = inventory(tmp_path, sandbox, {"projects": [
        {"name": "prod", "api_token": "tok-prod", "api_endpoint": sandbox.url},
        {"name": "staging", "api_token": "{{ lookup('ansible.builtin.env', 'STAGING_TOKEN') }}"},
    ]}, env={"STAGING_TOKEN": "tok-staging"})
    assert res.rc == 0, res.stderr
    hv = res.hostvars
    assert {"web-1.prod", "web-1.staging"} <= set(hv) and len(hv) == 7
    assert hv["web-1.prod"]["hcloud_id"] != hv["web-1.staging"]["hcloud_id"]
    assert hv["web-1.staging"]["hcloud_project"] == "staging"
    assert res.group("project_staging") == {"web-1.staging"}
    assert res.group("web") >= {"web-1.prod", "web-1.staging"}
    projects = {entry["project"] for entry in sandbox.requests()["log"]}
    assert projects == {"prod", "staging"}

    clash = inventory(tmp_path, sandbox, {"hostname": "{{ hcloud_name }}", "projects": [
        {"name": "prod", "api_token": "tok-prod"}, {"name": "staging", "api_token": "tok-staging"}]})
    assert_clean_error(clash, "hostname:", "would both be host 'web-1'", "project prod", "project staging")


def test_hostname_template_prefix_and_suffix(tmp_path: Path, sandbox: Sandbox) -> None:
    res = inventory(tmp_path, sandbox, {"api_token": "tok-prod", "hostvars_prefix": "hz_", "hostvars_suffix": "_v",
                                        "hostname": "{{ hz_location_v }}-{{ hz_name_v }}", "group": "hetzner"})
    assert res.rc == 0, res.stderr
    assert "fsn1-web-1" in res.hostvars and res.hostvars["fsn1-web-1"]["hz_id_v"]
    assert set(res.data["hetzner"]["hosts"]) == set(res.hostvars)


def test_constructed_options(tmp_path: Path, sandbox: Sandbox) -> None:
    res = inventory(tmp_path, sandbox, {
        "api_token": "tok-prod",
        "compose": {"ansible_user": "'deploy'", "ansible_host": "hcloud_private_ipv4 | default(hcloud_ipv4, true)"},
        "groups": {"arm": "hcloud_architecture == 'arm'"},
        "keyed_groups": [{"key": "hcloud_labels.team | default('none')", "prefix": "team"}],
        "group_by": ["labels"],
    })
    assert res.rc == 0, res.stderr
    assert res.hostvars["web-2"]["ansible_user"] == "deploy"
    assert res.hostvars["web-2"]["ansible_host"] == "10.0.0.12"
    assert res.group("arm") == {"db-1"}
    assert res.group("team_core") == {"web-1"} and "web-2" in res.group("team_none")
    assert "location_fsn1" not in res.data  # group_by limited to labels
    assert "have no address" not in res.stderr  # compose sets ansible_host itself

    strict = inventory(tmp_path, sandbox, {"api_token": "tok-prod", "strict": True,
                                           "compose": {"x": "hcloud_nonexistent.attr"}})
    assert_clean_error(strict, "hcloud_nonexistent")
    lenient = inventory(tmp_path, sandbox, {"api_token": "tok-prod", "compose": {"x": "hcloud_nonexistent.attr"}})
    assert lenient.rc == 0 and "x" not in lenient.hostvars["web-1"]


def test_pages_are_fetched_concurrently_within_the_request_budget(tmp_path: Path, sandbox: Sandbox) -> None:
    sandbox.configure({"latency_ms": 50})
    res = inventory(tmp_path, sandbox, {"api_token": "tok-big", "concurrency": 4})
    assert res.rc == 0, res.stderr
    assert len(res.hostvars) == 520
    counts = sandbox.requests()
    assert counts["by_path"] == {"GET /v1/servers": 11, "GET /v1/networks": 1}
    # pages 2..11 four at a time, plus the first pages of /servers and /networks together
    assert 4 <= counts["max_in_flight"] <= 5
    pages = sorted(int(e["query"].split("page=")[1].split("&")[0]) for e in counts["log"] if e["path"].endswith("/servers"))
    assert pages == list(range(1, 12))

    sandbox.reset()
    serial = inventory(tmp_path, sandbox, {"api_token": "tok-big", "concurrency": 1})
    assert serial.rc == 0 and serial.hostvars.keys() == res.hostvars.keys()
    assert sandbox.requests()["max_in_flight"] <= 2


def test_cache_hit_makes_no_requests(tmp_path: Path, sandbox: Sandbox) -> None:
    config = {"api_token": "tok-prod", "cache": True, "cache_plugin": "ansible.builtin.jsonfile",
              "cache_connection": str(tmp_path / "cache"), "cache_timeout": 600}
    first = inventory(tmp_path, sandbox, config)
    assert first.rc == 0, first.stderr
    assert sandbox.requests()["total"] == 2
    sandbox.reset()
    second = inventory(tmp_path, sandbox, config)
    assert second.rc == 0, second.stderr
    assert sandbox.requests()["total"] == 0
    assert second.data == first.data
    flushed = inventory(tmp_path, sandbox, config, "--flush-cache")
    assert flushed.rc == 0 and sandbox.requests()["total"] == 2


def test_token_from_a_template_and_never_printed(tmp_path: Path, sandbox: Sandbox) -> None:
    ok = inventory(tmp_path, sandbox, {"api_token": "{{ lookup('ansible.builtin.env', 'MY_TOKEN') }}"}, "-vvvv",
                   env={"MY_TOKEN": "tok-prod"})
    assert ok.rc == 0, ok.stderr
    assert len(ok.hostvars) == 6
    assert "tok-prod" not in ok.stdout + ok.stderr
    bad = inventory(tmp_path, sandbox, {}, "-vvvv", env={"HCLOUD_TOKEN": "secret-wrong-token"})
    assert_clean_error(bad, "project 'default'", "401")
    assert "secret-wrong-token" not in bad.stdout + bad.stderr


def test_rejected_token_names_the_project(tmp_path: Path, sandbox: Sandbox) -> None:
    res = inventory(tmp_path, sandbox, {"projects": [{"name": "prod", "api_token": "tok-prod"},
                                                     {"name": "staging", "api_token": "revoked"}]})
    assert_clean_error(res, "Hetzner Cloud project 'staging' rejected the API token (HTTP 401", sandbox.url)


def test_unreachable_endpoint_says_so_with_the_url(tmp_path: Path, sandbox: Sandbox) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    res = inventory(tmp_path, sandbox, {"api_token": "tok-prod", "api_endpoint": url})
    assert_clean_error(res, f"cannot reach the Hetzner Cloud API at {url}", "Connection refused")


def test_rate_limit_is_retried_after_reset(tmp_path: Path, sandbox: Sandbox) -> None:
    sandbox.configure({"throttle": {"count": 3, "reset_in": 1}})
    res = inventory(tmp_path, sandbox, {"api_token": "tok-prod"})
    assert res.rc == 0, res.stderr
    assert len(res.hostvars) == 6
    log = sandbox.requests()["log"]
    assert len(log) == 5  # 3 answered 429, then servers and networks
    # every retry waited for the RateLimit-Reset its own 429 sent, instead of hammering. The sandbox logs
    # the reset it sent; a retry is a request for the same path and query as an earlier 429 (two threads
    # fetch at once, so the log interleaves them). A whole-second reset can be well under a second away,
    # hence the comparison with it rather than with a duration.
    retries = 0
    for j, entry in enumerate(log):
        earlier = [e for e in log[:j] if "rate_limit_reset" in e
                   and (e["path"], e["query"]) == (entry["path"], entry["query"])]
        if earlier:
            retries += 1
            assert entry["time"] >= earlier[-1]["rate_limit_reset"], (earlier[-1], entry)
    assert retries == 3

    sandbox.reset()
    sandbox.configure({"throttle": {"count": 50, "reset_in": 30}})
    bounded = inventory(tmp_path, sandbox, {"api_token": "tok-prod", "rate_limit_max_wait": 2})
    assert_clean_error(bounded, "rate limit reached for project 'default' (HTTP 429)", "rate_limit_max_wait=2s")
    assert sandbox.requests()["total"] <= 4  # gave up without retrying 50 times


def test_nearly_used_up_rate_limit_is_announced_and_bounded(tmp_path: Path, sandbox: Sandbox) -> None:
    """8 requests per hour left, 12 needed: a warning up front, then the bounded wait gives up with
    the reset time instead of sleeping for an hour or hammering the API."""
    res = inventory(tmp_path, sandbox, {"api_token": "tok-tight", "rate_limit_max_wait": 5})
    assert_clean_error(res, "rate limit reached for project 'default' (HTTP 429)", "resets at")
    assert "API requests left in its rate limit and /servers needs 10 more" in res.stderr
    assert sandbox.requests()["total"] <= 8 + 10  # at most one 429 per worker, no retry storm


@pytest.mark.parametrize(
    ("config", "env", "needles"),
    [
        ({"connect_with": ["public_ipv4", "carrier_pigeon"]}, {}, ["connect_with:", "'carrier_pigeon'"]),
        ({"concurrency": 0}, {}, ["concurrency: 0 is out of range"]),
        ({"concurrency": "many"}, {}, ["concurrency"]),
        ({"timeout": -1}, {}, ["timeout:"]),
        ({"status": ["sleeping"]}, {}, ["status", "'sleeping'"]),
        ({"group_by": ["colour"]}, {}, ["group_by", "'colour'"]),
        ({"projects": [{"api_token": "x"}]}, {}, ["projects[0].name"]),
        ({"projects": [{"name": "a", "api_token": "x", "tokn": "y"}]}, {}, ["projects[0]: unknown key(s) tokn"]),
        ({"projects": [{"name": "a", "api_token": "x"}, {"name": "a", "api_token": "y"}]}, {},
         ["projects: duplicate project name(s) a"]),
        ({"projects": ["prod"]}, {}, ["projects[0]: must be a mapping"]),
        ({"api_token": None}, {"HCLOUD_TOKEN": ""}, ["api_token: no API token for project 'default'"]),
        ({"api_endpoint": "api.hetzner.cloud"}, {}, ["api_endpoint:", "not an http(s) URL"]),
        ({"label_selector": "role in (web"}, {}, ["label_selector 'role in (web'", "unbalanced"]),
        ({"network": "no-such-net"}, {}, ["network: no network named or numbered 'no-such-net'"]),
        ({"api_token": "{{ undefined_variable_xyz }}"}, {}, ["api_token", "undefined_variable_xyz"]),
    ],
)
def test_bad_configuration_names_the_option(tmp_path: Path, sandbox: Sandbox, config: dict[str, Any],
                                            env: dict[str, str], needles: list[str]) -> None:
    config = {"api_token": "tok-prod", **config}
    if config["api_token"] is None:
        del config["api_token"]
    res = inventory(tmp_path, sandbox, config, env=env)
    assert_clean_error(res, *needles)
    if "label_selector" not in config and "network" not in config:  # only the API can judge those two
        assert sandbox.requests()["total"] == 0, "a configuration error must stop before any API request"


def test_file_name_pattern(tmp_path: Path, sandbox: Sandbox) -> None:
    res = inventory(tmp_path, sandbox, {"api_token": "tok-prod"}, name="test.yml")
    assert res.rc != 0  # not claimed: the name must end in .hcloud.yml / .hcloud.yaml
    assert inventory(tmp_path, sandbox, {"api_token": "tok-prod"}, name="x.hcloud.yaml").rc == 0


def test_switching_from_hetzner_hcloud_is_a_plugin_line(tmp_path: Path, sandbox: Sandbox) -> None:
    """The same file works with both plugins. hetzner.hcloud still reads the removed `datacenter`
    field (the sandbox's legacy switch), which is why it fails against today's API."""
    config = {"api_token": "tok-prod", "label_selector": "env=prod", "status": ["running"], "locations": ["fsn1", "ash"],
              "connect_with": "public_ipv4", "hostvars_prefix": "hcloud_"}
    ours = inventory(tmp_path, sandbox, config)
    assert ours.rc == 0, ours.stderr
    theirs_today = inventory(tmp_path, sandbox, {**config, "plugin": "hetzner.hcloud.hcloud"})
    assert theirs_today.rc != 0
    sandbox.configure({"legacy_datacenter": True})
    theirs = inventory(tmp_path, sandbox, {**config, "plugin": "hetzner.hcloud.hcloud"})
    assert theirs.rc == 0, theirs.stderr
    assert set(theirs.hostvars) == set(ours.hostvars) == {"web-1", "db-1"}
    for var in ("hcloud_id", "hcloud_name", "hcloud_status", "hcloud_server_type", "hcloud_location", "hcloud_labels",
                "hcloud_ipv4", "hcloud_image_os_flavor"):
        assert ours.hostvars["web-1"][var] == theirs.hostvars["web-1"][var], var
