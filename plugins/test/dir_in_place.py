# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja test: is a path, as anvil.hetzner.host_probe read it, already the wanted directory?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOCUMENTATION = r"""
name: dir_in_place
short_description: Is a path read by anvil.hetzner.host_probe already a directory with this mode, owner and group
version_added: 0.3.0
description:
  - True when the C(host_probe) entry is an existing directory with the given mode, owner and
    group, so a task that would make it can be skipped (a no-change run then calls no module for it).
  - False when in doubt (missing entry, not a directory), so the task runs and decides for itself.
options:
  _input:
    description: The C(host_probe) entry of the path (from its C(files) result).
    type: dict
    required: true
  mode:
    description: The wanted mode, four octal digits.
    type: str
    required: true
  owner:
    description: The wanted owner.
    type: str
    default: root
  group:
    description: The wanted group.
    type: str
    default: root
"""

EXAMPLES = r"""
- name: Make the log directory
  ansible.builtin.file:
    path: /var/log/caddy
    state: directory
    owner: caddy
    group: caddy
    mode: "0750"
  when: probe.files['/var/log/caddy'] is not anvil.hetzner.dir_in_place('0750', 'caddy', 'caddy')
"""

RETURN = r"""
_value:
  description: Whether the directory is already as wanted.
  type: bool
"""


def dir_in_place(entry: Any, mode: str, owner: str = "root", group: str = "root") -> bool:
    """True when the probed entry is a directory with that mode, owner and group."""
    if not isinstance(entry, Mapping):
        return False
    return (entry.get("isdir"), entry.get("mode"), entry.get("owner"), entry.get("group")) == (
        True, str(mode).zfill(4), owner, group)


class TestModule:
    """anvil.hetzner dir_in_place test."""

    def tests(self) -> dict[str, Any]:
        return {"dir_in_place": dir_in_place}
