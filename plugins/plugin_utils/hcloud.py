# Copyright (c) 2026 anvil.hetzner contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parts of the anvil.hetzner.hcloud inventory: server JSON -> host variables and groups.

No I/O here: the inventory plugin fetches, these functions transform, unit tests call them directly.
Inputs are the server objects exactly as GET /v1/servers returns them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

CONNECT_WITH = ("public_ipv4", "public_ipv6", "private_ipv4", "hostname", "ipv4_dns_ptr")
GROUP_BY = ("labels", "location", "network_zone", "server_type", "image_os", "status", "project")
SERVER_STATUSES = ("initializing", "starting", "running", "stopping", "off", "deleting", "migrating",
                   "rebuilding", "unknown")

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_group(name: str) -> str:
    """A group name Ansible accepts without warnings: [A-Za-z0-9_], not starting with a digit."""
    cleaned = _UNSAFE.sub("_", name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = "_" + cleaned
    return cleaned


def first_ipv6(network: str) -> str:
    """Hetzner gives a server a /64; the server itself answers on ::1 of it."""
    address, _unused, length = network.partition("/")
    if address.endswith("::") and length == "64":  # the API's usual form: skip ipaddress (slow at scale)
        return address + "1"
    return str(ipaddress.IPv6Network(network, strict=False).network_address + 1)


def server_vars(server: Mapping[str, Any], network_names: Mapping[int, str], project: str,
                network_id: int | None = None) -> dict[str, Any]:
    """Host variables (without prefix) for one server. Every key is always present; absent
    values are None, so templates and `hostvars` look the same for every server."""
    public = server.get("public_net") or {}
    ipv4 = public.get("ipv4") or None
    ipv6 = public.get("ipv6") or None
    stype = server.get("server_type") or {}
    location = server.get("location") or (server.get("datacenter") or {}).get("location") or {}
    image = server.get("image") or None
    private = [
        {"id": entry["network"], "name": network_names.get(entry["network"]), "ip": entry["ip"]}
        for entry in server.get("private_net") or []
    ]
    private_ipv4 = None
    if private:
        if network_id is None:
            private_ipv4 = private[0]["ip"]
        else:
            private_ipv4 = next((p["ip"] for p in private if p["id"] == network_id), None)
    ipv6_network = ipv6_mask = None
    if ipv6:
        ipv6_network, _unused, ipv6_mask = ipv6["ip"].partition("/")
    return {
        "id": server["id"],
        "name": server["name"],
        "status": server.get("status"),
        "created": server.get("created"),
        "project": project,
        "labels": dict(server.get("labels") or {}),
        "server_type": stype.get("name"),
        "type": stype.get("name"),
        "architecture": stype.get("architecture"),
        "server_type_cores": stype.get("cores"),
        "server_type_memory_gb": stype.get("memory"),
        "server_type_disk_gb": stype.get("disk"),
        "location": location.get("name"),
        "network_zone": location.get("network_zone"),
        "image_id": image["id"] if image else None,
        "image_name": (image.get("name") or image.get("description")) if image else None,
        "image_os_flavor": image.get("os_flavor") if image else None,
        "image_os_version": image.get("os_version") if image else None,
        "ipv4": ipv4["ip"] if ipv4 else None,
        "ipv4_dns_ptr": ipv4.get("dns_ptr") if ipv4 else None,
        "ipv6": first_ipv6(ipv6["ip"]) if ipv6 else None,
        "ipv6_network": ipv6_network,
        "ipv6_network_mask": ipv6_mask,
        "private_ipv4": private_ipv4,
        "private_networks": private,
    }


def ansible_host(hvars: Mapping[str, Any], connect_with: Sequence[str]) -> tuple[str | None, str | None]:
    """The first address `connect_with` finds, in order: (address, which) or (None, None)."""
    for method in connect_with:
        if method == "public_ipv4":
            value = hvars["ipv4"]
        elif method == "public_ipv6":
            value = hvars["ipv6"]
        elif method == "private_ipv4":
            value = hvars["private_ipv4"]
        elif method == "hostname":
            value = hvars["name"]
        elif method == "ipv4_dns_ptr":
            value = hvars["ipv4_dns_ptr"]
        else:
            raise ValueError(f"unknown connect_with method {method!r}")
        if value:
            return value, method
    return None, None


def auto_groups(hvars: Mapping[str, Any], group_by: Iterable[str], label_keys: Sequence[str],
                separator: str, label_prefix: str = "") -> list[str]:
    """Groups a host joins without keyed_groups: `role=web.worker` -> web, worker (for label keys
    in `label_keys`, values split on `separator`); location_fsn1, network_zone_eu_central,
    server_type_cx22, os_debian + os_debian_12, status_running, project_prod."""
    groups: list[str] = []
    wanted = set(group_by)
    if "labels" in wanted:
        labels = hvars["labels"]
        for key in label_keys:
            value = labels.get(key)
            if not value:
                continue
            for part in value.split(separator) if separator else [value]:
                if part:
                    groups.append(safe_group(label_prefix + part))
    if "location" in wanted and hvars["location"]:
        groups.append(safe_group("location_" + hvars["location"]))
    if "network_zone" in wanted and hvars["network_zone"]:
        groups.append(safe_group("network_zone_" + hvars["network_zone"]))
    if "server_type" in wanted and hvars["server_type"]:
        groups.append(safe_group("server_type_" + hvars["server_type"]))
    if "image_os" in wanted and hvars["image_os_flavor"]:
        groups.append(safe_group("os_" + hvars["image_os_flavor"]))
        if hvars["image_os_version"]:
            groups.append(safe_group(f"os_{hvars['image_os_flavor']}_{hvars['image_os_version']}"))
    if "status" in wanted and hvars["status"]:
        groups.append(safe_group("status_" + hvars["status"]))
    if "project" in wanted and hvars["project"]:
        groups.append(safe_group("project_" + hvars["project"]))
    return list(dict.fromkeys(groups))


def server_matches(server: Mapping[str, Any], *, locations: Sequence[str] = (), network_zones: Sequence[str] = (),
                   types: Sequence[str] = (), images: Sequence[str] = (), network_id: int | None = None) -> bool:
    """Filters the API cannot apply. `images` matches an image name (debian-12) or OS flavor (debian)."""
    location = server.get("location") or (server.get("datacenter") or {}).get("location") or {}
    if locations and location.get("name") not in locations:
        return False
    if network_zones and location.get("network_zone") not in network_zones:
        return False
    if types and (server.get("server_type") or {}).get("name") not in types:
        return False
    if images:
        image = server.get("image")
        if not image or (image.get("name") not in images and image.get("os_flavor") not in images):
            return False
    if network_id is not None and all(p["network"] != network_id for p in server.get("private_net") or []):
        return False
    return True


def prefixed(hvars: Mapping[str, Any], prefix: str, suffix: str) -> dict[str, Any]:
    return {f"{prefix}{key}{suffix}": value for key, value in hvars.items()}


def default_hostname(name: str, project: str, multi_project: bool) -> str:
    """Server names are unique per project only: with several projects every host is named
    `<server>.<project>`, always (not just on collision), so adding a server in one project never
    renames a host of another."""
    return f"{name}.{project}" if multi_project else name


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until `RateLimit-Reset` (a Unix timestamp), or None when the header is missing/bad."""
    raw = headers.get("RateLimit-Reset") or headers.get("ratelimit-reset")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw) - now)
    except ValueError:
        return None
