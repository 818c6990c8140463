"""Fields derived from other records, and what the backend is told from them.

Label selectors make membership depend on server labels: a firewall applied by `env=prod` covers
every server labelled so, now and later; a load balancer target `role=web` expands to every web
server. `refresh` recomputes the derived fields (firewall `applied_to_resources`, a server's
`public_net.firewalls` and `load_balancers`, nested label-selector targets) after any write that
can change them, and the spec builders turn records into the backend's arguments.
"""

from __future__ import annotations

from typing import Any

from . import selector
from .backend import FirewallRule, LoadBalancerSpec
from .world import World


def selected(world: World, expr: str) -> list[dict[str, Any]]:
    predicates = selector.parse(expr)
    return [s for s in world.servers if selector.matches(predicates, s["labels"])]


def firewall_servers(world: World, firewall: dict[str, Any]) -> list[int]:
    """IDs of the servers a firewall applies to (directly or by a label selector), in ID order."""
    ids: set[int] = set()
    for entry in firewall["applied_to"]:
        if entry["type"] == "server":
            ids.add(entry["server"]["id"])
        else:
            ids.update(s["id"] for s in selected(world, entry["label_selector"]["selector"]) if has_public(s))
    return sorted(ids)


def has_public(server: dict[str, Any]) -> bool:
    return server["public_net"]["ipv4"] is not None or server["public_net"]["ipv6"] is not None


def firewall_members(world: World) -> dict[int, list[dict[str, Any]]]:
    """Server ID -> the firewalls applied to it (each firewall's label selectors evaluated once)."""
    members: dict[int, list[dict[str, Any]]] = {}
    for firewall in world.firewalls:
        for server_id in firewall_servers(world, firewall):
            members.setdefault(server_id, []).append(firewall)
    return members


def rules_of(firewalls: list[dict[str, Any]]) -> list[FirewallRule]:
    return [FirewallRule(direction=r["direction"], protocol=r["protocol"], port=r["port"],
                         source_ips=list(r["source_ips"]), destination_ips=list(r["destination_ips"]))
            for firewall in firewalls for r in firewall["rules"]]


def lb_target_servers(world: World, lb: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """(server, use_private_ip) for every server target, label selectors expanded, each once."""
    seen: dict[int, tuple[dict[str, Any], bool]] = {}
    by_id = {s["id"]: s for s in world.servers}
    for target in lb["targets"]:
        if target["type"] == "server" and target["server"]["id"] in by_id:
            seen.setdefault(target["server"]["id"], (by_id[target["server"]["id"]], target["use_private_ip"]))
        elif target["type"] == "label_selector":
            for server in selected(world, target["label_selector"]["selector"]):
                seen.setdefault(server["id"], (server, target["use_private_ip"]))
    return list(seen.values())


def server_target_ip(lb: dict[str, Any], server: dict[str, Any], use_private_ip: bool) -> str | None:
    if use_private_ip:
        lb_networks = {entry["network"] for entry in lb["private_net"]}
        for entry in server["private_net"]:
            if entry["network"] in lb_networks:
                return entry["ip"]
        return None
    ipv4 = server["public_net"]["ipv4"]
    return ipv4["ip"] if ipv4 else None


def lb_spec(project: str, world: World, lb: dict[str, Any]) -> LoadBalancerSpec:
    targets = [{"server_id": server["id"], "ip": server_target_ip(lb, server, private)}
               for server, private in lb_target_servers(world, lb)]
    targets += [{"server_id": None, "ip": t["ip"]["ip"]} for t in lb["targets"] if t["type"] == "ip"]
    return LoadBalancerSpec(project=project, lb_id=lb["id"], name=lb["name"],
                            public_ipv4=lb["public_net"]["ipv4"]["ip"] if lb["public_net"]["enabled"] else None,
                            private=[(e["network"], e["ip"]) for e in lb["private_net"]],
                            algorithm=lb["algorithm"]["type"], services=[dict(s) for s in lb["services"]],
                            targets=[t for t in targets if t["ip"] is not None])


def health(lb: dict[str, Any]) -> list[dict[str, Any]]:
    """The sandbox does not probe targets: every service's status is `unknown`."""
    return [{"listen_port": s["listen_port"], "status": "unknown"} for s in lb["services"]]


def refresh(world: World) -> None:
    """Recompute every derived field from the records (cheap next to a write's other work)."""
    by_id = {s["id"]: s for s in world.servers}
    for server in world.servers:
        server["public_net"]["firewalls"] = []
        server["load_balancers"] = []
        server["placement_group"] = None
    for group in world.placement_groups:
        for server_id in group["servers"]:
            if server_id in by_id:
                by_id[server_id]["placement_group"] = group
    for firewall in world.firewalls:
        for entry in firewall["applied_to"]:
            if entry["type"] == "label_selector":
                entry["applied_to_resources"] = [
                    {"type": "server", "server": {"id": s["id"]}}
                    for s in selected(world, entry["label_selector"]["selector"]) if has_public(s)]
        for server_id in firewall_servers(world, firewall):
            if server_id in by_id:
                by_id[server_id]["public_net"]["firewalls"].append({"id": firewall["id"], "status": "applied"})
    for lb in world.load_balancers:
        for target in lb["targets"]:
            if target["type"] == "label_selector":
                target["targets"] = [{"type": "server", "server": {"id": s["id"]}, "health_status": health(lb),
                                      "use_private_ip": target["use_private_ip"]}
                                     for s in selected(world, target["label_selector"]["selector"])]
            elif target["type"] in ("server", "ip"):
                target["health_status"] = health(lb)
        for server, _private in lb_target_servers(world, lb):
            server["load_balancers"].append(lb["id"])


Snapshot = tuple[dict[int, list[FirewallRule]], dict[int, LoadBalancerSpec]]


def snapshot(project: str, world: World) -> Snapshot:
    """What the backend has been told: each filtered server's effective rules, each LB's spec."""
    members = firewall_members(world)
    return ({sid: rules_of(fws) for sid, fws in members.items()},
            {lb["id"]: lb_spec(project, world, lb) for lb in world.load_balancers})


def backend_calls(backend: Any, project: str, world: World, before: Snapshot) -> list[tuple[Any, ...]]:
    """The backend calls that bring the machines from `before` to the world as it is now
    (servers and load balancers that are gone are the deleting write's business)."""
    refresh(world)
    rules_after, lbs_after = snapshot(project, world)
    rules_before, lbs_before = before
    present = {s["id"] for s in world.servers}
    calls: list[tuple[Any, ...]] = []
    for server_id in sorted((set(rules_before) | set(rules_after)) & present):
        if server_id not in rules_after:
            calls.append((backend.set_firewall, project, server_id, [], False))
        elif rules_before.get(server_id) != rules_after[server_id] or server_id not in rules_before:
            calls.append((backend.set_firewall, project, server_id, rules_after[server_id], True))
    for lb_id, spec in lbs_after.items():
        if lbs_before.get(lb_id) != spec:
            calls.append((backend.apply_load_balancer, spec))
    return calls
