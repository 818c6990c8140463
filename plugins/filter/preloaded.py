# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load the collection's filter, test and lookup plugins once, in Ansible's main process."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ansible.plugins.loader import lookup_loader, test_loader
from ansible.utils.display import Display

display = Display()

DOCUMENTATION = r"""
name: preloaded
short_description: Its input unchanged, with the collection's filter, test and lookup plugins loaded
version_added: 0.9.0
description:
  - Ansible runs each task of each host in a new process forked from its main one. A plugin of a
    collection that the main process has not loaded is read and compiled again in every one of
    them (ansible-core's collection loader keeps no bytecode), and the first C(anvil.hetzner) filter
    a task uses loads every filter file of the collection to find it (about 0.07 s a task, some 3 s
    of a no-change C(site.yml)).
  - This filter returns its input as it is. In the process that templates it, it loads (once) every
    filter, test and lookup plugin of the collection, so that the processes forked after it inherit
    them.
  - It only helps where Ansible templates in its main process, in a play's C(hosts) and the C(name) of
    a task. C(playbooks/site.yml) uses it in its first play's C(hosts), each role in the name of the
    first task of its input check (tagged C(always)). Elsewhere it costs nothing and changes nothing.
  - It never fails. A plugin that cannot be loaded here is left for the task that uses it, which
    reports its error as before.
options:
  _input:
    description: Any value.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Harden the hosts
  hosts: "{{ anvil_hosts | default('all') | anvil.hetzner.preloaded }}"
  tasks:
    - name: "Read the host{{ '' | anvil.hetzner.preloaded }}"
      anvil.hetzner.host_probe:
        paths: [/etc/ssh/sshd_config]
"""

RETURN = r"""
_value:
  description: The input, unchanged.
  type: raw
"""

COLLECTION = "anvil.hetzner"
# (the filters: looking this filter up loaded every filter file of the collection already)
LOADERS = (("test", test_loader), ("lookup", lookup_loader))
LOADED: list[str] = []


def load_plugins() -> list[str]:
    """Load every test and lookup plugin of the collection; the names loaded."""
    names = []
    for kind, loader in LOADERS:
        try:
            package = importlib.import_module(f"ansible_collections.{COLLECTION}.plugins.{kind}")
        except ImportError:
            continue
        for module in pkgutil.iter_modules(package.__path__):
            if module.ispkg:
                continue
            name = f"{COLLECTION}.{module.name}"
            try:
                loader.get(name, class_only=True)
            except Exception as exc:  # pylint: disable=broad-exception-caught  # (the task using it reports it)
                display.vvv(f"anvil.hetzner.preloaded: {kind} {name} not loaded here: {exc}")
                continue
            names.append(f"{kind} {name}")
    return names


def preloaded(value: Any) -> Any:
    if not LOADED:
        LOADED.extend(load_plugins() or ["(none)"])
    return value


class FilterModule:
    """anvil.hetzner preloaded filter."""

    def filters(self) -> dict[str, Any]:
        return {"preloaded": preloaded}
