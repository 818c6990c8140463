# Copyright (c) 2026 anvil.hetzner contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of playbooks/provision.yml and playbooks/teardown.yml.

An environment description (the variable ``hcloud_environment``, see the collection README) is
checked here (``environment_errors``), turned into the arguments of the hetzner.hcloud modules
(``plan``), and the servers that exist afterwards into the same host names, groups and host
variables that the anvil.hetzner.hcloud inventory gives them (``inventory_hosts``). Teardown's
order and its refusals (delete-protected resources) are ``teardown_plan``.

No I/O: the playbooks read the API with the hetzner.hcloud ``*_info`` modules and pass the results
in; unit tests call these functions directly (tests/unit/test_provision_errors.py,
tests/unit/test_provision_plan.py).

Messages name the field at fault (``hcloud_environment.servers[1].location``) and never contain
the API token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c
from ansible_collections.anvil.hetzner.plugins.plugin_utils import hcloud as inv

VAR = "hcloud_environment"
MANAGED_BY = ("managed-by", "anvil")
# Labels provision.yml sets itself: a description may not set them.
RESERVED_LABELS = ("env", "role", MANAGED_BY[0])
# A spread placement group holds at most 10 servers (Hetzner's limit).
SPREAD_MAX = 10
VOLUME_MIN_GB, VOLUME_MAX_GB = 10, 10240
# Location -> network zone, for the subnet's zone (location_info does not return it); a
# description can say network.network_zone for a location not listed here.
NETWORK_ZONES = {"fsn1": "eu-central", "nbg1": "eu-central", "hel1": "eu-central", "ash": "us-east",
                 "hil": "us-west", "sin": "ap-southeast"}
PRIVATE_RANGES = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))

ENV_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
SERVER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
ROLE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Names of SSH keys, networks, volumes, load balancers: Hetzner takes free text; these names also
# appear in module arguments and messages, so: letters, digits, . _ -, at most 63.
RESOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
# The API's label syntax: key = [prefix/]name, prefix a DNS subdomain (<= 253), name and value
# <= 63 characters of [a-z0-9A-Z._-] starting and ending alphanumeric (a value may be empty).
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
_FW_PORT = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")

TOP_KEYS = ("name", "labels", "location", "server_type", "image", "ssh_port", "ssh_keys", "network", "firewalls",
            "placement_group", "servers", "load_balancer")
SSH_KEY_KEYS = ("name", "public_key")
NETWORK_KEYS = ("name", "ip_range", "network_zone", "subnets")
RULE_KEYS = ("direction", "protocol", "port", "source_ips", "destination_ips", "description")
SERVER_KEYS = ("name", "role", "server_type", "image", "location", "labels", "volumes", "public_ipv4", "public_ipv6",
               "backups", "user_data")
VOLUME_KEYS = ("name", "size", "format", "automount")
LB_KEYS = ("name", "type", "location", "algorithm", "services", "targets", "use_private_ip")
SERVICE_KEYS = ("protocol", "listen_port", "destination_port", "proxyprotocol", "health_check", "http")


# ---------------------------------------------------------------------------------------------
# Small helpers


def _unknown(where: str, value: Mapping[str, Any], known: Sequence[str]) -> list[str]:
    wrong = [k for k in value if k not in known]
    if not wrong:
        return []
    return [f"{where}: unknown key{'s' if len(wrong) > 1 else ''} {', '.join(map(str, wrong))} "
            f"(known: {', '.join(known)})"]


def _bool(value: Any, default: bool) -> Any:
    """A bool option as -e gives it ("false") or YAML does; the value itself when it is no bool."""
    if value is None:
        return default
    return c.convert("bool", value)


def _int(value: Any) -> Any:
    return c.convert("int", value)


