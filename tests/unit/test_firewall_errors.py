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
