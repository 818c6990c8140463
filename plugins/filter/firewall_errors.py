# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the firewall role's structured input; every message names the variable and the item."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

DOCUMENTATION = r"""
name: firewall_errors
short_description: Everything wrong with the firewall role's rules, as messages naming the variable
version_added: 0.1.0
description:
  - Checks C(firewall_rules), C(firewall_docker_allow), C(firewall_ssh_sources),
    C(firewall_trusted_networks) and C(firewall_fail2ban_ignoreip) for ranges and formats that the
    role's argument spec cannot express (port ranges, CIDR networks, interface names).
  - Returns a list of messages; an empty list means the input is valid.
  - With O(client), also refuses C(firewall_ssh_sources) that would shut out the address the play
    connects from.
options:
  _input:
    description: The role's variables, as a mapping of variable name to value.
    type: dict
    required: true
  client:
    description: Address the play connects from (first field of C(SSH_CLIENT)), or empty.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Refuse bad rules
  ansible.builtin.fail:
    msg: "{{ errors | join(' | ') }}"
  when: errors | length > 0
  vars:
    errors: "{{ {'firewall_rules': firewall_rules} | anvil.hetzner.firewall_errors }}"
"""

RETURN = r"""
_value:
  description: Messages, one per problem, each starting with the variable (and item index) at fault.
  type: list
  elements: str
"""

_PORT = re.compile(r"^([0-9]{1,5})(?::([0-9]{1,5}))?$")
_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str) or value != value.strip() or not value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _address_errors(where: str, value: Any, allow_any: bool = True) -> list[str]:
    if allow_any and value in (None, "any"):
        return []
    if _network(value) is None:
        return [f"{where}: {value!r} is not {'any, ' if allow_any else ''}an IP address or a CIDR network"]
    return []


def _port_errors(where: str, port: Any, proto: str) -> list[str]:
    if port in (None, ""):
        return []
    match = _PORT.match(str(port))
    if not match:
        return [f"{where}: {port!r} is not a port (443) or a range (60000:61000)"]
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    errors = []
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        errors.append(f"{where}: {port!r} is outside 1-65535")
    if match.group(2) is not None:
        if low >= high:
            errors.append(f"{where}: the range {port!r} must go from low to high")
        if proto not in ("tcp", "udp"):
            errors.append(f"{where}: the range {port!r} needs proto tcp or udp (ufw refuses ranges for any)")
    return errors


def firewall_errors(variables: Mapping[str, Any], client: str = "") -> list[str]:
    errors: list[str] = []
    for index, rule in enumerate(variables.get("firewall_rules") or []):
        where = f"firewall_rules[{index}]"
        if not isinstance(rule, Mapping):
            errors.append(f"{where}: must be a mapping")
            continue
        errors += _port_errors(f"{where}.port", rule.get("port"), rule.get("proto", "tcp"))
        errors += _address_errors(f"{where}.from", rule.get("from", "any"))
        errors += _address_errors(f"{where}.to", rule.get("to", "any"))
        iface = rule.get("interface")
        if iface not in (None, "") and not _IFACE.match(str(iface)):
            errors.append(f"{where}.interface: {iface!r} is not an interface name")
        if rule.get("port") in (None, "") and rule.get("from", "any") in (None, "any") \
                and rule.get("rule", "allow") in ("allow", "limit") and rule.get("state", "present") == "present" \
                and rule.get("direction", "in") == "in" and not iface:
            errors.append(f"{where}: allows every port from anywhere, which turns the firewall off; "
                          "give a port or a source")
    for index, item in enumerate(variables.get("firewall_docker_allow") or []):
        where = f"firewall_docker_allow[{index}]"
        port = item.get("port") if isinstance(item, Mapping) else None
        if not isinstance(port, int) or not 1 <= port <= 65535:
            errors.append(f"{where}.port: {port!r} is not a port 1-65535")
        if isinstance(item, Mapping):
            errors += _address_errors(f"{where}.from", item.get("from", "any"))
    for name in ("firewall_ssh_sources", "firewall_trusted_networks", "firewall_fail2ban_ignoreip"):
        for index, value in enumerate(variables.get(name) or []):
            errors += _address_errors(f"{name}[{index}]", value, allow_any=False)
    for index, port in enumerate(variables.get("firewall_ssh_ports") or []):
        if not isinstance(port, int) or not 1 <= port <= 65535:
            errors.append(f"firewall_ssh_ports[{index}]: {port!r} is not a port 1-65535")
    sources = [n for n in (_network(s) for s in variables.get("firewall_ssh_sources") or []) if n is not None]
    if sources and client:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            address = None
        if address is not None and not any(address.version == n.version and address in n for n in sources):
            errors.append(f"firewall_ssh_sources: does not include {client}, the address this play connects "
                          "from; enabling UFW would lock this session out")
    return errors


class FilterModule:
    """anvil.hetzner firewall filters."""

    def filters(self) -> dict[str, Any]:
        return {"firewall_errors": firewall_errors}
