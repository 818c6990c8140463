"""Writes of the kinds around servers: SSH keys, placement groups, networks, firewalls, volumes,
Primary IPs, plus the PUT (name, labels) and change_protection every kind shares."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
from typing import Any

from . import links
from .actions import now_iso as _now
from .context import Ctx, action, rollback, then, write
from .errors import error, invalid, not_unique, protected
from .validate import Body
from .world import primary_ip_json

NETWORK_ZONES = ("eu-central", "us-east", "us-west", "ap-southeast")
KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
PROTECTION_KEYS = {"servers": ("delete", "rebuild"), "networks": ("delete",), "volumes": ("delete",),
                   "primary_ips": ("delete",), "load_balancers": ("delete",)}
PLACEMENT_GROUP_MAX = 10


def ok(payload: dict[str, Any] | None, status: int = 200) -> tuple[int, Any]:
    return status, payload


def _singular(kind: str) -> str:
    return kind[:-1]


# -- shared: PUT name/labels, change_protection, deletes ------------------------------------------
@write("PUT", "ssh_keys", "networks", "firewalls", "placement_groups", "volumes", "primary_ips", "load_balancers",
       "servers")
def update(ctx: Ctx, kind: str, record: dict[str, Any], body: Body) -> tuple[int, Any]:
    """Name and labels (labels replace the old ones entirely, as in the API)."""
    name = body.hostname("name") if kind == "servers" and body.has("name") else body.str("name")
    labels = body.labels()
    if name is not None:
        ctx.check_name(kind, name, record["id"])
    before = ctx.before()
    if name is not None:
        record["name"] = name
    if labels is not None:
        record["labels"] = labels
    if kind == "networks" and body.has("expose_routes_to_vswitch"):
        record["expose_routes_to_vswitch"] = body.bool("expose_routes_to_vswitch")
    calls = ctx.propagate(before)
    if kind == "servers" and labels is not None:
        ctx.engine.background([("server", record["id"])], calls)
    return ok({_singular(kind): ctx.show(kind, record)})


@action("servers", "change_protection")
@action("networks", "change_protection")
@action("volumes", "change_protection")
@action("primary_ips", "change_protection")
@action("load_balancers", "change_protection")
def change_protection(ctx: Ctx, record: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    flags = dict(record["protection"])
    for key in PROTECTION_KEYS[kind]:
        value = body.bool(key)
        if value is not None:
            flags[key] = value
    if kind == "servers" and flags["delete"] != flags["rebuild"]:
        raise invalid("rebuild", "delete and rebuild protection must be set together")
    undo = rollback(record)
    record["protection"] = flags
    step = ctx.action(command, (_singular(kind), record["id"]), failed=undo)
    ctx.run(step)
    return ok({"action": step.action}, 201)


def check_delete(ctx: Ctx, kind: str, record: dict[str, Any]) -> None:
    if record.get("protection", {}).get("delete"):
        raise protected(_singular(kind), record["id"], "deletion")
    ctx.free((_singular(kind), record["id"]))


def remove(ctx: Ctx, kind: str, record: dict[str, Any]) -> None:
    getattr(ctx.world, kind).remove(record)
    ctx.world.internal.get(kind, {}).pop(str(record["id"]), None)


# -- SSH keys ------------------------------------------------------------------------------------
def fingerprint(public_key: str) -> str:
    """MD5 of the key's base64 blob as colon-separated hex (what the API shows); 422 when the
    text is not an OpenSSH public key."""
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise invalid("public_key", "is not a valid SSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("public_key", "is not a valid SSH public key") from exc
    length = int.from_bytes(blob[:4], "big")
    if blob[4:4 + length].decode(errors="replace") != parts[0]:
        raise invalid("public_key", "is not a valid SSH public key")
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 - the API's fingerprint format, not security
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


@write("POST", "ssh_keys")
def create_ssh_key(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.str("name", required=True)
    public_key = body.str("public_key", required=True)
    labels = body.labels() or {}
    print_ = fingerprint(public_key)
    ctx.check_name("ssh_keys", name)
    if any(k["fingerprint"] == print_ for k in ctx.world.ssh_keys):
        raise not_unique("public_key", "SSH key with the same fingerprint already exists")
    key = {"id": ctx.world.next_id(), "name": name, "fingerprint": print_, "public_key": public_key.strip(),
           "labels": labels, "created": _now()}
    ctx.world.ssh_keys.append(key)
    return ok({"ssh_key": key}, 201)


@write("DELETE", "ssh_keys", "placement_groups")
def delete_simple(ctx: Ctx, kind: str, record: dict[str, Any], body: Body) -> tuple[int, Any]:
    """Kinds the backend knows nothing of: the record goes at once (204, as the API)."""
    if kind == "placement_groups" and record["servers"]:
        raise error("resource_in_use", f"placement group {record['id']} still holds servers")
    remove(ctx, kind, record)
    return ok(None, 204)


# -- placement groups ----------------------------------------------------------------------------
@write("POST", "placement_groups")
def create_placement_group(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.str("name", required=True)
    body.str("type", required=True, choices=("spread",))
    labels = body.labels() or {}
    ctx.check_name("placement_groups", name)
    group = {"id": ctx.world.next_id(), "name": name, "type": "spread", "labels": labels, "servers": [],
             "created": _now()}
    ctx.world.placement_groups.append(group)
    return ok({"placement_group": group, "action": None}, 201)


def join_placement_group(group: dict[str, Any], server_id: int) -> None:
    """A spread group holds at most 10 servers (422 placement_error beyond)."""
    if len(group["servers"]) >= PLACEMENT_GROUP_MAX:
        raise error("placement_error", f"placement group {group['id']} already holds {PLACEMENT_GROUP_MAX} servers")
    group["servers"].append(server_id)


# -- networks ------------------------------------------------------------------------------------
def _net(value: Any, field: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value)
    except (TypeError, ValueError) as exc:
        raise invalid(field, f"{value!r} is not an IP range in CIDR notation") from exc
    if not isinstance(net, ipaddress.IPv4Network) or not net.is_private:
        raise invalid(field, "must be a private IPv4 range (RFC 1918)")
    return net


def parse_subnet(ctx: Ctx, network: dict[str, Any], sub: Body, taken: list[str]) -> dict[str, Any]:
    """A subnet inside the network, overlapping no other; a missing ip_range gets the next free /24."""
    kind = sub.str("type", required=True, choices=("cloud", "server", "vswitch"))
    zone = sub.str("network_zone", required=True, choices=NETWORK_ZONES)
    outer = ipaddress.ip_network(network["ip_range"])
    others = [ipaddress.ip_network(r) for r in taken]
    if sub.has("ip_range"):
        net = _net(sub.data["ip_range"], sub.field("ip_range"))
        if not net.subnet_of(outer):
            raise invalid(sub.field("ip_range"), f"must lie inside the network's {network['ip_range']}")
        if any(net.overlaps(o) for o in others):
            raise invalid(sub.field("ip_range"), "overlaps another subnet")
    else:
        free = [n for n in outer.subnets(new_prefix=max(24, outer.prefixlen)) if not any(n.overlaps(o) for o in others)]
        if not free:
            raise invalid(sub.field("ip_range"), "no free /24 left in the network")
        net = free[0]
    vswitch = sub.int("vswitch_id") if kind == "vswitch" else None
    return {"type": kind, "ip_range": str(net), "network_zone": zone, "gateway": str(next(net.hosts())),
            "vswitch_id": vswitch}


def parse_route(network: dict[str, Any], route: Body) -> dict[str, Any]:
    destination = _net(route.data.get("destination"), route.field("destination")) \
        if route.has("destination") else None
    if destination is None:
        raise invalid(route.field("destination"), "is required")
    try:
        gateway = ipaddress.ip_address(route.str("gateway", required=True))
    except ValueError as exc:
        raise invalid(route.field("gateway"), "is not an IP address") from exc
    if gateway not in ipaddress.ip_network(network["ip_range"]):
        raise invalid(route.field("gateway"), f"must lie inside the network's {network['ip_range']}")
    return {"destination": str(destination), "gateway": str(gateway)}


@write("POST", "networks")
def create_network(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.str("name", required=True)
    ip_range = str(_net(body.str("ip_range", required=True), "ip_range"))
    labels = body.labels() or {}
    ctx.check_name("networks", name)
    network = {"id": 0, "name": name, "ip_range": ip_range, "subnets": [], "routes": [], "servers": [],
               "load_balancers": [], "protection": {"delete": False}, "labels": labels, "created": _now(),
               "expose_routes_to_vswitch": bool(body.bool("expose_routes_to_vswitch", False))}
    for sub in body.items("subnets"):
        network["subnets"].append(parse_subnet(ctx, network, sub, [s["ip_range"] for s in network["subnets"]]))
    network["routes"] = [parse_route(network, r) for r in body.items("routes")]
    network["id"] = ctx.world.next_id()
    ctx.sync(lambda: ctx.backend.create_network(ctx.name, network["id"], ip_range,
                                                [s["ip_range"] for s in network["subnets"]]))
    ctx.world.networks.append(network)
    return ok({"network": network}, 201)


@write("DELETE", "networks")
def delete_network(ctx: Ctx, kind: str, network: dict[str, Any], body: Body) -> tuple[int, Any]:
    """Attached servers are detached first (the API does it in the background)."""
    check_delete(ctx, kind, network)
    if network["load_balancers"]:
        raise error("resource_in_use", f"network {network['id']} still has load balancers attached")
    members = [s for s in ctx.world.servers if any(e["network"] == network["id"] for e in s["private_net"])]
    ctx.free(*[("server", s["id"]) for s in members])

    def detach_all_then_delete() -> None:
        for server in members:
            ctx.backend.detach_network(ctx.name, server["id"], network["id"])
        ctx.backend.delete_network(ctx.name, network["id"])
    ctx.sync(detach_all_then_delete)
    for server in members:
        server["private_net"] = [e for e in server["private_net"] if e["network"] != network["id"]]
    remove(ctx, kind, network)
    ctx.refresh()
    return ok(None, 204)


def network_action(ctx: Ctx, network: dict[str, Any], command: str) -> tuple[int, Any]:
    """Subnets, routes and the range are records only (the backend's network keeps its range)."""
    step = ctx.action(command, ("network", network["id"]), failed=rollback(network))
    ctx.run(step)
    return ok({"action": step.action}, 201)


@action("networks", "add_subnet")
def add_subnet(ctx: Ctx, network: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    ctx.free(("network", network["id"]))
    subnet = parse_subnet(ctx, network, body, [s["ip_range"] for s in network["subnets"]])
    answer = network_action(ctx, network, command)
    network["subnets"].append(subnet)
    return answer


@action("networks", "delete_subnet")
def delete_subnet(ctx: Ctx, network: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    ctx.free(("network", network["id"]))
    ip_range = body.str("ip_range", required=True)
    match = [s for s in network["subnets"] if s["ip_range"] == ip_range]
    if not match:
        raise invalid("ip_range", f"network {network['id']} has no subnet {ip_range}")
    net = ipaddress.ip_network(ip_range)
    if any(ipaddress.ip_address(ip) in net for ip in ctx.private_ips(network["id"])):
        raise invalid("ip_range", "servers or load balancers still hold addresses in this subnet")
    answer = network_action(ctx, network, command)
    network["subnets"].remove(match[0])
    return answer


@action("networks", "add_route", "delete_route")
def change_route(ctx: Ctx, network: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    ctx.free(("network", network["id"]))
    route = parse_route(network, body)
    if command == "delete_route" and route not in network["routes"]:
        raise invalid("destination", "no such route")
    if command == "add_route" and any(r["destination"] == route["destination"] for r in network["routes"]):
        raise invalid("destination", "a route to this destination exists")
    answer = network_action(ctx, network, command)
    if command == "add_route":
        network["routes"].append(route)
    else:
        network["routes"].remove(route)
    return answer


@action("networks", "change_ip_range")
def change_ip_range(ctx: Ctx, network: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    """Only growing is possible: the new range must contain the old one."""
    ctx.free(("network", network["id"]))
    new = _net(body.str("ip_range", required=True), "ip_range")
    if not ipaddress.ip_network(network["ip_range"]).subnet_of(new):
        raise invalid("ip_range", f"must contain the current range {network['ip_range']}")
    answer = network_action(ctx, network, command)
    network["ip_range"] = str(new)
    return answer


# -- firewalls -----------------------------------------------------------------------------------
def _cidrs(rule: Body, field: str) -> list[str]:
    result = []
    for index, value in enumerate(rule.list(field)):
        try:
            result.append(str(ipaddress.ip_network(value, strict=False)))
        except (TypeError, ValueError) as exc:
            raise invalid(f"{rule.field(field)}[{index}]", f"{value!r} is not an IP network") from exc
    return result


def parse_rule(rule: Body) -> dict[str, Any]:
    direction = rule.str("direction", required=True, choices=("in", "out"))
    protocol = rule.str("protocol", required=True, choices=("tcp", "udp", "icmp", "esp", "gre"))
    port = rule.str("port")
    if protocol in ("tcp", "udp"):
        if port is None:
            raise invalid(rule.field("port"), f"is required for protocol {protocol}")
        low, _sep, high = port.partition("-")
        if port != "any" and not (low.isdigit() and (not high or high.isdigit())
                                  and 1 <= int(low) <= int(high or low) <= 65535):
            raise invalid(rule.field("port"), "must be a port (1-65535), a range \"80-85\" or \"any\"")
    elif port is not None:
        raise invalid(rule.field("port"), f"is not allowed for protocol {protocol}")
    sources, destinations = _cidrs(rule, "source_ips"), _cidrs(rule, "destination_ips")
    if direction == "in" and (not sources or destinations):
        raise invalid(rule.field("source_ips"), "an inbound rule needs source_ips and no destination_ips")
    if direction == "out" and (not destinations or sources):
        raise invalid(rule.field("destination_ips"), "an outbound rule needs destination_ips and no source_ips")
    return {"direction": direction, "protocol": protocol, "port": port, "source_ips": sources,
            "destination_ips": destinations, "description": rule.data.get("description")}


def parse_targets(ctx: Ctx, firewall: dict[str, Any], entries: list[Body], adding: bool) -> list[dict[str, Any]]:
    """apply_to / remove_from entries as applied_to records; 422 with the API's codes."""
    result = []
    for entry in entries:
        kind = entry.str("type", required=True, choices=("server", "label_selector"))
        if kind == "server":
            server_id = (entry.obj("server", required=True) or Body({})).int("id", required=True)
            server = next((s for s in ctx.world.servers if s["id"] == server_id), None)
            if server is None:
                raise error("firewall_resource_not_found", f"server {server_id} not found")
            if adding and not links.has_public(server):
                raise error("private_net_only_server", f"server {server_id} has no public interface")
            record = {"type": "server", "server": {"id": server_id}}
        else:
            expr = (entry.obj("label_selector", required=True) or Body({})).str("selector", required=True)
            try:
                links.selector.parse(expr)
            except links.selector.SelectorError as exc:
                raise invalid(entry.field("label_selector.selector"), str(exc)) from exc
            record = {"type": "label_selector", "label_selector": {"selector": expr}, "applied_to_resources": []}
        if adding and _same_target(record) in [_same_target(a) for a in firewall["applied_to"]]:
            raise error("firewall_already_applied", f"firewall {firewall['id']} is already applied there")
        result.append(record)
    return result


def _same_target(entry: dict[str, Any]) -> tuple[str, Any]:
    return (entry["type"], entry["server"]["id"] if entry["type"] == "server" else entry["label_selector"]["selector"])


def _target_resources(entry: dict[str, Any], firewall_id: int) -> tuple[tuple[str, int], ...]:
    if entry["type"] == "server":
        return (("firewall", firewall_id), ("server", entry["server"]["id"]))
    return (("firewall", firewall_id),)


@write("POST", "firewalls")
def create_firewall(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.str("name", required=True)
    labels = body.labels() or {}
    rules = [parse_rule(r) for r in body.items("rules")]
    ctx.check_name("firewalls", name)
    firewall = {"id": ctx.world.next_id(), "name": name, "labels": labels, "rules": rules, "applied_to": [],
                "created": _now()}
    targets = parse_targets(ctx, firewall, body.items("apply_to"), adding=True)
    for target in targets:
        ctx.free(*_target_resources(target, firewall["id"])[1:])
    before = ctx.before()
    ctx.world.firewalls.append(firewall)
    firewall["applied_to"] = targets
    steps = [ctx.action("set_firewall_rules", ("firewall", firewall["id"]))]
    steps += [ctx.action("apply_firewall", *_target_resources(t, firewall["id"])) for t in targets]
    steps[-1].call = ctx.propagate(before)
    ctx.run(*steps)
    return ok({"firewall": firewall, "actions": [s.action for s in steps]}, 201)


@write("DELETE", "firewalls")
def delete_firewall(ctx: Ctx, kind: str, firewall: dict[str, Any], body: Body) -> tuple[int, Any]:
    if firewall["applied_to"]:
        raise error("resource_in_use", f"firewall {firewall['id']} is still applied; remove it from its resources")
    ctx.free(("firewall", firewall["id"]))
    remove(ctx, kind, firewall)
    return ok(None, 204)


@action("firewalls", "set_rules")
def set_rules(ctx: Ctx, firewall: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    rules = [parse_rule(r) for r in body.items("rules")]
    ctx.free(("firewall", firewall["id"]))
    undo = rollback(firewall)
    before = ctx.before()
    firewall["rules"] = rules
    step = ctx.action("set_firewall_rules", ("firewall", firewall["id"]), call=ctx.propagate(before),
                      failed=then(undo, ctx.refresh))
    ctx.run(step)
    return ok({"actions": [step.action]}, 201)


@action("firewalls", "apply_to_resources", "remove_from_resources")
def apply_firewall(ctx: Ctx, firewall: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    adding = command == "apply_to_resources"
    field = "apply_to" if adding else "remove_from"
    targets = parse_targets(ctx, firewall, body.items(field, required=True), adding=adding)
    for target in targets:
        ctx.free(*_target_resources(target, firewall["id"]))
    undo = rollback(firewall)
    before = ctx.before()
    if adding:
        firewall["applied_to"].extend(targets)
    else:
        gone = [_same_target(t) for t in targets]
        firewall["applied_to"] = [a for a in firewall["applied_to"] if _same_target(a) not in gone]
    verb = "apply_firewall" if adding else "remove_firewall"
    steps = [ctx.action(verb, *_target_resources(t, firewall["id"])) for t in targets]
    if steps:
        steps[-1].call = ctx.propagate(before)
        for step in steps:
            step.failed = then(undo, ctx.refresh)
        ctx.run(*steps)
    return ok({"actions": [s.action for s in steps]}, 201)


# -- volumes -------------------------------------------------------------------------------------
def mount_path(volume_id: int) -> str:
    return f"/mnt/HC_Volume_{volume_id}"


def attach_step(ctx: Ctx, volume: dict[str, Any], server: dict[str, Any], automount: bool) -> Any:
    """Attach (the record at once; the machine in the step). The mount path is the one the API's
    automount uses; without automount the backend still gets it (where to make the disk visible)."""
    undo = rollback(volume, server)
    volume["server"] = server["id"]
    server["volumes"].append(volume["id"])
    ctx.world.private("volumes", volume["id"])["automount"] = automount
    return ctx.action("attach_volume", ("volume", volume["id"]), ("server", server["id"]),
                      call=lambda: ctx.backend.attach_volume(ctx.name, volume["id"], server["id"],
                                                             mount_path(volume["id"])),
                      failed=undo)


def check_attachable(volume: dict[str, Any], server: dict[str, Any]) -> None:
    if volume["server"] is not None:
        raise error("volume_already_attached", f"volume {volume['id']} is attached to server {volume['server']}")
    if volume["location"]["name"] != server["location"]["name"]:
        raise invalid("server", f"server {server['id']} is in {server['location']['name']}, "
                                f"the volume in {volume['location']['name']}")


@write("POST", "volumes")
def create_volume(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.str("name", required=True)
    size = body.int("size", required=True)
    if size < 10 or size > 10240:
        raise invalid("size", "must be between 10 and 10240 (GB)")
    labels = body.labels() or {}
    fmt = body.str("format", choices=("xfs", "ext4"))
    automount = bool(body.bool("automount", False))
    server = ctx.ref("servers", body.ref("server"), "server") if body.has("server") else None
    if server is None and not body.has("location"):
        raise invalid("location", "location or server is required")
    if automount and server is None:
        raise invalid("automount", "needs a server")
    location = server["location"] if server is not None else ctx.location(body.ref("location"))
    ctx.check_name("volumes", name)
    volume_id = ctx.world.next_id()
    volume = {"id": volume_id, "created": _now(), "name": name, "server": None, "location": location, "size": size,
              "linux_device": f"/dev/disk/by-id/scsi-0HC_Volume_{volume_id}", "protection": {"delete": False},
              "labels": labels, "status": "creating", "format": fmt}
    if server is not None:
        ctx.free(("server", server["id"]))
    ctx.world.volumes.append(volume)
    create = ctx.action("create_volume", ("volume", volume_id),
                        call=lambda: ctx.backend.create_volume(ctx.name, volume_id, size, fmt),
                        done=lambda: volume.update(status="available"),
                        failed=lambda: volume.update(status="available"))
    steps = [create] + ([attach_step(ctx, volume, server, automount)] if server is not None else [])
    ctx.run(*steps)
    return ok({"volume": volume, "action": create.action, "next_actions": [s.action for s in steps[1:]]}, 201)


@write("DELETE", "volumes")
def delete_volume(ctx: Ctx, kind: str, volume: dict[str, Any], body: Body) -> tuple[int, Any]:
    check_delete(ctx, kind, volume)
    if volume["server"] is not None:
        raise error("resource_in_use", f"volume {volume['id']} is attached to server {volume['server']}; detach it")
    ctx.sync(lambda: ctx.backend.delete_volume(ctx.name, volume["id"]))
    remove(ctx, kind, volume)
    return ok(None, 204)


@action("volumes", "attach")
def attach_volume(ctx: Ctx, volume: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    server = ctx.ref("servers", body.int("server", required=True), "server")
    automount = bool(body.bool("automount", False))
    ctx.free(("volume", volume["id"]), ("server", server["id"]))
    check_attachable(volume, server)
    step = attach_step(ctx, volume, server, automount)
    ctx.run(step)
    return ok({"action": step.action}, 201)


def detach_step(ctx: Ctx, volume: dict[str, Any]) -> Any:
    server = ctx.get("servers", volume["server"])
    undo = rollback(volume, server)
    volume["server"] = None
    server["volumes"].remove(volume["id"])
    return ctx.action("detach_volume", ("volume", volume["id"]), ("server", server["id"]),
                      call=lambda: ctx.backend.detach_volume(ctx.name, volume["id"], server["id"]), failed=undo)


@action("volumes", "detach")
def detach_volume(ctx: Ctx, volume: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    if volume["server"] is None:
        raise invalid("server", f"volume {volume['id']} is not attached")
    ctx.free(("volume", volume["id"]), ("server", volume["server"]))
    step = detach_step(ctx, volume)
    ctx.run(step)
    return ok({"action": step.action}, 201)


@action("volumes", "resize")
def resize_volume(ctx: Ctx, volume: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    """Only growing (the API refuses to shrink); record only: the backend's directory has no size."""
    size = body.int("size", required=True)
    if size <= volume["size"] or size > 10240:
        raise invalid("size", f"must be larger than the current {volume['size']} GB and at most 10240")
    ctx.free(("volume", volume["id"]))
    undo = rollback(volume)
    volume["size"] = size
    step = ctx.action("resize_volume", ("volume", volume["id"]), failed=undo)
    ctx.run(step)
    return ok({"action": step.action}, 201)


# -- Primary IPs ---------------------------------------------------------------------------------
def assign_primary(server: dict[str, Any], primary: dict[str, Any]) -> None:
    primary["assignee_id"] = server["id"]
    ptr = primary["dns_ptr"][0]["dns_ptr"] if primary["dns_ptr"] else None
    if primary["type"] == "ipv4":
        server["public_net"]["ipv4"] = {"id": primary["id"], "ip": primary["ip"], "blocked": False,
                                        "dns_ptr": ptr or f"static.{'.'.join(reversed(primary['ip'].split('.')))}"
                                                          ".clients.your-server.de"}
    else:
        server["public_net"]["ipv6"] = {"id": primary["id"], "ip": primary["ip"], "blocked": False,
                                        "dns_ptr": list(primary["dns_ptr"])}


def check_assignable(primary: dict[str, Any], server: dict[str, Any], when_running: bool = False) -> None:
    if primary["assignee_id"] is not None:
        raise error("primary_ip_already_assigned", f"primary IP {primary['id']} is assigned to server "
                                                   f"{primary['assignee_id']}")
    if server["public_net"][primary["type"]] is not None:
        raise error(f"server_has_{primary['type']}", f"server {server['id']} already has an {primary['type']} address")
    if primary["location"]["name"] != server["location"]["name"]:
        raise error("primary_ip_datacenter_mismatch", f"primary IP {primary['id']} is in "
                                                      f"{primary['location']['name']}, the server is not")
    if not when_running and server["status"] != "off":
        raise error("server_not_stopped", f"server {server['id']} must be powered off")


def new_primary_ip(ctx: Ctx, ip_type: str, location: dict[str, Any], name: str | None = None,
                   auto_delete: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    ip_id = ctx.world.next_id()
    ip = ctx.new_ipv4() if ip_type == "ipv4" else ctx.new_ipv6_net()
    record = primary_ip_json(ip_id=ip_id, name=name or f"primary_ip-{ip_id}", ip=ip, ip_type=ip_type,
                             location=location, assignee_id=None, auto_delete=auto_delete, labels=labels,
                             created=_now())
    ctx.world.primary_ips.append(record)
    return record


@write("POST", "primary_ips")
def create_primary_ip(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.str("name", required=True)
    ip_type = body.str("type", required=True, choices=("ipv4", "ipv6"))
    labels = body.labels() or {}
    auto_delete = bool(body.bool("auto_delete", False))
    body.str("assignee_type", choices=("server",))
    server = ctx.ref("servers", body.int("assignee_id"), "assignee_id") if body.has("assignee_id") else None
    if body.has("datacenter"):
        location = ctx.datacenter_location(body.ref("datacenter"))
    elif body.has("location"):
        location = ctx.location(body.ref("location"))
    elif server is not None:
        location = server["location"]
    else:
        raise invalid("location", "location or assignee_id is required")
    ctx.check_name("primary_ips", name)
    if server is not None:
        ctx.free(("server", server["id"]))
        probe = {"assignee_id": None, "type": ip_type, "location": location, "id": 0}
        check_assignable(probe, server)
    primary = new_primary_ip(ctx, ip_type, location, name, auto_delete, labels)
    act = None
    if server is not None:
        undo = rollback(primary, server)
        assign_primary(server, primary)
        step = ctx.action("assign_primary_ip", ("primary_ip", primary["id"]), ("server", server["id"]), failed=undo)
        ctx.run(step)
        act = step.action
    return ok({"primary_ip": ctx.show("primary_ips", primary), "action": act}, 201)


@write("DELETE", "primary_ips")
def delete_primary_ip(ctx: Ctx, kind: str, primary: dict[str, Any], body: Body) -> tuple[int, Any]:
    """An assigned one can go only while its server is off (it is unassigned first)."""
    check_delete(ctx, kind, primary)
    if primary["assignee_id"] is not None:
        server = ctx.get("servers", primary["assignee_id"])
        if server["status"] != "off":
            raise error("server_not_stopped", f"server {server['id']} must be powered off to delete its primary IP")
        ctx.free(("server", server["id"]))
        server["public_net"][primary["type"]] = None
    remove(ctx, kind, primary)
    return ok(None, 204)


@action("primary_ips", "assign")
def assign_primary_ip(ctx: Ctx, primary: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    """Record only: the backend keeps the machine's address until a rebuild."""
    body.str("assignee_type", choices=("server",))
    server = ctx.ref("servers", body.int("assignee_id", required=True), "assignee_id")
    ctx.free(("primary_ip", primary["id"]), ("server", server["id"]))
    check_assignable(primary, server)
    undo = rollback(primary, server)
    assign_primary(server, primary)
    step = ctx.action("assign_primary_ip", ("primary_ip", primary["id"]), ("server", server["id"]), failed=undo)
    ctx.run(step)
    return ok({"action": step.action}, 201)


@action("primary_ips", "unassign")
def unassign_primary_ip(ctx: Ctx, primary: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    if primary["assignee_id"] is None:
        raise invalid("assignee_id", f"primary IP {primary['id']} is not assigned")
    server = ctx.get("servers", primary["assignee_id"])
    if server["status"] != "off":
        raise error("server_not_stopped", f"server {server['id']} must be powered off")
    ctx.free(("primary_ip", primary["id"]), ("server", server["id"]))
    undo = rollback(primary, server)
    primary["assignee_id"] = None
    server["public_net"][primary["type"]] = None
    step = ctx.action("unassign_primary_ip", ("primary_ip", primary["id"]), ("server", server["id"]), failed=undo)
    ctx.run(step)
    return ok({"action": step.action}, 201)


@action("primary_ips", "change_dns_ptr")
def primary_dns_ptr(ctx: Ctx, primary: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    ip = body.str("ip", required=True)
    ptr = body.str("dns_ptr")
    ctx.free(("primary_ip", primary["id"]))
    server = ctx.get("servers", primary["assignee_id"]) if primary["assignee_id"] is not None else None
    undo = rollback(primary, *([server] if server else []))
    set_dns_ptr(primary, server, ip, ptr)
    step = ctx.action("change_dns_ptr", ("primary_ip", primary["id"]), failed=undo)
    ctx.run(step)
    return ok({"action": step.action}, 201)


def set_dns_ptr(primary: dict[str, Any], server: dict[str, Any] | None, ip: str, ptr: str | None) -> None:
    """The reverse DNS entry of an address of the Primary IP (an address inside the /64 for ipv6)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError as exc:
        raise invalid("ip", f"{ip!r} is not an IP address") from exc
    if address not in ipaddress.ip_network(primary["ip"]):
        raise invalid("ip", f"{ip} is not an address of primary IP {primary['id']}")
    entries = [e for e in primary["dns_ptr"] if e["ip"] != ip]
    if ptr is not None:
        entries.append({"ip": ip, "dns_ptr": ptr})
    primary["dns_ptr"] = entries
    if server is not None:
        if primary["type"] == "ipv4":
            server["public_net"]["ipv4"]["dns_ptr"] = ptr or ""
        else:
            server["public_net"]["ipv6"]["dns_ptr"] = list(entries)