def label_key_reason(key: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return "is not a label key"
    prefix, slash, name = key.rpartition("/")
    if slash and not _LABEL_PREFIX.match(prefix):
        return "is not a label key: its prefix must be a DNS subdomain (lower case, at most 253 characters)"
    if not _LABEL_NAME.match(name):
        return ("is not a label key: the name must be 1-63 characters of a-z A-Z 0-9 . _ -, starting and ending "
                "with a letter or digit")
    return None


def label_value_reason(value: Any) -> str | None:
    if not isinstance(value, str):
        return "is not a string (quote it: label values are strings)"
    if not _LABEL_VALUE.match(value):
        return ("is not a label value Hetzner accepts: at most 63 characters of a-z A-Z 0-9 . _ -, starting and "
                "ending with a letter or digit")
    return None


def labels_errors(where: str, labels: Any, reserved: Sequence[str] = RESERVED_LABELS) -> list[str]:
    if labels in (None, {}):
        return []
    if not isinstance(labels, Mapping):
        return [f"{where}: must be a mapping of label keys to values"]
    errors = []
    for key, value in labels.items():
        reason = label_key_reason(key)
        if reason:
            errors.append(f"{where}: {key!r} {reason}")
            continue
        if key in reserved:
            errors.append(f"{where}.{key}: is set by provision.yml itself (env, role and managed-by come from the "
                          "description); remove it")
            continue
        reason = label_value_reason(value)
        if reason:
            errors.append(f"{where}.{key}: {value!r} {reason}")
    return errors


def _name_errors(where: str, value: Any, regex: re.Pattern[str], what: str) -> list[str]:
    if not isinstance(value, str) or not regex.match(value):
        return [f"{where}: {value!r} is not {what}"]
    return []


def fingerprint(public_key: str) -> str | None:
    """The MD5 fingerprint Hetzner shows for a public key (aa:bb:...), or None when it does not decode."""
    fields = public_key.split()
    if len(fields) < 2:
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    digest = hashlib.md5(blob).hexdigest()  # nosec - Hetzner's fingerprint format, not a security use
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _cidr(value: Any) -> str:
    """An address or network as the API's CIDR form (a bare address gets /32 or /128)."""
    return str(ipaddress.ip_network(value, strict=False)) if c.network(value) is not None else value


def _fw_port(value: Any) -> str | None:
    """A firewall rule's port as the API's string ("22", "80-85", "any"), or None when it is not one."""
    if c.is_int(value):
        return str(value) if 1 <= value <= 65535 else None
    if value == "any":
        return "any"
    match = _FW_PORT.match(str(value)) if isinstance(value, str) else None
    if not match:
        return None
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    if not (1 <= low <= 65535 and 1 <= high <= 65535) or (match.group(2) and low >= high):
        return None
    return value


def _port_covers(port: str | None, wanted: int) -> bool:
    if port == "any":
        return True
    if not port:
        return False
    low, _sep, high = port.partition("-")
    return int(low) <= wanted <= int(high or low)


def _items(value: Any) -> list[Any]:
    return list(value) if c.is_list(value) else []


def _servers(env: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _items(env.get("servers")) if isinstance(s, Mapping)]


def _server_field(env: Mapping[str, Any], server: Mapping[str, Any], key: str) -> Any:
    value = server.get(key)
    return env.get(key) if value in (None, "") else value


# ---------------------------------------------------------------------------------------------
# Checks without the API


def _ssh_key_errors(env: Mapping[str, Any]) -> list[str]:
    where = f"{VAR}.ssh_keys"
    keys = env.get("ssh_keys")
    if not c.is_list(keys) or not keys:
        return [f"{where}: must be a list of at least one key (name, public_key): Hetzner puts them into root's "
                "authorized_keys, the only login of a fresh server"]
    errors: list[str] = []
    names: set[str] = set()
    prints: dict[str, int] = {}
    for index, key in enumerate(keys):
        kwhere = f"{where}[{index}]"
        if not isinstance(key, Mapping):
            errors.append(f"{kwhere}: must be a mapping with name (and public_key for a key this environment owns)")
            continue
        errors += _unknown(kwhere, key, SSH_KEY_KEYS)
        name = key.get("name")
        found = _name_errors(f"{kwhere}.name", name, RESOURCE_NAME_RE, "a key name (1-63 of A-Z a-z 0-9 . _ -)")
        errors += found
        if not found:
            if name in names:
                errors.append(f"{kwhere}.name: {name} is listed twice")
            names.add(name)
        public = key.get("public_key")
        if public is None:
            continue
        reason = c.authorized_key_reason(public, options=False)
        if reason:
            errors.append(f"{kwhere}.public_key: {reason}")
            continue
        fp = fingerprint(public)
        if fp in prints:
            errors.append(f"{kwhere}.public_key: the same key as {where}[{prints[fp]}] (Hetzner keeps one copy of a key)")
        elif fp:
            prints[fp] = index
    return errors


def _network_errors(env: Mapping[str, Any]) -> list[str]:
    where = f"{VAR}.network"
    net = env.get("network")
    if net is None:
        return []
    if not isinstance(net, Mapping):
        return [f"{where}: must be a mapping with ip_range and subnets"]
    errors = _unknown(where, net, NETWORK_KEYS)
    if "name" in net:
        errors += _name_errors(f"{where}.name", net["name"], RESOURCE_NAME_RE, "a network name (1-63 of A-Z a-z 0-9 . _ -)")
    if "network_zone" in net:
        errors += _name_errors(f"{where}.network_zone", net["network_zone"], re.compile(r"^[a-z]+-[a-z]+$"),
                               "a network zone such as eu-central")
    rng = c.network(net.get("ip_range"))
    if rng is None or rng.version != 4 or "/" not in str(net.get("ip_range")):
        errors.append(f"{where}.ip_range: {net.get('ip_range')!r} is not an IPv4 network in CIDR form (10.0.0.0/16)")
        rng = None
    elif not any(rng.subnet_of(p) for p in PRIVATE_RANGES):
        errors.append(f"{where}.ip_range: {net['ip_range']} is not inside 10.0.0.0/8, 172.16.0.0/12 or "
                      "192.168.0.0/16 (Hetzner's private ranges)")
        rng = None
    elif rng.prefixlen > 24:
        errors.append(f"{where}.ip_range: {net['ip_range']} is smaller than /24, the smallest network Hetzner creates")
    subnets = net.get("subnets")
    if not c.is_list(subnets) or not subnets:
        errors.append(f"{where}.subnets: must be a list of at least one subnet (10.0.1.0/24): servers get their "
                      "private address from a subnet")
        return errors
    seen: list[tuple[int, Any]] = []
    for index, subnet in enumerate(subnets):
        swhere = f"{where}.subnets[{index}]"
        sub = c.network(subnet)
        if sub is None or sub.version != 4 or "/" not in str(subnet):
            errors.append(f"{swhere}: {subnet!r} is not an IPv4 network in CIDR form (10.0.1.0/24)")
            continue
        if str(sub) != subnet:
            errors.append(f"{swhere}: {subnet!r} has host bits set; write {sub}")
            continue
        if rng is not None and not sub.subnet_of(rng):
            errors.append(f"{swhere}: {subnet} is outside the network's ip_range {rng}")
        for other_index, other in seen:
            if sub.overlaps(other):
                errors.append(f"{swhere}: {subnet} overlaps {where}.subnets[{other_index}] ({other})")
        seen.append((index, sub))
    return errors


def _rule_errors(where: str, rule: Any, ssh_port: int) -> tuple[list[str], bool]:
    """(errors, whether the rule lets SSH in from somewhere)."""
    if not isinstance(rule, Mapping):
        return [f"{where}: must be a mapping (direction, protocol, port, source_ips)"], False
    errors = _unknown(where, rule, RULE_KEYS)
    direction = rule.get("direction", "in")
    protocol = rule.get("protocol", "tcp")
    if direction not in ("in", "out"):
        errors.append(f"{where}.direction: {direction!r} is not in or out")
    if protocol not in ("tcp", "udp", "icmp", "esp", "gre"):
        errors.append(f"{where}.protocol: {protocol!r} is not tcp, udp, icmp, esp or gre")
    port = _int(rule.get("port"))
    api_port = None
    if protocol in ("tcp", "udp"):
        api_port = _fw_port(port)
        if port in (None, ""):
            errors.append(f"{where}.port: {protocol} rules need a port (22, '80-85' or any)")
        elif api_port is None:
            errors.append(f"{where}.port: {rule.get('port')!r} is not a port from 1 to 65535, a range '80-85' or any")
    elif protocol in ("icmp", "esp", "gre") and port not in (None, ""):
        errors.append(f"{where}.port: {protocol} rules have no port; remove it")
    side = "source_ips" if direction == "in" else "destination_ips"
    other = "destination_ips" if direction == "in" else "source_ips"
    addresses = rule.get(side)
    if not c.is_list(addresses) or not addresses:
        errors.append(f"{where}.{side}: an {'inbound' if direction == 'in' else 'outbound'} rule needs "
                      f"{side} (a list of CIDR networks; 0.0.0.0/0 and ::/0 for everyone)")
    else:
        errors += c.NETWORKS.errors(f"{where}.{side}", addresses)
    if rule.get(other):
        errors.append(f"{where}.{other}: an {'inbound' if direction == 'in' else 'outbound'} rule takes "
                      f"{side} only")
    description = rule.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 255
                                    or any(ord(ch) < 32 for ch in description)):
        errors.append(f"{where}.description: must be one line of at most 255 characters")
    ssh = (not errors and direction == "in" and protocol == "tcp" and _port_covers(api_port, ssh_port))
    return errors, ssh


