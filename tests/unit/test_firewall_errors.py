"""The firewall role's input checks (filter anvil.hetzner.firewall_errors)."""

from __future__ import annotations

import pytest
from ansible_collections.anvil.hetzner.plugins.filter.firewall_errors import FilterModule, firewall_errors

GOOD = {
    "firewall_rules": [
        {"port": 443}, {"port": "60000:61000", "proto": "udp"}, {"port": 9100, "from": "10.0.0.5"},
        {"port": 80, "from": "2001:db8::/32", "interface": "eth1"}, {"from": "10.0.0.0/16"},
        {"rule": "deny"}, {"port": 25, "direction": "out", "rule": "deny"},
    ],
    "firewall_docker_allow": [{"port": 8080, "from": "10.0.0.0/16"}, {"port": 8443}],
    "firewall_ssh_sources": ["203.0.113.0/24"],
    "firewall_trusted_networks": ["10.0.0.0/16"],
    "firewall_fail2ban_ignoreip": ["198.51.100.7", "2001:db8::1"],
    "firewall_ssh_ports": [22, 2222],
}


def test_valid_input_has_no_errors() -> None:
    assert firewall_errors(GOOD, client="203.0.113.9") == []
    assert firewall_errors({}) == []
    assert "firewall_errors" in FilterModule().filters()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"firewall_rules": [{"port": 70000}]}, "firewall_rules[0].port: 70000 is outside 1-65535"),
        ({"firewall_rules": [{"port": 0}]}, "firewall_rules[0].port: 0 is outside 1-65535"),
        ({"firewall_rules": [{"port": "http"}]}, "firewall_rules[0].port: 'http' is not a port"),
        ({"firewall_rules": [{"port": "9000:8000", "proto": "tcp"}]}, "must go from low to high"),
        ({"firewall_rules": [{"port": "8000:8010", "proto": "any"}]}, "needs proto tcp or udp"),
        ({"firewall_rules": [{"port": 80}, {"port": 81, "from": "10.0.0.0/33"}]}, "firewall_rules[1].from: '10.0.0.0/33'"),
        ({"firewall_rules": [{"port": 80, "to": "example.com"}]}, "firewall_rules[0].to: 'example.com'"),
        ({"firewall_rules": [{"port": 80, "interface": "eth0; reboot"}]}, "firewall_rules[0].interface"),
        ({"firewall_rules": [{"rule": "allow"}]}, "firewall_rules[0]: allows every port from anywhere"),
        ({"firewall_rules": ["80/tcp"]}, "firewall_rules[0]: must be a mapping"),
        ({"firewall_docker_allow": [{"port": 0}]}, "firewall_docker_allow[0].port: 0"),
        ({"firewall_docker_allow": [{"from": "any"}]}, "firewall_docker_allow[0].port: None"),
        ({"firewall_docker_allow": [{"port": 80, "from": "lan"}]}, "firewall_docker_allow[0].from: 'lan'"),
        ({"firewall_ssh_sources": ["any"]}, "firewall_ssh_sources[0]: 'any' is not an IP address"),
        ({"firewall_trusted_networks": [" 10.0.0.0/8"]}, "firewall_trusted_networks[0]"),
        ({"firewall_fail2ban_ignoreip": ["office"]}, "firewall_fail2ban_ignoreip[0]: 'office'"),
        ({"firewall_ssh_ports": [22, 65536]}, "firewall_ssh_ports[1]: 65536"),
    ],
)
def test_each_problem_is_named(variables: dict, message: str) -> None:
    errors = firewall_errors(variables)
    assert any(message in e for e in errors), errors


def test_ssh_sources_must_include_the_controller() -> None:
    variables = {"firewall_ssh_sources": ["203.0.113.0/24", "2001:db8::/32"]}
    assert firewall_errors(variables, client="203.0.113.50") == []
    assert firewall_errors(variables, client="2001:db8::5") == []
    errors = firewall_errors(variables, client="198.51.100.1")
    assert errors and "198.51.100.1" in errors[0] and "lock this session out" in errors[0]
    assert firewall_errors(variables, client="") == []  # not over SSH (docker, local): nothing to protect


