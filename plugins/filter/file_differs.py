# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a file on the host differs from what a task would write (so the task can be skipped)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

DOCUMENTATION = r"""
name: file_differs
short_description: Whether a file read by anvil.hetzner.host_probe differs from the wanted content, mode and owner
version_added: 0.2.0
description:
  - Compares one entry of C(host_probe)'s C(files) result with the content a task would write
    (SHA-1), its mode and its owner and group. A task guarded by it is skipped when nothing would
    change, which saves the module call a no-change run would otherwise make.
  - When in doubt (file missing, unreadable, no entry) it says the file differs, so the task runs
    and decides for itself.
options:
  _input:
    description: The C(host_probe) entry (C(exists), C(mode), C(owner), C(group), C(sha1)).
    type: dict
    required: true
  content:
    description: What the task would write (e.g. C(lookup('ansible.builtin.template', 'x.j2'))).
    type: str
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
- name: Write the sysctl file (only when it would change)
  ansible.builtin.template:
    src: sysctl.conf.j2
    dest: /etc/sysctl.d/90-anvil.conf
    mode: "0644"
  when: probe.files['/etc/sysctl.d/90-anvil.conf'] | anvil.hetzner.file_differs(lookup('ansible.builtin.template', 'sysctl.conf.j2'), '0644')
"""

RETURN = r"""
_value:
  description: True when the task would change the file (or it cannot be told), false when it would not.
  type: bool
"""


def file_differs(entry: Any, content: Any, mode: str, owner: str = "root", group: str = "root") -> bool:
    if not isinstance(entry, Mapping) or not entry.get("exists") or not entry.get("sha1"):
        return True
    digest = hashlib.sha1(str(content).encode("utf-8")).hexdigest()
    wanted_mode = str(mode).zfill(4)
    return (entry.get("sha1"), entry.get("mode"), entry.get("owner"), entry.get("group")) != (digest, wanted_mode, owner, group)


class FilterModule:
    """anvil.hetzner file_differs filter."""

    def filters(self) -> dict[str, Any]:
        return {"file_differs": file_differs}