def _firewall_errors(env: Mapping[str, Any], ssh_port: int) -> list[str]:
    where = f"{VAR}.firewalls"
    firewalls = env.get("firewalls")
    if firewalls is None:
        firewalls = {}
    if not isinstance(firewalls, Mapping):
        return [f"{where}: must be a mapping of role to its list of rules"]
    errors: list[str] = []
    for role, rules in firewalls.items():
        rwhere = f"{where}.{role}"
        if not isinstance(role, str) or not ROLE_RE.match(role):
            errors.append(f"{where}: {role!r} is not a role name (a-z first, then a-z 0-9 _, at most 32)")
            continue
        if not c.is_list(rules):
            errors.append(f"{rwhere}: must be a list of rules")
            continue
        ssh = False
        for index, rule in enumerate(rules):
            found, lets_ssh = _rule_errors(f"{rwhere}[{index}]", rule, ssh_port)
            errors += found
            ssh = ssh or lets_ssh
        if not ssh and not any(e.startswith(rwhere) for e in errors):
            errors.append(f"{rwhere}: no inbound tcp rule allows port {ssh_port}: provision.yml waits for SSH and "
                          "site.yml logs in there (add {port: " + str(ssh_port) + ", source_ips: [<admin network>]})")
    return errors


def _volume_errors(where: str, volumes: Any, names: dict[str, str]) -> list[str]:
    if volumes is None:
        return []
    if not c.is_list(volumes):
        return [f"{where}: must be a list of volumes (name, size)"]
    errors = []
    for index, volume in enumerate(volumes):
        vwhere = f"{where}[{index}]"
        if not isinstance(volume, Mapping):
            errors.append(f"{vwhere}: must be a mapping with name and size")
            continue
        errors += _unknown(vwhere, volume, VOLUME_KEYS)
        name = volume.get("name")
        found = _name_errors(f"{vwhere}.name", name, RESOURCE_NAME_RE, "a volume name (1-63 of A-Z a-z 0-9 . _ -)")
        errors += found
        if not found:
            if name in names:
                errors.append(f"{vwhere}.name: {name} is also {names[name]} (volume names are unique in a project)")
            else:
                names[name] = vwhere
        size = _int(volume.get("size"))
        if not c.is_int(size) or not VOLUME_MIN_GB <= size <= VOLUME_MAX_GB:
            errors.append(f"{vwhere}.size: {volume.get('size')!r} is not a size in GB from {VOLUME_MIN_GB} to "
                          f"{VOLUME_MAX_GB} (Hetzner's smallest volume is {VOLUME_MIN_GB} GB)")
        if volume.get("format", "ext4") not in ("ext4", "xfs"):
            errors.append(f"{vwhere}.format: {volume.get('format')!r} is not ext4 or xfs")
        if _bool(volume.get("automount"), False) not in (True, False):
            errors.append(f"{vwhere}.automount: {volume.get('automount')!r} is not true or false")
    return errors


