# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test: is a value an IPv4 or IPv6 address (optionally with a CIDR prefix)?"""

from __future__ import annotations

from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks

DOCUMENTATION = r"""
name: ip_address
short_description: Is the value an IPv4 or IPv6 address
version_added: 0.1.0
description:
  - True when the value is a single IPv4 or IPv6 address, or with O(network=true) an address or a
    network in CIDR notation (host bits may be set, as in C(10.0.0.5/16)).
  - Uses Python's C(ipaddress), so it needs no extra library on the controller.
options:
  _input:
    description: The value to test.
    type: raw
    required: true
  network:
    description: Also accept CIDR notation.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Refuse a malformed listen address
  ansible.builtin.assert:
    that: base_ssh_listen_addresses is all_ip
  vars:
    all_ip: "{{ base_ssh_listen_addresses | reject('anvil.hetzner.ip_address') | list | length == 0 }}"
"""

RETURN = r"""
_value:
  description: Whether the value is an address (or network).
  type: bool
"""


def ip_address(value: Any, network: bool = False) -> bool:
    """Return True for an IP address (or, with ``network``, a CIDR network)."""
    if network and isinstance(value, str) and "/" in value:
        return checks.network(value) is not None
    return checks.address(value) is not None


class TestModule:
    """anvil.hetzner tests."""

    def tests(self) -> dict[str, Any]:
        return {"ip_address": ip_address}
