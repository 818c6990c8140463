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
    # today's catalogue (generated worlds use only the five above, so they stay as they were)
    {"id": 114, "name": "cx23", "description": "CX23", "cores": 2, "memory": 4.0, "disk": 40,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 115, "name": "cx33", "description": "CX33", "cores": 4, "memory": 8.0, "disk": 80,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 116, "name": "cx43", "description": "CX43", "cores": 8, "memory": 16.0, "disk": 160,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 117, "name": "cx53", "description": "CX53", "cores": 16, "memory": 32.0, "disk": 320,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 120, "name": "cpx12", "description": "CPX12", "cores": 1, "memory": 2.0, "disk": 40,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 121, "name": "cpx22", "description": "CPX22", "cores": 2, "memory": 4.0, "disk": 80,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 122, "name": "cpx32", "description": "CPX32", "cores": 4, "memory": 8.0, "disk": 160,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 123, "name": "cpx42", "description": "CPX42", "cores": 8, "memory": 16.0, "disk": 320,
     "cpu_type": "shared", "architecture": "x86"},
    {"id": 44, "name": "cax11", "description": "CAX11", "cores": 2, "memory": 4.0, "disk": 40,
     "cpu_type": "shared", "architecture": "arm"},
    {"id": 46, "name": "cax31", "description": "CAX31", "cores": 8, "memory": 16.0, "disk": 160,
     "cpu_type": "shared", "architecture": "arm"},
    {"id": 47, "name": "cax41", "description": "CAX41", "cores": 16, "memory": 32.0, "disk": 320,
     "cpu_type": "shared", "architecture": "arm"},
]
GENERATED_TYPES = SERVER_TYPES[:5]

# One entry per image name for generated worlds; the catalogue (`CATALOGUE_IMAGES`) holds each
# image once per architecture, with its own ID, as the API lists them.
IMAGES: list[dict[str, Any]] = [
    {"id": 114690387, "name": "debian-12", "description": "Debian 12", "os_flavor": "debian", "os_version": "12"},
    {"id": 310557660, "name": "debian-13", "description": "Debian 13", "os_flavor": "debian", "os_version": "13"},
    {"id": 161547269, "name": "ubuntu-24.04", "description": "Ubuntu 24.04", "os_flavor": "ubuntu",
     "os_version": "24.04"},
    {"id": 67794396, "name": "ubuntu-22.04", "description": "Ubuntu 22.04", "os_flavor": "ubuntu",
     "os_version": "22.04"},
]
ARM_IMAGE_IDS = {"debian-12": 114690389, "debian-13": 310557661, "ubuntu-24.04": 161547270, "ubuntu-22.04": 67794397}

LOAD_BALANCER_TYPES: list[dict[str, Any]] = [
    {"id": 1, "name": "lb11", "description": "LB11", "max_connections": 10000, "max_services": 5,
     "max_targets": 25, "max_assigned_certificates": 10},
    {"id": 2, "name": "lb21", "description": "LB21", "max_connections": 20000, "max_services": 15,
     "max_targets": 75, "max_assigned_certificates": 25},
    {"id": 3, "name": "lb31", "description": "LB31", "max_connections": 40000, "max_services": 30,
     "max_targets": 150, "max_assigned_certificates": 50},
]

ISOS: list[dict[str, Any]] = [
    {"id": 11137, "name": "virtio-win-0.1.271.iso", "description": "virtio 0.1.271", "type": "public",
     "architecture": "x86", "deprecation": None},
    {"id": 11138, "name": "debian-13.1.0-amd64-netinst.iso", "description": "Debian 13.1 netinst", "type": "public",
     "architecture": "x86", "deprecation": None},
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
        "locations": [{"id": loc["id"], "name": loc["name"], "deprecation": None, "available": True,
                       "recommended": loc["name"] == "fsn1"} for loc in LOCATIONS],
    }


def image_json(img: dict[str, Any], server_type: dict[str, Any] | None = None,
               architecture: str | None = None) -> dict[str, Any]:
    """An image as the API lists it; the arm build of an image has its own ID."""
    arch = architecture or (server_type or {}).get("architecture", "x86")
    return {
        **img,
        "id": ARM_IMAGE_IDS[img["name"]] if arch == "arm" else img["id"],
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
        "architecture": arch,
    }


def catalogue_images() -> list[dict[str, Any]]:
    return [image_json(img, architecture=arch) for arch in ("x86", "arm") for img in IMAGES]


def load_balancer_type_json(lbt: dict[str, Any]) -> dict[str, Any]:
    return {**lbt, "deprecated": None, "prices": []}


