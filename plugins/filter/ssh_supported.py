# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that choose sshd settings from what the installed OpenSSH supports."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: ssh_supported
short_description: Keep the preferred SSH algorithms that the installed OpenSSH supports
version_added: 0.1.0
description:
  - Intersects an ordered list of preferred algorithms with the output of C(ssh -Q <kind>) from the
    target host, keeping the order of preference.
  - Fails, naming the variable, when nothing of the preferred list is supported, so that an
    sshd_config with an empty or unknown algorithm list is never written.
options:
  _input:
    description: Preferred algorithms, strongest first.
    type: list
    elements: str
    required: true
  supported:
    description: Output of C(ssh -Q kex|cipher|mac|key) (a string, one algorithm per line, or a list).
    type: raw
    required: true
  option:
    description: Name of the variable the preferred list came from, used in error messages.
    type: str
    default: algorithms
"""

EXAMPLES = r"""
- name: Render only algorithms this OpenSSH knows
  ansible.builtin.debug:
    msg: "{{ base_ssh_ciphers | anvil.hetzner.ssh_supported(ssh_q_cipher.stdout, 'base_ssh_ciphers') }}"
"""

RETURN = r"""
_value:
  description: The preferred algorithms that are supported, in the order given.
  type: list
  elements: str
"""

_ALGORITHM = re.compile(r"^[A-Za-z0-9@._+-]+$")


def parse_supported(supported: Any) -> list[str]:
    """Turn ``ssh -Q`` output (text or list of lines) into a list of algorithm names."""
    if isinstance(supported, str):
        lines = supported.splitlines()
    elif isinstance(supported, (list, tuple)):
        lines = [str(item) for item in supported]
    else:
        raise AnsibleFilterError(
            f"ssh_supported: 'supported' must be the text printed by 'ssh -Q' or a list, "
            f"got {type(supported).__name__}"
        )
    return [line.strip() for line in lines if line.strip()]


def ssh_supported(preferred: Any, supported: Any, option: str = "algorithms") -> list[str]:
    """Return the preferred algorithms that ``supported`` lists, keeping the preference order."""
    if not isinstance(preferred, (list, tuple)) or not all(isinstance(a, str) for a in preferred):
        raise AnsibleFilterError(f"{option} must be a list of algorithm names")
    bad = [a for a in preferred if not _ALGORITHM.match(a)]
    if bad:
        raise AnsibleFilterError(f"{option} holds names that are not SSH algorithms: {', '.join(bad)}")
    available = set(parse_supported(supported))
    chosen: list[str] = []
    for algorithm in preferred:
        if algorithm in available and algorithm not in chosen:
            chosen.append(algorithm)
    if not chosen:
        raise AnsibleFilterError(
            f"none of the algorithms in {option} ({', '.join(preferred) or 'empty list'}) is supported "
            f"by the OpenSSH on this host; it supports: {', '.join(sorted(available)) or 'nothing'}"
        )
    return chosen


class FilterModule:
    """anvil.hetzner SSH filters."""

    def filters(self) -> dict[str, Any]:
        return {"ssh_supported": ssh_supported}
