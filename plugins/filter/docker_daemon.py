# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker role's daemon.json: build it, check the role's input, and tell reload from restart."""

from __future__ import annotations

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c


# Options dockerd applies on SIGHUP (moby's "configuration reload behavior"); any other change
# needs a restart. Containers survive both when live-restore is on.
RELOADABLE = frozenset({
    "debug", "labels", "live-restore", "max-concurrent-downloads", "max-concurrent-uploads",
    "max-download-attempts", "default-runtime", "runtimes", "authorization-plugins",
    "insecure-registries", "registry-mirrors", "shutdown-timeout", "features",
    "allow-nondistributable-artifacts",
})

# Value types dockerd insists on (a wrong type stops dockerd at its next start).
_BOOL_KEYS = frozenset({
    "debug", "live-restore", "userland-proxy", "iptables", "ip6tables", "ipv6", "experimental", "icc",
    "ip-forward", "ip-masq", "init", "no-new-privileges", "selinux-enabled", "raw-logs", "tls", "tlsverify",
})
_INT_KEYS = frozenset({
    "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts", "mtu",
    "shutdown-timeout", "oom-score-adjust",
})
_LIST_KEYS = frozenset({
    "dns", "dns-opts", "dns-search", "exec-opts", "insecure-registries", "registry-mirrors", "storage-opts",
    "default-address-pools", "authorization-plugins", "labels", "allow-nondistributable-artifacts",
})
_DICT_KEYS = frozenset({"log-opts", "runtimes", "features", "builder", "default-ulimits"})
# Set on dockerd's command line by the packaged unit (-H fd://, --containerd=...): the same
# option in daemon.json stops dockerd ("directives are specified both as a flag and in the
# configuration file").
_UNIT_FLAGS = frozenset({"hosts", "containerd"})

_SIZE = re.compile(r"^[0-9]+(b|k|m|g)$", re.IGNORECASE)
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,2}([~+:.a-z0-9-]*)$", re.IGNORECASE)
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\$?$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):([0-9]{1,5})$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._/-]*)?$|^https?://")


def _merge(base: Any, over: Any) -> Any:
    """Deep-merge mappings; anything else in ``over`` replaces ``base``."""
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return over


def docker_daemon_config(variables: Mapping[str, Any]) -> dict[str, Any]:
    """daemon.json as a dict: the role's defaults with docker_daemon_options merged over them (options
    given as -e strings converted by their spec type: bool("false") would be true)."""
    v = c.typed(variables, "docker")
    config: dict[str, Any] = {
        "log-driver": v.get("docker_log_driver", "json-file"),
        "live-restore": bool(v.get("docker_live_restore", True)),
        "default-address-pools": [
            dict(p) for p in v.get("docker_default_address_pools") or [] if isinstance(p, Mapping)
        ],
    }
    if config["log-driver"] in ("json-file", "local"):
        # log-opts values are strings to dockerd ("max-file": 3 stops it).
        config["log-opts"] = {"max-size": str(v.get("docker_log_max_size", "10m")),
                              "max-file": str(v.get("docker_log_max_file", 3))}
    if not config["default-address-pools"]:
        del config["default-address-pools"]
    if v.get("docker_bridge_ip"):
        config["bip"] = v["docker_bridge_ip"]
    if v.get("docker_metrics_address"):
        config["metrics-addr"] = v["docker_metrics_address"]
    if not v.get("docker_userland_proxy", True):
        config["userland-proxy"] = False
    return _merge(config, dict(v.get("docker_daemon_options") or {}))