# ---------------------------------------------------------------------------------------------
# The rule set, the reader of `ufw status verbose` / `ufw show added` and the stale-rule finder.
from ansible_collections.anvil.hetzner.plugins.filter.firewall_errors import (  # noqa: E402
    firewall_managed_rules,
    firewall_may_have_stale,
    firewall_rules_to_apply,
    firewall_stale_rules,
    firewall_ufw_state,
    rule_id,
)


def test_managed_rules_put_ssh_first_and_the_controller_on_top():
    rules = firewall_managed_rules({"firewall_trusted_networks": ["10.0.0.0/16"],
                                    "firewall_rules": [{"port": 8080, "comment": "app"}]},
                                   controller="203.0.113.9", ssh_ports=[2222, 22, 22], caddy=True)
    summary = [(r["rule"], r["port"], r["proto"], r["from"], r["comment"]) for r in rules]
    assert summary == [
        ("allow", "22", "tcp", "203.0.113.9", "ssh from the controller, not rate-limited"),
        ("allow", "2222", "tcp", "203.0.113.9", "ssh from the controller, not rate-limited"),
        ("limit", "22", "tcp", "any", "ssh"),
        ("limit", "2222", "tcp", "any", "ssh"),
        ("allow", "", "any", "10.0.0.0/16", "trusted network"),
        ("allow", "80", "tcp", "any", "caddy"),
        ("allow", "443", "tcp", "any", "caddy"),
        ("allow", "443", "udp", "any", "caddy"),
        ("allow", "8080", "tcp", "any", "app"),
    ]
    assert rules[0]["insert"] == 1 and "insert" not in rules[2]
    assert len({r["id"] for r in rules}) == len(rules)


def test_rule_ids_are_the_ones_earlier_releases_wrote():
    # sha1 of "limit|22|tcp|any|any||in" (what the Jinja builder hashed): hosts keep their tags
    import hashlib
    assert rule_id({"rule": "limit", "port": "22", "proto": "tcp", "from": "any", "to": "any",
                    "interface": "", "direction": "in"}) == hashlib.sha1(b"limit|22|tcp|any|any||in").hexdigest()[:8]


def test_ssh_sources_and_no_limit():
    rules = firewall_managed_rules({"firewall_ssh_sources": ["10.0.0.0/8", "192.0.2.0/24"], "firewall_ssh_limit": False},
                                   ssh_ports=[22])
    assert [(r["rule"], r["from"]) for r in rules] == [("allow", "10.0.0.0/8"), ("allow", "192.0.2.0/24")]


STATUS_VERBOSE = """Status: active
Logging: on (medium)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip
"""


def test_ufw_state():
    assert firewall_ufw_state(STATUS_VERBOSE) == {
        "active": True, "incoming": "deny", "outgoing": "allow", "routed": "deny", "logging": "medium"}
    assert firewall_ufw_state("Status: inactive\n") == {"active": False, "incoming": "", "outgoing": "",
                                                        "routed": "", "logging": ""}
    assert firewall_ufw_state(STATUS_VERBOSE.replace("on (medium)", "off"))["logging"] == "off"


def test_only_missing_rules_are_applied():
    managed = firewall_managed_rules({"firewall_rules": [{"port": 80}, {"port": 81, "state": "absent"}]},
                                     ssh_ports=[22])
    ssh, http, gone = managed
    added = f"Added user rules (see 'ufw status' for running firewall):\nufw limit 22/tcp comment 'anvil:{ssh['id']} ssh'\n"
    assert [r["id"] for r in firewall_rules_to_apply(managed, added)] == [http["id"]]
    added_all = added + f"ufw allow 80/tcp comment 'anvil:{http['id']}'\nufw allow 81/tcp comment 'anvil:{gone['id']}'\n"
    assert [r["id"] for r in firewall_rules_to_apply(managed, added_all)] == [gone["id"]]
    assert [r["id"] for r in firewall_rules_to_apply(managed, "(None)")] == [ssh["id"], http["id"]]


NUMBERED = """Status: active

     To                         Action      From
     --                         ------      ----
[ 1] Anywhere                   REJECT IN   198.51.100.4               # by Fail2Ban after 5 attempts against sshd
[ 2] 22/tcp                     LIMIT IN    Anywhere                   # anvil:{ssh} ssh
[ 3] 8082/tcp                   ALLOW IN    Anywhere                   # anvil:deadbeef
[ 4] 9000/tcp                   ALLOW IN    Anywhere
[10] 22/tcp (v6)                LIMIT IN    Anywhere (v6)              # anvil:{ssh} ssh
"""


