# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A ``validate:`` command that checks a new file inside a throwaway copy of its surroundings."""

from __future__ import annotations

import re
import shlex
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: validate_in_copy
short_description: A validate command that tests the new file in a temporary copy of its config tree
version_added: 0.2.0
description:
  - Some daemons validate a whole configuration tree, not one file (C(fail2ban-client -c DIR -t)),
    or must read the file under a fixed name as another user (C(caddy validate)). The template/copy
    modules' C(validate) gets only the new file's temporary path (C(%s)).
  - This filter builds a C(validate) value that makes a temporary directory, optionally copies a
    config tree into it, puts the new file at O(dest) inside it, optionally gives it to O(owner),
    runs the command (C({dir}) in it is the temporary directory) and always removes the directory,
    keeping the command's exit status. The live configuration is never touched.
options:
  _input:
    description: The validation command; C({dir}) stands for the temporary directory.
    type: str
    required: true
  dest:
    description: Path of the new file inside the temporary directory, e.g. C(jail.d/anvil.local).
    type: str
    required: true
  tree:
    description: A directory whose contents are copied into the temporary directory first.
    type: str
    default: ""
  owner:
    description: User (and group of the same name) that gets the temporary directory, for commands run as that user.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Write the jails, tested by fail2ban together with the rest of /etc/fail2ban
  ansible.builtin.template:
    src: jail.local.j2
    dest: /etc/fail2ban/jail.d/anvil.local
    mode: "0644"
    validate: "{{ 'fail2ban-client -c {dir} -t' | anvil.hetzner.validate_in_copy('jail.d/anvil.local', tree='/etc/fail2ban') }}"
"""

RETURN = r"""
_value:
  description: A value for C(validate) (a C(sh -c) command line ending in C(%s)).
  type: str
"""

_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/-]+$")
_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")


def validate_in_copy(command: str, dest: str, tree: str = "", owner: str = "") -> str:
    if "{dir}" not in command:
        raise AnsibleFilterError("validate_in_copy: the command must use {dir} (the temporary directory)")
    if not _SAFE_PATH.match(dest) or dest.startswith("/") or ".." in dest.split("/"):
        raise AnsibleFilterError(f"validate_in_copy: dest must be a relative path inside the copy, got {dest!r}")
    if tree and (not _SAFE_PATH.match(tree) or not tree.startswith("/")):
        raise AnsibleFilterError(f"validate_in_copy: tree must be an absolute path, got {tree!r}")
    if owner and not _SAFE_NAME.match(owner):
        raise AnsibleFilterError(f"validate_in_copy: owner must be a user name, got {owner!r}")
    # an absolute template: with libpam-tmpdir, root's TMPDIR is /tmp/user/0 (0700), where the owner
    # the copy is handed to could not reach it
    steps = ['d=$(mktemp -d /tmp/anvil-validate.XXXXXX)']
    if tree:
        steps.append(f'cp -a {tree}/. "$d"/')
    steps.append(f'mkdir -p "$(dirname "$d/{dest}")"')
    steps.append(f'cp "$1" "$d/{dest}"')
    if owner:
        steps.append(f'chown -R {owner}:{owner} "$d"')
    steps.append(command.replace("{dir}", '"$d"'))
    script = " && ".join(steps) + '; rc=$?; [ -n "$d" ] && rm -rf "$d"; exit $rc'
    return f"sh -c {shlex.quote(script)} validate %s"


class FilterModule:
    """anvil.hetzner validate_in_copy filter."""

    def filters(self) -> dict[str, Any]:
        return {"validate_in_copy": validate_in_copy}
