# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall role's Python: its input check, the managed rule set and the reader of ``ufw status``."""

from __future__ import annotations

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c


_PORT = re.compile(r"^([0-9]{1,5})(?::([0-9]{1,5}))?$")
_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _address_errors(where: str, value: Any, allow_any: bool = True) -> list[str]:
    if allow_any and value in (None, "any"):
        return []
    if c.network(value) is None:
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


_FAIL2BAN_TIME = c.pattern(r"^([0-9]+ *(s|m|h|d|w|mo|y)? *)+$", "a fail2ban time like 600, 10m, 1h, 1w",
                           bad=("", "forever", "-5m", "1 fortnight"))

# Options with a format or range (bool and choices are the argument spec's): see plugin_utils/checks.py.
OPTIONS: dict[str, c.Check] = {
    "firewall_ssh_ports": c.PORTS,
    "firewall_ssh_sources": c.NETWORKS,
    "firewall_trusted_networks": c.NETWORKS,
    "firewall_fail2ban_ignoreip": c.NETWORKS,
    "firewall_fail2ban_bantime": _FAIL2BAN_TIME,
    "firewall_fail2ban_findtime": _FAIL2BAN_TIME,
    "firewall_fail2ban_bantime_maxtime": _FAIL2BAN_TIME,
    "firewall_fail2ban_maxretry": c.int_range(1, 100),
    "firewall_fail2ban_caddy_log_paths": c.ABSOLUTE_PATHS,
}
FREE_FORM: dict[str, str] = {
    "firewall_rules": "every rule is checked below (ports and ranges, addresses, interface, open-to-all guard)",
    "firewall_docker_allow": "every entry is checked below (port, source)",
}
SUBOPTION_BAD = {
    "firewall_rules": ([{"port": 70000}], [{"port": 80, "from": "10.0.0.0/33"}], [{"rule": "allow"}],
                       [{"port": 80, "interface": "eth0; reboot"}]),
    "firewall_docker_allow": ([{"port": 0}], [{"port": 8080, "from": "nowhere"}]),
}


def firewall_errors(variables: Mapping[str, Any], client: str = "", host: Mapping[str, Any] | None = None,
                    node_exporter: Mapping[str, Any] | None = None,
                    monitoring: Mapping[str, Any] | None = None) -> list[str]:
    host = host or {}
    variables = c.typed(variables, "firewall")
    errors: list[str] = c.os_errors(host, "firewall") if host.get("distribution") else []
    errors += c.check_options(variables, OPTIONS, host)
    if node_exporter:
        # the node_exporter role's own variables (a cross-role input): checked here too, because
        # the firewall runs before node_exporter in anvil.hetzner.site
        errors += c.PORT.errors("node_exporter_port", c.convert("int", node_exporter.get("port")))
        errors += c.NETWORKS.errors("node_exporter_prometheus_sources", node_exporter.get("sources"))
    if monitoring:
        # the monitoring role's ports and admin sources (a cross-role input, checked before UFW changes)
        ports = monitoring.get("ports") or []
        for name, port in zip(("monitoring_prometheus_port", "monitoring_alertmanager_port"), ports):
            errors += c.PORT.errors(name, c.convert("int", port))
        errors += c.NETWORKS.errors("monitoring_admin_sources", monitoring.get("sources"))
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
        errors += c.PORT.errors(f"{where}.port", port)
        if isinstance(item, Mapping):
            errors += _address_errors(f"{where}.from", item.get("from", "any"))
    sources = [n for n in (c.network(s) for s in variables.get("firewall_ssh_sources") or []) if n is not None]
    if sources and client:
        address = c.address(client)
        if address is not None and not any(address.version == n.version and address in n for n in sources):
            errors.append(f"firewall_ssh_sources: does not include {client}, the address this play connects "
                          "from; enabling UFW would lock this session out")
    return errors


_CADDY_PORTS = (("80", "tcp"), ("443", "tcp"), ("443", "udp"))
_RULE_FIELDS = ("rule", "port", "proto", "from", "to", "interface", "direction")


def _rule(rule: str = "allow", port: Any = "", proto: str = "tcp", src: str = "any", to: str = "any",
          interface: str = "", direction: str = "in", comment: str = "", state: str = "present") -> dict[str, Any]:
    return {"rule": rule, "port": "" if port in (None, "") else str(port), "proto": proto, "from": src or "any",
            "to": to or "any", "interface": interface or "", "direction": direction, "comment": comment or "",
            "state": state}


def rule_id(rule: Mapping[str, Any]) -> str:
    """A stable id of what a rule matches (not its comment or state): the tag ``anvil:<id>``."""
    key = "|".join(str(rule[f]) for f in _RULE_FIELDS)
    return hashlib.sha1(key.encode()).hexdigest()[:8]


