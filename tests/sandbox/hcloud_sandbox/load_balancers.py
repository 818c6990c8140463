"""Load balancer writes. After every change the backend gets the whole wanted state
(`apply_load_balancer`), label-selector targets expanded to servers and their addresses."""

from __future__ import annotations

import ipaddress
from typing import Any

from . import selector
from .actions import now_iso
from .context import Ctx, action, rollback, then, write
from .errors import error, invalid
from .resources import check_delete, ok
from .validate import Body

ALGORITHMS = ("round_robin", "least_connections")
NETWORK_ZONES = {"eu-central": "fsn1", "us-east": "ash", "us-west": "hil", "ap-southeast": "sin"}


def parse_service(lb: dict[str, Any], body: Body, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """A service with the API's defaults (tcp needs both ports; http 80, https 443)."""
    base = existing or {}
    protocol = body.str("protocol", required=existing is None, default=base.get("protocol"),
                        choices=("tcp", "http", "https"))
    if protocol == "https":
        raise invalid(body.field("protocol"), "https needs certificates, which the sandbox does not implement")
    default_port = {"http": 80}.get(protocol)
    listen = body.int("listen_port", default=base.get("listen_port", default_port), minimum=1)
    destination = body.int("destination_port", default=base.get("destination_port", default_port), minimum=1)
    if listen is None or destination is None:
        raise invalid(body.field("listen_port" if listen is None else "destination_port"),
                      f"is required for protocol {protocol}")
    if listen > 65535 or destination > 65535:
        raise invalid(body.field("listen_port"), "ports are 1-65535")
    check = body.obj("health_check") or Body({}, body.field("health_check."))
    old_check = base.get("health_check", {})
    check_protocol = check.str("protocol", default=old_check.get("protocol", protocol), choices=("tcp", "http", "https"))
    health = {"protocol": check_protocol, "port": check.int("port", default=old_check.get("port", destination)),
              "interval": check.int("interval", default=old_check.get("interval", 15), minimum=3),
              "timeout": check.int("timeout", default=old_check.get("timeout", 10), minimum=1),
              "retries": check.int("retries", default=old_check.get("retries", 3), minimum=0)}
    if check_protocol != "tcp":
        http = check.obj("http") or Body({}, check.field("http."))
        old = old_check.get("http") or {}
        health["http"] = {"domain": http.str("domain", default=old.get("domain")),
                          "path": http.str("path", default=old.get("path", "/")),
                          "response": http.str("response", default=old.get("response")),
                          "status_codes": [str(c) for c in http.list("status_codes")] or
                          old.get("status_codes", ["2??", "3??"]),
                          "tls": http.bool("tls", old.get("tls", False))}
    service = {"protocol": protocol, "listen_port": listen, "destination_port": destination,
               "proxyprotocol": body.bool("proxyprotocol", base.get("proxyprotocol", False)), "health_check": health}
    if protocol != "tcp":
        http = body.obj("http") or Body({}, body.field("http."))
        old = base.get("http") or {}
        service["http"] = {"cookie_name": http.str("cookie_name", default=old.get("cookie_name", "HCLBSTICKY")),
                           "cookie_lifetime": http.int("cookie_lifetime", default=old.get("cookie_lifetime", 300)),
                           "certificates": [],
                           "redirect_http": http.bool("redirect_http", old.get("redirect_http", False)),
                           "sticky_sessions": http.bool("sticky_sessions", old.get("sticky_sessions", False)),
                           "timeout_idle": http.int("timeout_idle", default=old.get("timeout_idle", 60))}
    taken = [s["listen_port"] for s in lb["services"] if s is not existing]
    if listen in taken:
        raise error("source_port_already_used", f"listen port {listen} is already used by another service")
    return service


def parse_target(ctx: Ctx, lb: dict[str, Any], body: Body) -> dict[str, Any]:
    """A target as the API stores it; 422 with the API's codes for what cannot be a target."""
    kind = body.str("type", required=True, choices=("server", "label_selector", "ip"))
    private = bool(body.bool("use_private_ip", False))
    if private and not lb["private_net"]:
        raise error("load_balancer_not_attached_to_network", f"load balancer {lb['id']} is in no network")
    if kind == "ip":
        ip = (body.obj("ip", required=True) or Body({})).str("ip", required=True)
        try:
            ipaddress.ip_address(ip)
        except ValueError as exc:
            raise invalid(body.field("ip.ip"), f"{ip!r} is not an IP address") from exc
        if any(p["ip"] == ip for p in ctx.world.primary_ips):
            raise error("cloud_resource_ip_not_allowed", f"{ip} belongs to a cloud server: use a server target")
        target: dict[str, Any] = {"type": "ip", "ip": {"ip": ip}}
    elif kind == "server":
        server = ctx.ref("servers", (body.obj("server", required=True) or Body({})).int("id", required=True),
                         body.field("server.id"))
        networks = {e["network"] for e in lb["private_net"]}
        if private and not any(e["network"] in networks for e in server["private_net"]):
            raise error("server_not_attached_to_network", f"server {server['id']} shares no network with the LB")
        if not private and server["public_net"]["ipv4"] is None:
            raise error("missing_ipv4", f"server {server['id']} has no public IPv4 address")
        target = {"type": "server", "server": {"id": server["id"]}, "use_private_ip": private}
    else:
        expr = (body.obj("label_selector", required=True) or Body({})).str("selector", required=True)
        try:
            selector.parse(expr)
        except selector.SelectorError as exc:
            raise invalid(body.field("label_selector.selector"), str(exc)) from exc
        target = {"type": "label_selector", "label_selector": {"selector": expr}, "use_private_ip": private,
                  "targets": []}
    if same(target) in [same(t) for t in lb["targets"]]:
        raise error("target_already_defined", f"load balancer {lb['id']} already has this target")
    return target


def same(target: dict[str, Any]) -> tuple[str, Any]:
    key = {"server": lambda t: t["server"]["id"], "ip": lambda t: t["ip"]["ip"],
           "label_selector": lambda t: t["label_selector"]["selector"]}[target["type"]]
    return target["type"], key(target)


def public_net(ctx: Ctx, enabled: bool) -> dict[str, Any]:
    """The LB's addresses are allocated once and kept while the interface is disabled."""
    ipv4 = ctx.new_ipv4()
    ipv6 = ctx.new_ipv6_addr()
    ptr = f"static.{'.'.join(reversed(ipv4.split('.')))}.clients.your-server.de"
    return {"enabled": enabled, "ipv4": {"ip": ipv4, "dns_ptr": ptr},
            "ipv6": {"ip": ipv6, "dns_ptr": "static.clients.your-server.de"}}


@write("POST", "load_balancers")
def create_load_balancer(ctx: Ctx, body: Body) -> tuple[int, Any]:
    name = body.str("name", required=True)
    lb_type = ctx.ref("load_balancer_types", body.ref("load_balancer_type", required=True), "load_balancer_type")
    algorithm = (body.obj("algorithm") or Body({}, "algorithm.")).str("type", default="round_robin",
                                                                      choices=ALGORITHMS)
    if body.has("location"):
        location = ctx.location(body.ref("location"))
    elif body.has("network_zone"):
        zone = body.str("network_zone", choices=tuple(NETWORK_ZONES))
        location = ctx.location(NETWORK_ZONES[zone])
    else:
        raise invalid("location", "location or network_zone is required")
    network = ctx.ref("networks", body.int("network"), "network") if body.has("network") else None
    public_interface = body.bool("public_interface", True)
    if not public_interface and network is None:
        raise invalid("public_interface", "a load balancer without a public interface needs a network")
    labels = body.labels() or {}
    ctx.check_name("load_balancers", name)
    lb: dict[str, Any] = {
        "id": ctx.world.next_id(), "name": name, "public_net": {}, "private_net": [], "location": location,
        "load_balancer_type": lb_type, "protection": {"delete": False}, "labels": labels, "created": now_iso(),
        "services": [], "targets": [], "algorithm": {"type": algorithm}, "outgoing_traffic": None,
        "ingoing_traffic": None, "included_traffic": 21990232555520}
    if network is not None:
        lb["private_net"].append({"network": network["id"], "ip": ctx.allocate_private(network, None, None, "network")})
    for service in body.items("services"):
        lb["services"].append(parse_service(lb, service))
    for target in body.items("targets"):
        lb["targets"].append(parse_target(ctx, lb, target))
    if len(lb["services"]) > lb_type["max_services"] or len(lb["targets"]) > lb_type["max_targets"]:
        raise error("resource_limit_exceeded", f"{lb_type['name']} allows {lb_type['max_services']} services "
                                               f"and {lb_type['max_targets']} targets")
    lb["public_net"] = public_net(ctx, public_interface)
    before = ctx.before()
    ctx.world.load_balancers.append(lb)
    if network is not None:
        network["load_balancers"].append(lb["id"])
    step = ctx.action("create_load_balancer", ("load_balancer", lb["id"]), call=ctx.propagate(before))
    ctx.run(step)
    return ok({"load_balancer": lb, "action": step.action}, 201)


@write("DELETE", "load_balancers")
def delete_load_balancer(ctx: Ctx, kind: str, lb: dict[str, Any], body: Body) -> tuple[int, Any]:
    check_delete(ctx, kind, lb)

    def forget() -> None:
        for network in ctx.world.networks:
            if lb["id"] in network["load_balancers"]:
                network["load_balancers"].remove(lb["id"])
        if lb in ctx.world.load_balancers:
            ctx.world.load_balancers.remove(lb)
        ctx.refresh()
    step = ctx.action("delete_load_balancer", ("load_balancer", lb["id"]),
                      call=lambda: ctx.backend.delete_load_balancer(ctx.name, lb["id"]), done=forget)
    ctx.run(step)
    return ok({"action": step.action})


def changed(ctx: Ctx, lb: dict[str, Any], command: str, change: Any, *more: tuple[str, int],
            also: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Apply the (validated) `change` to the record, then tell the backend the whole new state;
    `also` is another record the change touches (put back with the LB if the action fails)."""
    ctx.free(("load_balancer", lb["id"]), *more)
    undo = rollback(lb, *([also] if also else []))
    before = ctx.before()
    change()
    step = ctx.action(command, ("load_balancer", lb["id"]), *more, call=ctx.propagate(before),
                      failed=then(undo, ctx.refresh))
    ctx.run(step)
    return ok({"action": step.action}, 201)


@action("load_balancers", "add_service", "update_service", "delete_service")
def service_action(ctx: Ctx, lb: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    if command == "add_service":
        service = parse_service(lb, body)
        if len(lb["services"]) >= lb["load_balancer_type"]["max_services"]:
            raise error("resource_limit_exceeded", "the load balancer type allows no more services")
        return changed(ctx, lb, command, lambda: lb["services"].append(service))
    port = body.int("listen_port", required=True)
    current = next((s for s in lb["services"] if s["listen_port"] == port), None)
    if current is None:
        raise invalid("listen_port", f"no service listens on {port}")
    if command == "delete_service":
        return changed(ctx, lb, command, lambda: lb["services"].remove(current))
    updated = parse_service(lb, body, existing=current)
    return changed(ctx, lb, command, lambda: lb["services"].__setitem__(lb["services"].index(current), updated))


@action("load_balancers", "add_target", "remove_target")
def target_action(ctx: Ctx, lb: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    if command == "add_target":
        target = parse_target(ctx, lb, body)
        if len(lb["targets"]) >= lb["load_balancer_type"]["max_targets"]:
            raise error("resource_limit_exceeded", "the load balancer type allows no more targets")
        return changed(ctx, lb, command, lambda: lb["targets"].append(target))
    kind_ = body.str("type", required=True, choices=("server", "label_selector", "ip"))
    probe = {"type": kind_, **{k: body.data.get(k) for k in ("server", "label_selector", "ip") if k in body.data}}
    try:
        wanted = same(probe)
    except (KeyError, TypeError) as exc:
        raise invalid(kind_, "is required for this target type") from exc
    match = [t for t in lb["targets"] if same(t) == wanted]
    if not match:
        raise invalid("type", "no such target")
    return changed(ctx, lb, command, lambda: lb["targets"].remove(match[0]))


@action("load_balancers", "change_algorithm")
def change_algorithm(ctx: Ctx, lb: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    algorithm = body.str("type", required=True, choices=ALGORITHMS)
    return changed(ctx, lb, command, lambda: lb.update(algorithm={"type": algorithm}))


@action("load_balancers", "change_type")
def change_lb_type(ctx: Ctx, lb: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    new = ctx.ref("load_balancer_types", body.ref("load_balancer_type", required=True), "load_balancer_type")
    if len(lb["services"]) > new["max_services"] or len(lb["targets"]) > new["max_targets"]:
        raise error("invalid_load_balancer_type", f"{new['name']} is too small for this load balancer")
    return changed(ctx, lb, "change_load_balancer_type", lambda: lb.update(load_balancer_type=new))


@action("load_balancers", "attach_to_network", "detach_from_network")
def lb_network(ctx: Ctx, lb: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    network = ctx.ref("networks", body.int("network", required=True), "network")
    attached = any(e["network"] == network["id"] for e in lb["private_net"])
    if command == "attach_to_network":
        if attached or lb["private_net"]:
            raise error("load_balancer_already_attached", f"load balancer {lb['id']} is already in a network")
        ip = ctx.allocate_private(network, body.str("ip"), body.str("ip_range"))

        def attach() -> None:
            lb["private_net"].append({"network": network["id"], "ip": ip})
            network["load_balancers"].append(lb["id"])
        return changed(ctx, lb, command, attach, ("network", network["id"]), also=network)
    if not attached:
        raise error("load_balancer_not_attached_to_network", f"load balancer {lb['id']} is not in network "
                                                             f"{network['id']}")
    if any(t.get("use_private_ip") for t in lb["targets"]):
        raise error("targets_without_use_private_ip", "targets still use the private network")
    if not lb["public_net"]["enabled"]:
        raise invalid("network", "the load balancer's only interface: enable the public interface first")

    def detach() -> None:
        lb["private_net"] = [e for e in lb["private_net"] if e["network"] != network["id"]]
        network["load_balancers"].remove(lb["id"])
    return changed(ctx, lb, command, detach, ("network", network["id"]), also=network)


@action("load_balancers", "enable_public_interface", "disable_public_interface")
def public_interface(ctx: Ctx, lb: dict[str, Any], body: Body, command: str, kind: str) -> tuple[int, Any]:
    enable = command == "enable_public_interface"
    if not enable and not lb["private_net"]:
        raise invalid("public_interface", "a load balancer without a network must keep its public interface")
    return changed(ctx, lb, command, lambda: lb["public_net"].update(enabled=enable))
