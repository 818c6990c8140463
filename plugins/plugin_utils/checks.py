# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared input checks for every role's ``<role>_errors`` filter.

A role's argument spec (meta/argument_specs.yml) states types and choices; Ansible enforces them
before the role starts. What a spec cannot say (ranges, formats, combinations) is declared here,
once per kind of value, and each role's filter lists its options in an ``OPTIONS`` table that maps
an option to one of these checks. Every check also carries values it must refuse (``bad``): the
spec-driven test (tests/integration/test_spec_bad_inputs.py) feeds them to the real role, so a new
option cannot ship without a refusal.

Messages start with the variable (and item) at fault. Values that may be secrets (passwords) are
never given to these checks; the roles check them without printing them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Check:
    """One kind of value: ``test`` returns why a value is wrong, or None when it is fine."""

    test: Callable[[Any], str | None]
    bad: tuple[Any, ...] = ()
    each: bool = False  # apply to every element of a list option
    host: str = ""  # a check that also needs the host's answer (e.g. "calendar")
    nonempty: bool = False  # a list that needs at least one element

    def errors(self, where: str, value: Any) -> list[str]:
        if self.each:
            if not is_list(value):
                return [f"{where}: must be a list"]
            if self.nonempty and not value:
                return [f"{where}: must not be empty"]
            out = []
            for index, item in enumerate(value):
                reason = self.test(item)
                if reason:
                    out.append(f"{where}[{index}]: {item!r} {reason}")
            return out
        reason = self.test(value)
        return [f"{where}: {value!r} {reason}"] if reason else []


# ---------------------------------------------------------------------------------------------
# Plain helpers, used by the checks below and by the roles' own combination checks.


def is_list(value: Any) -> bool:
    """A list (or tuple) but not a string: YAML's ``foo`` where ``[foo]`` was meant is refused."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def network(value: Any) -> Network | None:
    """An address or CIDR network as a network, or None (no surrounding blanks allowed)."""
    if not isinstance(value, str) or not value or value != value.strip():
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A single IP address, or None."""
    if not isinstance(value, str) or not value or value != value.strip():
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Check builders.


def int_range(low: int, high: int, unit: str = "") -> Check:
    suffix = f" {unit}" if unit else ""

    def test(value: Any) -> str | None:
        if not is_int(value) or not low <= value <= high:
            return f"must be a whole number from {low} to {high}{suffix}"
        return None

    return Check(test, bad=(low - 1, high + 1))


def pattern(regex: str, what: str, bad: tuple[Any, ...], empty_ok: bool = False, each: bool = False,
            max_len: int = 0) -> Check:
    compiled = re.compile(regex)

    def test(value: Any) -> str | None:
        if empty_ok and value in ("", None):
            return None
        if not isinstance(value, str) or not compiled.match(value) or (max_len and len(value) > max_len):
            return f"is not {what}"
        return None

    return Check(test, bad=bad, each=each)


def _port(value: Any) -> str | None:
    return None if is_int(value) and 1 <= value <= 65535 else "is not a port number from 1 to 65535"


def _address(value: Any) -> str | None:
    return None if address(value) is not None else "is not an IP address"


def _network(value: Any) -> str | None:
    return None if network(value) is not None else "is not an IP address or a CIDR network"


def _calendar(value: Any) -> str | None:
    # The syntax is systemd's: the host answers for it (systemd-analyze calendar, host="calendar").
    if not isinstance(value, str) or not value.strip() or "\n" in value or len(value) > 200:
        return "is not a systemd calendar expression such as daily or Mon *-*-* 04:00"
    return None


PORT = Check(_port, bad=(0, 65536, -1))
PORTS = Check(_port, bad=([0], [70000]), each=True)
ADDRESSES = Check(_address, bad=(["10.0.0.300"], ["not-an-ip"], [" 10.0.0.1"]), each=True)
NETWORKS = Check(_network, bad=(["10.0.0.0/33"], ["any"], ["example.com"]), each=True)
CALENDAR = Check(_calendar, bad=("", "every tuesday-ish"), host="calendar")
USER_NAME_RE = r"^[a-z_][a-z0-9_-]{0,31}$"
USER_NAME = pattern(USER_NAME_RE, "a user name (lower-case letter or _ first, then letters, digits, _ or -, "
                    "at most 32)", bad=("", "Deploy", "a b", "x" * 40))
