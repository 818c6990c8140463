# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared input checks for every role's ``<role>_errors`` filter.

A role's argument spec (meta/argument_specs.yml) states types and choices; Ansible enforces them
before the role starts. What a spec cannot say (ranges, formats, combinations) is declared here,
once per kind of value, and each role's filter lists its options in an ``OPTIONS`` table that maps
an option to one of these checks. Every check also carries values it must refuse (``bad``): the
spec-driven test (tests/integration/test_spec_bad_inputs.py) feeds them to the real role, so a new
option cannot ship without a refusal.

Messages start with the variable (and item) at fault. A check of a value that may be a secret (a
password, a token, a key, a URL that may carry a token, an environment value) is made with
``secret=True`` and never repeats the value: it says what is wrong with it.

Extra vars given as ``-e key=value`` are strings; ``typed`` converts a role's int, bool and float
options with Ansible's own conversions (driven by the role's argument spec) before any check.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import os
import re
import struct
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml
from ansible.module_utils.common.validation import check_type_bool, check_type_float, check_type_int

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Check:
    """One kind of value: ``test`` returns why a value is wrong, or None when it is fine."""

    test: Callable[[Any], str | None]
    bad: tuple[Any, ...] = ()
    each: bool = False  # apply to every element of a list option
    host: str = ""  # a check that also needs the host's answer (e.g. "calendar")
    nonempty: bool = False  # a list that needs at least one element
    secret: bool = False  # the value may be a secret: a message never repeats it

    def _message(self, where: str, value: Any, reason: str) -> str:
        return f"{where}: {reason}" if self.secret else f"{where}: {value!r} {reason}"

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
                    out.append(self._message(f"{where}[{index}]", item, reason))
            return out
        reason = self.test(value)
        return [self._message(where, value, reason)] if reason else []


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


def _service_user(value: Any) -> str | None:
    if value == "root":
        return "is not a service user: the daemon must run unprivileged (keep the default or name an account of its own)"
    return USER_NAME.test(value)


# A daemon's own account; what the host knows about it (uid 0, privileged groups) is service_user_errors'.
SERVICE_USER = Check(_service_user, bad=USER_NAME.bad + ("root",))
USER_NAMES = pattern(USER_NAME_RE, "a user name", bad=(["Bad User"], ["-x"]), each=True)
GROUP_NAMES = pattern(USER_NAME_RE, "a group name", bad=(["Bad Group"], ["root;"]), each=True)
HOST_NAME_RE = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
HOST_NAMES = pattern(r"^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$", "a host name or address",
                     bad=(["ntp server"], ["-x"], [""]), each=True)
EMAIL = pattern(r"^[^@\s\"']+@[^@\s\"']+\.[^@\s\"']+$", "an e-mail address", bad=("root", "a b@c.d", "x@"),
                empty_ok=True)
ABSOLUTE_PATH = pattern(r"^/[A-Za-z0-9._~/@+-]*$", "an absolute path", bad=("", "relative/path", "/with space"))
ABSOLUTE_PATHS_PLAIN = pattern(r"^/[A-Za-z0-9._~/@+-]*$", "an absolute path (no globs or spaces)",
                               bad=(["relative"], ["/with space"], ["/etc/*"]), each=True)
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
        errors += secret_errors(f"{uwhere}.password", user.get("password"), required=True, min_len=8)
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


# ---------------------------------------------------------------------------------------------
# -e key=value: the role's spec types applied to strings, with Ansible's own conversions.

_ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
_CONVERT = {"int": check_type_int, "bool": check_type_bool, "float": check_type_float}


@functools.lru_cache(maxsize=None)
def spec_types(role: str) -> dict[str, str]:
    """Option -> type (int, bool, float) of a role's argument spec, for the options ``typed`` converts."""
    path = os.path.join(_ROLES, role, "meta", "argument_specs.yml")
    with open(path, encoding="utf-8") as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    return {name: option["type"] for name, option in options.items() if option.get("type") in _CONVERT}