def _server_errors(env: Mapping[str, Any]) -> list[str]:
    where = f"{VAR}.servers"
    servers = env.get("servers")
    if servers is None:
        return []
    if not c.is_list(servers):
        return [f"{where}: must be a list of servers"]
    errors: list[str] = []
    names: dict[str, int] = {}
    volume_names: dict[str, str] = {}
    firewalls = env.get("firewalls") if isinstance(env.get("firewalls"), Mapping) else {}
    for index, server in enumerate(servers):
        swhere = f"{where}[{index}]"
        if not isinstance(server, Mapping):
            errors.append(f"{swhere}: must be a mapping with name and role")
            continue
        errors += _unknown(swhere, server, SERVER_KEYS)
        name = server.get("name")
        found = _name_errors(f"{swhere}.name", name, SERVER_NAME_RE,
                             "a server name (a host name: a-z 0-9 -, at most 63, no dots)")
        errors += found
        if not found:
            if name in names:
                errors.append(f"{swhere}.name: {name} is also {where}[{names[name]}] (server names are unique in "
                              "a project)")
            else:
                names[name] = index
        role = server.get("role")
        if not isinstance(role, str) or not ROLE_RE.match(role):
            errors.append(f"{swhere}.role: {role!r} is not a role name (a-z first, then a-z 0-9 _, at most 32)")
        elif role not in firewalls:
            errors.append(f"{swhere}.role: {role} has no firewall: add {VAR}.firewalls.{role} (every server is "
                          "created behind its role's Cloud Firewall)")
        for key in ("server_type", "image", "location"):
            value = _server_field(env, server, key)
            if not isinstance(value, str) or not value.strip() or value != value.strip():
                errors.append(f"{swhere}.{key}: needs a value (here or {VAR}.{key})")
        errors += labels_errors(f"{swhere}.labels", server.get("labels"))
        errors += _volume_errors(f"{swhere}.volumes", server.get("volumes"), volume_names)
        flags = {}
        for key, default in (("public_ipv4", True), ("public_ipv6", True), ("backups", False)):
            flags[key] = _bool(server.get(key), default)
            if flags[key] not in (True, False):
                errors.append(f"{swhere}.{key}: {server.get(key)!r} is not true or false")
        if flags["public_ipv4"] is False and flags["public_ipv6"] is False and env.get("network") is None:
            errors.append(f"{swhere}: without public_ipv4, public_ipv6 and a network the server cannot be reached")
        user_data = server.get("user_data")
        if user_data is not None and (not isinstance(user_data, str) or len(user_data) > 32768):
            errors.append(f"{swhere}.user_data: must be a text of at most 32 KiB (cloud-init user data)")
    return errors


def _load_balancer_errors(env: Mapping[str, Any]) -> list[str]:
    where = f"{VAR}.load_balancer"
    lb = env.get("load_balancer")
    if lb is None:
        return []
    if not isinstance(lb, Mapping):
        return [f"{where}: must be a mapping with type, services and targets"]
    errors = _unknown(where, lb, LB_KEYS)
    if "name" in lb:
        errors += _name_errors(f"{where}.name", lb["name"], RESOURCE_NAME_RE, "a name (1-63 of A-Z a-z 0-9 . _ -)")
    for key in ("type", "location"):
        value = lb.get(key, env.get("location") if key == "location" else None)
        if not isinstance(value, str) or not value:
            hint = f" (here or {VAR}.location)" if key == "location" else " such as lb11"
            errors.append(f"{where}.{key}: needs a value{hint}")
    if lb.get("algorithm", "round_robin") not in ("round_robin", "least_connections"):
        errors.append(f"{where}.algorithm: {lb.get('algorithm')!r} is not round_robin or least_connections")
    use_private = _bool(lb.get("use_private_ip"), env.get("network") is not None)
    if use_private not in (True, False):
        errors.append(f"{where}.use_private_ip: {lb.get('use_private_ip')!r} is not true or false")
    elif use_private and env.get("network") is None:
        errors.append(f"{where}.use_private_ip: needs {VAR}.network (targets are reached on their private address)")
    services = lb.get("services")
    if not c.is_list(services) or not services:
        errors.append(f"{where}.services: must be a list of at least one service (protocol, listen_port, "
                      "destination_port)")
        services = []
    ports: dict[Any, int] = {}
    for index, service in enumerate(services):
        swhere = f"{where}.services[{index}]"
        if not isinstance(service, Mapping):
            errors.append(f"{swhere}: must be a mapping")
            continue
        errors += _unknown(swhere, service, SERVICE_KEYS)
        protocol = service.get("protocol", "tcp")
        if protocol not in ("tcp", "http", "https"):
            errors.append(f"{swhere}.protocol: {protocol!r} is not tcp, http or https")
        listen = _int(service.get("listen_port", {"http": 80, "https": 443}.get(protocol)))
        errors += c.PORT.errors(f"{swhere}.listen_port", listen)
        if c.is_int(listen) and listen in ports:
            errors.append(f"{swhere}.listen_port: {listen} is also {where}.services[{ports[listen]}]'s")
        elif c.is_int(listen):
            ports[listen] = index
        errors += c.PORT.errors(f"{swhere}.destination_port", _int(service.get("destination_port", listen)))
        if protocol == "https" and not (isinstance(service.get("http"), Mapping)
                                        and service["http"].get("certificates")):
            errors.append(f"{swhere}.http.certificates: an https service needs its certificates (names or IDs)")
        if _bool(service.get("proxyprotocol"), False) not in (True, False):
            errors.append(f"{swhere}.proxyprotocol: {service.get('proxyprotocol')!r} is not true or false")
        for key in ("health_check", "http"):
            if service.get(key) is not None and not isinstance(service.get(key), Mapping):
                errors.append(f"{swhere}.{key}: must be a mapping (the hetzner.hcloud.load_balancer_service option)")
    targets = lb.get("targets")
    roles = {s.get("role") for s in _servers(env)}
    if not c.is_list(targets) or not targets:
        errors.append(f"{where}.targets: must be a list of roles whose servers receive the traffic")
    else:
        for index, role in enumerate(targets):
            if role not in roles:
                errors.append(f"{where}.targets[{index}]: {role!r} is not the role of any server in {VAR}.servers")
    return errors


