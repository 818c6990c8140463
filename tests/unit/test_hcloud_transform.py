"""Server JSON -> host variables, address and groups: the pure part of anvil.hetzner.hcloud."""

from __future__ import annotations

import json

import pytest
from ansible_collections.anvil.hetzner.plugins.plugin_utils import hcloud as t
from hcloud_sandbox.world import build_world, legacy_datacenter

WORLD = build_world({
    "networks": [{"name": "app", "ip_range": "10.0.0.0/16"}, {"name": "db", "ip_range": "10.1.0.0/16"}],
    "servers": [
        {"name": "web-1", "labels": {"role": "web.worker", "env": "prod"}, "location": "fsn1",
         "server_type": "cx22", "image": "debian-12", "ipv4": "203.0.113.5", "ipv6": "2001:db8:5::/64",
         "networks": {"app": "10.0.0.5", "db": "10.1.0.5"}},
        {"name": "v6-only", "labels": {"role": "web"}, "location": "hel1", "ipv4": None,
         "ipv6": "2001:db8:6::/64", "image": "ubuntu-24.04"},
        {"name": "private-only", "labels": {"role": "db"}, "ipv4": None, "ipv6": None, "image": None,
         "location": "ash", "server_type": "cax21", "networks": {"db": "10.1.0.9"}},
        {"name": "bare", "labels": {}, "ipv4": None, "ipv6": None, "status": "off"},
    ],
})
NAMES = {n["id"]: n["name"] for n in WORLD.networks}
APP, DB = (n["id"] for n in WORLD.networks)
WEB, V6, PRIV, BARE = WORLD.servers


def test_full_server() -> None:
    hv = t.server_vars(WEB, NAMES, "prod")
    assert hv["id"] == WEB["id"] and hv["name"] == "web-1" and hv["status"] == "running"
    assert hv["project"] == "prod" and hv["labels"] == {"role": "web.worker", "env": "prod"}
    assert (hv["server_type"], hv["type"], hv["architecture"]) == ("cx22", "cx22", "x86")
    assert (hv["server_type_cores"], hv["server_type_memory_gb"], hv["server_type_disk_gb"]) == (2, 4.0, 40)
    assert (hv["location"], hv["network_zone"]) == ("fsn1", "eu-central")
    assert (hv["image_name"], hv["image_os_flavor"], hv["image_os_version"]) == ("debian-12", "debian", "12")
    assert hv["ipv4"] == "203.0.113.5" and hv["ipv4_dns_ptr"].startswith("static.5.113.0.203")
    assert (hv["ipv6"], hv["ipv6_network"], hv["ipv6_network_mask"]) == ("2001:db8:5::1", "2001:db8:5::", "64")
    assert hv["private_networks"] == [{"id": APP, "name": "app", "ip": "10.0.0.5"},
                                      {"id": DB, "name": "db", "ip": "10.1.0.5"}]
    assert hv["private_ipv4"] == "10.0.0.5"  # first network when none is named
    assert t.server_vars(WEB, NAMES, "prod", network_id=DB)["private_ipv4"] == "10.1.0.5"
    assert hv["created"] == WEB["created"]
    json.dumps(hv)  # JSON-serialisable


def test_every_server_has_the_same_variable_names() -> None:
    keys = {frozenset(t.server_vars(s, NAMES, "p")) for s in WORLD.servers}
    assert len(keys) == 1


def test_missing_parts_are_none() -> None:
    hv = t.server_vars(PRIV, NAMES, "prod")
    assert hv["ipv4"] is None and hv["ipv6"] is None and hv["ipv6_network"] is None
    assert hv["image_id"] is None and hv["image_name"] is None and hv["image_os_flavor"] is None
    assert hv["private_ipv4"] == "10.1.0.9" and hv["architecture"] == "arm"
    assert t.server_vars(PRIV, NAMES, "prod", network_id=APP)["private_ipv4"] is None
    hv = t.server_vars(BARE, NAMES, "prod")
    assert hv["private_networks"] == [] and hv["private_ipv4"] is None


def test_legacy_datacenter_only_server_still_has_a_location() -> None:
    old = {k: v for k, v in WEB.items() if k != "location"}
    old["datacenter"] = legacy_datacenter(WEB)
    hv = t.server_vars(old, NAMES, "prod")
    assert (hv["location"], hv["network_zone"]) == ("fsn1", "eu-central")
    assert t.server_matches(old, locations=["fsn1"]) and not t.server_matches(old, locations=["hel1"])