def test_stale_rules_keep_bans_and_unmanaged_rules_unless_purging():
    managed = firewall_managed_rules({}, ssh_ports=[22])
    status = NUMBERED.format(ssh=managed[0]["id"])
    assert firewall_stale_rules(status, managed) == [3]
    assert firewall_stale_rules(status, managed, purge=True) == [4, 3]
    assert firewall_stale_rules(status.splitlines(), managed, purge=True) == [4, 3]


def test_numbered_status_is_read_only_when_something_may_be_stale():
    managed = firewall_managed_rules({}, ssh_ports=[22])
    tagged = f"ufw limit 22/tcp comment 'anvil:{managed[0]['id']} ssh'\n"
    assert not firewall_may_have_stale(tagged, managed)
    assert firewall_may_have_stale(tagged + "ufw allow 8082/tcp comment 'anvil:deadbeef'\n", managed)
    assert not firewall_may_have_stale(tagged + "ufw allow 9000/tcp\n", managed)
    assert firewall_may_have_stale(tagged + "ufw allow 9000/tcp\n", managed, purge=True)


def test_node_exporter_port_is_opened_to_its_prometheus_sources_only():
    rules = firewall_managed_rules({}, ssh_ports=[22],
                                   node_exporter={"port": 9100, "sources": ["10.0.0.5/32", "fd00::7"]})
    metrics = [(r["rule"], r["port"], r["proto"], r["from"], r["comment"]) for r in rules if r["comment"] == "node_exporter"]
    assert metrics == [("allow", "9100", "tcp", "10.0.0.5/32", "node_exporter"),
                       ("allow", "9100", "tcp", "fd00::7", "node_exporter")]
    # no sources: nobody (no rule at all, never "from any")
    assert not [r for r in firewall_managed_rules({}, ssh_ports=[22], node_exporter={"port": 9100, "sources": []})
                if r["comment"] == "node_exporter"]
    # the role not in the play: nothing
    assert not [r for r in firewall_managed_rules({}, ssh_ports=[22]) if r["comment"] == "node_exporter"]


def test_node_exporter_inputs_are_checked_by_the_firewall_too():
    errors = firewall_errors({}, node_exporter={"port": 70000, "sources": ["everyone", "10.0.0.0/33"]})
    assert [e.split(":")[0] for e in errors] == ["node_exporter_port", "node_exporter_prometheus_sources[0]",
                                                 "node_exporter_prometheus_sources[1]"]
    assert firewall_errors({}, node_exporter={"port": 9100, "sources": ["10.0.0.0/16"]}) == []
    assert firewall_errors({}, node_exporter={"port": 9100, "sources": "10.0.0.0/16"}) == [
        "node_exporter_prometheus_sources: must be a list"]


def test_the_monitoring_ports_are_opened_to_its_admin_sources_only():
    rules = firewall_managed_rules({}, ssh_ports=[22], monitoring={"ports": [9090, "9093"], "sources": ["10.0.0.9/32"]})
    opened = [(r["port"], r["from"]) for r in rules if r["comment"] == "monitoring"]
    assert opened == [("9090", "10.0.0.9/32"), ("9093", "10.0.0.9/32")]
    # no admin sources: nobody (an SSH tunnel still works); the role not in the play: nothing
    assert not [r for r in firewall_managed_rules({}, ssh_ports=[22], monitoring={"ports": [9090, 9093], "sources": []})
                if r["comment"] == "monitoring"]
    assert not [r for r in firewall_managed_rules({}, ssh_ports=[22]) if r["comment"] == "monitoring"]


def test_monitoring_inputs_are_checked_by_the_firewall_too():
    errors = firewall_errors({}, monitoring={"ports": [0, 9093], "sources": ["admins"]})
    assert [e.split(":")[0] for e in errors] == ["monitoring_prometheus_port", "monitoring_admin_sources[0]"]
    assert firewall_errors({}, monitoring={"ports": ["9090", 9093], "sources": ["198.51.100.0/24"]}) == []