def static_errors(env: Any) -> list[str]:
    """Everything wrong with a description that can be seen without the API."""
    if not isinstance(env, Mapping) or not env:
        return [f"{VAR}: must be a mapping describing the environment (name, ssh_keys, firewalls, servers ...); "
                "see inventories/staging/group_vars/all/hcloud_environment.yml"]
    errors = _unknown(VAR, env, TOP_KEYS)
    name = env.get("name")
    errors += _name_errors(f"{VAR}.name", name, ENV_NAME_RE,
                           "an environment name (a-z 0-9 -, at most 32; it is the env label and a name prefix)")
    errors += labels_errors(f"{VAR}.labels", env.get("labels"))
    ssh_port = _int(env.get("ssh_port", 22))
    found = c.PORT.errors(f"{VAR}.ssh_port", ssh_port)
    errors += found
    errors += _ssh_key_errors(env)
    errors += _network_errors(env)
    errors += _firewall_errors(env, ssh_port if not found else 22)
    placement = _bool(env.get("placement_group"), True)
    if placement not in (True, False):
        errors.append(f"{VAR}.placement_group: {env.get('placement_group')!r} is not true or false")
    elif placement and len(_items(env.get("servers"))) > SPREAD_MAX:
        errors.append(f"{VAR}.placement_group: a spread placement group holds at most {SPREAD_MAX} servers; this "
                      f"environment has {len(_items(env.get('servers')))} (set placement_group: false)")
    errors += _server_errors(env)
    errors += _load_balancer_errors(env)
    return errors


def token_errors(token: Any) -> list[str]:
    """The API token: present and one line; never repeated."""
    return c.secret_errors("hcloud_api_token (or HCLOUD_TOKEN)", token, required=True)


# ---------------------------------------------------------------------------------------------
# Checks against what the API says (the catalogue and what already exists)


def _names(items: Any) -> list[str]:
    return [i["name"] for i in _items(items) if isinstance(i, Mapping) and i.get("name")]


def _zone(env: Mapping[str, Any], location: Any) -> str | None:
    net = env.get("network") if isinstance(env.get("network"), Mapping) else {}
    return net.get("network_zone") or NETWORK_ZONES.get(location)


def catalogue_errors(env: Mapping[str, Any], catalogue: Mapping[str, Any]) -> list[str]:
    """Locations, server types (available there), images (for the type's architecture), load
    balancer types: as the API lists them (the results of location_info, server_type_info,
    image_info and load_balancer_type_info)."""
    errors: list[str] = []
    locations = _names(catalogue.get("locations"))
    types = {t["name"]: t for t in _items(catalogue.get("server_types")) if isinstance(t, Mapping) and t.get("name")}
    images = [i for i in _items(catalogue.get("images")) if isinstance(i, Mapping)]
    net = env.get("network") if isinstance(env.get("network"), Mapping) else None
    zones: dict[str, str] = {}
    for index, server in enumerate(_items(env.get("servers"))):
        if not isinstance(server, Mapping):
            continue
        swhere = f"{VAR}.servers[{index}]"
        location = _server_field(env, server, "location")
        stype = _server_field(env, server, "server_type")
        image = _server_field(env, server, "image")
        if location not in locations:
            errors.append(f"{swhere}.location: {location!r} is not a Hetzner location (known: {', '.join(locations)})")
            location = None
        known_type = types.get(stype)
        if known_type is None:
            errors.append(f"{swhere}.server_type: {stype!r} is not a Hetzner server type (known: "
                          f"{', '.join(sorted(types))})")
        elif location:
            where_available = [o for o in _items(known_type.get("locations")) if isinstance(o, Mapping)]
            here = next((o for o in where_available if o.get("name") == location), None)
            if where_available and (here is None or here.get("available") is False):
                errors.append(f"{swhere}.server_type: {stype} cannot be ordered in {location} (available in: "
                              f"{', '.join(o['name'] for o in where_available if o.get('available', True))})")
        arch = known_type.get("architecture") if known_type else None
        matching = [i for i in images if arch is None or i.get("architecture") == arch]
        if image not in [i.get("name") for i in matching]:
            known = sorted({str(i.get("name")) for i in matching if i.get("name")})
            errors.append(f"{swhere}.image: {image!r} is not a system image" + (f" for {arch} ({stype})" if arch else "")
                          + f" (known: {', '.join(known)})")
        if net is not None and location:
            zone = _zone(env, location)
            if zone is None:
                errors.append(f"{VAR}.network.network_zone: needed for location {location} (its network zone is "
                              "not known here)")
            else:
                zones.setdefault(zone, swhere)
    if net is not None and len(zones) > 1:
        errors.append(f"{VAR}.network: the servers sit in several network zones ({', '.join(sorted(zones))}); a "
                      "network lives in one zone: keep the servers in one zone's locations")
    lb = env.get("load_balancer")
    if isinstance(lb, Mapping):
        lb_types = _names(catalogue.get("load_balancer_types"))
        if lb.get("type") not in lb_types:
            errors.append(f"{VAR}.load_balancer.type: {lb.get('type')!r} is not a load balancer type (known: "
                          f"{', '.join(lb_types)})")
        location = lb.get("location", env.get("location"))
        if location not in locations:
            errors.append(f"{VAR}.load_balancer.location: {location!r} is not a Hetzner location (known: "
                          f"{', '.join(locations)})")
    return errors


