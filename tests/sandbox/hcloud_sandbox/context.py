"""What every write handler shares: the project's world, its actions, the backend, and the lookups
and address pools the API's answers depend on.

How a write changes the world (the same for every kind):
- the request is validated completely before anything changes (an error changes nothing);
- the record changes when the request is accepted, so the answer and the next read show it and
  two requests never get the same address;
- statuses that wait for the machine (a server `running`, a volume `available`) change when the
  action ends; a failed action puts the records it changed back (`rollback`).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import links
from .actions import Engine, Resource, Step
from .errors import ApiError, error, invalid, not_found, not_unique
from .world import World, legacy_datacenter

if TYPE_CHECKING:
    from .backend import Backend
    from .server import Project

# Public addresses for new servers, load balancers and Primary IPs when the backend has no network
# of its own (the record backend: addresses that carry no traffic; a documentation range that no
# fixture or generated world uses). A backend with machines (DockerBackend) says which subnet the
# project's public network has (`public_subnet`, `public_subnet6`); its first host is the gateway.
# Never 192.0.2.0/24: on these machines it is the host's own network.
IPV4_POOLS = ("198.51.100.0/24",)
IPV6_POOL = "2001:db8:5a00::/40"

SINGULAR = {"servers": "server", "networks": "network", "ssh_keys": "ssh_key", "firewalls": "firewall",
            "placement_groups": "placement_group", "volumes": "volume", "primary_ips": "primary_ip",
            "load_balancers": "load_balancer", "images": "image", "isos": "iso", "locations": "location",
            "server_types": "server_type", "load_balancer_types": "load_balancer_type"}


@dataclass
class Ctx:
    project: Project
    engine: Engine
    backend: Backend
    legacy: bool

    @property
    def world(self) -> World:
        return self.project.world

    @property
    def name(self) -> str:
        return self.project.name

    # -- lookups -------------------------------------------------------------------------------
    def get(self, kind: str, ident: Any) -> dict[str, Any]:
        """The record with this ID; 404 not_found otherwise (path IDs)."""
        for item in getattr(self.world, kind):
            if item["id"] == ident:
                return item
        raise not_found(SINGULAR[kind], ident)

    def ref(self, kind: str, ref: Any, field: str) -> dict[str, Any]:
        """The record an ID or name in a body refers to; 422 invalid_input naming the field otherwise."""
        for item in getattr(self.world, kind):
            if item["id"] == ref or (isinstance(ref, str) and item.get("name") == ref):
                return item
            if isinstance(ref, str) and ref.isdigit() and item["id"] == int(ref):
                return item
        raise invalid(field, f"{SINGULAR[kind]} {ref!r} not found")

    def check_name(self, kind: str, name: str, ident: int | None = None) -> None:
        """Names are unique per kind and project: 409 uniqueness_error on `name`."""
        for item in getattr(self.world, kind):
            if item.get("name") == name and item["id"] != ident:
                raise not_unique("name", f"{SINGULAR[kind].replace('_', ' ')} name {name!r} is already used")

    def location(self, ref: Any, field: str = "location") -> dict[str, Any]:
        return self.ref("locations", ref, field)

    def datacenter_location(self, ref: Any) -> dict[str, Any]:
        """A legacy `datacenter` reference ("fsn1-dc14" or its ID) as its location; today's API refuses it."""
        if not self.legacy:
            raise invalid("datacenter", "datacenters were removed from the API; use location")
        for loc in self.world.locations:
            dc = legacy_datacenter({"location": loc})
            if ref in (dc["id"], dc["name"], str(dc["id"])):
                return loc
        raise invalid("datacenter", f"datacenter {ref!r} not found")

    # -- answers -------------------------------------------------------------------------------
    def show(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """A record as the API shows it now (the legacy `datacenter` on servers and Primary IPs)."""
        if self.legacy and kind in ("servers", "primary_ips"):
            return {**record, "datacenter": legacy_datacenter(record)}
        return record

    # -- actions -------------------------------------------------------------------------------
    def action(self, command: str, *resources: Resource, call: Callable[[], None] | None = None,
               done: Callable[[], None] | None = None, failed: Callable[[], None] | None = None) -> Step:
        return Step(self.engine.new(command, list(resources)), call, done, failed)

    def run(self, *steps: Step) -> None:
        self.engine.start(list(steps))

    def free(self, *resources: Resource) -> None:
        self.engine.check_free(*resources)

    def sync(self, call: Callable[[], None]) -> None:
        """A backend call answered in the request (writes the API answers without an action);
        a BackendError becomes a 500 server_error and the caller changes nothing."""
        from .backend import BackendError  # noqa: PLC0415 - keep the import next to its one use
        try:
            call()
        except BackendError as exc:
            raise ApiError(500, "server_error", f"backend: {exc.message} ({exc.code})") from exc

    # -- derived fields and what the machines are told -------------------------------------------
    def before(self) -> links.Snapshot:
        """Call before a change that can move servers in or out of a firewall or a load balancer."""
        return links.snapshot(self.name, self.world)

    def propagate(self, before: links.Snapshot) -> Callable[[], None]:
        """Refresh the derived fields now; return the backend calls the change needs (for a step)."""
        calls = links.backend_calls(self.backend, self.name, self.world, before)

        def run_calls() -> None:
            for func, *args in calls:
                func(*args)
        return run_calls

    def refresh(self) -> None:
        links.refresh(self.world)

    # -- addresses -----------------------------------------------------------------------------
    def used_public(self) -> set[str]:
        used = {p["ip"] for p in self.world.primary_ips}
        used |= {lb["public_net"]["ipv4"]["ip"] for lb in self.world.load_balancers}
        used |= {lb["public_net"]["ipv6"]["ip"] for lb in self.world.load_balancers}
        return used

    def _public_pools(self) -> tuple[list[ipaddress.IPv4Address], Iterator[ipaddress.IPv6Network]]:
        """The IPv4 hosts and IPv6 /64s this project's public addresses come from: the backend's
        public network after its gateway (the first host, the first /64), else the record pools."""
        subnet = self.backend.public_subnet(self.name)
        subnet6 = self.backend.public_subnet6(self.name)
        if subnet is None or subnet6 is None:
            return ([h for pool in IPV4_POOLS for h in ipaddress.ip_network(pool).hosts()],
                    ipaddress.ip_network(IPV6_POOL).subnets(new_prefix=64))
        nets6 = ipaddress.ip_network(subnet6).subnets(new_prefix=64)
        next(nets6)
        return list(ipaddress.ip_network(subnet).hosts())[1:], nets6

    def new_ipv4(self) -> str:
        used = self.used_public()
        for host in self._public_pools()[0]:
            if str(host) not in used:
                return str(host)
        raise error("resource_unavailable", "no public IPv4 address left in the sandbox's pools")

    def new_ipv6_net(self) -> str:
        used = self.used_public()
        for net in self._public_pools()[1]:
            if str(net) not in used:
                return str(net)
        raise error("resource_unavailable", "no IPv6 /64 left")

    def new_ipv6_addr(self) -> str:
        """A load balancer's single IPv6 address (the ::1 of a fresh /64)."""
        return str(next(ipaddress.ip_network(self.new_ipv6_net()).hosts()))

    def private_ips(self, network_id: int) -> Iterator[str]:
        """Every address the network's members hold (servers with alias IPs, load balancers)."""
        for server in self.world.servers:
            for entry in server["private_net"]:
                if entry["network"] == network_id:
                    yield entry["ip"]
                    yield from entry["alias_ips"]
        for lb in self.world.load_balancers:
            for entry in lb["private_net"]:
                if entry["network"] == network_id:
                    yield entry["ip"]

    def allocate_private(self, network: dict[str, Any], ip: str | None, ip_range: str | None,
                         field: str = "ip") -> str:
        """An address in one of the network's subnets; each subnet's first host is its gateway."""
        used = set(self.private_ips(network["id"]))
        subnets = [s for s in network["subnets"] if s["type"] in ("cloud", "server")]
        if ip_range is not None:
            subnets = [s for s in subnets if s["ip_range"] == ip_range]
            if not subnets:
                raise invalid("ip_range", f"network {network['id']} has no subnet {ip_range}")
        if ip is not None:
            try:
                wanted = ipaddress.ip_address(ip)
            except ValueError as exc:
                raise invalid(field, f"{ip!r} is not an IP address") from exc
            for subnet in subnets:
                net = ipaddress.ip_network(subnet["ip_range"])
                reserved = (net.network_address, net.broadcast_address, next(net.hosts()))  # .1 is the gateway
                if wanted in net and wanted not in reserved:
                    if ip in used:
                        raise error("ip_not_available", f"IP {ip} is already used in network {network['id']}")
                    return ip
            raise error("ip_not_available", f"IP {ip} is not in a subnet of network {network['id']}")
        for subnet in subnets:
            hosts = ipaddress.ip_network(subnet["ip_range"]).hosts()
            next(hosts)  # the gateway
            for host in hosts:
                if str(host) not in used:
                    return str(host)
        raise error("no_subnet_available", f"no subnet of network {network['id']} has a free address")


def rollback(*records: dict[str, Any]) -> Callable[[], None]:
    """Put the records back as they are now (a failed action's `failed`)."""
    saved = [(record, copy.deepcopy(record)) for record in records]

    def restore() -> None:
        for record, before in saved:
            record.clear()
            record.update(before)
    return restore


def then(*hooks: Callable[[], None] | None) -> Callable[[], None]:
    """Several record changes as one hook, in order."""
    def run_all() -> None:
        for hook in hooks:
            if hook is not None:
                hook()
    return run_all


Handler = Callable[..., tuple[int, Any]]
# (method, kind) -> handler(ctx, body) for POST on a collection, handler(ctx, record, body) for PUT
# and DELETE on one record; (kind, command) -> handler(ctx, record, body) for POST .../actions/<command>.
WRITES: dict[tuple[str, str], Handler] = {}
ACTIONS: dict[tuple[str, str], Handler] = {}


def write(method: str, *kinds: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        for kind in kinds:
            WRITES[(method, kind)] = func
        return func
    return register


def action(kind: str, *commands: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        for command in commands:
            ACTIONS[(kind, command)] = func
        return func
    return register