USER_NAMES = pattern(USER_NAME_RE, "a user name", bad=(["Bad User"], ["-x"]), each=True)
GROUP_NAMES = pattern(USER_NAME_RE, "a group name", bad=(["Bad Group"], ["root;"]), each=True)
HOST_NAME_RE = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
HOST_NAMES = pattern(r"^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$", "a host name or address",
                     bad=(["ntp server"], ["-x"], [""]), each=True)
EMAIL = pattern(r"^[^@\s\"']+@[^@\s\"']+\.[^@\s\"']+$", "an e-mail address", bad=("root", "a b@c.d", "x@"),
                empty_ok=True)
ABSOLUTE_PATH = pattern(r"^/[A-Za-z0-9._~/@+-]*$", "an absolute path", bad=("", "relative/path", "/with space"))
ABSOLUTE_PATHS = pattern(r"^/[A-Za-z0-9._~/@+*?-]*$", "an absolute path (globs allowed)",
                         bad=(["relative/*.log"], ["/a b"]), each=True)
SHELL = pattern(r"^/[A-Za-z0-9._/-]+$", "an absolute path to a shell", bad=("", "bash", "/bin/ba sh"))
PACKAGE_NAMES = pattern(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~*-]+)?$", "a Debian package name",
                        bad=(["Not A Package"], ["pkg;rm"]), each=True)
SSH_ALGORITHMS = pattern(r"^[a-z0-9][a-z0-9.@+-]*$", "an OpenSSH algorithm name",
                         bad=(["aes256 ctr"], ["AES;"]), each=True)
SAFE_TEXTS = pattern(r"^[^\"';{}\n\\]*\S[^\"';{}\n\\]*$", "free of quotes, semicolons, braces and newlines",
                     bad=(['foo";'], ["a{b}"], [""]), each=True)


BASIC_AUTH_USER_RE = r"^[A-Za-z0-9._@-]{1,64}$"


def basic_auth_errors(where: str, users: Any) -> list[str]:
    """Basic-auth users (``username``, ``password``) for Caddy sites and node_exporter: names that
    fit every htpasswd-style format (no colon, no space), each once, passwords of 8 characters or
    more. Messages never contain a password."""
    if users is None:
        return []
    if not is_list(users):
        return [f"{where}: must be a list of mappings with username and password"]
    errors = []
    seen: set[str] = set()
    for i, user in enumerate(users):
        uwhere = f"{where}[{i}]"
        if not isinstance(user, Mapping):
            errors.append(f"{uwhere}: must be a mapping with username and password")
            continue
        name = user.get("username")
        if not isinstance(name, str) or not re.match(BASIC_AUTH_USER_RE, name):
            errors.append(f"{uwhere}.username: must be 1-64 letters, digits, . _ @ - (no colon, no space)")
        elif name in seen:
            errors.append(f"{uwhere}.username: {name} is listed twice")
        else:
            seen.add(name)
        if not isinstance(user.get("password"), str) or len(user["password"]) < 8:
            errors.append(f"{uwhere}.password: must be a string of at least 8 characters")
    return errors


def nonempty(check: Check) -> Check:
    """The same list check, refusing an empty list as well."""
    return replace(check, nonempty=True, bad=check.bad + ([],))


# ---------------------------------------------------------------------------------------------
# Applying a table, the OS check and host-backed checks.

SUPPORTED = {"Debian": ("12", "13"), "Ubuntu": ("22", "24")}


def os_errors(host: Mapping[str, Any], role: str) -> list[str]:
    """The one OS/version support check every role uses."""
    distribution = str(host.get("distribution", ""))
    major = str(host.get("major", "")).split(".", maxsplit=1)[0]
    if major not in SUPPORTED.get(distribution, ()):
        supported = ", ".join(f"{d} {'/'.join(v)}" for d, v in SUPPORTED.items())
        return [f"unsupported system {distribution} {host.get('version', major)} for anvil.hetzner.{role} "
                f"(supported: {supported}; tested in CI: Debian 12/13)"]
    return []


def check_options(variables: Mapping[str, Any], table: Mapping[str, Check],
                  host: Mapping[str, Any] | None = None) -> list[str]:
    """Apply a role's OPTIONS table. Options absent from ``variables`` are skipped."""
    host = host or {}
    invalid_calendars = set(host.get("invalid_calendars") or [])
    errors: list[str] = []
    for name, check in table.items():
        if name not in variables:
            continue
        value = variables[name]
        found = check.errors(name, value)
        errors += found
        if not found and check.host == "calendar" and value in invalid_calendars:
            errors.append(f"{name}: {value!r} is not a systemd calendar expression (systemd-analyze calendar "
                          "refuses it); try daily, weekly or Mon *-*-* 04:00")
    return errors
