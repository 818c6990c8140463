# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus file_sd target groups from the inventory: where each host's node_exporter listens."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.filter.node_exporter_errors import node_exporter_listen

DOCUMENTATION = r"""
name: prometheus_file_sd
short_description: Prometheus file_sd target groups for the hosts of the inventory
version_added: 0.3.0
description:
  - One target group per host, scraping the address the C(anvil.hetzner.node_exporter) role makes it
    listen on (C(node_exporter_listen_address), else C(hcloud_private_ipv4), else 127.0.0.1) and
    C(node_exporter_port), labelled with the host's name (C(instance)), the inventory group, the
    Hetzner location and server type and chosen Hetzner labels.
  - A host that listens on loopback only cannot be scraped from elsewhere; it is left out and listed
    under C(skipped) with the reason. A wildcard listener is scraped at C(ansible_host).
  - Hosts with TLS (C(node_exporter_tls_cert_file)) get C(__scheme__=https).
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: Inventory host names to list.
    type: list
    elements: str
    required: true
  group:
    description: Value of the C(group) label (the inventory group the hosts came from).
    type: str
    default: ""
  label_keys:
    description: Hetzner labels (C(hcloud_labels)) copied into target labels, e.g. C(role), C(env).
    type: list
    elements: str
    default: [role]
"""

EXAMPLES = r"""
- name: Write the targets of the web group
  ansible.builtin.copy:
    content: "{{ (hostvars | anvil.hetzner.prometheus_file_sd(groups['web'], group='web')).targets | to_nice_json }}"
    dest: /etc/prometheus/file_sd/anvil-web.json
    mode: "0644"
"""

RETURN = r"""
_value:
  description: C(targets) (the file_sd list) and C(skipped) (host name -> reason).
  type: dict
  sample: {"targets": [{"targets": ["10.0.0.2:9100"], "labels": {"instance": "web1", "group": "web",
            "location": "fsn1", "server_type": "cx22", "role": "web"}}], "skipped": {"db1": "listens on 127.0.0.1 only"}}
"""


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def prometheus_file_sd(hostvars: Mapping[str, Any], hosts: Sequence[str], group: str = "",
                       label_keys: Sequence[str] = ("role",)) -> dict[str, Any]:
    if not isinstance(hosts, Sequence) or isinstance(hosts, str):
        raise AnsibleFilterError("prometheus_file_sd: hosts must be a list of inventory host names")
    targets: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for name in hosts:
        hv = hostvars.get(name)
        if hv is None:
            raise AnsibleFilterError(f"prometheus_file_sd: {name} is not in the inventory")
        address = node_exporter_listen(hv)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            skipped[name] = f"listen address {address!r} is not an IP address"
            continue
        if ip.is_loopback:
            skipped[name] = (f"listens on {address} only (no node_exporter_listen_address, no hcloud_private_ipv4); "
                             "Prometheus elsewhere cannot reach it")
            continue
        if ip.is_unspecified:
            address = str(hv.get("ansible_host") or name)
        host = f"[{address}]" if ":" in address else address
        labels = {"instance": name}
        if group:
            labels["group"] = group
        for key, var in (("location", "hcloud_location"), ("server_type", "hcloud_server_type")):
            if hv.get(var):
                labels[key] = _label(hv[var])
        hlabels = hv.get("hcloud_labels") or {}
        for key in label_keys:
            if key in hlabels:
                labels[key] = _label(hlabels[key])
        if hv.get("node_exporter_tls_cert_file"):
            labels["__scheme__"] = "https"
        targets.append({"targets": [f"{host}:{int(hv.get('node_exporter_port', 9100))}"], "labels": labels})
    return {"targets": targets, "skipped": skipped}


class FilterModule:
    """anvil.hetzner prometheus_file_sd filter."""

    def filters(self) -> dict[str, Any]:
        return {"prometheus_file_sd": prometheus_file_sd}
