"""Server writes: create (with keys, networks, firewalls, volumes, Primary IPs, placement), delete,
and the server actions. Statuses follow the machine: `initializing` -> `starting` -> `running` on
create, `stopping` -> `off` on poweroff/shutdown, `rebuilding` -> `running` on rebuild."""

from __future__ import annotations

import secrets
from typing import Any

from . import links
from .actions import now_iso as _now
from .backend import ServerSpec
from .context import Ctx, action, rollback, then, write
from .errors import error, invalid, protected
from .resources import (assign_primary, attach_step, check_assignable, check_attachable, check_delete,
                        new_primary_ip, ok, set_dns_ptr)
from .validate import Body
from .world import server_json

USER_DATA_MAX = 32 * 1024


def _image(ctx: Ctx, ref: Any, architecture: str) -> dict[str, Any]:
    """An image by ID, or by name in the server type's architecture."""
    candidates = [i for i in ctx.world.images
                  if i["id"] == ref or (isinstance(ref, str) and (i["name"] == ref or str(i["id"]) == ref))]
    if not candidates:
        raise invalid("image", f"image {ref!r} not found")
    for image in candidates:
        if image["architecture"] == architecture:
            return image
    raise invalid("image", f"image {ref!r} is for {candidates[0]['architecture']}, "
                           f"the server type is {architecture}")


def spec(ctx: Ctx, server: dict[str, Any]) -> ServerSpec:
    """What the backend needs to boot the server as the record describes it now."""
    hidden = ctx.world.private("servers", server["id"])
    ipv4, ipv6 = server["public_net"]["ipv4"], server["public_net"]["ipv6"]
    return ServerSpec(project=ctx.name, server_id=server["id"], name=server["name"],
                      image=server["image"]["name"] if server["image"] else "",
                      ssh_keys=list(hidden.get("ssh_keys", [])), user_data=hidden.get("user_data"),
                      public_ipv4=ipv4["ip"] if ipv4 else None,
                      public_ipv6=ipv6["ip"].split("/")[0] + "1" if ipv6 else None,
                      private=[(e["network"], e["ip"]) for e in server["private_net"]],
                      labels=dict(server["labels"]))


def private_entry(server_id: int, network_id: int, ip: str, alias_ips: list[str], index: int) -> dict[str, Any]:
    return {"network": network_id, "ip": ip, "alias_ips": alias_ips,
            "mac_address": f"86:00:00:{(server_id >> 8) & 0xff:02x}:{server_id & 0xff:02x}:{index:02x}"}


def _public(ctx: Ctx, body: Body, location: dict[str, Any]) -> tuple[Any, Any, bool, bool]:
    """(ipv4 Primary IP or None, ipv6 one or None, enable_ipv4, enable_ipv6) from public_net."""
    public = body.obj("public_net") or Body({}, "public_net.")
    enable4, enable6 = public.bool("enable_ipv4", True), public.bool("enable_ipv6", True)
    chosen = []
    for ip_type, enabled in (("ipv4", enable4), ("ipv6", enable6)):
        if not public.has(ip_type):
            chosen.append(None)
            continue
        if not enabled:
            raise invalid(public.field(ip_type), f"given while enable_{ip_type} is false")
        primary = ctx.ref("primary_ips", public.ref(ip_type), public.field(ip_type))
        if primary["type"] != ip_type:
            raise error("primary_ip_version_mismatch", f"primary IP {primary['id']} is not {ip_type}")
        probe = {"id": 0, "name": "", "status": "off", "location": location, "public_net": {"ipv4": None, "ipv6": None}}
        check_assignable(primary, probe, when_running=True)
        chosen.append(primary)
    return chosen[0], chosen[1], enable4, enable6