def _type_errors(config: Mapping[str, Any]) -> list[str]:
    errors = []
    for key, value in config.items():
        where = f"docker_daemon_options[{key!r}]"
        if key in _UNIT_FLAGS:
            errors.append(f"{where}: the packaged docker.service already sets it on dockerd's command line; "
                          "in daemon.json too, dockerd refuses to start (use a systemd drop-in instead)")
        elif key in _BOOL_KEYS and not isinstance(value, bool):
            errors.append(f"{where}: must be true or false, got {value!r}")
        elif key in _INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
            errors.append(f"{where}: must be a whole number, got {value!r}")
        elif key in _LIST_KEYS and not c.is_list(value):
            errors.append(f"{where}: must be a list, got {value!r}")
        elif key in _DICT_KEYS and not isinstance(value, Mapping):
            errors.append(f"{where}: must be a mapping, got {value!r}")
    log_opts = config.get("log-opts")
    if isinstance(log_opts, Mapping):
        for opt, value in log_opts.items():
            if not isinstance(value, str):
                errors.append(f"log-opts {opt!r}: dockerd takes only strings here, got {value!r} "
                              f"(write \"{value}\")")
        # docker_log_max_size / docker_log_max_file are checked by OPTIONS; these are the values
        # docker_daemon_options['log-opts'] puts over them.
        size = log_opts.get("max-size")
        if isinstance(size, str) and not _SIZE.match(size):
            errors.append(f"docker_daemon_options['log-opts']['max-size']: {size!r} is not a size like 10m, 512k, 1g")
        count = log_opts.get("max-file")
        if isinstance(count, str) and (not count.isdigit() or int(count) < 1):
            errors.append(f"docker_daemon_options['log-opts']['max-file']: {count!r} is not a number of files")
    try:
        json.dumps(config)
    except (TypeError, ValueError) as exc:
        errors.append(f"docker_daemon_options: cannot be written as JSON ({exc})")
    return errors


def _network_errors(v: Mapping[str, Any]) -> list[str]:
    errors = []
    reserved = []
    for i, net in enumerate(v.get("docker_reserved_networks") or []):
        parsed = c.network(net)
        if parsed is None:
            errors.append(f"docker_reserved_networks[{i}]: {net!r} is not a CIDR network")
        else:
            reserved.append(parsed)
    pools = []
    for i, pool in enumerate(v.get("docker_default_address_pools") or []):
        where = f"docker_default_address_pools[{i}]"
        if not isinstance(pool, Mapping) or set(pool) - {"base", "size"} or not {"base", "size"} <= set(pool):
            errors.append(f"{where}: must be a mapping with exactly base (CIDR) and size (prefix length)")
            continue
        base = c.network(pool["base"])
        size = pool["size"]
        if base is None or base.version != 4:
            errors.append(f"{where}.base: {pool['base']!r} is not an IPv4 CIDR network")
            continue
        if isinstance(size, bool) or not isinstance(size, int) or not base.prefixlen <= size <= 30:
            errors.append(f"{where}.size: {size!r} must be a prefix length from {base.prefixlen} (the base's) to 30")
        for other_i, other in pools:
            if base.overlaps(other):
                errors.append(f"{where}.base: {base} overlaps docker_default_address_pools[{other_i}] ({other})")
        pools.append((i, base))
    bridge_value = v.get("docker_bridge_ip") or ""
    bridge = None
    if bridge_value:
        try:
            bridge = ipaddress.ip_interface(bridge_value).network
            if "/" not in bridge_value or bridge.version != 4:
                raise ValueError
        except ValueError:
            errors.append(f"docker_bridge_ip: {bridge_value!r} is not an IPv4 address with prefix, like 172.17.0.1/16")
            bridge = None
    used = [(f"docker_default_address_pools[{i}].base", net) for i, net in pools]
    used.append(("docker_bridge_ip", bridge or ipaddress.ip_network("172.17.0.0/16")))
    for where, net in used:
        for res in reserved:
            if net.version == res.version and net.overlaps(res):
                errors.append(f"{where}: {net} overlaps docker_reserved_networks entry {res}; containers "
                              "would lose the route to it")
    return errors


def _metrics_address(value: Any) -> str | None:
    if value in ("", None):
        return None
    m = _HOST_PORT.match(value) if isinstance(value, str) else None
    return None if m and 1 <= int(m.group(2)) <= 65535 else "is not host:port like 127.0.0.1:9323"


