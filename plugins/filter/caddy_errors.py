# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the caddy role's sites; every message names the variable and the site."""

from __future__ import annotations

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.

import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c
from ansible_collections.anvil.hetzner.plugins.plugin_utils.bcrypt import reproducible_bcrypt


_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")
_UPSTREAM = re.compile(r"^(https?://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?\s*(B|KB|KiB|MB|MiB|GB|GiB)?$", re.IGNORECASE)
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h|d))+$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/*%-]*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_UNSAFE = re.compile(r"[{}\n\r\"]")


def _upstream_errors(where: str, upstreams: Any) -> list[str]:
    if not c.is_list(upstreams):
        return [f"{where}: must be a list of host:port"]
    errors = []
    for i, up in enumerate(upstreams):
        m = _UPSTREAM.match(str(up)) if isinstance(up, str) else None
        if not m or (m.group(3) and not 1 <= int(m.group(3)[1:]) <= 65535):
            errors.append(f"{where}[{i}]: {up!r} is not an upstream like 127.0.0.1:8080 or app:3000")
    return errors


def _site_errors(i: int, site: Any, seen: dict[str, str], names: dict[str, int]) -> list[str]:
    where = f"caddy_sites[{i}]"
    if not isinstance(site, Mapping):
        return [f"{where}: must be a mapping (domains, upstreams, ...)"]
    errors = []
    domains = site.get("domains")
    if not c.is_list(domains) or not domains:
        errors.append(f"{where}.domains: must be a non-empty list of domain names")
        domains = []
    label = str(site.get("name") or (domains[0] if domains else i))
    where = f"caddy_sites[{i}] ({label})"
    for d in domains:
        if not isinstance(d, str) or not _DOMAIN.match(d) or len(d) > 253:
            errors.append(f"{where}.domains: {d!r} is not a domain name")
            continue
        key = d.lower()
        if key in seen and seen[key] != where:
            errors.append(f"{where}.domains: {d} is already served by {seen[key]}")
        elif key in seen and site.get("www_redirect"):
            errors.append(f"{where}.www_redirect: {d} is listed, and also the redirect of another listed name")
        seen[key] = where
        if site.get("www_redirect"):
            other = key[4:] if key.startswith("www.") else "www." + key
            if other in seen and seen[other] != where:
                errors.append(f"{where}.www_redirect: {other} is already served by {seen[other]}")
            seen[other] = where
    name = site.get("name")
    if name is not None:
        if not isinstance(name, str) or not _NAME.match(name):
            errors.append(f"{where}.name: {name!r} must be lower-case letters, digits, . _ - (it names the log file)")
        elif name in names:
            errors.append(f"{where}.name: {name} is already caddy_sites[{names[name]}]")
        else:
            names[name] = i
    serves = False
    if site.get("upstreams") is not None:
        errors += _upstream_errors(f"{where}.upstreams", site["upstreams"])
        serves = bool(site["upstreams"])
    if site.get("root") is not None:
        if not isinstance(site["root"], str) or not _PATH.match(site["root"]):
            errors.append(f"{where}.root: {site['root']!r} is not an absolute path")
        serves = True
    if site.get("raw"):
        serves = True
    for j, route in enumerate(site.get("routes") or []):
        rwhere = f"{where}.routes[{j}]"
        if not _PATH.match(str(route.get("path"))):
            errors.append(f"{rwhere}.path: must be a path like /api/*")
            continue
        route = {k: x for k, x in route.items() if x is not None}
        if ("upstreams" in route) == ("root" in route):
            errors.append(f"{rwhere}: needs exactly one of upstreams or root")
        if "upstreams" in route:
            errors += _upstream_errors(f"{rwhere}.upstreams", route["upstreams"])
        if "root" in route and (not isinstance(route["root"], str) or not _PATH.match(route["root"])):
            errors.append(f"{rwhere}.root: {route['root']!r} is not an absolute path")
        serves = True
    if not serves:
        errors.append(f"{where}: serves nothing; give upstreams, root, routes or raw")
    if site.get("health_uri") is not None and (not isinstance(site["health_uri"], str) or not _PATH.match(site["health_uri"])):
        errors.append(f"{where}.health_uri: {site['health_uri']!r} must be a path like /healthz")
    for key in ("health_interval", "health_timeout"):
        if site.get(key) is not None and not _DURATION.match(str(site[key])):
            errors.append(f"{where}.{key}: {site[key]!r} is not a duration like 5s")
    if site.get("max_body_size") is not None and not _SIZE.match(str(site["max_body_size"])):
        errors.append(f"{where}.max_body_size: {site['max_body_size']!r} is not a size like 10MB")
    errors += c.basic_auth_errors(f"{where}.basic_auth", site.get("basic_auth"))
    for j, path in enumerate(site.get("basic_auth_paths") or []):
        if not isinstance(path, str) or not _PATH.match(path):
            errors.append(f"{where}.basic_auth_paths[{j}]: {path!r} must be a path like /admin/*")
    for hname, value in (site.get("headers") or {}).items():
        if not _HEADER.match(str(hname)):
            errors.append(f"{where}.headers: {hname!r} is not a header name")
        if _UNSAFE.search(str(value)):
            errors.append(f"{where}.headers[{hname!r}]: braces, quotes and newlines are not allowed in a value")
    if site.get("csp") and _UNSAFE.search(str(site["csp"])):
        errors.append(f"{where}.csp: braces, quotes and newlines are not allowed")
    return errors


def _admin(value: Any) -> str | None:
    admin = str(value)
    if admin == "off" or re.match(r"^(localhost|127\.0\.0\.1|\[::1\]):[0-9]{1,5}$|^unix//[A-Za-z0-9/._-]+$", admin):
        return None
    return ("must be off, a loopback host:port (localhost:2019) or unix//path; the admin API must never listen "
            "on a public address")


def _no_injection(value: Any) -> str | None:
    return "may not contain braces, quotes or newlines" if value and _UNSAFE.search(str(value)) else None


# Options with a format or range (bool and choices are the argument spec's): see plugin_utils/checks.py.
OPTIONS: dict[str, c.Check] = {
    "caddy_repository_url": c.pattern(r"^https?://[^\s\"']+$", "an http(s) URL", bad=("", "dl.cloudsmith.io")),
    "caddy_version": c.pattern(r"^[0-9]+(\.[0-9]+){0,2}([~+:.a-z0-9-]*)$", "a version like 2.8.4 (or empty)",
                               bad=("latest", "2.8; rm"), empty_ok=True),
    "caddy_acme_email": c.EMAIL,
    "caddy_admin": c.Check(_admin, bad=("0.0.0.0:2019", ":2019", "203.0.113.5:2019")),
    "caddy_hsts_max_age": c.int_range(0, 63072000, "seconds"),
    "caddy_csp": c.Check(_no_injection, bad=('default-src "self"', "a}b")),
    "caddy_log_dir": c.ABSOLUTE_PATH,
    "caddy_log_roll_size": c.pattern(_SIZE.pattern, "a size like 50MiB", bad=("", "big", "-5MB")),
    "caddy_log_roll_keep": c.int_range(1, 1000),
    "caddy_log_roll_keep_for": c.pattern(_DURATION.pattern, "a duration like 720h", bad=("", "30 days", "1w")),
}
FREE_FORM: dict[str, str] = {
    "caddy_global_extra": "raw Caddyfile global options, validated with the whole file by caddy validate",
    "caddy_sites": "every site field is checked below (domains, upstreams, paths, sizes, durations, users)",
}
SUBOPTION_BAD = {
    "caddy_sites": ([{"domains": ["bad domain"], "upstreams": ["127.0.0.1:8080"]}],
                    [{"domains": ["example.com"], "upstreams": ["127.0.0.1:99999"]}],
                    [{"domains": ["example.com"]}],
                    [{"domains": ["example.com"], "upstreams": ["127.0.0.1:8080"], "max_body_size": "huge"}],
                    [{"domains": ["example.com"], "upstreams": ["127.0.0.1:8080"],
                      "basic_auth": [{"username": "ops", "password": "short"}]}]),
}


# Caddy's own daemon holds its ports on a rerun: not "taken"
OWN_PROCESSES = ("caddy", "caddy.service")


def caddy_ports(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The ports Caddy will listen on, by the option that makes it: 80 and 443 for caddy_sites, the
    admin endpoint's port (on loopback) for caddy_admin."""
    wanted: dict[str, Any] = {}
    if variables.get("caddy_sites"):
        wanted.update({"caddy_sites (HTTP)": 80, "caddy_sites (HTTPS)": 443})
    admin = str(variables.get("caddy_admin", "localhost:2019"))
    match = re.match(r"^(localhost|127\.0\.0\.1|\[::1\]):([0-9]{1,5})$", admin)
    if match:
        address = {"localhost": "127.0.0.1", "[::1]": "::1"}.get(match.group(1), match.group(1))
        wanted["caddy_admin"] = (int(match.group(2)), address)
    return wanted


def caddy_errors(variables: Mapping[str, Any], host: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with the caddy role's input. host may carry listening (host_probe's listening
    sockets) and ports (port -> who uses it in the other roles' configuration): the ports Caddy needs
    (80 and 443 with sites, the admin endpoint's) must be free or Caddy's own."""
    v = c.typed(variables, "caddy")
    host = host or {}
    errors: list[str] = c.os_errors(host, "caddy") if host.get("distribution") else []
    errors += c.check_options(v, OPTIONS, host)
    if "listening" in host or host.get("ports"):
        errors += c.port_errors(caddy_ports(v), host.get("listening"), OWN_PROCESSES, host.get("ports"))
    seen: dict[str, str] = {}
    names: dict[str, int] = {}
    sites = v.get("caddy_sites") or []
    for i, site in enumerate(sites if c.is_list(sites) else []):
        errors += _site_errors(i, site, seen, names)
    if v.get("caddy_admin") == "off" and v.get("caddy_metrics"):
        errors.append("caddy_metrics: metrics are served on the admin endpoint; caddy_admin is off")
    return errors


_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def caddy_size_bytes(size: Any) -> int:
    """A size as Caddy reads it (go-humanize: KB = 1000, KiB = 1024), in bytes."""
    match = _SIZE.match(str(size).strip())
    if not match:
        raise ValueError(f"{size!r} is not a size like 10MB")
    number = float(str(size).strip()[: match.start(2)] if match.group(2) else str(size).strip())
    return int(number * _UNITS[(match.group(2) or "").lower()])


def caddy_basic_auth_hashes(sites: Any) -> dict[str, str]:
    """``{"<site name>/<user>": bcrypt hash}`` for every basic-auth user of every site. The salt
    comes from site, user and password, so a rerun writes the same Caddyfile."""
    hashes = {}
    for site in sites or []:
        name = site.get("name") or site["domains"][0]
        for user in site.get("basic_auth") or []:
            try:
                hashes[f"{name}/{user['username']}"] = reproducible_bcrypt(
                    user["password"], ["anvil-caddy", name, user["username"]])
            except (TypeError, ValueError, ImportError) as exc:
                raise AnsibleFilterError(f"caddy_sites ({name}).basic_auth ({user.get('username')}): {exc}") from exc
    return hashes


class FilterModule:
    """anvil.hetzner caddy filters."""

    def filters(self) -> dict[str, Any]:
        return {"caddy_errors": caddy_errors, "caddy_size_bytes": caddy_size_bytes,
                "caddy_basic_auth_hashes": caddy_basic_auth_hashes}