@write("POST", "servers")
def create_server(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.hostname("name")
    server_type = ctx.ref("server_types", body.ref("server_type", required=True), "server_type")
    image = _image(ctx, body.ref("image", required=True), server_type["architecture"])
    if body.has("datacenter"):
        location = ctx.datacenter_location(body.ref("datacenter"))
    else:
        location = ctx.location(body.ref("location") or "fsn1")
    keys = [ctx.ref("ssh_keys", ref, "ssh_keys") for ref in body.list("ssh_keys")]
    networks = [ctx.ref("networks", ref, "networks") for ref in body.list("networks")]
    firewalls = [ctx.ref("firewalls", (f.int("firewall", required=True)), "firewalls") for f in body.items("firewalls")]
    group = ctx.ref("placement_groups", body.ref("placement_group"), "placement_group") \
        if body.has("placement_group") else None
    volumes = [ctx.ref("volumes", ref, "volumes") for ref in body.list("volumes")]
    labels = body.labels() or {}
    user_data = body.str("user_data")
    if user_data is not None and len(user_data.encode()) > USER_DATA_MAX:
        raise invalid("user_data", "is longer than 32 KiB")
    automount = bool(body.bool("automount", False))
    start = body.bool("start_after_create", True)
    primary4, primary6, enable4, enable6 = _public(ctx, body, location)
    if not (enable4 or enable6 or networks):
        raise invalid("networks", "a server without public IPs needs at least one network")
    ctx.check_name("servers", name)
    probe = {"location": location}
    for volume in volumes:
        check_attachable(volume, probe)
        ctx.free(("volume", volume["id"]))
    if group is not None and len(group["servers"]) >= 10:
        raise error("placement_error", f"placement group {group['id']} already holds 10 servers")
    for net in networks:
        ctx.free(("network", net["id"]))

    before = ctx.before()
    server_id = ctx.world.next_id()
    server = server_json(server_id=server_id, name=name, status="initializing", location=location["name"],
                         server_type=server_type["name"], image=image["name"], labels=labels, created=_now())
    ctx.world.servers.append(server)
    ctx.world.private("servers", server_id).update(
        user_data=user_data, ssh_keys=[k["public_key"] for k in keys], rescue=None)
    for ip_type, primary, enabled in (("ipv4", primary4, enable4), ("ipv6", primary6, enable6)):
        if enabled:
            assign_primary(server, primary or new_primary_ip(ctx, ip_type, location))
    for index, net in enumerate(networks):
        ip = ctx.allocate_private(net, None, None, "networks")
        server["private_net"].append(private_entry(server_id, net["id"], ip, [], index))
        net["servers"].append(server_id)
    for firewall in firewalls:
        firewall["applied_to"].append({"type": "server", "server": {"id": server_id}})
    if group is not None:
        group["servers"].append(server_id)
    propagate = ctx.propagate(before)
    boot = spec(ctx, server)

    def create_machine() -> None:
        ctx.backend.create_server(boot)
        if not start:
            ctx.backend.power_off(ctx.name, server_id, False)
        propagate()
    steps = [ctx.action("create_server", ("server", server_id), call=create_machine,
                        done=lambda: server.update(status="starting" if start else "off"),
                        failed=lambda: server.update(status="off"))]
    steps += [attach_step(ctx, volume, server, automount) for volume in volumes]
    if start:
        steps.append(ctx.action("start_server", ("server", server_id),
                                call=lambda: ctx.backend.power_on(ctx.name, server_id),
                                done=lambda: server.update(status="running"),
                                failed=lambda: server.update(status="off")))
    ctx.run(*steps)
    return ok({"server": ctx.show("servers", server), "action": steps[0].action,
               "next_actions": [s.action for s in steps[1:]],
               "root_password": None if keys else secrets.token_urlsafe(12)}, 201)


@write("DELETE", "servers")
def delete_server(ctx: Ctx, kind: str, server: dict[str, Any], body: Body) -> tuple[int, Any]:
    """The record goes when the action ends; its auto_delete Primary IPs go with it, volumes are
    detached (their data stays), load balancers drop it as a target."""
    check_delete(ctx, kind, server)
    server_id = server["id"]
    attached = list(server["volumes"])
    targeted = [lb for lb in ctx.world.load_balancers if lb["id"] in server["load_balancers"]]

    def remove_machine() -> None:
        for volume_id in attached:
            ctx.backend.detach_volume(ctx.name, volume_id, server_id)
        ctx.backend.delete_server(ctx.name, server_id)
        with ctx.project.lock:
            specs = [links.lb_spec(ctx.name, ctx.world, lb) for lb in targeted]
        for lb_spec in specs:
            lb_spec.targets = [t for t in lb_spec.targets if t["server_id"] != server_id]
            ctx.backend.apply_load_balancer(lb_spec)
    step = ctx.action("delete_server", ("server", server_id), call=remove_machine,
                      done=lambda: forget_server(ctx, server))
    ctx.run(step)
    return ok({"action": step.action})


def forget_server(ctx: Ctx, server: dict[str, Any]) -> None:
    world, server_id = ctx.world, server["id"]
    for net in world.networks:
        if server_id in net["servers"]:
            net["servers"].remove(server_id)
    for group in world.placement_groups:
        if server_id in group["servers"]:
            group["servers"].remove(server_id)
    for volume in world.volumes:
        if volume["server"] == server_id:
            volume["server"] = None
    for primary in list(world.primary_ips):
        if primary["assignee_id"] == server_id:
            if primary["auto_delete"]:
                world.primary_ips.remove(primary)
            else:
                primary["assignee_id"] = None
    for firewall in world.firewalls:
        firewall["applied_to"] = [a for a in firewall["applied_to"]
                                  if not (a["type"] == "server" and a["server"]["id"] == server_id)]
    for lb in world.load_balancers:
        lb["targets"] = [t for t in lb["targets"] if not (t["type"] == "server" and t["server"]["id"] == server_id)]
    if server in world.servers:
        world.servers.remove(server)
    world.internal.get("servers", {}).pop(str(server_id), None)
    links.refresh(world)


# -- power and disk ------------------------------------------------------------------------------
POWER = {  # command: (status while running, status after, backend call)
    "poweron": ("starting", "running", lambda b, p, i: b.power_on(p, i)),
    "poweroff": ("stopping", "off", lambda b, p, i: b.power_off(p, i, False)),
    "shutdown": ("stopping", "off", lambda b, p, i: b.power_off(p, i, True)),
    "reboot": (None, "running", lambda b, p, i: b.reboot(p, i, False)),
    "reset": (None, "running", lambda b, p, i: b.reboot(p, i, True)),
}
COMMAND_NAMES = {"poweron": "start_server", "poweroff": "stop_server", "shutdown": "shutdown_server",
                 "reboot": "reboot_server", "reset": "reset_server"}


def simple(ctx: Ctx, server: dict[str, Any], command: str, call: Any = None, done: Any = None,
           undo: Any = None, extra: dict[str, Any] | None = None) -> tuple[int, Any]:
    step = ctx.action(command, ("server", server["id"]), call=call, done=done, failed=undo)
    ctx.run(step)
    return ok({"action": step.action, **(extra or {})}, 201)


@action("servers", *POWER)
def power(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    ctx.free(("server", server["id"]))
    during, after, call = POWER[command]
    undo = rollback(server)
    if during:
        server["status"] = during
    return simple(ctx, server, COMMAND_NAMES[command], call=lambda: call(ctx.backend, ctx.name, server["id"]),
                  done=lambda: server.update(status=after), undo=undo)


@action("servers", "rebuild")
def rebuild(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    if server["protection"]["rebuild"]:
        raise protected("server", server["id"], "rebuild")
    ctx.free(("server", server["id"]))
    image = _image(ctx, body.ref("image", required=True), server["server_type"]["architecture"])
    user_data = body.str("user_data")
    undo = rollback(server)
    hidden = ctx.world.private("servers", server["id"])
    if user_data is not None:
        hidden["user_data"] = user_data
    server["image"] = image
    server["status"] = "rebuilding"
    boot = spec(ctx, server)
    password = None if hidden.get("ssh_keys") else secrets.token_urlsafe(12)
    return simple(ctx, server, "rebuild_server", call=lambda: ctx.backend.rebuild(boot),
                  done=lambda: server.update(status="running"), undo=undo, extra={"root_password": password})


@action("servers", "change_type")
def change_type(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    """Record only (a container has no size); the server must be off, as in the API."""
    new = ctx.ref("server_types", body.ref("server_type", required=True), "server_type")
    upgrade = body.bool("upgrade_disk", False)
    if new["architecture"] != server["server_type"]["architecture"]:
        raise error("invalid_server_type", f"server type {new['name']} is {new['architecture']}, "
                                           f"the server {server['server_type']['architecture']}")
    if server["status"] != "off":
        raise error("server_not_stopped", f"server {server['id']} must be powered off to change its type")
    if not upgrade and new["disk"] < server["primary_disk_size"]:
        raise error("invalid_server_type", f"server type {new['name']} has a smaller disk; upgrade_disk cannot shrink")
    ctx.free(("server", server["id"]))
    undo = rollback(server)
    server["server_type"] = next(t for t in ctx.world.server_types if t["id"] == new["id"])
    if upgrade:
        server["primary_disk_size"] = new["disk"]
    return simple(ctx, server, "change_server_type", undo=undo)


@action("servers", "enable_backup", "disable_backup", "enable_rescue", "disable_rescue", "reset_password",
        "attach_iso", "detach_iso", "request_console")
def record_only(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    """Actions that change only the record (the backend has no rescue system, ISO or console)."""
    ctx.free(("server", server["id"]))
    undo = rollback(server)
    extra: dict[str, Any] = {}
    if command in ("enable_backup", "disable_backup"):
        server["backup_window"] = "22-02" if command == "enable_backup" else None
    elif command == "enable_rescue":
        body.str("type", choices=("linux64",))
        for ref in body.list("ssh_keys"):
            ctx.ref("ssh_keys", ref, "ssh_keys")
        server["rescue_enabled"] = True
        extra["root_password"] = secrets.token_urlsafe(12)
    elif command == "disable_rescue":
        server["rescue_enabled"] = False
    elif command == "reset_password":
        extra["root_password"] = secrets.token_urlsafe(12)
    elif command == "attach_iso":
        server["iso"] = ctx.ref("isos", body.ref("iso", required=True), "iso")
    elif command == "detach_iso":
        server["iso"] = None
    else:  # request_console: the URL is the API's shape; nothing answers there
        extra = {"wss_url": f"wss://console.invalid/?server_id={server['id']}&token={secrets.token_hex(8)}",
                 "password": secrets.token_urlsafe(12)}
    return simple(ctx, server, command, undo=undo, extra=extra)


@action("servers", "change_dns_ptr")
def change_dns_ptr(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    ip = body.str("ip", required=True)
    ptr = body.str("dns_ptr")
    ctx.free(("server", server["id"]))
    for ip_type in ("ipv4", "ipv6"):
        address = server["public_net"][ip_type]
        if address is None:
            continue
        primary = next((p for p in ctx.world.primary_ips if p["id"] == address["id"]), None)
        if primary is None:
            continue
        try:
            undo = rollback(server, primary)
            set_dns_ptr(primary, server, ip, ptr)
        except Exception:  # noqa: BLE001 - not this address: try the other one, refuse below
            continue
        return simple(ctx, server, "change_dns_ptr", undo=undo)
    raise invalid("ip", f"{ip} is not an address of server {server['id']}")


# -- networks and placement ----------------------------------------------------------------------
@action("servers", "attach_to_network")
def attach_to_network(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    """The address comes from the subnet (`ip_range`) or the first with room; the backend gets
    exactly the address the API then reports."""
    network = ctx.ref("networks", body.int("network", required=True), "network")
    if any(e["network"] == network["id"] for e in server["private_net"]):
        raise error("server_already_attached", f"server {server['id']} is already in network {network['id']}")
    ctx.free(("server", server["id"]), ("network", network["id"]))
    ip = ctx.allocate_private(network, body.str("ip"), body.str("ip_range"))
    alias_ips = [str(a) for a in body.list("alias_ips")]
    undo = rollback(server, network)
    before = ctx.before()
    server["private_net"].append(private_entry(server["id"], network["id"], ip, alias_ips, len(server["private_net"])))
    network["servers"].append(server["id"])
    propagate = ctx.propagate(before)

    def attach() -> None:
        ctx.backend.attach_network(ctx.name, server["id"], network["id"], ip)
        propagate()
    step = ctx.action("attach_to_network", ("server", server["id"]), ("network", network["id"]), call=attach,
                      failed=then(undo, ctx.refresh))
    ctx.run(step)
    return ok({"action": step.action}, 201)


@action("servers", "detach_from_network")
def detach_from_network(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    network = ctx.ref("networks", body.int("network", required=True), "network")
    if not any(e["network"] == network["id"] for e in server["private_net"]):
        raise invalid("network", f"server {server['id']} is not in network {network['id']}")
    if server["public_net"]["ipv4"] is None and server["public_net"]["ipv6"] is None \
            and len(server["private_net"]) == 1:
        raise invalid("network", "the server's only network: it would have no interface left")
    ctx.free(("server", server["id"]), ("network", network["id"]))
    undo = rollback(server, network)
    before = ctx.before()
    server["private_net"] = [e for e in server["private_net"] if e["network"] != network["id"]]
    network["servers"].remove(server["id"])
    propagate = ctx.propagate(before)

    def detach() -> None:
        ctx.backend.detach_network(ctx.name, server["id"], network["id"])
        propagate()
    step = ctx.action("detach_from_network", ("server", server["id"]), ("network", network["id"]), call=detach,
                      failed=then(undo, ctx.refresh))
    ctx.run(step)
    return ok({"action": step.action}, 201)


@action("servers", "add_to_placement_group", "remove_from_placement_group")
def placement(ctx: Ctx, server: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    """Record only; adding needs the server off, as in the API."""
    ctx.free(("server", server["id"]))
    undo_server = rollback(server)
    if command == "add_to_placement_group":
        group = ctx.ref("placement_groups", body.int("placement_group", required=True), "placement_group")
        if server["placement_group"] is not None:
            raise error("server_already_added", f"server {server['id']} is in placement group "
                                                f"{server['placement_group']['id']}")
        if server["status"] != "off":
            raise error("server_not_stopped", f"server {server['id']} must be powered off")
        if len(group["servers"]) >= 10:
            raise error("placement_error", f"placement group {group['id']} already holds 10 servers")
        undo = then(undo_server, rollback(group), ctx.refresh)
        group["servers"].append(server["id"])
    else:
        if server["placement_group"] is None:
            raise invalid("placement_group", f"server {server['id']} is in no placement group")
        group = ctx.get("placement_groups", server["placement_group"]["id"])
        undo = then(undo_server, rollback(group), ctx.refresh)
        group["servers"].remove(server["id"])
    ctx.refresh()
    return simple(ctx, server, command, undo=undo)