# Options with a format or range (bool and choices are the argument spec's): see plugin_utils/checks.py.
OPTIONS: dict[str, c.Check] = {
    "docker_repository_url": c.pattern(r"^https?://[^\s\"']+$", "an http(s) URL",
                                       bad=("", "download.docker.com", "ftp://x")),
    "docker_version": c.pattern(_VERSION.pattern, "a version like 27.3.1 (or empty for the newest)",
                                bad=("latest", "27.3.1; rm"), empty_ok=True),
    "docker_log_driver": c.pattern(r"^[a-z0-9][a-z0-9_.-]*$", "a log driver name like json-file or local",
                                   bad=("", "json file")),
    "docker_log_max_size": c.pattern(_SIZE.pattern, "a size like 10m, 512k, 1g", bad=("", "10 MB", "10")),
    "docker_log_max_file": c.int_range(1, 100),
    "docker_reserved_networks": c.NETWORKS,
    "docker_metrics_address": c.Check(_metrics_address, bad=("127.0.0.1", "localhost:99999")),
    "docker_users": c.Check(lambda u: None if isinstance(u, str) and _USER.match(u) and u != "root" else
                            "is not a user name (root needs no group)", bad=(["root"], ["Bad User"]), each=True),
    "docker_prune_schedule": c.CALENDAR,
    "docker_prune_until": c.pattern(_DURATION.pattern, "a duration like 168h, 30m, 90s", bad=("", "1 week", "7d")),
    "docker_registries_user": c.USER_NAME,
}
FREE_FORM: dict[str, str] = {
    "docker_daemon_options": "any daemon.json key; types of known keys are checked, and dockerd validates the file",
    "docker_bridge_ip": "checked as an IPv4 interface against docker_reserved_networks below",
    "docker_default_address_pools": "every pool is checked below (base network, size, overlaps, reserved networks)",
    "docker_registries": "every entry is checked below (registry name, duplicates, credentials never printed)",
}
SUBOPTION_BAD = {
    "docker_default_address_pools": ([{"base": "10.300.0.0/16", "size": 24}], [{"base": "172.20.0.0/14", "size": 40}]),
    "docker_registries": ([{"registry": "bad host!", "username": "u", "password": "p"}],
                          [{"registry": "ghcr.io", "username": "", "password": "p"}]),
}


