# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the node_exporter role's input; work out where it listens and what a scrape needs."""

from __future__ import annotations

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c
from ansible_collections.anvil.hetzner.plugins.plugin_utils.bcrypt import reproducible_bcrypt

# Collectors of node_exporter 1.5 (Debian 12), read from its --help; every later release keeps them.
COLLECTORS = frozenset((
    "arp bcache bonding btrfs buddyinfo cgroups conntrack cpu cpufreq diskstats dmi drbd drm edac entropy "
    "ethtool fibrechannel filefd filesystem hwmon infiniband interrupts ipvs ksmd lnstat loadavg logind mdadm "
    "meminfo meminfo_numa mountstats netclass netdev netstat network_route nfs nfsd ntp nvme os perf "
    "powersupplyclass pressure processes qdisc rapl runit schedstat selinux slabinfo sockstat softnet stat "
    "supervisord sysctl systemd tapestats tcpstat textfile thermal_zone time timex udp_queues uname vmstat wifi "
    "xfs zfs zoneinfo").split())
# Collectors that 1.5 lacks and 1.9 (Debian 13) has.
NEWER_COLLECTORS = frozenset(("cpu_vulnerabilities", "softirqs", "watchdog", "xfrm"))
# The version each distribution packages (prometheus-node-exporter).
DISTRO_VERSIONS = {("Debian", "12"): "1.5.0", ("Debian", "13"): "1.9.0",
                   ("Ubuntu", "22"): "1.3.1", ("Ubuntu", "24"): "1.7.0"}
# ansible_facts['architecture'] -> the release tarballs' name for it.
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armv7", "armv6l": "armv6", "i386": "386",
                 "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
# ProtectHome / PrivateTmp hide these from the service (the textfile directory would look empty).
HIDDEN_PREFIXES = ("/home", "/root", "/run/user", "/tmp", "/var/tmp")

_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_OPTIONAL_PATH = r"^(/[A-Za-z0-9._~/@+-]*)?$"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"[0-9]+", version)[:3])


def _collectors(value: Any) -> str | None:
    if not isinstance(value, str) or value not in COLLECTORS | NEWER_COLLECTORS:
        return "is not a node_exporter collector (see node_exporter --help: --collector.<name>)"
    return None


def _textfile_dir(value: Any) -> str | None:
    reason = c.ABSOLUTE_PATH.test(value)
    if reason:
        return reason
    if value == "/" or any(value == p or value.startswith(p + "/") for p in HIDDEN_PREFIXES):
        return f"lies where the hardened unit cannot see it ({', '.join(HIDDEN_PREFIXES)} are hidden from it)"
    return None