def firewall_managed_rules(variables: Mapping[str, Any], controller: str = "", ssh_ports: Sequence[Any] = (),
                           caddy: bool = False, node_exporter: Mapping[str, Any] | None = None,
                           monitoring: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every rule the role manages, in order: SSH first (the controller's own rule on top), trusted
    networks, Caddy's ports, node_exporter's port from its Prometheus sources only, the monitoring
    server's Prometheus and Alertmanager ports from its admin sources only, then firewall_rules.
    Each carries ``id`` (see rule_id)."""
    v = c.typed(variables, "firewall")  # -e firewall_ssh_allow_controller=false is the string "false"
    out: list[dict[str, Any]] = []
    ports = sorted({int(p) for p in ssh_ports})
    if v.get("firewall_ssh_allow_controller", True) and controller:
        for port in ports:
            out.append({**_rule(port=port, src=controller, comment="ssh from the controller, not rate-limited"),
                        "insert": 1})
    sources = list(v.get("firewall_ssh_sources") or []) or ["any"]
    for port in ports:
        for src in sources:
            out.append(_rule("limit" if v.get("firewall_ssh_limit", True) else "allow", port, src=src, comment="ssh"))
    for net in v.get("firewall_trusted_networks") or []:
        out.append(_rule(proto="any", src=net, comment="trusted network"))
    if caddy:
        for port, proto in _CADDY_PORTS:
            out.append(_rule(port=port, proto=proto, comment="caddy"))
    if node_exporter:
        for src in node_exporter.get("sources") or []:
            out.append(_rule(port=node_exporter.get("port", 9100), src=str(src), comment="node_exporter"))
    if monitoring:
        for port in monitoring.get("ports") or []:
            for src in monitoring.get("sources") or []:
                out.append(_rule(port=int(port), src=str(src), comment="monitoring"))
    for r in v.get("firewall_rules") or []:
        out.append(_rule(r.get("rule") or "allow", r.get("port"), r.get("proto") or "tcp", r.get("from") or "any",
                         r.get("to") or "any", r.get("interface") or "", r.get("direction") or "in",
                         r.get("comment") or "", r.get("state") or "present"))
    return [{**r, "id": rule_id(r)} for r in out]


_NUMBERED = re.compile(r"^\[ *([0-9]+)\]")
_TAG = re.compile(r"# anvil:([0-9a-f]{8})")  # in `ufw status numbered`
_ADDED_TAG = re.compile(r"comment 'anvil:([0-9a-f]{8})\b")  # in `ufw show added`


def firewall_stale_rules(status: str | Sequence[str], managed: Sequence[Mapping[str, Any]],
                         purge: bool = False) -> list[int]:
    """Numbers of the rules in ``ufw status numbered`` to delete, highest first (so the other
    numbers stay valid): rules tagged by this role that it no longer manages, and with ``purge``
    every untagged rule. fail2ban's bans (``# by Fail2Ban``) are never returned."""
    lines = status.splitlines() if isinstance(status, str) else list(status)
    present = {r["id"] for r in managed if r.get("state", "present") == "present"}
    stale = []
    for line in lines:
        number = _NUMBERED.match(line)
        if not number:
            continue
        tag = _TAG.search(line)
        if tag:
            if tag.group(1) not in present:
                stale.append(int(number.group(1)))
        elif purge and "# by Fail2Ban" not in line:
            stale.append(int(number.group(1)))
    return sorted(stale, reverse=True)


_DEFAULTS = re.compile(r"^Default: (\w+) \(incoming\), (\w+) \(outgoing\), (\w+) \(routed\)", re.M)
_LOGGING = re.compile(r"^Logging: (on|off)(?: \((\w+)\))?", re.M)


def firewall_ufw_state(status_verbose: str) -> dict[str, Any]:
    """What ``ufw status verbose`` says: active, the default policies and the logging level.
    An inactive UFW reports none of them (values are then empty, meaning: unknown, apply)."""
    state: dict[str, Any] = {"active": bool(re.search(r"^Status: active", status_verbose, re.M)),
                             "incoming": "", "outgoing": "", "routed": "", "logging": ""}
    defaults = _DEFAULTS.search(status_verbose)
    if defaults:
        state["incoming"], state["outgoing"], state["routed"] = defaults.groups()
    logging = _LOGGING.search(status_verbose)
    if logging:
        state["logging"] = "off" if logging.group(1) == "off" else (logging.group(2) or "low")
    return state


def firewall_rules_to_apply(managed: Sequence[Mapping[str, Any]], added: str) -> list[dict[str, Any]]:
    """The managed rules that ``ufw show added`` does not reflect yet: present rules whose tag is
    missing and absent rules whose tag is still there. The tag is a hash of everything the rule
    matches, so a tagged rule that is there is exactly the wanted one."""
    there = set(_ADDED_TAG.findall(added))
    return [dict(r) for r in managed if (r["id"] in there) != (r.get("state", "present") == "present")]


def firewall_may_have_stale(added: str, managed: Sequence[Mapping[str, Any]], purge: bool = False) -> bool:
    """Whether ``ufw show added`` holds a rule that firewall_stale_rules would delete: a tag the role
    no longer manages, or (with purge) an untagged rule. fail2ban's bans count too; the numbered
    status read next tells them apart."""
    present = {r["id"] for r in managed if r.get("state", "present") == "present"}
    rules = [line for line in added.splitlines() if line.startswith("ufw ")]
    return any(not (set(_ADDED_TAG.findall(line)) <= present) or (purge and not _ADDED_TAG.search(line)) for line in rules)


class FilterModule:
    """anvil.hetzner firewall filters."""

    def filters(self) -> dict[str, Any]:
        return {"firewall_errors": firewall_errors, "firewall_managed_rules": firewall_managed_rules,
                "firewall_stale_rules": firewall_stale_rules, "firewall_ufw_state": firewall_ufw_state,
                "firewall_rules_to_apply": firewall_rules_to_apply, "firewall_may_have_stale": firewall_may_have_stale}