@pytest.mark.parametrize(
    ("server", "connect_with", "expected"),
    [
        (WEB, ["public_ipv4"], ("203.0.113.5", "public_ipv4")),
        (WEB, ["public_ipv6", "public_ipv4"], ("2001:db8:5::1", "public_ipv6")),
        (V6, ["public_ipv4", "public_ipv6", "private_ipv4"], ("2001:db8:6::1", "public_ipv6")),
        (PRIV, ["public_ipv4", "public_ipv6", "private_ipv4"], ("10.1.0.9", "private_ipv4")),
        (PRIV, ["public_ipv4"], (None, None)),
        (BARE, ["public_ipv4", "public_ipv6", "private_ipv4"], (None, None)),
        (BARE, ["public_ipv4", "hostname"], ("bare", "hostname")),
        (WEB, ["ipv4_dns_ptr"], ("static.5.113.0.203.clients.your-server.de", "ipv4_dns_ptr")),
        (V6, ["ipv4_dns_ptr"], (None, None)),
    ],
)
def test_connect_with_fallback(server: dict, connect_with: list[str], expected: tuple) -> None:
    assert t.ansible_host(t.server_vars(server, NAMES, "p"), connect_with) == expected


def test_connect_with_rejects_unknown() -> None:
    with pytest.raises(ValueError):
        t.ansible_host(t.server_vars(WEB, NAMES, "p"), ["carrier_pigeon"])


def test_auto_groups() -> None:
    hv = t.server_vars(WEB, NAMES, "prod-eu")
    groups = t.auto_groups(hv, t.GROUP_BY, ["role"], ".")
    assert groups == ["web", "worker", "location_fsn1", "network_zone_eu_central", "server_type_cx22",
                      "os_debian", "os_debian_12", "status_running", "project_prod_eu"]
    assert t.auto_groups(hv, ["labels"], ["role", "env"], ".", "role_") == ["role_web", "role_worker", "role_prod"]
    assert t.auto_groups(hv, ["labels"], ["role"], "") == ["web_worker"]
    assert t.auto_groups(hv, [], ["role"], ".") == []
    imageless = t.auto_groups(t.server_vars(PRIV, NAMES, "p"), ["image_os", "status"], [], ".")
    assert imageless == ["status_running"]
    assert t.auto_groups(t.server_vars(BARE, NAMES, "p"), ["labels"], ["role"], ".") == []


@pytest.mark.parametrize(("raw", "safe"),
                         [("web", "web"), ("eu-central", "eu_central"), ("2fa", "_2fa"), ("a.b/c", "a_b_c"), ("", "_")])
def test_safe_group(raw: str, safe: str) -> None:
    assert t.safe_group(raw) == safe


def test_server_filters() -> None:
    assert t.server_matches(WEB)
    assert t.server_matches(WEB, locations=["fsn1", "nbg1"]) and not t.server_matches(V6, locations=["fsn1"])
    assert t.server_matches(PRIV, network_zones=["us-east"]) and not t.server_matches(WEB, network_zones=["us-east"])
    assert t.server_matches(PRIV, types=["cax21"]) and not t.server_matches(WEB, types=["cax21"])
    assert t.server_matches(WEB, images=["debian-12"]) and t.server_matches(WEB, images=["debian"])
    assert not t.server_matches(V6, images=["debian"]) and not t.server_matches(PRIV, images=["debian"])
    assert t.server_matches(WEB, network_id=DB) and not t.server_matches(V6, network_id=DB)


def test_hostnames_and_prefix() -> None:
    assert t.default_hostname("web-1", "prod", multi_project=False) == "web-1"
    assert t.default_hostname("web-1", "prod", multi_project=True) == "web-1.prod"
    assert t.prefixed({"id": 1, "name": "x"}, "hc_", "_v") == {"hc_id_v": 1, "hc_name_v": "x"}


@pytest.mark.parametrize(("network", "first"), [("2001:db8:5::/64", "2001:db8:5::1"),
                                                ("2a01:4f8:c2c:1234::/64", "2a01:4f8:c2c:1234::1"),
                                                ("2001:db8:0:0:0:0:0:0/64", "2001:db8::1"),
                                                ("2001:db8:1:2::/56", "2001:db8:1::1")])
def test_first_ipv6(network: str, first: str) -> None:
    assert t.first_ipv6(network) == first


def test_rate_limit_wait() -> None:
    assert t.rate_limit_wait({"RateLimit-Reset": "1010"}, now=1000.0) == 10.0
    assert t.rate_limit_wait({"RateLimit-Reset": "990"}, now=1000.0) == 0.0
    assert t.rate_limit_wait({}, now=1000.0) is None
    assert t.rate_limit_wait({"RateLimit-Reset": "soon"}, now=1000.0) is None


def test_plugin_version_matches_galaxy() -> None:
    import yaml
    from ansible_collections.anvil.hetzner.plugins.plugin_utils.version import COLLECTION_VERSION
    from conftest import ROOT

    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"] == COLLECTION_VERSION


def test_hcloud_client_internals_the_plugin_tunes() -> None:
    """The plugin turns off the library's own retry and reads response headers through a session
    hook; if a new hcloud release renames these, 429s would fall back to the library's backoff."""
    from hcloud import Client

    base = Client(token="x")._client
    assert isinstance(base._retry_max_retries, int)
    assert "response" in base._session.hooks