def convert(kind: str, value: Any) -> Any:
    """A value as Ansible's argument validation reads it for a spec type (int, bool, float): the strings
    ``-e key=value`` gives ("30", "false", "yes", "0.5") become 30, False, True, 0.5. A value that does not
    convert ("thirty") is returned as it is, for the option's own check to refuse, naming the option."""
    if kind not in _CONVERT or isinstance(value, bool) or (kind != "bool" and not isinstance(value, str)):
        return value
    if kind == "bool" and not isinstance(value, (str, int)):
        return value
    try:
        return _CONVERT[kind](value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return value


def typed(variables: Mapping[str, Any], role: str | Mapping[str, str]) -> dict[str, Any]:
    """The role's variables with every int, bool and float option converted as ``convert`` does;
    ``role`` is the role's name (its meta/argument_specs.yml is read) or an option -> type mapping."""
    types = spec_types(role) if isinstance(role, str) else role
    return {name: convert(types[name], value) if name in types else value for name, value in variables.items()}


# ---------------------------------------------------------------------------------------------
# Secrets: one rule for control characters; values that look like private keys.

NEWLINE_END = "ends with a newline (a YAML | block keeps it; use |- or a quoted string)"


def is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


# Addresses the internet cannot reach: RFC 1918 (Hetzner's private networks are 10.0.0.0/8 here),
# shared address space, loopback, link-local, IPv6 unique-local. Everything else counts as public
# (also documentation ranges, which Python's is_private would call private).
NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10"))


def is_public(value: str) -> bool:
    """Whether a listener or target at this address is reachable from the internet: a wildcard or
    public address, or a name (where it points is not known here)."""
    try:
        ip = ipaddress.ip_address(str(value).strip("[]"))
    except ValueError:
        return True
    return ip.is_unspecified or not any(ip.version == n.version and ip in n for n in NOT_PUBLIC)


def looks_private(value: Any) -> bool:
    """An age or SSH/PEM private key (which must never be pasted where a public value is asked)."""
    text = str(value)
    return "AGE-SECRET-KEY-" in text.upper() or "PRIVATE KEY" in text.upper() or "PuTTY-User-Key-File" in text


def secret_reason(value: Any, required: bool = False, min_len: int = 0) -> str | None:
    """Why a password, token or other secret is unusable, never repeating it; None when fine."""
    if value is None or value == "":
        return "needs a value (from vault)" if required or min_len else None
    if not isinstance(value, str):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) and not min_len \
            else "must be a string (the value is not shown)"
    if value.endswith(("\n", "\r")):
        return NEWLINE_END
    if any(is_control(ch) for ch in value):
        return "contains a control character such as a newline, tab or escape (the value is not shown)"
    if min_len and len(value) < min_len:
        return f"must be at least {min_len} characters (the value is not shown)"
    return None


def secret_errors(where: str, value: Any, required: bool = False, min_len: int = 0) -> list[str]:
    """``secret_reason`` as a message naming the variable."""
    reason = secret_reason(value, required, min_len)
    return [f"{where}: {reason}"] if reason else []


def _secret_text(value: Any) -> str | None:
    return secret_reason(value)


SECRET = Check(_secret_text, bad=("pass-word-1\n", "pa\tss-word"), secret=True)


def _webhook(value: Any) -> str | None:
    if value in ("", None):
        return None
    reason = secret_reason(value)
    if reason:
        return reason
    if not re.match(r"^https?://[^\s\"'`$\\]+$", value):
        return "is not an http(s) URL (the value is not shown: it may carry a token)"
    return None


# A webhook URL (may carry a token: never repeated), empty for none.
WEBHOOK_URL = Check(_webhook, bad=("hooks.example.com", "https://hooks.example.com/t0ken\n"), secret=True)