def _checksums(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be a mapping of architecture (amd64, arm64) to SHA-256"
    for arch, digest in value.items():
        if arch not in ARCHITECTURES.values():
            return f"has {arch!r}, not a release architecture ({', '.join(sorted(set(ARCHITECTURES.values())))})"
        if not isinstance(digest, str) or not _SHA256.match(digest):
            return f"[{arch}] is not a SHA-256 (64 lower-case hex digits)"
    return None


# Options with a format or range (bool and choices are the argument spec's): see plugin_utils/checks.py.
OPTIONS: dict[str, c.Check] = {
    "node_exporter_version": c.pattern(_VERSION.pattern, "a release version like 1.9.1", bad=("", "latest", "v1.9.1")),
    "node_exporter_download_url": c.pattern(r"^(https?|file)://[^\s\"'{}]+[^/]$", "an http(s) URL without a trailing /",
                                            bad=("", "github.com/prometheus", "https://example.com/")),
    "node_exporter_checksums": c.Check(_checksums, bad=({"amd64": "abc"}, {"sparc": "0" * 64}, {"amd64": "A" * 64})),
    "node_exporter_controller_cache_dir": c.pattern(_OPTIONAL_PATH, "an absolute path (or empty)",
                                                    bad=("relative/dir", "/with space"), empty_ok=True),
    "node_exporter_listen_address": c.Check(lambda v: None if v == "" else c.ADDRESSES.test(v),
                                            bad=("10.0.0.300", "localhost", "0.0.0.0:9100")),
    "node_exporter_port": c.PORT,
    "node_exporter_collectors": c.Check(_collectors, bad=(["no_such_collector"], ["--collector.cpu"]), each=True),
    "node_exporter_collectors_disabled": c.Check(_collectors, bad=(["nope"],), each=True),
    "node_exporter_textfile_dir": c.Check(_textfile_dir, bad=("", "textfile", "/home/metrics", "/tmp/x")),
    "node_exporter_textfile_group": c.USER_NAME,
    "node_exporter_user": c.SERVICE_USER,
    "node_exporter_prometheus_sources": c.NETWORKS,
    "node_exporter_tls_cert_file": c.pattern(_OPTIONAL_PATH, "an absolute path (or empty)",
                                             bad=("cert.pem",), empty_ok=True),
    "node_exporter_tls_key_file": c.pattern(_OPTIONAL_PATH, "an absolute path (or empty)",
                                            bad=("key.pem",), empty_ok=True),
    "node_exporter_upgrade_metrics_calendar": c.CALENDAR,
    "node_exporter_upgrade_metrics_max_age": c.int_range(300, 400 * 86400, "seconds"),
}
FREE_FORM: dict[str, str] = {
    "node_exporter_basic_auth_users": "user names, password lengths and duplicates are checked below (never printed)",
}
SUBOPTION_BAD = {
    "node_exporter_basic_auth_users": ([{"username": "prom:etheus", "password": "long-enough-1"}],
                                       [{"username": "prometheus", "password": "short"}],
                                       [{"username": "prometheus", "password": "long-enough-1"},
                                        {"username": "prometheus", "password": "long-enough-2"}]),
}


# node_exporter's own daemon (its current port is not "taken"): the package's and the tarball's names
OWN_PROCESSES = ("prometheus-node", "prometheus-node-exporter", "prometheus-node-exporter.service", "node_exporter")


def bcrypt_available() -> bool:
    try:
        import bcrypt  # pylint: disable=import-outside-toplevel,unused-import  # noqa: F401
    except ImportError:
        return False
    return True


def node_exporter_listen(variables: Mapping[str, Any]) -> str:
    """The address the role binds: node_exporter_listen_address, else the host's Hetzner private
    address (hcloud_private_ipv4 from the anvil.hetzner.hcloud inventory), else 127.0.0.1."""
    address = str(variables.get("node_exporter_listen_address") or "")
    return address or str(variables.get("hcloud_private_ipv4") or "") or "127.0.0.1"


def node_exporter_version_run(variables: Mapping[str, Any], host: Mapping[str, Any]) -> str:
    """The node_exporter version the role will run on the host (tarball: the pinned release;
    distro: what the distribution packages)."""
    if variables.get("node_exporter_install_source", "distro") == "tarball":
        return str(variables.get("node_exporter_version", ""))
    major = str(host.get("major", "")).split(".", maxsplit=1)[0]
    return DISTRO_VERSIONS.get((str(host.get("distribution", "")), major), "")


def _readable_by(entry: Mapping[str, Any], user: str) -> bool:
    """Whether the service user (primary group of the same name, as the role creates it) can read
    a file, from owner, group and mode (as host_probe reports them)."""
    try:
        mode = int(str(entry.get("mode") or "0"), 8)
    except ValueError:
        return True  # unknown: let the service's own start say
    return bool((entry.get("owner") == user and mode & 0o400) or (entry.get("group") == user and mode & 0o040)
                or mode & 0o004)


def node_exporter_errors(variables: Mapping[str, Any], host: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with the node_exporter role's input, in the host's light: host has
    distribution/major/version, architecture, addresses (every address of the host), exists
    (path -> bool) and files (path -> owner, group, mode) for the TLS files, listening (host_probe's
    listening sockets), users (host_probe's users, with node_exporter_user), deploy_user
    (base_deploy_user when the play sets it) and ports (port -> who uses it in the other roles'
    configuration, e.g. {22: 'base_ssh_port (sshd)'})."""
    v = c.typed(variables, "node_exporter")
    host = host or {}
    errors: list[str] = c.os_errors(host, "node_exporter") if host.get("distribution") else []
    errors += c.check_options(v, OPTIONS, host)
    users = v.get("node_exporter_basic_auth_users") or []
    errors += c.basic_auth_errors("node_exporter_basic_auth_users", users)
    errors += c.service_user_errors("node_exporter_user", v.get("node_exporter_user", "node-exporter"),
                                    host.get("users"), host.get("deploy_user"))
    if "listening" in host or host.get("ports"):
        errors += c.port_errors({"node_exporter_port": (v.get("node_exporter_port", 9100), node_exporter_listen(v))},
                                host.get("listening"), OWN_PROCESSES, host.get("ports"))
    cert, key = v.get("node_exporter_tls_cert_file") or "", v.get("node_exporter_tls_key_file") or ""
    if bool(cert) != bool(key):
        errors.append("node_exporter_tls_cert_file, node_exporter_tls_key_file: give both or neither")
    user = str(v.get("node_exporter_user") or "node-exporter")
    for name, path in (("node_exporter_tls_cert_file", cert), ("node_exporter_tls_key_file", key)):
        if path and host.get("exists") is not None and not host["exists"].get(path):
            errors.append(f"{name}: {path} does not exist on the host")
        elif path and (host.get("files") or {}).get(path, {}).get("exists") \
                and not _readable_by(host["files"][path], user):
            entry = host["files"][path]
            errors.append(f"{name}: {path} ({entry.get('owner')}:{entry.get('group')} {entry.get('mode')}) cannot be read "
                          f"by {user}, the service user; make it readable by that user or its group")
    if users and not bcrypt_available():
        errors.append("node_exporter_basic_auth_users: hashing the passwords needs the Python bcrypt library on the "
                      "controller (pip install bcrypt); without it no usable hash can be written")
    protected = bool(users) or bool(cert)

    listen = node_exporter_listen(v)
    if not c.ADDRESSES.test(listen):
        ip = ipaddress.ip_address(listen)
        which = "node_exporter_listen_address" if v.get("node_exporter_listen_address") else "hcloud_private_ipv4"
        if c.is_public(listen) and not protected:
            errors.append(f"{which}: {listen} is {'every address' if ip.is_unspecified else 'a public address'}; "
                          "metrics (and host details) would be open to the internet: set "
                          "node_exporter_basic_auth_users or TLS, or listen on a private address")
        addresses = host.get("addresses")
        if addresses is not None and not ip.is_unspecified and not ip.is_loopback and listen not in addresses:
            errors.append(f"{which}: {listen} is not an address of this host (it has {', '.join(addresses) or 'none'})")

    enabled = v.get("node_exporter_collectors") or []
    disabled = v.get("node_exporter_collectors_disabled") or []
    if c.is_list(enabled) and c.is_list(disabled):
        for name in sorted(set(enabled) & set(disabled), key=str):
            errors.append(f"node_exporter_collectors_disabled: {name} is also in node_exporter_collectors")
        version = node_exporter_version_run(v, host) if host.get("distribution") else ""
        if version and _VERSION.match(version) and _version_tuple(version) <= (1, 5, 0):
            for name in sorted(NEWER_COLLECTORS & set(enabled), key=str):
                errors.append(f"node_exporter_collectors: {name} is not in node_exporter {version} "
                              "(the version this host would run); it needs a newer release")

    if v.get("node_exporter_install_source") == "tarball" and host.get("architecture"):
        if host["architecture"] not in ARCHITECTURES:
            errors.append(f"node_exporter_install_source: no release tarball for the architecture "
                          f"{host['architecture']}; use distro")
    return errors


def node_exporter_arch(architecture: str) -> str:
    """ansible_facts['architecture'] in the release tarballs' words (x86_64 -> amd64)."""
    try:
        return ARCHITECTURES[architecture]
    except KeyError as exc:
        raise AnsibleFilterError(f"node_exporter: no release tarball for the architecture {architecture}") from exc


def node_exporter_web_config(users: Sequence[Mapping[str, Any]], context: str, tls_cert: str = "",
                             tls_key: str = "") -> dict[str, Any]:
    """The --web.config.file content: bcrypt hashes whose salt comes from context, user and
    password (a rerun writes the same file; nothing restarts), and TLS when both files are set."""
    config: dict[str, Any] = {}
    if tls_cert and tls_key:
        config["tls_server_config"] = {"cert_file": tls_cert, "key_file": tls_key, "min_version": "TLS12"}
    if users:
        hashes = {}
        for user in users:
            try:
                hashes[user["username"]] = reproducible_bcrypt(user["password"],
                                                               ["anvil-node_exporter", context, user["username"]])
            except (TypeError, ValueError, ImportError) as exc:
                raise AnsibleFilterError(f"node_exporter_basic_auth_users ({user.get('username')}): {exc}") from exc
        config["basic_auth_users"] = hashes
    return config


class FilterModule:
    """anvil.hetzner node_exporter filters."""

    def filters(self) -> dict[str, Any]:
        return {"node_exporter_errors": node_exporter_errors, "node_exporter_listen": node_exporter_listen,
                "node_exporter_arch": node_exporter_arch, "node_exporter_web_config": node_exporter_web_config}