def _existing_by_name(existing: Mapping[str, Any], kind: str) -> dict[str, Mapping[str, Any]]:
    return {i["name"]: i for i in _items(existing.get(kind)) if isinstance(i, Mapping) and i.get("name")}


def _foreign(item: Mapping[str, Any], env_name: str) -> str | None:
    """Why an existing resource is not this environment's (None when it is)."""
    labels = item.get("labels") or {}
    if labels.get("env") == env_name and labels.get(MANAGED_BY[0]) == MANAGED_BY[1]:
        return None
    if labels.get("env"):
        return f"belongs to env={labels['env']}" if labels.get("env") != env_name else "was not made by provision.yml"
    return "carries no env label (made by hand or by another tool)"


def existing_errors(env: Mapping[str, Any], existing: Mapping[str, Any]) -> list[str]:
    """What exists already: a name taken by a resource of another environment (or of nobody) is
    refused, never taken over; SSH keys named without public_key must exist; a key whose copy
    exists under another name is refused; an existing server cannot move to another location."""
    errors: list[str] = []
    name = env["name"]
    planned = plan(env, {})
    keys = _existing_by_name(existing, "ssh_keys")
    by_print = {k.get("fingerprint"): k for k in keys.values() if k.get("fingerprint")}
    for index, key in enumerate(_items(env.get("ssh_keys"))):
        kwhere = f"{VAR}.ssh_keys[{index}]"
        found = keys.get(key["name"])
        if key.get("public_key") is None:
            if found is None:
                errors.append(f"{kwhere}.name: no SSH key named {key['name']} in the project (give public_key to "
                              "create it)")
            continue
        copy = by_print.get(fingerprint(key["public_key"]))
        if copy is not None and copy.get("name") != key["name"]:
            errors.append(f"{kwhere}.public_key: the project already holds this key as {copy.get('name')!r} (Hetzner "
                          f"keeps one copy of a key): refer to it as {{name: {copy.get('name')}}} without public_key")
        elif found is not None and _foreign(found, name):
            errors.append(f"{kwhere}.name: the SSH key {key['name']} {_foreign(found, name)}; provision.yml does not "
                          "take over resources of others (rename it here)")
    checks = [("networks", [(f"{VAR}.network.name", planned["network"])] if planned["network"] else []),
              ("firewalls", [(f"{VAR}.firewalls.{f['role']}", f) for f in planned["firewalls"]]),
              ("placement_groups", [(f"{VAR}.placement_group", planned["placement_group"])]
               if planned["placement_group"] else []),
              ("volumes", [(v["where"] + ".name", v) for v in planned["volumes"]]),
              ("servers", [(s["where"] + ".name", s) for s in planned["servers"]]),
              ("load_balancers", [(f"{VAR}.load_balancer.name", planned["load_balancer"])]
               if planned["load_balancer"] else [])]
    for kind, wanted in checks:
        have = _existing_by_name(existing, kind)
        for where, item in wanted:
            found = have.get(item["name"])
            if found is None:
                continue
            reason = _foreign(found, name)
            if reason:
                errors.append(f"{where}: the {kind[:-1].replace('_', ' ')} {item['name']} {reason}; provision.yml does "
                              "not take over resources of others (rename it here, or remove it)")
            elif kind == "servers" and found.get("location") and found["location"] != item["location"]:
                errors.append(f"{item['where']}.location: {item['name']} exists in {found['location']}; a server "
                              f"cannot move to {item['location']} (run teardown.yml first, or keep its location)")
            elif kind == "volumes" and found.get("location") and found["location"] != item["location"]:
                errors.append(f"{item['where']}: the volume {item['name']} exists in {found['location']}, its server "
                              f"is in {item['location']}")
    return errors


def environment_errors(env: Any, catalogue: Mapping[str, Any] | None = None,
                       existing: Mapping[str, Any] | None = None, token: Any = None) -> list[str]:
    """All refusals: the static ones first; the catalogue's and the existing resources' only for a
    description that passed them (their messages would otherwise repeat the static ones)."""
    errors = static_errors(env)
    if token is not None:
        errors += token_errors(token)
    if errors:
        return errors
    if catalogue:
        errors += catalogue_errors(env, catalogue)
    if existing is not None and not errors:
        errors += existing_errors(env, existing)
    return errors


# ---------------------------------------------------------------------------------------------
# The plan: module arguments


def base_labels(env: Mapping[str, Any]) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in (env.get("labels") or {}).items()}
    labels.update({"env": env["name"], MANAGED_BY[0]: MANAGED_BY[1]})
    return labels


def firewall_name(env_name: str, role: str) -> str:
    return f"{env_name}-{role.replace('_', '-')}"


