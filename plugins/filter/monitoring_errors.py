# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the monitoring role's input; build Prometheus's and Alertmanager's configuration from it."""

from __future__ import annotations

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c

# Prometheus's duration (model.ParseDuration): units in this order, each at most once, not empty.
_DURATION = re.compile(r"^(?=[0-9])(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
_SIZE = re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB|EB|KiB|MiB|GiB|TiB|PiB|EiB)$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# A matcher as Alertmanager's routes take it: label, operator, value (quoted or a bare word).
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^\s"{},=~!]+)\s*$')
_RECEIVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")

RECEIVER_TYPES = ("webhook", "slack", "telegram", "email")
RECEIVER_KEYS = {
    "webhook": {"name", "type", "url", "send_resolved", "max_alerts"},
    "slack": {"name", "type", "url", "channel", "send_resolved"},
    "telegram": {"name", "type", "bot_token", "chat_id", "send_resolved"},
    "email": {"name", "type", "to", "send_resolved"},
}
ROUTE_KEYS = {"receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "routes"}
CHILD_ROUTE_KEYS = {"receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval",
                    "continue"}
SMTP_KEYS = {"smarthost", "from", "username", "password", "require_tls"}
# The receivers the role adds itself (a user's receiver may not take these names).
HEARTBEAT_RECEIVER = "anvil-heartbeat"
NULL_RECEIVER = "anvil-null"

# Where the role writes (the templates and the tests read these too).
PROMETHEUS_DIR = "/etc/prometheus"
RULES_DIR = "/etc/prometheus/rules.d/anvil"
FILE_SD_DIR = "/etc/prometheus/file_sd"
SECRETS_DIR = "/etc/prometheus/anvil-secrets"


def _duration(value: Any) -> str | None:
    if not isinstance(value, str) or not _DURATION.match(value):
        return "is not a Prometheus duration (a number and a unit: 30s, 5m, 4h, 15d, 1w)"
    return None


def _duration_seconds(value: str) -> float:
    m = _DURATION.match(value)
    if not m:
        return 0.0
    factors = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
    return sum(int(m.group(2 * i + 2) or 0) * f for i, f in enumerate(factors))


def _size(value: Any) -> str | None:
    if value in ("", None):
        return None
    if not isinstance(value, str) or not _SIZE.match(value):
        return "is not a size as Prometheus takes it (a number and B, KB, MB, GB or TB: 10GB), or empty"
    return None


def _labels(value: Any) -> str | None:
    if not isinstance(value, str) or not _LABEL.match(value):
        return "is not a Prometheus label name (letters, digits and _, not a digit first)"
    return None


DURATION = c.Check(_duration, bad=("", "5 minutes", "5M", "m5", "1h30"))
_NONZERO = "must be longer than 0s (Alertmanager refuses a zero interval)"


def _nonzero_duration(value: Any) -> str | None:
    return _duration(value) or (_NONZERO if not _duration_seconds(value) else None)


NONZERO_DURATION = c.Check(_nonzero_duration, bad=("", "0s", "0m", "5 minutes"))

# Options with a format or range (bool and choices are the argument spec's): see plugin_utils/checks.py.
OPTIONS: dict[str, c.Check] = {
    "monitoring_listen_address": c.Check(lambda v: None if v == "" else c.ADDRESSES.test(v),
                                         bad=("10.0.0.300", "localhost", "0.0.0.0:9090")),
    "monitoring_prometheus_port": c.PORT,
    "monitoring_alertmanager_port": c.PORT,
    "monitoring_blackbox_port": c.PORT,
    "monitoring_admin_sources": c.NETWORKS,
    "monitoring_scrape_interval": DURATION,
    "monitoring_evaluation_interval": DURATION,
    "monitoring_retention_time": DURATION,
    "monitoring_retention_size": c.Check(_size, bad=("10G", "ten", "10 GB")),
    "monitoring_external_url": c.pattern(r"^https?://[^\s\"'{}]+$", "an http(s) URL", bad=("prometheus.example.com",),
                                         empty_ok=True),
    "monitoring_targets_groups": c.pattern(r"^[A-Za-z0-9_-]+$", "an inventory group name", bad=(["bad group"],),
                                           each=True),
    "monitoring_targets_label_keys": c.Check(_labels, bad=(["9role"], ["ro-le"]), each=True),
    "monitoring_node_exporter_tls_ca_file": c.pattern(r"^(/[A-Za-z0-9._~/@+-]*)?$", "an absolute path (or empty)",
                                                      bad=("ca.pem",), empty_ok=True),
    # '...' groups by every label (Alertmanager's own spelling)
    "monitoring_group_by": c.Check(lambda v: None if v == "..." else _labels(v), bad=(["alert name"],), each=True),
    "monitoring_group_wait": DURATION,
    "monitoring_group_interval": NONZERO_DURATION,
    "monitoring_repeat_interval": NONZERO_DURATION,
    "monitoring_heartbeat_url": c.WEBHOOK_URL,
    "monitoring_heartbeat_interval": c.Check(lambda v: _duration(v) or (
        "must be at least 1m (Alertmanager groups the Watchdog once a minute at most)"
        if _duration_seconds(v) < 60 else None), bad=("", "30s", "hourly")),
    "monitoring_blackbox_extra_targets": c.pattern(r"^https?://[^\s\"'{}]+$", "an http(s) URL",
                                                   bad=(["example.com"], ["ftp://example.com"]), each=True),
    "monitoring_blackbox_timeout": DURATION,
    "monitoring_blackbox_ca_file": c.pattern(r"^(/[A-Za-z0-9._~/@+-]*)?$", "an absolute path (or empty)",
                                             bad=("ca.pem",), empty_ok=True),
    "monitoring_probe_down_for": DURATION,
    "monitoring_default_receiver": c.pattern(_RECEIVER_NAME.pattern, "a receiver name", bad=("Ops Team",),
                                             empty_ok=True),
    "monitoring_tls_expiry_days": c.int_range(1, 365, "days"),
    "monitoring_web_domain": c.pattern(c.HOST_NAME_RE, "a lower-case domain name",
                                       bad=("Prometheus.Example.com", "https://prometheus.example.com", "a b"),
                                       empty_ok=True),
    "monitoring_probe_slow_seconds": c.int_range(1, 60, "seconds"),
}
FREE_FORM: dict[str, str] = {
    "monitoring_receivers": "each receiver's keys, type, URL, token and address are checked below (secrets never printed)",
    "monitoring_routes": "each route's keys, matchers, receiver and durations are checked below",
    "monitoring_smtp": "smarthost, from, credentials checked below (the password never printed)",
    "monitoring_node_exporter_basic_auth": "user name and password checked below (never printed)",
    "monitoring_web_users": "user names and passwords checked below (never printed)",
}
# (values the argument spec accepts and the filter refuses: an unknown key or type is the spec's)
SUBOPTION_BAD = {
    "monitoring_receivers": (
        [{"name": "ops", "type": "webhook"}],
        [{"name": "ops", "type": "slack", "url": "http://hooks.slack.com/services/T0/B0/x"}],
        [{"name": "ops", "type": "telegram", "bot_token": "123:abc", "chat_id": "not-a-number"}],
        [{"name": "ops", "type": "email", "to": "nobody"}],
        [{"name": "ops", "type": "webhook", "url": "https://a.example/", "channel": "#ops"}],
        [{"name": "ops", "type": "webhook", "url": "https://a.example/"},
         {"name": "ops", "type": "webhook", "url": "https://b.example/"}],
    ),
    "monitoring_routes": (
        [{"receiver": "ops", "matchers": ["severity == critical"]}],
        [{"receiver": "nobody", "matchers": ['severity="critical"']}],
        [{"receiver": "ops", "matchers": []}],
        [{"receiver": "ops", "matchers": ['severity="critical"'], "repeat_interval": "often"}],
    ),
    "monitoring_web_users": (
        [{"username": "o p s", "password": "long-enough-1"}],
        [{"username": "ops", "password": "short"}],
        [{"username": "ops", "password": "long-enough-1"}, {"username": "ops", "password": "long-enough-2"}],
    ),
}


def monitoring_listen(variables: Mapping[str, Any]) -> str:
    """The address Prometheus and Alertmanager bind: monitoring_listen_address, else the host's
    Hetzner private address (hcloud_private_ipv4 from the anvil.hetzner.hcloud inventory), else
    127.0.0.1."""
    address = str(variables.get("monitoring_listen_address") or "")
    return address or str(variables.get("hcloud_private_ipv4") or "") or "127.0.0.1"


def _hostport(address: str, port: Any) -> str:
    return f"[{address}]:{int(port)}" if ":" in address else f"{address}:{int(port)}"


def _receiver_errors(receivers: Any, smtp: Any) -> tuple[list[str], set[str]]:
    where = "monitoring_receivers"
    if not c.is_list(receivers):
        return [f"{where}: must be a list of receivers"], set()
    if not receivers:
        return [f"{where}: is empty: an alert would reach no one; give at least one receiver "
                "(webhook, slack, telegram or email)"], set()
    errors: list[str] = []
    names: set[str] = set()
    for i, r in enumerate(receivers):
        at = f"{where}[{i}]"
        if not isinstance(r, Mapping):
            errors.append(f"{at}: must be a mapping with name and type")
            continue
        name, kind = r.get("name"), r.get("type")
        if not isinstance(name, str) or not _RECEIVER_NAME.match(name):
            errors.append(f"{at}.name: {name!r} is not a receiver name (lower-case letters, digits, - and _)")
        elif name in (HEARTBEAT_RECEIVER, NULL_RECEIVER):
            errors.append(f"{at}.name: {name} is the role's own receiver; choose another name")
        elif name in names:
            errors.append(f"{at}.name: {name} is given twice")
        else:
            names.add(name)
        if kind not in RECEIVER_TYPES:
            errors.append(f"{at}.type: {kind!r} is not one of {', '.join(RECEIVER_TYPES)}")
            continue
        for key in sorted(set(r) - RECEIVER_KEYS[kind], key=str):
            errors.append(f"{at}: {key!r} is not an option of a {kind} receiver "
                          f"(it takes {', '.join(sorted(RECEIVER_KEYS[kind] - {'name', 'type'}))})")
        if "send_resolved" in r and not isinstance(r["send_resolved"], bool):
            errors.append(f"{at}.send_resolved: must be true or false")
        if kind in ("webhook", "slack"):
            url = r.get("url")
            if url in ("", None):
                errors.append(f"{at}.url: a {kind} receiver needs its URL (from vault when it carries a token)")
            else:
                reason = c.WEBHOOK_URL.test(url)
                if reason:
                    errors.append(f"{at}.url: {reason}")
                elif kind == "slack" and not str(url).startswith("https://"):
                    errors.append(f"{at}.url: a Slack webhook URL must be https (the value is not shown)")
            if kind == "webhook" and "max_alerts" in r and not (c.is_int(r["max_alerts"]) and r["max_alerts"] >= 0):
                errors.append(f"{at}.max_alerts: must be a whole number, 0 for all")
            if kind == "slack" and "channel" in r and not (isinstance(r["channel"], str)
                                                           and re.match(r"^[#@]?[A-Za-z0-9._-]{1,80}$", r["channel"])):
                errors.append(f"{at}.channel: {r['channel']!r} is not a Slack channel (#ops) or user (@name)")
        elif kind == "telegram":
            errors += c.secret_errors(f"{at}.bot_token", r.get("bot_token"), required=True)
            token = r.get("bot_token")
            if isinstance(token, str) and token and not c.secret_reason(token) \
                    and not re.match(r"^[0-9]+:[A-Za-z0-9_-]+$", token):
                errors.append(f"{at}.bot_token: is not a Telegram bot token (digits, a colon, then letters; "
                              "the value is not shown)")
            chat = r.get("chat_id")
            if not (c.is_int(chat) or (isinstance(chat, str) and re.match(r"^-?[0-9]+$", chat))):
                errors.append(f"{at}.chat_id: {chat!r} is not a Telegram chat id (a whole number, negative for groups)")
        elif kind == "email":
            reason = c.EMAIL.test(r.get("to")) or ("needs the address to send to" if not r.get("to") else None)
            if reason:
                errors.append(f"{at}.to: {r.get('to')!r} {reason}")
            if not smtp:
                errors.append(f"{at}: an email receiver needs monitoring_smtp (smarthost and from)")
    return errors, names


def _smtp_errors(smtp: Any) -> list[str]:
    where = "monitoring_smtp"
    if smtp in ({}, None):
        return []
    if not isinstance(smtp, Mapping):
        return [f"{where}: must be a mapping (smarthost, from, username, password, require_tls)"]
    errors = [f"{where}: {key!r} is not an option (it takes {', '.join(sorted(SMTP_KEYS))})"
              for key in sorted(set(smtp) - SMTP_KEYS, key=str)]
    if not isinstance(smtp.get("smarthost"), str) or not _HOSTPORT.match(smtp.get("smarthost") or ""):
        errors.append(f"{where}.smarthost: {smtp.get('smarthost')!r} is not host:port (smtp.example.com:587)")
    reason = c.EMAIL.test(smtp.get("from")) or ("needs the sender's address" if not smtp.get("from") else None)
    if reason:
        errors.append(f"{where}.from: {smtp.get('from')!r} {reason}")
    if smtp.get("username") not in ("", None) and not isinstance(smtp.get("username"), str):
        errors.append(f"{where}.username: must be a string")
    errors += c.secret_errors(f"{where}.password", smtp.get("password"))
    if bool(smtp.get("username")) != bool(smtp.get("password")):
        errors.append(f"{where}: give username and password together, or neither")
    if "require_tls" in smtp and not isinstance(smtp["require_tls"], bool):
        errors.append(f"{where}.require_tls: must be true or false")
    elif smtp.get("require_tls") is False and smtp.get("password"):
        errors.append(f"{where}: require_tls false with a password would send the password in clear text")
    return errors


def _route_errors(routes: Any, names: set[str]) -> list[str]:
    where = "monitoring_routes"
    if not c.is_list(routes):
        return [f"{where}: must be a list of routes"]
    errors: list[str] = []
    for i, route in enumerate(routes):
        at = f"{where}[{i}]"
        if not isinstance(route, Mapping):
            errors.append(f"{at}: must be a mapping with receiver and matchers")
            continue
        for key in sorted(set(route) - CHILD_ROUTE_KEYS, key=str):
            errors.append(f"{at}: {key!r} is not a route option (it takes {', '.join(sorted(CHILD_ROUTE_KEYS))})")
        if route.get("receiver") not in names:
            errors.append(f"{at}.receiver: {route.get('receiver')!r} is not one of monitoring_receivers "
                          f"({', '.join(sorted(names)) or 'none'})")
        matchers = route.get("matchers")
        if not c.is_list(matchers) or not matchers:
            errors.append(f"{at}.matchers: must be a non-empty list such as ['severity=\"critical\"'] "
                          "(a route without one would take every alert: that is the default receiver's job)")
        else:
            for j, matcher in enumerate(matchers):
                if not isinstance(matcher, str) or not _MATCHER.match(matcher):
                    errors.append(f"{at}.matchers[{j}]: {matcher!r} is not a matcher: label, =, !=, =~ or !~, "
                                  "and a value in double quotes (severity=\"critical\")")
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                reason = _duration(route[key]) or (_NONZERO if key != "group_wait" and not _duration_seconds(route[key])
                                                   else None)
                if reason:
                    errors.append(f"{at}.{key}: {route[key]!r} {reason}")
        if "group_by" in route:
            errors += OPTIONS["monitoring_group_by"].errors(f"{at}.group_by", route["group_by"])
        if "continue" in route and not isinstance(route["continue"], bool):
            errors.append(f"{at}.continue: must be true or false")
    return errors


def _basic_auth_errors(auth: Any) -> list[str]:
    where = "monitoring_node_exporter_basic_auth"
    if auth in ({}, None):
        return []
    if not isinstance(auth, Mapping) or set(auth) != {"username", "password"}:
        return [f"{where}: must be a mapping with username and password (or empty)"]
    errors = []
    if not isinstance(auth["username"], str) or not re.match(c.BASIC_AUTH_USER_RE, auth["username"]):
        errors.append(f"{where}.username: {auth['username']!r} is not a user name (letters, digits, . _ @ -)")
    errors += c.secret_errors(f"{where}.password", auth["password"], required=True)
    return errors


def monitoring_scrape_auth(variables: Mapping[str, Any], hostvars: Mapping[str, Any],
                           targets: Sequence[str]) -> dict[str, str]:
    """The credentials Prometheus scrapes node_exporter with: monitoring_node_exporter_basic_auth,
    else the first user of the targets' own node_exporter_basic_auth_users (group_vars shared by the
    fleet: no second copy to keep), else none ({})."""
    auth = variables.get("monitoring_node_exporter_basic_auth") or {}
    if auth:
        return {"username": str(auth.get("username", "")), "password": str(auth.get("password", ""))}
    for name in targets:
        users = (hostvars.get(name) or {}).get("node_exporter_basic_auth_users") or []
        if users and isinstance(users[0], Mapping):
            return {"username": str(users[0].get("username", "")), "password": str(users[0].get("password", ""))}
    return {}


def monitoring_targets(variables: Mapping[str, Any], groups: Mapping[str, Sequence[str]],
                       hostvars: Mapping[str, Any] | None = None) -> list[str]:
    """The inventory hosts whose node_exporter is scraped: every host of monitoring_targets_groups
    that runs node_exporter (its anvil_node_exporter toggle, as site.yml reads it, is not false), sorted."""
    hosts: set[str] = set()
    for group in variables.get("monitoring_targets_groups") or ["all"]:
        hosts.update(groups.get(group) or [])
    hostvars = hostvars or {}
    return sorted(h for h in hosts if c.convert("bool", (hostvars.get(h) or {}).get("anvil_node_exporter", True)) is not False)


def monitoring_target_facts(hostvars: Mapping[str, Any], targets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """For the input check: each target's scrape address (where its node_exporter role listens) and
    whether it asks for basic auth and serves TLS."""
    out: dict[str, dict[str, Any]] = {}
    for name in targets:
        hv = hostvars.get(name) or {}
        address = str(hv.get("node_exporter_listen_address") or hv.get("hcloud_private_ipv4") or "127.0.0.1")
        if address in ("0.0.0.0", "::"):
            address = str(hv.get("ansible_host") or name)
        out[name] = {"address": address, "tls": bool(hv.get("node_exporter_tls_cert_file")),
                     "basic_auth": bool(hv.get("node_exporter_basic_auth_users"))}
    return out


def monitoring_errors(variables: Mapping[str, Any], host: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with the monitoring role's input, in the host's light: host has
    distribution/major/version, addresses (every address of the host), listening (host_probe's
    listening sockets), groups (the inventory's groups), targets (name -> the target's scrape
    address and whether it has basic auth and TLS: see the role's assert.yml), exists (path ->
    bool) and certificates (host_probe's: path -> ok, error) for the CA files."""
    v = c.typed(variables, "monitoring")
    host = host or {}
    errors: list[str] = c.os_errors(host, "monitoring") if host.get("distribution") else []
    errors += c.check_options(v, OPTIONS, host)
    recv_errors, names = _receiver_errors(v.get("monitoring_receivers", []), v.get("monitoring_smtp"))
    errors += recv_errors
    errors += _smtp_errors(v.get("monitoring_smtp"))
    errors += _route_errors(v.get("monitoring_routes", []), names)
    errors += _basic_auth_errors(v.get("monitoring_node_exporter_basic_auth"))
    default = v.get("monitoring_default_receiver", "")
    if default and default not in names:
        errors.append(f"monitoring_default_receiver: {default!r} is not one of monitoring_receivers "
                      f"({', '.join(sorted(names)) or 'none'})")

    ports = {name: v.get(name) for name in ("monitoring_prometheus_port", "monitoring_alertmanager_port",
                                            "monitoring_blackbox_port")}
    seen: dict[Any, str] = {}
    for name, port in ports.items():
        if port in seen:
            errors.append(f"{name}: {port} is also {seen[port]}")
        seen.setdefault(port, name)
    listen = monitoring_listen(v)
    # A running daemon of the role sandboxes its process (PrivateUsers): its socket shows no
    # readable process. Such a socket on the port of a daemon that runs is that daemon's.
    running = {v.get(name): unit for name, unit in UNITS.items()
               if (host.get("services") or {}).get(unit, {}).get("active")}
    listening = [s for s in host.get("listening") or []
                 if not (s.get("pid") is None and s.get("port") in running)]
    if "listening" in host and all(c.is_int(p) for p in ports.values()):
        wanted = {name: (port, listen if name != "monitoring_blackbox_port" else "127.0.0.1")
                  for name, port in ports.items()}
        errors += c.port_errors(wanted, listening, OWN_PROCESSES, host.get("ports"))
    if not c.ADDRESSES.test(listen):
        ip = ipaddress.ip_address(listen)
        which = "monitoring_listen_address" if v.get("monitoring_listen_address") else "hcloud_private_ipv4"
        if c.is_public(listen):
            errors.append(f"{which}: {listen} is {'every address' if ip.is_unspecified else 'a public address'}; "
                          "Prometheus and Alertmanager have no login of their own: listen on the private "
                          "address (or loopback) and reach them through the firewall's monitoring_admin_sources")
        addresses = host.get("addresses")
        if addresses is not None and not ip.is_loopback and listen not in addresses:
            errors.append(f"{which}: {listen} is not an address of this host (it has {', '.join(addresses) or 'none'})")

    known_groups = host.get("groups")
    if known_groups is not None and c.is_list(v.get("monitoring_targets_groups")):
        for group in v["monitoring_targets_groups"]:
            if group not in known_groups:
                errors.append(f"monitoring_targets_groups: {group!r} is not an inventory group")
    for name, target in sorted((host.get("targets") or {}).items()):
        address = str(target.get("address", ""))
        if address and c.is_public(address) and not target.get("tls"):
            errors.append(f"monitoring_targets_groups: {name} would be scraped at the public address {address} "
                          "without TLS: credentials and metrics would cross the internet in clear text; give it "
                          "hcloud_private_ipv4 (a private network) or node_exporter TLS")
    errors += _web_errors(v, host)
    for name in ("monitoring_node_exporter_tls_ca_file", "monitoring_blackbox_ca_file"):
        ca = v.get(name) or ""
        if isinstance(ca, str) and ca and host.get("exists") is not None and not host["exists"].get(ca):
            errors.append(f"{name}: {ca} does not exist on the host")
        elif isinstance(ca, str) and ca and not ((host.get("certificates") or {}).get(ca) or {"ok": True}).get("ok"):
            errors.append(f"{name}: {ca} holds no CA certificate the daemons could load "
                          f"({host['certificates'][ca].get('error') or 'unreadable'}): every scrape or probe "
                          "that trusts it would fail")
    return errors


def _web_errors(v: Mapping[str, Any], host: Mapping[str, Any]) -> list[str]:
    """Access through Caddy: users with a domain, Caddy on the host, the domain not served twice."""
    domain = v.get("monitoring_web_domain") or ""
    users = v.get("monitoring_web_users")
    errors = c.basic_auth_errors("monitoring_web_users", users)
    if not isinstance(domain, str) or not domain:
        return errors
    if not users:
        errors.append("monitoring_web_users: monitoring_web_domain needs at least one user: Prometheus and "
                      "Alertmanager have no login of their own")
    exists = host.get("exists")
    if exists is not None and not host.get("check_mode"):
        missing = [p for p in ("/usr/bin/caddy", "/etc/caddy/sites.d") if not exists.get(p, True)]
        if missing:
            errors.append(f"monitoring_web_domain: anvil.hetzner.caddy has not run on this host ({', '.join(missing)} "
                          "missing): run it before this role (site.yml does for a monitoring host with a domain)")
    if domain in (host.get("caddy_domains") or []):
        errors.append(f"monitoring_web_domain: {domain} is already a site of this host's Caddy (caddy_sites or "
                      "app_deploy_domains); give Prometheus a name of its own")
    return errors


# The unit of each port option.
UNITS = {"monitoring_prometheus_port": "prometheus", "monitoring_alertmanager_port": "prometheus-alertmanager",
         "monitoring_blackbox_port": "prometheus-blackbox-exporter"}
# Prometheus's, Alertmanager's and blackbox_exporter's own daemons (their current ports are not "taken").
OWN_PROCESSES = ("prometheus", "prometheus-alertmanager", "prometheus-alert", "alertmanager",
                 "prometheus-blackbox-exporter", "prometheus-blac", "blackbox_exporter")


def _receiver_config(r: Mapping[str, Any]) -> dict[str, Any]:
    resolved = bool(r.get("send_resolved", True))
    kind = r["type"]
    if kind == "webhook":
        cfg: dict[str, Any] = {"url": r["url"], "send_resolved": resolved}
        if r.get("max_alerts"):
            cfg["max_alerts"] = int(r["max_alerts"])
        return {"name": r["name"], "webhook_configs": [cfg]}
    if kind == "slack":
        cfg = {"api_url": r["url"], "send_resolved": resolved}
        if r.get("channel"):
            cfg["channel"] = r["channel"]
        return {"name": r["name"], "slack_configs": [cfg]}
    if kind == "telegram":
        return {"name": r["name"], "telegram_configs": [{"bot_token": r["bot_token"], "chat_id": int(r["chat_id"]),
                                                         "send_resolved": resolved}]}
    return {"name": r["name"], "email_configs": [{"to": r["to"], "send_resolved": resolved}]}


def monitoring_alertmanager_config(variables: Mapping[str, Any]) -> dict[str, Any]:
    """alertmanager.yml: the receivers, the route tree (the Watchdog to the heartbeat first, then the
    operator's routes, then the default receiver), and the inhibition of a down host's other alerts."""
    v = c.typed(variables, "monitoring")
    receivers = list(v.get("monitoring_receivers") or [])
    if not receivers:
        raise AnsibleFilterError("monitoring_alertmanager_config: monitoring_receivers is empty")
    config: dict[str, Any] = {}
    smtp = v.get("monitoring_smtp") or {}
    if smtp:
        config["global"] = {"smtp_smarthost": smtp["smarthost"], "smtp_from": smtp["from"],
                            "smtp_require_tls": bool(smtp.get("require_tls", True))}
        if smtp.get("username"):
            config["global"]["smtp_auth_username"] = smtp["username"]
            config["global"]["smtp_auth_password"] = smtp["password"]
    heartbeat = v.get("monitoring_heartbeat_url") or ""
    children: list[dict[str, Any]] = [{
        "receiver": HEARTBEAT_RECEIVER if heartbeat else NULL_RECEIVER,
        "matchers": ['alertname="Watchdog"'],
        "group_by": ["alertname"],
        "group_wait": "0s",
        "group_interval": "1m",
        "repeat_interval": v.get("monitoring_heartbeat_interval", "5m"),
        "continue": False,
    }]
    for route in v.get("monitoring_routes") or []:
        child: dict[str, Any] = {"receiver": route["receiver"], "matchers": list(route["matchers"])}
        for key in ("group_by", "group_wait", "group_interval", "repeat_interval", "continue"):
            if key in route:
                child[key] = route[key]
        children.append(child)
    default_receiver = v.get("monitoring_default_receiver") or receivers[0]["name"]
    if v.get("monitoring_routes"):
        # Alertmanager sends to the parent's receiver only when no child matched: an alert a route
        # took with continue: true would never reach the default receiver without this last route.
        children.append({"receiver": default_receiver, "matchers": ['alertname=~".+"']})
    config["route"] = {
        "receiver": default_receiver,
        "group_by": list(v.get("monitoring_group_by") or ["alertname", "instance"]),
        "group_wait": v.get("monitoring_group_wait", "30s"),
        "group_interval": v.get("monitoring_group_interval", "5m"),
        "repeat_interval": v.get("monitoring_repeat_interval", "4h"),
        "routes": children,
    }
    config["inhibit_rules"] = []
    if v.get("monitoring_inhibit_when_down", True):
        # A host that cannot be scraped: its other alerts (stale metrics, a backup not seen) are
        # consequences, not news.
        config["inhibit_rules"].append({"source_matchers": ['alertname="InstanceDown"'],
                                        "target_matchers": ['alertname!="InstanceDown"'],
                                        "equal": ["instance"]})
    own = [{"name": NULL_RECEIVER}]
    if heartbeat:
        own.append({"name": HEARTBEAT_RECEIVER,
                    "webhook_configs": [{"url": heartbeat, "send_resolved": False}]})
    config["receivers"] = [_receiver_config(r) for r in receivers] + own
    return config


def monitoring_blackbox_targets(hostvars: Mapping[str, Any], hosts: Sequence[str],
                                extra: Sequence[str] = ()) -> list[str]:
    """The public URLs the blackbox probes: https://<domain>/ for every domain the hosts' Caddy sites
    (caddy_sites) and apps (app_deploy_domains) serve, then extra; each once, in order."""
    urls: list[str] = []
    for name in hosts:
        hv = hostvars.get(name) or {}
        domains: list[str] = []
        for site in hv.get("caddy_sites") or []:
            if isinstance(site, Mapping):
                value = site.get("domains") or []
                domains += [value] if isinstance(value, str) else list(value)
        app = hv.get("app_deploy_domains") or []
        domains += [app] if isinstance(app, str) else list(app)
        for domain in domains:
            if isinstance(domain, str) and domain and not domain.startswith(("*", ":", "http://")):
                url = domain if domain.startswith("https://") else f"https://{domain}/"
                if url not in urls:
                    urls.append(url)
    for url in extra or []:
        if url not in urls:
            urls.append(url)
    return urls


def monitoring_prometheus_config(variables: Mapping[str, Any], hostname: str, scrape_auth: Mapping[str, str],
                                 blackbox_targets: Sequence[str]) -> dict[str, Any]:
    """prometheus.yml: global intervals, the local Alertmanager, the collection's rule files, and the
    scrape jobs: Prometheus and Alertmanager themselves, node (file_sd from the inventory, with the
    scrape credentials from a file), blackbox (the public URLs through the local exporter)."""
    v = c.typed(variables, "monitoring")
    listen = monitoring_listen(v)
    prom = _hostport(listen, v.get("monitoring_prometheus_port", 9090))
    alertmanager = _hostport(listen, v.get("monitoring_alertmanager_port", 9093))
    blackbox = _hostport("127.0.0.1", v.get("monitoring_blackbox_port", 9115))
    node: dict[str, Any] = {"job_name": "node", "file_sd_configs": [{"files": [f"{FILE_SD_DIR}/anvil-fleet.json"]}]}
    if scrape_auth:
        node["basic_auth"] = {"username": scrape_auth["username"],
                              "password_file": f"{SECRETS_DIR}/node_exporter_password"}
    ca = v.get("monitoring_node_exporter_tls_ca_file") or ""
    node["tls_config"] = {"ca_file": ca} if ca else {"insecure_skip_verify": False}
    jobs: list[dict[str, Any]] = [
        {"job_name": "prometheus", "static_configs": [{"targets": [prom], "labels": {"instance": hostname}}]},
        {"job_name": "alertmanager", "static_configs": [{"targets": [alertmanager], "labels": {"instance": hostname}}]},
        node,
    ]
    if blackbox_targets:
        timeout = v.get("monitoring_blackbox_timeout", "10s")
        interval = v.get("monitoring_scrape_interval", "30s")
        jobs.append({
            "job_name": "blackbox",
            # a probe may take its whole timeout: Prometheus refuses a timeout longer than the interval
            "scrape_interval": timeout if _duration_seconds(timeout) > _duration_seconds(interval) else interval,
            "metrics_path": "/probe",
            "params": {"module": ["anvil_https"]},
            "scrape_timeout": timeout,
            "static_configs": [{"targets": list(blackbox_targets)}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": blackbox},
            ],
        })
    config: dict[str, Any] = {
        "global": {"scrape_interval": v.get("monitoring_scrape_interval", "30s"),
                   "evaluation_interval": v.get("monitoring_evaluation_interval", "30s"),
                   "external_labels": {"monitor": hostname}},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "rule_files": [f"{RULES_DIR}/*.rules.yml"],
        "scrape_configs": jobs,
    }
    return config


# The collection's TLS rules warn this many days ahead; the monitoring server writes its copy with
# monitoring_tls_expiry_days instead (one warning per certificate, at the operator's threshold).
TLS_RULES = "anvil-tls.rules.yml"
TLS_WARNING = re.compile(r"< 14 \* 86400")


def monitoring_rule_items(sources: Sequence[str], rules_dir: str, tls_expiry_days: Any = 14) -> list[dict[str, str]]:
    """Loop items for the rule files: each source on the controller, its path in rules_dir, mode 0644
    and its text; the TLS rules' warning at tls_expiry_days days (both of its expressions)."""
    items = []
    for src in sources:
        name = str(src).rsplit("/", 1)[-1]
        with open(str(src), encoding="utf-8") as handle:
            text = handle.read()
        if name == TLS_RULES:
            days = c.convert("int", tls_expiry_days)
            if not isinstance(days, int) or isinstance(days, bool) or days < 1:
                raise AnsibleFilterError("monitoring_rule_items: tls_expiry_days must be a whole number of days, "
                                         f"not {tls_expiry_days!r}")
            text, count = TLS_WARNING.subn(f"< {days} * 86400", text)
            if count != 2:
                raise AnsibleFilterError(f"monitoring_rule_items: {src} no longer has the two 14-day thresholds "
                                         f"this filter sets (found {count}): update the filter with the rules")
        items.append({"src": str(src), "dest": f"{rules_dir}/{name}", "mode": "0644", "content": text})
    return items


class FilterModule:
    """anvil.hetzner monitoring filters."""

    def filters(self) -> dict[str, Any]:
        return {"monitoring_errors": monitoring_errors, "monitoring_listen": monitoring_listen,
                "monitoring_alertmanager_config": monitoring_alertmanager_config,
                "monitoring_prometheus_config": monitoring_prometheus_config,
                "monitoring_blackbox_targets": monitoring_blackbox_targets,
                "monitoring_scrape_auth": monitoring_scrape_auth, "monitoring_targets": monitoring_targets,
                "monitoring_target_facts": monitoring_target_facts, "monitoring_rule_items": monitoring_rule_items}
