# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the caddy role's sites; every message names the variable and the site."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

DOCUMENTATION = r"""
name: caddy_errors
short_description: Everything wrong with the caddy role's sites, as messages naming the variable
version_added: 0.1.0
description:
  - Checks C(caddy_sites) and the global options for what the role's argument spec cannot express
    (domain names, upstream addresses, sizes, durations, duplicates, sites with nothing to serve),
    so that a bad site is refused before anything on the server changes.
  - Returns a list of messages; an empty list means the input is valid.
options:
  _input:
    description: The role's variables, as a mapping of variable name to value.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse bad sites
  ansible.builtin.fail:
    msg: "{{ errors | join(' | ') }}"
  when: errors | length > 0
  vars:
    errors: "{{ {'caddy_sites': caddy_sites} | anvil.hetzner.caddy_errors }}"
"""

RETURN = r"""
_value:
  description: Messages, one per problem, each starting with the variable (and site) at fault.
  type: list
  elements: str
"""

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")
_UPSTREAM = re.compile(r"^(https?://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?\s*(B|KB|KiB|MB|MiB|GB|GiB)?$", re.IGNORECASE)
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h|d))+$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/*%-]*$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
_USER = re.compile(r"^[A-Za-z0-9._@-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_UNSAFE = re.compile(r"[{}\n\r\"]")

LB_POLICIES = ("random", "round_robin", "least_conn", "ip_hash", "first", "uri_hash", "header", "cookie", "client_ip_hash")
SITE_KEYS = {
    "name", "domains", "tls", "www_redirect", "upstreams", "lb_policy", "health_uri", "health_interval",
    "health_timeout", "root", "routes", "basic_auth", "basic_auth_paths", "encode", "max_body_size",
    "headers", "csp", "raw",
}


def _upstream_errors(where: str, upstreams: Any) -> list[str]:
    if isinstance(upstreams, (str, bytes)) or not isinstance(upstreams, Sequence):
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
    unknown = set(site) - SITE_KEYS
    if unknown:
        errors.append(f"{where}: unknown keys {sorted(unknown)}")
    domains = site.get("domains")
    if isinstance(domains, str) or not isinstance(domains, Sequence) or not domains:
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
    if not isinstance(site.get("www_redirect", False), bool):
        errors.append(f"{where}.www_redirect: {site.get('www_redirect')!r} must be true or false")
    if site.get("tls", "auto") not in ("auto", "internal"):
        errors.append(f"{where}.tls: {site.get('tls')!r} must be auto or internal")
    serves = False
    if site.get("upstreams") is not None:
        errors += _upstream_errors(f"{where}.upstreams", site["upstreams"])
        serves = bool(site["upstreams"])
    if site.get("root") is not None:
        if not isinstance(site["root"], str) or not _PATH.match(site["root"]):
            errors.append(f"{where}.root: {site['root']!r} is not an absolute path")
        serves = True
    if site.get("raw"):
        if not isinstance(site["raw"], str):
            errors.append(f"{where}.raw: must be a string of Caddyfile directives")
        serves = True
    routes = site.get("routes") or []
    if not isinstance(routes, Sequence) or isinstance(routes, str):
        errors.append(f"{where}.routes: must be a list")
        routes = []
    for j, route in enumerate(routes):
        rwhere = f"{where}.routes[{j}]"
        if not isinstance(route, Mapping) or not isinstance(route.get("path"), str) or not _PATH.match(route["path"]):
            errors.append(f"{rwhere}.path: must be a path like /api/*")
            continue
        if set(route) - {"path", "upstreams", "root", "strip_prefix"}:
            errors.append(f"{rwhere}: unknown keys {sorted(set(route) - {'path', 'upstreams', 'root', 'strip_prefix'})}")
        if ("upstreams" in route) == ("root" in route):
            errors.append(f"{rwhere}: needs exactly one of upstreams or root")
        if "upstreams" in route:
            errors += _upstream_errors(f"{rwhere}.upstreams", route["upstreams"])
        if "root" in route and (not isinstance(route["root"], str) or not _PATH.match(route["root"])):
            errors.append(f"{rwhere}.root: {route['root']!r} is not an absolute path")
        serves = True
    if not serves:
        errors.append(f"{where}: serves nothing; give upstreams, root, routes or raw")
    if site.get("lb_policy", "round_robin") not in LB_POLICIES:
        errors.append(f"{where}.lb_policy: {site.get('lb_policy')!r} must be one of {', '.join(LB_POLICIES)}")
    if site.get("health_uri") is not None and (not isinstance(site["health_uri"], str) or not _PATH.match(site["health_uri"])):
        errors.append(f"{where}.health_uri: {site['health_uri']!r} must be a path like /healthz")
    for key in ("health_interval", "health_timeout"):
        if site.get(key) is not None and not _DURATION.match(str(site[key])):
            errors.append(f"{where}.{key}: {site[key]!r} is not a duration like 5s")
    if site.get("max_body_size") is not None and not _SIZE.match(str(site["max_body_size"])):
        errors.append(f"{where}.max_body_size: {site['max_body_size']!r} is not a size like 10MB")
    users = site.get("basic_auth") or []
    if not isinstance(users, Sequence) or isinstance(users, str):
        errors.append(f"{where}.basic_auth: must be a list of username/password")
        users = []
    for j, user in enumerate(users):
        uwhere = f"{where}.basic_auth[{j}]"
        if not isinstance(user, Mapping):
            errors.append(f"{uwhere}: must be a mapping with username and password")
            continue
        if not isinstance(user.get("username"), str) or not _USER.match(user["username"]):
            errors.append(f"{uwhere}.username: must be letters, digits, . _ @ -")
        if not isinstance(user.get("password"), str) or len(user["password"]) < 8:
            # never print the value
            errors.append(f"{uwhere}.password: must be a string of at least 8 characters")
    for j, path in enumerate(site.get("basic_auth_paths") or []):
        if not isinstance(path, str) or not _PATH.match(path):
            errors.append(f"{where}.basic_auth_paths[{j}]: {path!r} must be a path like /admin/*")
    headers = site.get("headers") or {}
    if not isinstance(headers, Mapping):
        errors.append(f"{where}.headers: must be a mapping of header name to value")
        headers = {}
    for hname, value in headers.items():
        if not _HEADER.match(str(hname)):
            errors.append(f"{where}.headers: {hname!r} is not a header name")
        if _UNSAFE.search(str(value)):
            errors.append(f"{where}.headers[{hname!r}]: braces, quotes and newlines are not allowed in a value")
    if site.get("csp") and _UNSAFE.search(str(site["csp"])):
        errors.append(f"{where}.csp: braces, quotes and newlines are not allowed")
    return errors


def caddy_errors(variables: Mapping[str, Any]) -> list[str]:
    """Every problem with the caddy role's input."""
    v = variables
    errors: list[str] = []
    sites = v.get("caddy_sites") or []
    if isinstance(sites, (str, bytes)) or not isinstance(sites, Sequence):
        return ["caddy_sites: must be a list of sites"]
    seen: dict[str, str] = {}
    names: dict[str, int] = {}
    for i, site in enumerate(sites):
        errors += _site_errors(i, site, seen, names)
    email = v.get("caddy_acme_email") or ""
    if email and not _EMAIL.match(email):
        errors.append(f"caddy_acme_email: {email!r} is not an e-mail address")
    admin = str(v.get("caddy_admin", "localhost:2019"))
    if admin != "off" and not re.match(r"^(localhost|127\.0\.0\.1|\[::1\]):[0-9]{1,5}$|^unix//[A-Za-z0-9/._-]+$", admin):
        errors.append(f"caddy_admin: {admin!r} must be off, a loopback host:port (localhost:2019) or unix//path; "
                      "the admin API must never listen on a public address")
    if admin == "off" and v.get("caddy_metrics"):
        errors.append("caddy_metrics: metrics are served on the admin endpoint; caddy_admin is off")
    for key in ("caddy_log_roll_size",):
        if not _SIZE.match(str(v.get(key, "50MiB"))):
            errors.append(f"{key}: {v.get(key)!r} is not a size like 50MiB")
    if not _DURATION.match(str(v.get("caddy_log_roll_keep_for", "720h"))):
        errors.append(f"caddy_log_roll_keep_for: {v.get('caddy_log_roll_keep_for')!r} is not a duration like 720h")
    if v.get("caddy_csp") and _UNSAFE.search(str(v["caddy_csp"])):
        errors.append("caddy_csp: braces, quotes and newlines are not allowed")
    return errors


_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}


def caddy_size_bytes(size: Any) -> int:
    """A size as Caddy reads it (go-humanize: KB = 1000, KiB = 1024), in bytes."""
    match = _SIZE.match(str(size).strip())
    if not match:
        raise ValueError(f"{size!r} is not a size like 10MB")
    number = float(str(size).strip()[: match.start(2)] if match.group(2) else str(size).strip())
    return int(number * _UNITS[(match.group(2) or "").lower()])


class FilterModule:
    """anvil.hetzner caddy filters."""

    def filters(self) -> dict[str, Any]:
        return {"caddy_errors": caddy_errors, "caddy_size_bytes": caddy_size_bytes}