def docker_errors(variables: Mapping[str, Any], distribution: str = "", major: str = "",
                  host: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with the role's input, each message starting with the variable at fault."""
    v = c.typed(variables, "docker")
    host = host or {}
    distribution = distribution or str(host.get("distribution", ""))
    major = major or str(host.get("major", ""))
    errors: list[str] = c.os_errors(host, "docker") if host.get("distribution") else []
    errors += c.check_options(v, OPTIONS, host)
    options = v.get("docker_daemon_options")
    if not isinstance(options, Mapping):
        errors.append(f"docker_daemon_options: must be a mapping of daemon.json keys, got {options!r}")
    else:
        merged = docker_daemon_config(v)
        own = {"max-size": str(v.get("docker_log_max_size", "10m")), "max-file": str(v.get("docker_log_max_file", 3))}
        if isinstance(merged.get("log-opts"), Mapping):
            # the role's own log options are reported once, by OPTIONS, under their own names
            merged = {**merged, "log-opts": {k: x for k, x in merged["log-opts"].items() if own.get(k) != x}}
        errors += _type_errors(merged)
    errors += _network_errors(v)

    seen: dict[str, int] = {}
    for i, reg in enumerate(v.get("docker_registries") or []):
        where = f"docker_registries[{i}]"
        if not isinstance(reg, Mapping):
            errors.append(f"{where}: must be a mapping with registry, username, password")
            continue
        unknown = set(reg) - {"registry", "username", "password", "state"}
        if unknown:
            errors.append(f"{where}: unknown keys {sorted(unknown)} (registry, username, password, state)")
        name = reg.get("registry")
        if not isinstance(name, str) or not _REGISTRY.match(name):
            errors.append(f"{where}.registry: {name!r} is not a registry host[:port]")
        elif name in seen:
            errors.append(f"{where}.registry: {name} is already docker_registries[{seen[name]}]")
        else:
            seen[name] = i
        state = reg.get("state", "present")
        if state not in ("present", "absent"):
            errors.append(f"{where}.state: {state!r} must be present or absent")
        if state == "present":
            for key in ("username", "password"):
                if not isinstance(reg.get(key), str) or not reg.get(key):
                    # never print the value: it may be a password
                    errors.append(f"{where}.{key}: must be a non-empty string")
                elif key == "password":
                    errors += c.secret_errors(f"{where}.password", reg["password"])

    if v.get("docker_install_source") == "distro":
        provides = distro_provides(distribution, major)
        for wanted, what in (("docker_compose", "compose"), ("docker_buildx", "buildx")):
            if v.get(wanted) and not provides[what]:
                errors.append(
                    f"{wanted}: {distribution} {major}'s own packages have no {what} v2 plugin; use "
                    f"docker_install_source: official, or set {wanted}: false")
    return errors


ENGINE_PACKAGES = {"official": ["docker-ce", "docker-ce-cli"], "distro": ["docker.io"]}


def docker_package_names(variables: Mapping[str, Any], distribution: str, major: str) -> list[str]:
    """The apt names to install for docker_install_source, with the engine pinned to docker_version
    ("27.3.1" -> "docker-ce=5:27.3.1*": Docker's own packages carry epoch 5)."""
    v = c.typed(variables, "docker")  # -e docker_compose=false is the string "false"
    source = v.get("docker_install_source", "official")
    if source == "official":
        names = ["docker-ce", "docker-ce-cli", "containerd.io"]
        names += ["docker-compose-plugin"] if v.get("docker_compose", True) else []
        names += ["docker-buildx-plugin"] if v.get("docker_buildx", True) else []
    else:
        provides = distro_provides(distribution, major)
        names = ["docker.io"]
        names += [provides["compose"]] if v.get("docker_compose", True) and provides["compose"] else []
        names += [provides["buildx"]] if v.get("docker_buildx", True) and provides["buildx"] else []
    version = str(v.get("docker_version") or "")
    if not version:
        return names
    pattern = ("5:" if source == "official" and ":" not in version else "") + version + "*"
    return [f"{n}={pattern}" if n in ENGINE_PACKAGES[source] else n for n in names]


def docker_host_errors(variables: Mapping[str, Any], conflicts: Sequence[str], installed: Sequence[str],
                       running: int, missing_users: Sequence[str]) -> list[str]:
    """What the host's state forbids: replacing an engine while containers run, conflicting
    packages without permission to remove them, docker_users that do not exist."""
    v = c.typed(variables, "docker")
    source = v.get("docker_install_source", "official")
    replaced = [p for p in installed if p in conflicts]
    errors = []
    if replaced and v.get("docker_remove_conflicting", True) and running > 0 \
            and not v.get("docker_replace_running_engine", False):
        errors.append(f"docker_install_source: {source} would remove {', '.join(replaced)} while {running} "
                      "container(s) run; stop them first, or set docker_replace_running_engine: true")
    if replaced and not v.get("docker_remove_conflicting", True):
        errors.append(f"docker_install_source: {source} conflicts with the installed {', '.join(replaced)}; "
                      "set docker_remove_conflicting: true to replace them")
    if missing_users:
        errors.append(f"docker_users: no such user(s) {', '.join(missing_users)} (create them first, e.g. with the base role)")
    return errors


def distro_provides(distribution: str, major: str) -> dict[str, str]:
    """The distribution's package names for the compose and buildx plugins ('' = none)."""
    try:
        number = int(str(major).split(".", maxsplit=1)[0])
    except ValueError:
        number = 0
    if distribution == "Debian":
        modern = number >= 13
        return {"compose": "docker-compose" if modern else "", "buildx": "docker-buildx" if modern else ""}
    if distribution == "Ubuntu":
        return {"compose": "docker-compose-v2" if number >= 22 else "", "buildx": "docker-buildx" if number >= 22 else ""}
    return {"compose": "", "buildx": ""}


def docker_reload_only(old: Any, new: Mapping[str, Any]) -> bool:
    """True when every top-level key that differs between old and new is applied on SIGHUP.

    ``old`` is the current daemon.json as text (or a dict); unreadable or missing means restart.
    """
    if isinstance(old, (str, bytes)):
        try:
            old = json.loads(old) if old.strip() else {}
        except ValueError:
            return False
    if not isinstance(old, Mapping):
        return False
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    return changed <= RELOADABLE


def docker_unknown_keys(config: Mapping[str, Any], known: Sequence[str]) -> list[str]:
    """Top-level keys of config that are not among the keys the installed dockerd knows."""
    known_set = set(known)
    return sorted(k for k in config if k not in known_set)


class FilterModule:
    """anvil.hetzner docker filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "docker_daemon_config": docker_daemon_config,
            "docker_errors": docker_errors,
            "docker_reload_only": docker_reload_only,
            "docker_unknown_keys": docker_unknown_keys,
            "docker_distro_provides": distro_provides,
            "docker_package_names": docker_package_names,
            "docker_host_errors": docker_host_errors,
        }