# ---------------------------------------------------------------------------------------------
# Values whose validity is computed: age recipients (bech32), SSH public keys, host keys, bcrypt
# hashes, PEM certificates.

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values: Iterable[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def bech32_decode(text: str) -> tuple[str, bytes] | None:
    """(hrp, payload) of a bech32 string (BIP 173, as age uses it, without the 90-character limit), or
    None when it is not one: mixed case, characters outside the alphabet, a bad checksum or padding."""
    if text.lower() != text and text.upper() != text:
        return None
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or any(ord(ch) < 33 or ord(ch) > 126 for ch in text):
        return None
    hrp, data = text[:pos], text[pos + 1:]
    if any(ch not in _BECH32 for ch in data):
        return None
    values = [_BECH32.index(ch) for ch in data]
    expanded = [ord(ch) >> 5 for ch in hrp] + [0] + [ord(ch) & 31 for ch in hrp]
    if _bech32_polymod(expanded + values) != 1:
        return None
    acc, bits, out = 0, 0, bytearray()
    for value in values[:-6]:
        acc = (acc << 5) | value
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        return None  # padding longer than 4 bits, or not zero
    return hrp, bytes(out)


def _ssh_strings(blob: bytes, count: int = 0) -> list[bytes]:
    """The length-prefixed fields of an SSH wire-format blob (the first ``count`` of them, all when 0;
    a certificate goes on with fixed-size fields); ValueError when they do not parse."""
    fields, offset = [], 0
    while offset < len(blob) and (not count or len(fields) < count):
        if offset + 4 > len(blob):
            raise ValueError("truncated")
        (size,) = struct.unpack(">I", blob[offset:offset + 4])
        if offset + 4 + size > len(blob):
            raise ValueError("truncated")
        fields.append(blob[offset + 4:offset + 4 + size])
        offset += 4 + size
    if count and len(fields) < count:
        raise ValueError("truncated")
    return fields


_CURVES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
CERT_TYPES = tuple(kind.replace("@openssh.com", "") + "-cert-v01@openssh.com" for kind in KEY_TYPES)


def _key_fields_reason(kind: str, fields: list[bytes], min_rsa_bits: int) -> str | None:
    """Why the public part of a key of this type (the fields after the type string) is wrong."""
    base = kind.replace("-cert-v01@openssh.com", "").replace("@openssh.com", "")
    if base in ("ssh-ed25519", "sk-ssh-ed25519"):
        if not fields or len(fields[0]) != 32:
            return "is not an ed25519 key (its key is not 32 bytes)"
        used = 1
    elif base == "ssh-rsa":
        if len(fields) < 2:
            return "is not an RSA key (no exponent and modulus)"
        bits = int.from_bytes(fields[1], "big").bit_length()
        if bits < min_rsa_bits:
            return f"is an RSA key of {bits} bits; at least {min_rsa_bits} are needed"
        used = 2
    else:
        curve = base.rsplit("-", 1)[-1]
        if len(fields) < 2 or fields[0].decode("ascii", "replace") != curve or len(fields[1]) != _CURVES.get(curve) \
                or fields[1][:1] != b"\x04":
            return f"is not an ECDSA {curve} key (its curve or point does not match)"
        used = 2
    if base.startswith("sk-"):
        if len(fields) <= used or not fields[used]:
            return "is a security-key (sk-) key without its application (ssh:)"
        used += 1
    return None if kind.endswith("-cert-v01@openssh.com") or len(fields) == used else "has bytes after its key"


def ssh_public_key_reason(kind: str, data: str, min_rsa_bits: int = 2048, allow_certs: bool = True) -> str | None:
    """Why ``kind data`` is not a real SSH public key: the base64 decodes, the blob's own type string
    is ``kind``, the key has the size its type needs (ed25519 32 bytes, RSA >= min_rsa_bits, ECDSA
    points on the named curve, sk- keys with their application); certificates are parsed down to their key."""
    if kind == "ssh-dss" or kind.startswith("ssh-dss-cert"):
        return "is a DSA (ssh-dss) key, which OpenSSH no longer accepts; use ssh-ed25519"
    if kind not in KEY_TYPES + (CERT_TYPES if allow_certs else ()):
        return f"has the unknown key type {kind[:40]!r} (known: {', '.join(KEY_TYPES)})"
    cert = kind.endswith("-cert-v01@openssh.com")
    base = kind.replace("-cert-v01@openssh.com", "").replace("@openssh.com", "")
    # a certificate: type, nonce, the key's fields, then serial, type, id... (PROTOCOL.certkeys)
    count = 2 + {"ssh-ed25519": 1, "sk-ssh-ed25519": 2, "ssh-rsa": 2, "sk-ecdsa-sha2-nistp256": 3}.get(base, 2) \
        if cert else 0
    try:
        blob = base64.b64decode(data, validate=True)
        fields = _ssh_strings(blob, count)
    except (binascii.Error, ValueError):
        return "is not a public key: its base64 part does not decode to a key"
    if not fields or fields[0] != kind.encode():
        return f"declares {kind} but its base64 part holds another key type"
    fields = fields[1:]
    if cert:
        if len(fields[0]) < 16:
            return "is not an OpenSSH certificate (no nonce)"
        if len(blob) < sum(4 + len(f) for f in fields) + 4 + 8 + 4:
            return "is not an OpenSSH certificate (cut after its key)"
        fields = fields[1:]
    return _key_fields_reason(kind, fields, min_rsa_bits)


_OPTIONS_RE = re.compile(r'^(?:[A-Za-z0-9-]+(?:="(?:[^"\\]|\\.)*")?)(?:,[A-Za-z0-9-]+(?:="(?:[^"\\]|\\.)*")?)*')


def authorized_key_reason(line: Any, options: bool = True, min_rsa_bits: int = 2048) -> str | None:
    """Why an authorized_keys line (``[options] type base64 [comment]``, sshd(8)) is not a usable
    public key; the line is never repeated (a pasted private key must not be printed)."""
    if not isinstance(line, str) or not line.strip():
        return "is not an OpenSSH public key line ('ssh-ed25519 AAAA... comment')"
    if looks_private(line):
        return "looks like a private key: never paste a secret key here; give the .pub file's line"
    if "\n" in line.strip() or "\r" in line:
        return "must be one line (one key per list item)"
    text = line.strip()
    first = text.split(None, 1)[0]
    if first not in KEY_TYPES + CERT_TYPES and first != "ssh-dss" and options:
        match = _OPTIONS_RE.match(text)
        if not match or not text[match.end():match.end() + 1].isspace():
            return "is not an OpenSSH public key line ('[options] ssh-ed25519 AAAA... comment')"
        text = text[match.end():].strip()
    fields = text.split()
    if len(fields) < 2:
        return "is not an OpenSSH public key line ('ssh-ed25519 AAAA... comment')"
    return ssh_public_key_reason(fields[0], fields[1], min_rsa_bits)


def _authorized_key(value: Any) -> str | None:
    return authorized_key_reason(value)


AUTHORIZED_KEYS = Check(_authorized_key, each=True, secret=True, bad=(
    ["not a key"], ["ssh-ed25519"], ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyAAAAAAAAAAAAAAAA x"],
    ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"]))


def age_recipient_reason(value: Any) -> str | None:
    """Why a value is not an age recipient: ``age1...`` (bech32 with checksum, a 32-byte X25519 key) or
    an ssh-ed25519 / ssh-rsa public key checked as a real key. Never repeats the value."""
    what = "is not an age recipient (age1... from age-keygen, or an ssh-ed25519 / ssh-rsa public key)"
    if not isinstance(value, str) or not value.strip():
        return what
    if looks_private(value):
        return "is not an age recipient (it looks like a private key: never paste a secret key here; give the public one)"
    if value.startswith(("ssh-ed25519 ", "ssh-rsa ")):
        fields = value.split()
        reason = ssh_public_key_reason(fields[0], fields[1] if len(fields) > 1 else "", allow_certs=False)
        return f"is not an age recipient: the SSH key {reason}" if reason else None
    if not value.lower().startswith("age1"):
        return what
    decoded = bech32_decode(value)
    if decoded is None:
        return "is not an age recipient: its checksum does not match (a character is wrong or missing); copy it again"
    hrp, payload = decoded
    if hrp != "age" or len(payload) != 32 or value != value.lower():
        return "is not an age X25519 recipient (age1 followed by a 32-byte key, lower case)"
    return None


AGE_RECIPIENTS = Check(age_recipient_reason, each=True, secret=True, nonempty=True, bad=(
    ["age1short"], ["AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"],
    ["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqsrsqqqq"], []))


_KEYSCAN_HOST = re.compile(r"^(\[[^\]\s]+\]:[0-9]{1,5}|[^\s\[\]]+)$")


def known_host_keys(text: Any) -> tuple[list[tuple[str, str]], str | None]:
    """The keys of what ``ssh-keyscan [-p port] host`` prints (or a bare ``type base64`` line): one or
    several lines, each ``[host]:port type base64``, ``host type base64`` or ``type base64`` (a comment
    after the key is allowed), ``# host:port SSH-2.0-...`` comment lines and blank lines ignored.
    Returns ([(type, base64)...], None), or ([], why it is refused) without repeating the text."""
    if not isinstance(text, str) or not text.strip():
        return [], "needs the host's public key as ssh-keyscan prints it"
    if looks_private(text):
        return [], "looks like a private key: never paste a secret key here; give the host's public key"
    keys = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0] not in KEY_TYPES + CERT_TYPES + ("ssh-dss",):
            if not _KEYSCAN_HOST.match(fields[0]) or len(fields) < 3:
                return [], (f"line {number} is not a host key line ('[host]:23 ssh-ed25519 AAAA...' as "
                            "ssh-keyscan -p 23 <host> prints it, or 'ssh-ed25519 AAAA...')")
            fields = fields[1:]
        if len(fields) < 2:
            return [], f"line {number} has no key after its type"
        reason = ssh_public_key_reason(fields[0], fields[1], allow_certs=False)
        if reason:
            return [], f"line {number} {reason}"
        keys.append((fields[0], fields[1]))
    if not keys:
        return [], "has no key line (only comments): run ssh-keyscan -p 23 <host> and give its key lines"
    return keys, None


_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def bcrypt_hash_reason(value: Any) -> str | None:
    """Why a value is not a bcrypt hash ($2a$/$2b$/$2y$, cost 04-31, 22-character salt and 31-character
    hash in bcrypt's alphabet, with the unused low bits of both zero as every bcrypt writes them)."""
    if not isinstance(value, str) or not _BCRYPT.match(value):
        return "is not a bcrypt hash ($2b$ or $2y$, a cost from 04 to 31, then 53 characters of . / A-Z a-z 0-9)"
    salt, digest = value[7:29], value[29:]
    if _BCRYPT_ALPHABET.index(salt[-1]) % 16 or _BCRYPT_ALPHABET.index(digest[-1]) % 4:
        return "is not a bcrypt hash (its salt or hash does not end as bcrypt encodes it: damaged or cut)"
    return None


BCRYPT_HASH = Check(bcrypt_hash_reason, secret=True,
                    bad=("$2b$12$short", "$2b$03$" + "a" * 53, "$1$abc$def", "$2b$12$" + "a" * 21 + "b" + "a" * 31))

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END \1-----")


def pem_certificate_reason(text: Any) -> str | None:
    """Why a text is not one or more PEM X.509 certificates: parsed with ``cryptography`` when the
    controller has it, else the base64 DER must decode to an ASN.1 SEQUENCE of its full length."""
    if not isinstance(text, str) or not text.strip():
        return "is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
    if looks_private(text):
        return "is a private key, not a certificate: never paste a secret key here"
    blocks = _PEM.findall(text)
    if not blocks or any(label != "CERTIFICATE" for label, _body in blocks):
        return "is not a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)"
    for index, (_label, body) in enumerate(blocks, 1):
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except binascii.Error:
            return f"certificate {index} is not valid base64"
        try:
            from cryptography import x509  # pylint: disable=import-outside-toplevel
        except ImportError:
            if not _der_sequence(der):
                return f"certificate {index} is not a DER certificate (damaged or cut)"
            continue
        try:
            x509.load_der_x509_certificate(der)
        except ValueError:
            return f"certificate {index} does not parse as an X.509 certificate (damaged or cut)"
    return None


def _der_sequence(der: bytes) -> bool:
    """An ASN.1 SEQUENCE whose length is exactly the data's (a certificate's outer structure)."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    if der[1] < 0x80:
        return 2 + der[1] == len(der)
    count = der[1] & 0x7F
    if count == 0 or count > 4 or len(der) < 2 + count:
        return False
    return 2 + count + int.from_bytes(der[2:2 + count], "big") == len(der)


# ---------------------------------------------------------------------------------------------
# Ports already taken, service users that are privileged.

WILDCARDS = ("0.0.0.0", "::", "")


def _holder(entry: Mapping[str, Any]) -> str:
    name = entry.get("process") or "a process the probe could not read"
    details = ", ".join(str(x) for x in (f"pid {entry['pid']}" if entry.get("pid") else "", entry.get("unit")) if x)
    return f"{name} ({details})" if details else str(name)


def _is_own(entry: Mapping[str, Any], own: Iterable[str]) -> bool:
    names = {str(entry.get("process") or ""), str(entry.get("unit") or ""),
             os.path.basename(str(entry.get("exe") or "")), str(entry.get("exe") or "")}
    return bool(names & set(own) - {""})


def port_owners(ports: Any) -> dict[int, str]:
    """port -> who, keys as ints (a mapping built in a template or given with -e has string keys)."""
    out = {}
    for port, who in (ports.items() if isinstance(ports, Mapping) else ()):
        converted = convert("int", port)
        if is_int(converted):
            out[converted] = str(who)
    return out


def port_errors(wanted: Mapping[str, Any], listening: Sequence[Mapping[str, Any]] | None = None,
                own: Iterable[str] = (), others: Mapping[Any, str] | None = None, proto: str = "tcp",
                own_ports: Iterable[int] = ()) -> list[str]:
    """Ports this role wants that are already taken, one message per option.

    ``wanted``: option (as the message names it) -> port, or (port, address) when the role binds one
    address. ``listening``: host_probe's ``listening`` (unknown when None); a socket whose process,
    executable or systemd unit is in ``own`` is the role's own daemon and does not count, and one bound
    to another specific address than the role's does not clash. ``others``: port -> who wants it in the
    other roles' configuration (e.g. {22: 'base_ssh_port (sshd)'}). ``own_ports``: ports the role's own
    containers or daemon hold now (e.g. the app's published colours), not taken whoever holds them."""
    errors = []
    own = tuple(own)
    others = port_owners(others)
    own_ports = set(own_ports)
    for option, spec in wanted.items():
        port, bind = spec if isinstance(spec, tuple) else (spec, "")
        if not is_int(port) or port in own_ports:
            continue  # a bad port: its own check refuses it
        holders = []
        for entry in listening or ():
            if entry.get("port") != port or entry.get("proto", "tcp") != proto or _is_own(entry, own):
                continue
            if bind not in WILDCARDS and entry.get("address") not in WILDCARDS and entry.get("address") != bind:
                continue
            label = f"{_holder(entry)} on {entry.get('address') or '*'}"
            if label not in holders:
                holders.append(label)
        if holders:
            errors.append(f"{option}: port {port} is already taken by {', '.join(holders)}; choose a free port")
        elif others and port in others:
            errors.append(f"{option}: port {port} is already used by {others[port]}; choose another port")
    return errors


PRIVILEGED_GROUPS = ("root", "sudo", "wheel", "admin", "docker", "adm", "shadow", "disk")


def service_user_errors(where: str, name: Any, users: Mapping[str, Any] | None = None,
                        deploy_user: Any = None) -> list[str]:
    """A daemon's own user must be unprivileged: not root or uid 0, not the deploy user (the operator's
    sudo account), not a member of a group that gives root or reads every secret
    (PRIVILEGED_GROUPS). ``users``: host_probe's ``users`` (name -> uid, gid, groups, exists)."""
    if _service_user(name):
        return []  # root and malformed names: the option's SERVICE_USER check says so
    if deploy_user and name == deploy_user:
        return [f"{where}: {name} is the deploy user (base_deploy_user, who has sudo): the daemon needs an account "
                "of its own"]
    entry = (users or {}).get(name) or {}
    if not entry.get("exists"):
        return []  # the role creates it unprivileged
    if entry.get("uid") == 0 or entry.get("gid") == 0:
        return [f"{where}: {name} has uid or gid 0 (root's powers): the daemon needs an unprivileged account"]
    privileged = sorted(set(entry.get("groups") or ()) & set(PRIVILEGED_GROUPS))
    if privileged:
        return [f"{where}: {name} is in the privileged group(s) {', '.join(privileged)}: the daemon would run with "
                "them; use an account of its own"]
    return []
