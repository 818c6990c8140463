"""Unit tests for the pure filter and test plugins."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.anvil.hetzner.plugins.filter.ssh_supported import parse_supported, ssh_supported
from ansible_collections.anvil.hetzner.plugins.test.ip_address import ip_address

# `ssh -Q kex` as printed by OpenSSH 9.2 (Debian 12) and 10.0 (Debian 13).
KEX_92 = """diffie-hellman-group1-sha1
diffie-hellman-group14-sha1
diffie-hellman-group14-sha256
diffie-hellman-group16-sha512
diffie-hellman-group18-sha512
diffie-hellman-group-exchange-sha1
diffie-hellman-group-exchange-sha256
ecdh-sha2-nistp256
curve25519-sha256
curve25519-sha256@libssh.org
sntrup761x25519-sha512@openssh.com
"""
KEX_100 = KEX_92 + "sntrup761x25519-sha512\nmlkem768x25519-sha256\n"
PREFERRED = [
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "diffie-hellman-group16-sha512",
]


def test_keeps_preference_order_and_drops_unsupported_on_older_openssh():
    assert ssh_supported(PREFERRED, KEX_92, "base_ssh_kex_algorithms") == [
        "sntrup761x25519-sha512@openssh.com",
        "curve25519-sha256",
        "diffie-hellman-group16-sha512",
    ]


def test_newer_openssh_gets_post_quantum_kex_first():
    chosen = ssh_supported(PREFERRED, KEX_100)
    assert chosen[0] == "mlkem768x25519-sha256"
    assert chosen.index("sntrup761x25519-sha512") < chosen.index("curve25519-sha256")


def test_never_adds_an_algorithm_that_was_not_preferred():
    chosen = ssh_supported(["curve25519-sha256"], KEX_100)
    assert chosen == ["curve25519-sha256"]
    assert "diffie-hellman-group1-sha1" not in chosen


def test_accepts_a_list_and_removes_duplicates():
    assert ssh_supported(["a", "b", "a"], ["b", "a", ""]) == ["a", "b"]


def test_empty_intersection_names_the_variable():
    with pytest.raises(AnsibleFilterError, match="base_ssh_ciphers"):
        ssh_supported(["aes256-gcm@openssh.com"], "3des-cbc\n", "base_ssh_ciphers")


@pytest.mark.parametrize("bad", ["aes256 ctr", "x;rm", ""])
def test_rejects_names_that_are_not_algorithms(bad):
    with pytest.raises(AnsibleFilterError, match="base_ssh_macs"):
        ssh_supported([bad], KEX_92, "base_ssh_macs")


def test_rejects_a_preferred_value_that_is_not_a_list():
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        ssh_supported("curve25519-sha256", KEX_92, "base_ssh_kex_algorithms")


def test_parse_supported_rejects_other_types():
    with pytest.raises(AnsibleFilterError):
        parse_supported(42)
    assert parse_supported("  a \n\n b\n") == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "network", "expected"),
    [
        ("10.0.0.1", False, True),
        ("2a01:4f8::1", False, True),
        ("300.1.1.1", False, False),
        ("10.0.0.0/8", False, False),
        ("10.0.0.0/8", True, True),
        ("10.0.0.5/16", True, True),
        ("fd00::/64", True, True),
        ("10.0.0.0/33", True, False),
        (" 10.0.0.1", False, False),
        ("", False, False),
        (None, False, False),
        (42, False, False),
        ("host.example", True, False),
    ],
)
def test_ip_address(value, network, expected):
    assert ip_address(value, network=network) is expected