def iso_json(iso: dict[str, Any]) -> dict[str, Any]:
    return dict(iso)


# The kinds a client can change; the catalogue kinds (locations, types, images, ISOs) are fixed.
WRITABLE_KINDS = ("servers", "networks", "ssh_keys", "firewalls", "placement_groups", "volumes", "primary_ips",
                  "load_balancers")


@dataclass
class World:
    """Everything one project can list, as full API JSON objects.

    `actions` holds every action (API JSON); `internal` what a record needs that the API never
    shows (a server's user_data and key texts, for a rebuild), by kind and ID.
    """

    servers: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    ssh_keys: list[dict[str, Any]] = field(default_factory=list)
    firewalls: list[dict[str, Any]] = field(default_factory=list)
    placement_groups: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    primary_ips: list[dict[str, Any]] = field(default_factory=list)
    load_balancers: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    internal: dict[str, dict[str, Any]] = field(default_factory=dict)
    locations: list[dict[str, Any]] = field(default_factory=lambda: [location_json(x) for x in LOCATIONS])
    server_types: list[dict[str, Any]] = field(default_factory=lambda: [server_type_json(x) for x in SERVER_TYPES])
    images: list[dict[str, Any]] = field(default_factory=catalogue_images)
    load_balancer_types: list[dict[str, Any]] = field(
        default_factory=lambda: [load_balancer_type_json(x) for x in LOAD_BALANCER_TYPES])
    isos: list[dict[str, Any]] = field(default_factory=lambda: [iso_json(x) for x in ISOS])

    def next_id(self) -> int:
        """A fresh ID, above every ID the world holds (IDs of different kinds never collide)."""
        counter = self.internal.setdefault("counter", {"last": 0})
        if not counter["last"]:
            counter["last"] = max((item["id"] for kind in (*WRITABLE_KINDS, "actions")
                                   for item in getattr(self, kind)), default=0)
        counter["last"] += 1
        return counter["last"]

    def private(self, kind: str, ident: int) -> dict[str, Any]:
        """The hidden part of one record (created empty)."""
        return self.internal.setdefault(kind, {}).setdefault(str(ident), {})


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


def primary_ip_json(*, ip_id: int, name: str, ip: str, ip_type: str, location: dict[str, Any],
                    assignee_id: int | None, auto_delete: bool = True, labels: dict[str, str] | None = None,
                    dns_ptr: list[dict[str, str]] | None = None, created: str | None = None) -> dict[str, Any]:
    """A Primary IP as the API returns it today (`location`, no `datacenter`); `ip` is the /64 for ipv6."""
    return {
        "id": ip_id,
        "name": name,
        "ip": ip,
        "type": ip_type,
        "assignee_id": assignee_id,
        "assignee_type": "server",
        "auto_delete": auto_delete,
        "blocked": False,
        "created": created or _iso(_EPOCH),
        "dns_ptr": dns_ptr or [],
        "labels": dict(labels or {}),
        "location": location,
        "protection": {"delete": False},
    }


def server_primary_ips(servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Primary IP records that the servers' `public_net` addresses refer to."""
    records = []
    for server in servers:
        for ip_type, key in (("ipv4", "ipv4"), ("ipv6", "ipv6")):
            address = server["public_net"][key]
            if address is None:
                continue
            ptr = address["dns_ptr"]
            records.append(primary_ip_json(
                ip_id=address["id"], name=f"primary_ip-{address['id']}", ip=address["ip"], ip_type=ip_type,
                location=server["location"], assignee_id=server["id"], created=server["created"],
                dns_ptr=[{"ip": address["ip"], "dns_ptr": ptr}] if isinstance(ptr, str) else list(ptr)))
    return records


def legacy_datacenter(server: dict[str, Any]) -> dict[str, Any]:
    """The `datacenter` object the API served before 2026-07-01 (what older clients still need);
    `server` is any record with a `location` (servers, Primary IPs)."""
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
    world.primary_ips = server_primary_ips(world.servers)
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
            server_type=GENERATED_TYPES[i % len(GENERATED_TYPES)]["name"],
            image=None if i % 25 == 24 else IMAGES[i % len(IMAGES)]["name"],
            ipv4=None if (ipv6_only or private_only) else f"198.{18 + (i >> 16) % 2}.{(i >> 8) & 0xff}.{i & 0xff}",
            ipv6=None if private_only else f"2001:db8:{seed:x}:{i:x}::/64",
            private=private,
            labels={"role": ROLES[i % len(ROLES)], "env": "prod" if i % 4 else "staging",
                    "team": f"t{i % 7}"},
        ))
    world.primary_ips = server_primary_ips(world.servers)
    return world
