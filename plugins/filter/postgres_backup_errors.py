# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the postgres_backup role's input; every message names the variable and never a password."""

from __future__ import annotations

DOCUMENTATION = r"""
name: postgres_backup_errors
short_description: Everything wrong with the postgres_backup role's input, as messages naming the variable
version_added: 0.4.0
description:
  - Checks what the argument spec cannot express - database and backup names, the backup directory
    (retention deletes inside it), calendars (with the host's systemd-analyze), retention counts, age
    recipients (a secret key is refused), the remote connection and the offsite settings (pinned host key,
    a path that stays in the account) - and the combinations (source docker without a container, remote
    without credentials).
  - Age recipients are decoded (bech32 with its checksum, the C(age) prefix, a 32-byte key; ssh-ed25519 and
    ssh-rsa recipients parsed as real keys); the host key is read as C(ssh-keyscan -p 23 <host>) prints it
    (one or several C([host]:port type key), C(host type key) or C(type key) lines, C(#) comment lines), each key
    parsed; the remote password and the webhook URL follow the one rule for secrets (no control character, no
    trailing newline). A refused recipient, key, password or URL is never repeated in a message.
  - Options given as C(-e key=value) strings are read with their spec type first (Ansible's own conversions).
  - Returns a list of messages; an empty list means the input is valid. Passwords are never in a message.
options:
  _input:
    description: The role's variables, as a mapping of variable name to value.
    type: dict
    required: true
  host:
    description: What the role read from the host (C(distribution), C(major), C(version), C(invalid_calendars)).
    type: dict
"""

EXAMPLES = r"""
- name: Refuse bad input
  ansible.builtin.fail:
    msg: "{{ errors | join(' | ') }}"
  when: errors | length > 0
  vars:
    errors: "{{ {'postgres_backup_keep_last': 0} | anvil.hetzner.postgres_backup_errors }}"
"""

RETURN = r"""
_value:
  description: Messages, one per problem, each starting with the variable at fault.
  type: list
  elements: str
"""

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import checks as c

# Names the backup script uses as file names and shell words: no spaces, quotes or slashes.
_DB = r"^[A-Za-z0-9_][A-Za-z0-9_$-]{0,62}$"
_TIMESPAN = r"^[0-9]+ ?(us|ms|s|sec|min|m|h|d|w)?( ?[0-9]+ ?(us|ms|s|sec|min|m|h|d|w))*$"
_REMOTE_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")


def _backup_dir(value: Any) -> str | None:
    reason = c.ABSOLUTE_PATH.test(value)
    if reason:
        return reason
    if value in ("/", "/var", "/var/backups", "/root", "/home") or value.startswith(("/tmp", "/var/tmp", "/run", "/proc")):
        return "is not a directory of its own for backups (retention deletes inside it)"
    return None


OPTIONS: dict[str, c.Check] = {
    "postgres_backup_container": c.pattern(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$", "a container name or id",
                                           bad=("my container", "-x"), empty_ok=True),
    "postgres_backup_databases": c.pattern(_DB, "a database name without spaces, quotes or slashes",
                                           bad=(["my db"], ["../x"], ["a'b"]), each=True),
    "postgres_backup_name": c.pattern(r"^[a-z0-9][a-z0-9_-]{0,40}$", "a short name (a-z 0-9 _ -)",
                                      bad=("", "Main", "a b")),
    "postgres_backup_dir": c.Check(_backup_dir, bad=("", "backups", "/", "/tmp/backups", "/var/backups")),
    "postgres_backup_calendar": c.CALENDAR,
    "postgres_backup_drill_calendar": c.CALENDAR,
    "postgres_backup_randomized_delay": c.pattern(_TIMESPAN, "a systemd time span like 15m", bad=("", "soon", "-5m")),
    "postgres_backup_min_size_bytes": c.int_range(1, 10**9, "bytes"),
    "postgres_backup_keep_daily": c.int_range(0, 1000),
    "postgres_backup_keep_weekly": c.int_range(0, 1000),
    "postgres_backup_keep_monthly": c.int_range(0, 1000),
    "postgres_backup_keep_last": c.int_range(1, 1000),
    "postgres_backup_network_timeout": c.int_range(5, 3600, "seconds"),
    "postgres_backup_offsite_timeout": c.int_range(60, 7 * 86400, "seconds"),
    "postgres_backup_unit_timeout": c.int_range(300, 7 * 86400, "seconds"),
    "postgres_backup_age_recipients": c.AGE_RECIPIENTS,
    "postgres_backup_on_failure_webhook": c.WEBHOOK_URL,
}
FREE_FORM: dict[str, str] = {
    "postgres_backup_on_failure_command": "a command of the operator's, run by root in the OnFailure= unit",
    "postgres_backup_remote": "host, user and password are checked below when the source is remote",
    "postgres_backup_offsite": "host, user, path and the pinned host key are checked below",
}
SUBOPTION_BAD: dict[str, tuple[Any, ...]] = {}


