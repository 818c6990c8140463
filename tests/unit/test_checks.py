"""Shared input checks (plugins/plugin_utils/checks.py) and every role's OPTIONS table."""

from __future__ import annotations

import importlib

import pytest
from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c

FILTERS = {
    "base": "base_errors",
    "firewall": "firewall_errors",
    "docker": "docker_daemon",
    "caddy": "caddy_errors",
    "node_exporter": "node_exporter_errors",
    "postgres_backup": "postgres_backup_errors",
    "app_deploy": "app_deploy_errors",
}


def table(role: str) -> dict[str, c.Check]:
    module = importlib.import_module(f"ansible_collections.anvil.hetzner.plugins.filter.{FILTERS[role]}")
    return module.OPTIONS


@pytest.mark.parametrize("role", sorted(FILTERS))
def test_every_declared_bad_value_is_refused_naming_the_option(role):
    for name, check in table(role).items():
        assert check.bad, f"{name}: a check without values it must refuse cannot be tested"
        for bad in check.bad:
            errors = c.check_options({name: bad}, {name: check}, {"invalid_calendars": [bad] if check.host else []})
            assert errors and all(e.startswith(name) for e in errors), (name, bad, errors)


@pytest.mark.parametrize(
    ("check", "good"),
    [
        (c.PORT, [1, 22, 65535]),
        (c.PORTS, [[], [22, 2222]]),
        (c.ADDRESSES, [["10.0.0.1", "2001:db8::1"]]),
        (c.NETWORKS, [["10.0.0.0/16", "10.0.0.5", "2001:db8::/32"]]),
        (c.USER_NAME, ["deploy", "_svc", "a-b_c"]),
        (c.EMAIL, ["", "ops@example.com"]),
        (c.CALENDAR, ["daily", "Mon *-*-* 04:00"]),
        (c.ABSOLUTE_PATH, ["/swapfile", "/var/lib/x.y"]),
        (c.int_range(1, 6), [1, 6]),
    ],
)
def test_good_values_pass(check, good):
    for value in good:
        assert check.errors("opt", value) == [], value


def test_booleans_are_not_ports_and_strings_are_not_lists():
    assert c.PORT.errors("p", True) == ["p: True is not a port number from 1 to 65535"]
    assert c.PORTS.errors("p", "22") == ["p: must be a list"]
    assert c.NETWORKS.errors("nets", "10.0.0.0/8") == ["nets: must be a list"]
    assert c.is_list(("a",)) and not c.is_list("a") and not c.is_list(b"a") and not c.is_list({"a": 1})


def test_list_items_are_named_by_index():
    assert c.NETWORKS.errors("firewall_trusted_networks", ["10.0.0.0/8", "any"]) == [
        "firewall_trusted_networks[1]: 'any' is not an IP address or a CIDR network"]


def test_nonempty_refuses_an_empty_list_and_keeps_item_checks():
    check = c.nonempty(c.SSH_ALGORITHMS)
    assert check.errors("algos", []) == ["algos: must not be empty"]
    assert check.errors("algos", ["a b"]) == ["algos[0]: 'a b' is not an OpenSSH algorithm name"]
    assert [] in check.bad


def test_calendar_is_judged_by_the_host():
    opts = {"sched": c.CALENDAR}
    assert c.check_options({"sched": "daily"}, opts, {"invalid_calendars": []}) == []
    assert c.check_options({"sched": "nope"}, opts, {"invalid_calendars": ["nope"]})[0].startswith(
        "sched: 'nope' is not a systemd calendar expression")


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ({"distribution": "Debian", "major": "12"}, True),
        ({"distribution": "Debian", "major": "13"}, True),
        ({"distribution": "Ubuntu", "major": "24"}, True),
        ({"distribution": "Debian", "major": "11", "version": "11.9"}, False),
        ({"distribution": "CentOS", "major": "9"}, False),
        ({"distribution": "Ubuntu", "major": "20"}, False),
    ],
)
def test_one_os_check_for_every_role(host, ok):
    errors = c.os_errors(host, "docker")
    assert (errors == []) is ok
    if not ok:
        assert "anvil.hetzner.docker" in errors[0] and "tested in CI: Debian 12/13" in errors[0]