def _api_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    direction = rule.get("direction", "in")
    protocol = rule.get("protocol", "tcp")
    out: dict[str, Any] = {"direction": direction, "protocol": protocol,
                           "port": _fw_port(_int(rule.get("port"))) if protocol in ("tcp", "udp") else None,
                           "source_ips": [], "destination_ips": []}
    side = "source_ips" if direction == "in" else "destination_ips"
    out[side] = [_cidr(a) for a in rule.get(side) or []]
    if rule.get("description"):
        out["description"] = rule["description"]
    return out


def plan(env: Mapping[str, Any], catalogue: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The module arguments for a description that ``environment_errors`` accepted: every resource
    with its name and labels, in creation order. ``catalogue`` is not needed (network zones come
    from NETWORK_ZONES or network.network_zone); it is accepted for symmetry with the checks."""
    del catalogue
    name = env["name"]
    labels = base_labels(env)
    keys = [{"name": k["name"], "public_key": k["public_key"].strip(), "labels": labels}
            for k in _items(env.get("ssh_keys")) if k.get("public_key") is not None]
    key_names = [k["name"] for k in _items(env.get("ssh_keys"))]
    net = env.get("network")
    network = subnets = None
    if isinstance(net, Mapping):
        network = {"name": net.get("name") or name, "ip_range": net["ip_range"], "labels": labels}
    firewalls = [{"name": firewall_name(name, role), "role": role, "labels": labels,
                  "rules": [_api_rule(r) for r in rules]}
                 for role, rules in (env.get("firewalls") or {}).items()]
    placement = {"name": f"{name}-spread", "type": "spread", "labels": labels} \
        if _bool(env.get("placement_group"), True) else None
    servers, volumes = [], []
    zones = set()
    for index, server in enumerate(_servers(env)):
        location = _server_field(env, server, "location")
        zones.add(_zone(env, location))
        server_labels = {**labels, **{str(k): str(v) for k, v in (server.get("labels") or {}).items()},
                         "role": server["role"]}
        server_volumes = []
        for vindex, volume in enumerate(_items(server.get("volumes"))):
            volumes.append({"name": volume["name"], "size": _int(volume["size"]), "format": volume.get("format", "ext4"),
                            "automount": _bool(volume.get("automount"), False), "location": location,
                            "server": server["name"], "labels": {**labels, "role": server["role"]},
                            "where": f"{VAR}.servers[{index}].volumes[{vindex}]"})
            server_volumes.append(volume["name"])
        servers.append({
            "name": server["name"], "role": server["role"], "where": f"{VAR}.servers[{index}]",
            "server_type": _server_field(env, server, "server_type"), "image": _server_field(env, server, "image"),
            "location": location, "labels": server_labels, "ssh_keys": key_names,
            "firewalls": [firewall_name(name, server["role"])],
            "placement_group": placement["name"] if placement else None,
            "private_networks": [network["name"]] if network else [],
            "volumes": server_volumes,
            "enable_ipv4": _bool(server.get("public_ipv4"), True), "enable_ipv6": _bool(server.get("public_ipv6"), True),
            "backups": _bool(server.get("backups"), False), "user_data": server.get("user_data"),
        })
    if network is not None:
        zone = net.get("network_zone") or next((z for z in sorted(zones, key=str) if z), None) \
            or NETWORK_ZONES.get(env.get("location"), "eu-central")
        subnets = [{"network": network["name"], "ip_range": s, "network_zone": zone, "type": "cloud"}
                   for s in net.get("subnets") or []]
    lb = env.get("load_balancer")
    load_balancer = None
    if isinstance(lb, Mapping):
        use_private = _bool(lb.get("use_private_ip"), network is not None)
        load_balancer = {
            "name": lb.get("name") or f"{name}-lb", "type": lb["type"],
            "location": lb.get("location", env.get("location")), "algorithm": lb.get("algorithm", "round_robin"),
            "labels": labels, "network": network["name"] if network else None,
            "services": [{"protocol": s.get("protocol", "tcp"),
                          "listen_port": _int(s.get("listen_port", {"http": 80, "https": 443}.get(s.get("protocol")))),
                          "destination_port": _int(s.get("destination_port", s.get(
                              "listen_port", {"http": 80, "https": 443}.get(s.get("protocol"))))),
                          "proxyprotocol": _bool(s.get("proxyprotocol"), False),
                          "health_check": s.get("health_check"), "http": s.get("http")}
                         for s in lb["services"]],
            "targets": [{"role": role, "label_selector": f"env={name},role={role}", "use_private_ip": use_private}
                        for role in lb["targets"]],
        }
    return {"env": name, "labels": labels, "label_selector": label_selector(name), "ssh_keys": keys,
            "ssh_key_names": key_names, "network": network, "subnets": subnets or [], "firewalls": firewalls,
            "placement_group": placement, "volumes": volumes, "servers": servers, "load_balancer": load_balancer}


def label_selector(env_name: str) -> str:
    """What selects this environment's resources, and only what provision.yml made."""
    return f"env={env_name},{MANAGED_BY[0]}={MANAGED_BY[1]}"


# ---------------------------------------------------------------------------------------------
# Servers -> inventory hosts (the same as the anvil.hetzner.hcloud inventory makes)

INVENTORY_DEFAULTS: dict[str, Any] = {
    "group": "hcloud", "group_by": list(inv.GROUP_BY), "group_by_labels": ["role"], "label_value_separator": ".",
    "label_group_prefix": "", "connect_with": ["public_ipv4", "public_ipv6", "private_ipv4"], "network": "",
    "project": "default", "hostvars_prefix": "hcloud_", "hostvars_suffix": "",
}


def _api_server(server: Mapping[str, Any], catalogue: Mapping[str, Any],
                network_ids: Mapping[str, int], env: Mapping[str, Any]) -> dict[str, Any]:
    """A hetzner.hcloud.server_info entry in the API's shape, completed from the catalogue
    (server type sizes, image OS, network zone), as the inventory's server_vars reads it."""
    types = {t.get("name"): t for t in _items(catalogue.get("server_types")) if isinstance(t, Mapping)}
    stype = types.get(server.get("server_type")) or {"name": server.get("server_type")}
    # a system image has one ID per architecture: the one of the server's type
    image = next((i for i in _items(catalogue.get("images")) if isinstance(i, Mapping)
                  and i.get("name") == server.get("image")
                  and i.get("architecture") in (None, stype.get("architecture"))), None) if server.get("image") else None
    ipv4, ipv6 = server.get("ipv4_address"), server.get("ipv6")
    return {
        "id": server.get("id"), "name": server.get("name"), "status": server.get("status"),
        "created": server.get("created"), "labels": server.get("labels") or {},
        "server_type": {"name": stype.get("name"), "architecture": stype.get("architecture"), "cores": stype.get("cores"),
                        "memory": stype.get("memory"), "disk": stype.get("disk")},
        "location": {"name": server.get("location"), "network_zone": _zone(env, server.get("location"))},
        "image": ({"id": image.get("id"), "name": image.get("name"), "description": image.get("description"),
                   "os_flavor": image.get("os_flavor"), "os_version": image.get("os_version")} if image else
                  ({"id": None, "name": server.get("image")} if server.get("image") else None)),
        "public_net": {"ipv4": {"ip": ipv4, "dns_ptr": None} if ipv4 else None, "ipv6": {"ip": ipv6} if ipv6 else None},
        "private_net": [{"network": network_ids.get(p.get("name"), p.get("name")), "ip": p.get("ip")}
                        for p in server.get("private_networks_info") or []],
    }


def inventory_hosts(servers: Any, catalogue: Mapping[str, Any] | None = None, networks: Any = None,
                    options: Mapping[str, Any] | None = None, env: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One entry per server of hetzner.hcloud.server_info: ``name`` (the inventory host name),
    ``groups`` (the inventory's own groups: the ``group`` option, label groups, location_,
    network_zone_, server_type_, os_, status_, project_) and ``vars`` (the ``hcloud_*`` host
    variables and ``ansible_host``), computed by the inventory plugin's own functions."""
    opts = {**INVENTORY_DEFAULTS, **{k: v for k, v in (options or {}).items() if k in INVENTORY_DEFAULTS}}
    catalogue = catalogue or {}
    env = env or {}
    names = {n.get("id"): n.get("name") for n in _items(networks) if isinstance(n, Mapping)}
    ids = {v: k for k, v in names.items()}
    network_id = ids.get(opts["network"]) if opts["network"] else None
    out = []
    for server in _items(servers):
        if not isinstance(server, Mapping):
            continue
        api = _api_server(server, catalogue, ids, env)
        hvars = inv.server_vars(api, names, opts["project"], network_id)
        address, _method = inv.ansible_host(hvars, opts["connect_with"])
        groups = [inv.safe_group(opts["group"])] if opts["group"] else []
        groups += inv.auto_groups(hvars, opts["group_by"], opts["group_by_labels"], opts["label_value_separator"],
                                  opts["label_group_prefix"])
        host_vars = inv.prefixed(hvars, opts["hostvars_prefix"], opts["hostvars_suffix"])
        if address:
            host_vars["ansible_host"] = address
        out.append({"name": inv.default_hostname(hvars["name"], opts["project"], False),
                    "groups": list(dict.fromkeys(groups)), "vars": host_vars})
    return out


# ---------------------------------------------------------------------------------------------
# Teardown


TEARDOWN_ORDER = ("load_balancers", "servers", "volumes", "firewalls", "placement_groups", "networks", "ssh_keys")
PROTECTABLE = ("load_balancers", "servers", "volumes", "networks")


def owned(items: Any, env_name: str) -> list[Mapping[str, Any]]:
    """The items carrying this environment's labels (env and managed-by), whatever the reader selected."""
    return [i for i in _items(items) if isinstance(i, Mapping) and i.get("name")
            and _foreign(i, env_name) is None]


def teardown_plan(existing: Mapping[str, Any], env_name: str) -> dict[str, Any]:
    """What teardown.yml deletes, in dependency order (load balancers, servers, volumes, firewalls,
    placement groups, networks, SSH keys), and the delete-protected resources that make it refuse."""
    delete = {kind: sorted(i["name"] for i in owned(existing.get(kind), env_name)) for kind in TEARDOWN_ORDER}
    protected = [f"{kind[:-1].replace('_', ' ')} {i['name']}"
                 for kind in PROTECTABLE for i in owned(existing.get(kind), env_name) if i.get("delete_protection")]
    count = sum(len(v) for v in delete.values())
    parts = [f"{kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in delete.items() if names]
    summary = f"deleting {'; '.join(parts)}" if count else f"nothing labelled {label_selector(env_name)} is left"
    return {"order": list(TEARDOWN_ORDER), "delete": delete, "protected": protected, "count": count,
            "summary": summary}
