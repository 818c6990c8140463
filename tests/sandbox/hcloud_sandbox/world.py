"""The resources one sandbox project holds, in the JSON shapes of the Hetzner Cloud API.

A world is built either from a fixture (a short description per server, see `build_world`) or by
`generate_world`, which spreads N servers deterministically over locations, server types, images
and two private networks, including IPv6-only, private-only and image-less servers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

LOCATIONS: list[dict[str, Any]] = [
    {"id": 1, "name": "fsn1", "description": "Falkenstein DC Park 1", "country": "DE", "city": "Falkenstein",
     "latitude": 50.47612, "longitude": 12.370071, "network_zone": "eu-central"},
    {"id": 2, "name": "nbg1", "description": "Nuremberg DC Park 1", "country": "DE", "city": "Nuremberg",
     "latitude": 49.452102, "longitude": 11.076665, "network_zone": "eu-central"},
    {"id": 3, "name": "hel1", "description": "Helsinki DC Park 1", "country": "FI", "city": "Helsinki",
     "latitude": 60.169855, "longitude": 24.938379, "network_zone": "eu-central"},
    {"id": 4, "name": "ash", "description": "Ashburn, VA", "country": "US", "city": "Ashburn, VA",
     "latitude": 39.045821, "longitude": -77.487073, "network_zone": "us-east"},
    {"id": 5, "name": "hil", "description": "Hillsboro, OR", "country": "US", "city": "Hillsboro, OR",
     "latitude": 45.54222, "longitude": -122.951924, "network_zone": "us-west"},
    {"id": 6, "name": "sin", "description": "Singapore", "country": "SG", "city": "Singapore",
     "latitude": 1.283333, "longitude": 103.833333, "network_zone": "ap-southeast"},
]

# Legacy only: the `datacenter` object servers carried until the API removed it (2026-07-01).
DATACENTER_SUFFIX = {"fsn1": "dc14", "nbg1": "dc3", "hel1": "dc2", "ash": "dc1", "hil": "dc1", "sin": "dc1"}

SERVER_TYPES: list[dict[str, Any]] = [
    {"id": 104, "name": "cx22", "description": "CX22", "cores": 2, "memory": 4.0, "disk": 40,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 105, "name": "cx32", "description": "CX32", "cores": 4, "memory": 8.0, "disk": 80,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 22, "name": "cpx31", "description": "CPX 31", "cores": 4, "memory": 8.0, "disk": 160,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 96, "name": "ccx23", "description": "CCX23 Dedicated CPU", "cores": 4, "memory": 16.0, "disk": 160,
     "cpu_type": "dedicated", "architecture": "x86"},
    {"id": 45, "name": "cax21", "description": "CAX21", "cores": 4, "memory": 8.0, "disk": 80,
     "cpu_type": "shared", "architecture": "arm"},
]

IMAGES: list[dict[str, Any]] = [
    {"id": 114690387, "name": "debian-12", "description": "Debian 12", "os_flavor": "debian", "os_version": "12"},
    {"id": 310557660, "name": "debian-13", "description": "Debian 13", "os_flavor": "debian", "os_version": "13"},
    {"id": 161547269, "name": "ubuntu-24.04", "description": "Ubuntu 24.04", "os_flavor": "ubuntu",
     "os_version": "24.04"},
    {"id": 67794396, "name": "ubuntu-22.04", "description": "Ubuntu 22.04", "os_flavor": "ubuntu",
     "os_version": "22.04"},
]

_EPOCH = datetime(2025, 1, 6, 9, 0, 0, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _by_name(items: list[dict[str, Any]], name: str, kind: str) -> dict[str, Any]:
    for item in items:
        if item["name"] == name:
            return item
    raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(i['name'] for i in items)}")


def location_json(loc: dict[str, Any]) -> dict[str, Any]:
    return dict(loc)


def server_type_json(st: dict[str, Any]) -> dict[str, Any]:
    return {
        **st,
        "storage_type": "local",
        "deprecated": False,
        "deprecation": None,
        "prices": [],
        "category": "regular_purpose",
        "included_traffic": 21990232555520,
    }


def image_json(img: dict[str, Any], server_type: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        **img,
        "type": "system",
        "status": "available",
        "image_size": None,
        "disk_size": 5,
        "created": "2023-06-13T06:00:02+00:00",
        "created_from": None,
        "bound_to": None,
        "rapid_deploy": True,
        "protection": {"delete": False},
        "deprecated": None,
        "deleted": None,
        "labels": {},
        "architecture": (server_type or {}).get("architecture", "x86"),
    }


@dataclass
class World:
    """Everything one project can list. Servers and networks are full API JSON objects."""

    servers: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    locations: list[dict[str, Any]] = field(default_factory=lambda: [location_json(x) for x in LOCATIONS])
    server_types: list[dict[str, Any]] = field(default_factory=lambda: [server_type_json(x) for x in SERVER_TYPES])
    images: list[dict[str, Any]] = field(default_factory=lambda: [image_json(x) for x in IMAGES])


def network_json(net_id: int, name: str, ip_range: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    net = ipaddress.ip_network(ip_range)
    subnet = next(net.subnets(new_prefix=max(net.prefixlen, 24)))
    return {
        "id": net_id,
        "name": name,
        "ip_range": ip_range,
        "subnets": [{"type": "cloud", "ip_range": str(subnet), "network_zone": "eu-central",
                     "gateway": str(next(net.hosts())), "vswitch_id": None}],
        "routes": [],
        "servers": [],
        "load_balancers": [],
        "protection": {"delete": False},
        "labels": labels or {},
        "created": _iso(_EPOCH),
        "expose_routes_to_vswitch": False,
    }


def server_json(
    *,
    server_id: int,
    name: str,
    status: str = "running",
    location: str = "fsn1",
    server_type: str = "cx22",
    image: str | None = "debian-12",
    ipv4: str | None = None,
    ipv6: str | None = None,
    private: list[tuple[dict[str, Any], str]] | None = None,
    labels: dict[str, str] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """A server as GET /servers returns it today (top-level `location`, no `datacenter`).

    `ipv6` is the server's /64 (e.g. "2a01:4f8:c012:1::/64"); `private` pairs a network object with
    the server's address in it.
    """
    loc = _by_name(LOCATIONS, location, "location")
    st = _by_name(SERVER_TYPES, server_type, "server type")
    img = _by_name(IMAGES, image, "image") if image is not None else None
    public_ipv4 = None
    if ipv4 is not None:
        public_ipv4 = {"id": server_id * 10 + 1, "ip": ipv4, "blocked": False,
                       "dns_ptr": f"static.{'.'.join(reversed(ipv4.split('.')))}.clients.your-server.de"}
    public_ipv6 = None
    if ipv6 is not None:
        first = str(next(ipaddress.IPv6Network(ipv6).hosts()))
        public_ipv6 = {"id": server_id * 10 + 2, "ip": ipv6, "blocked": False, "dns_ptr": [
            {"ip": first, "dns_ptr": f"{name}.example.com"}]}
    private_net = []
    for index, (network, address) in enumerate(private or []):
        private_net.append({"network": network["id"], "ip": address, "alias_ips": [],
                            "mac_address": f"86:00:00:{(server_id >> 8) & 0xff:02x}:{server_id & 0xff:02x}:{index:02x}"})
        network["servers"].append(server_id)
    return {
        "id": server_id,
        "name": name,
        "status": status,
        "created": created or _iso(_EPOCH + timedelta(minutes=server_id % 100000)),
        "public_net": {"ipv4": public_ipv4, "ipv6": public_ipv6, "floating_ips": [], "firewalls": []},
        "private_net": private_net,
        "server_type": server_type_json(st),
        "location": location_json(loc),
        "image": image_json(img, st) if img else None,
        "iso": None,
        "rescue_enabled": False,
        "locked": False,
        "backup_window": None,
        "outgoing_traffic": 0,
        "ingoing_traffic": 0,
        "included_traffic": 21990232555520,
        "protection": {"delete": False, "rebuild": False},
        "labels": dict(labels or {}),
        "volumes": [],
        "load_balancers": [],
        "primary_disk_size": st["disk"],
        "placement_group": None,
    }


def legacy_datacenter(server: dict[str, Any]) -> dict[str, Any]:
    """The `datacenter` object the API served before 2026-07-01 (what older clients still need)."""
    loc = server["location"]
    return {
        "id": loc["id"],
        "name": f"{loc['name']}-{DATACENTER_SUFFIX.get(loc['name'], 'dc1')}",
        "description": f"{loc['city']} virtual DC",
        "location": loc,
        "server_types": {"supported": [t["id"] for t in SERVER_TYPES], "available": [t["id"] for t in SERVER_TYPES],
                         "available_for_migration": [t["id"] for t in SERVER_TYPES]},
    }


def build_world(spec: dict[str, Any], first_id: int = 1) -> World:
    """Build a world from a fixture.

    spec = {"networks": [{"name": "app", "ip_range": "10.0.0.0/16", "labels": {}}],
            "servers": [{"name": "web-1", "labels": {"role": "web"}, "location": "fsn1",
                         "server_type": "cx22", "image": "debian-12" | null, "status": "running",
                         "ipv4": "203.0.113.10" | null, "ipv6": "2001:db8:1::/64" | null,
                         "networks": {"app": "10.0.0.2"}}]}
    Missing `ipv4`/`ipv6` keys get addresses from documentation ranges; null means none.
    """
    world = World()
    networks: dict[str, dict[str, Any]] = {}
    for index, net in enumerate(spec.get("networks", [])):
        obj = network_json(first_id * 1000 + index + 1, net["name"], net["ip_range"], net.get("labels"))
        networks[net["name"]] = obj
        world.networks.append(obj)
    for index, srv in enumerate(spec.get("servers", [])):
        server_id = first_id * 1_000_000 + index + 1
        private = []
        for net_name, address in (srv.get("networks") or {}).items():
            if net_name not in networks:
                raise ValueError(f"server {srv['name']!r} names unknown network {net_name!r}")
            private.append((networks[net_name], address))
        world.servers.append(server_json(
            server_id=server_id,
            name=srv["name"],
            status=srv.get("status", "running"),
            location=srv.get("location", "fsn1"),
            server_type=srv.get("server_type", "cx22"),
            image=srv.get("image", "debian-12"),
            ipv4=srv["ipv4"] if "ipv4" in srv else f"203.0.113.{(index % 254) + 1}",
            ipv6=srv["ipv6"] if "ipv6" in srv else f"2001:db8:{index:x}::/64",
            private=private,
            labels=srv.get("labels"),
            created=srv.get("created"),
        ))
    return world


ROLES = ["web", "web", "db", "worker", "web.worker", "cache"]
STATUSES = ["running"] * 18 + ["off", "starting"]


def generate_world(servers: int, networks: int = 2, seed: int = 1, prefix: str = "srv") -> World:
    """N servers spread over `networks` private networks (every third server sits in two).

    Deterministic for a given (servers, networks, seed). Every 20th server is IPv6-only, every
    50th has no public address at all (private network only), every 25th has no image, and the
    `role` label holds several roles ("web.worker") on some servers.
    """
    world = World()
    nets = [network_json(seed * 1000 + n + 1, f"net-{n + 1}", f"10.{n + 1}.0.0/16", {"zone": f"z{n + 1}"})
            for n in range(networks)]
    world.networks.extend(nets)
    base_id = seed * 10_000_000
    for i in range(servers):
        server_id = base_id + i + 1
        ipv6_only = i % 20 == 19
        private_only = i % 50 == 49 and networks > 0
        private: list[tuple[dict[str, Any], str]] = []
        if networks:
            first = nets[i % networks]
            host = i + 2
            private.append((first, f"10.{(i % networks) + 1}.{host // 250}.{host % 250 + 2}"))
            if networks > 1 and i % 3 == 0:
                second = nets[(i + 1) % networks]
                private.append((second, f"10.{((i + 1) % networks) + 1}.{host // 250}.{host % 250 + 2}"))
        world.servers.append(server_json(
            server_id=server_id,
            name=f"{prefix}-{i + 1:05d}",
            status=STATUSES[i % len(STATUSES)],
            location=LOCATIONS[i % len(LOCATIONS)]["name"],
            server_type=SERVER_TYPES[i % len(SERVER_TYPES)]["name"],
            image=None if i % 25 == 24 else IMAGES[i % len(IMAGES)]["name"],
            ipv4=None if (ipv6_only or private_only) else f"198.{18 + (i >> 16) % 2}.{(i >> 8) & 0xff}.{i & 0xff}",
            ipv6=None if private_only else f"2001:db8:{seed:x}:{i:x}::/64",
            private=private,
            labels={"role": ROLES[i % len(ROLES)], "env": "prod" if i % 4 else "staging",
                    "team": f"t{i % 7}"},
        ))
    return world
