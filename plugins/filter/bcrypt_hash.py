# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reproducible bcrypt: the same password and context give the same hash on every run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.anvil.hetzner.plugins.plugin_utils.bcrypt import reproducible_bcrypt

DOCUMENTATION = r"""
name: bcrypt_hash
short_description: A bcrypt hash whose salt is derived from the password and a context
version_added: 0.2.0
description:
  - Hashes a password with bcrypt (C($2b$)) using a salt derived from O(context) and the password
    (SHA-256), so that a rerun with the same password writes the same hash (the file does not
    change, the service is not reloaded) and a changed password gives a new hash.
  - Two sites or users with the same password get different hashes because their contexts differ.
  - Runs on the controller and needs the C(bcrypt) Python library there; fails saying so when it is
    missing, instead of writing a hash nobody can log in with.
options:
  _input:
    description: The password.
    type: str
    required: true
  context:
    description: Strings that make the salt unique to its use, e.g. role, site and user name.
    type: list
    elements: str
    required: true
  cost:
    description: bcrypt cost (log2 rounds), 4 to 31.
    type: int
    default: 12
"""

EXAMPLES = r"""
- name: Hash a basic-auth password for Caddy
  ansible.builtin.set_fact:
    hashed: "{{ 'correct horse' | anvil.hetzner.bcrypt_hash(['anvil-caddy', 'example', 'ops']) }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The bcrypt hash (C($2b$<cost>$<salt><hash>), 60 characters).
  type: str
"""


def bcrypt_hash(password: Any, context: Sequence[str], cost: int = 12) -> str:
    try:
        return reproducible_bcrypt(password, context, cost)
    except (TypeError, ValueError, ImportError) as exc:
        raise AnsibleFilterError(f"bcrypt_hash: {exc}") from exc


class FilterModule:
    """anvil.hetzner bcrypt filter."""

    def filters(self) -> dict[str, Any]:
        return {"bcrypt_hash": bcrypt_hash}