def _remote_errors(remote: Mapping[str, Any]) -> list[str]:
    errors = []
    if not remote.get("host") or c.HOST_NAMES.test(remote.get("host")):
        errors.append("postgres_backup_remote.host: needs the server's name or address")
    if not remote.get("user") or not re.match(c.USER_NAME_RE, str(remote.get("user"))):
        errors.append("postgres_backup_remote.user: needs a user name")
    errors += c.secret_errors("postgres_backup_remote.password", remote.get("password"), required=True)
    errors += c.PORT.errors("postgres_backup_remote.port", remote.get("port", 5432))
    return errors


def _offsite_errors(offsite: Mapping[str, Any]) -> list[str]:
    errors = []
    if not offsite.get("host") or c.HOST_NAMES.test(offsite.get("host")):
        errors.append("postgres_backup_offsite.host: needs the Storage Box's host name")
    if not offsite.get("user") or not re.match(r"^[A-Za-z0-9._-]{1,64}$", str(offsite.get("user"))):
        errors.append("postgres_backup_offsite.user: needs the SSH user (u123456 or a sub-account)")
    errors += c.PORT.errors("postgres_backup_offsite.port", offsite.get("port", 23))
    path = str(offsite.get("path", "postgres"))
    if not _REMOTE_PATH.match(path) or ".." in path.split("/"):
        errors.append(f"postgres_backup_offsite.path: {path!r} must be a directory path without spaces or ..")
    _keys, reason = c.known_host_keys(offsite.get("host_key"))
    if reason:
        errors.append(f"postgres_backup_offsite.host_key: {reason}; give the host's public key lines, pinned so that "
                      "a changed key stops the copy (ssh-keyscan -p 23 <host> prints them; check them once yourself)")
    return errors


def postgres_backup_errors(variables: Mapping[str, Any], host: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with the postgres_backup role's input."""
    v = c.typed(variables, "postgres_backup")
    host = host or {}
    errors: list[str] = c.os_errors(host, "postgres_backup") if host.get("distribution") else []
    errors += c.check_options(v, OPTIONS, host)
    source = v.get("postgres_backup_source", "host")
    if source == "docker" and not v.get("postgres_backup_container"):
        errors.append("postgres_backup_container: needs the container's name with source docker")
    if source == "remote":
        errors += _remote_errors(v.get("postgres_backup_remote") or {})
    if v.get("postgres_backup_offsite"):
        errors += _offsite_errors(v["postgres_backup_offsite"])
    network, offsite, unit = (v.get(f"postgres_backup_{n}_timeout") for n in ("network", "offsite", "unit"))
    if all(c.is_int(t) for t in (network, offsite, unit)) and not network < offsite <= unit:
        errors.append(f"postgres_backup_offsite_timeout: {offsite} must lie above postgres_backup_network_timeout "
                      f"({network}) and not above postgres_backup_unit_timeout ({unit}): a stuck step must fail before "
                      "the whole offsite command, and that before the unit is stopped")
    return errors


class FilterModule:
    """anvil.hetzner postgres_backup filters."""

    def filters(self) -> dict[str, Any]:
        return {"postgres_backup_errors": postgres_backup_errors}
