# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a task file would run any task now: its tasks' own conditions, evaluated in one step."""

from __future__ import annotations

DOCUMENTATION = r"""
name: has_work
short_description: Whether any task of a task file would run now
version_added: 0.2.0
description:
  - Reads a task file of the current role and evaluates, in order, the C(when) of each of its tasks
    (with their C(vars), their block's C(when) and C(vars), and per item of a C(loop)) against the
    variables of this moment. Returns V(true) as soon as one task would run, V(false) when every
    task would be skipped.
  - Made for C(include_tasks) with a C(when). A role whose tasks each decide from one read of the
    host whether there is work (C(anvil.hetzner.host_probe)) then skips a whole file in one line on
    a run with nothing to change, instead of one skipped task after the other. The conditions cost
    the same here as in the tasks; what saves time is computing their inputs once.
  - An include or import whose C(when) is false is skipped (its file is not looked into); one whose
    C(when) holds makes the file run. So a file of includes, each gated by C(has_work) on its own
    file, is skipped as a whole when none of them has work (the roles' C(parts.yml)), and a run with
    nothing to change lists one skipped line instead of one per part.
  - Errs towards running. A task without C(when), an include or import whose condition holds, a C(with_*) loop, a loop or
    condition that cannot be evaluated now (an undefined variable, an error) makes the file run,
    and Ansible itself then decides task by task as before, errors included.
  - A task found to be skipped has its C(register) variable set for the tasks after it, as Ansible
    sets it (C(skipped=true), C(changed=false)); so a later condition on it is read as it would be.
  - The file is evaluated when the include's C(when) is, so the files before it have run.
options:
  _terms:
    description: Task file names, relative to the role's C(tasks) directory (or absolute paths).
    required: true
    type: list
    elements: str
author:
  - anvil.hetzner maintainers (@anvil-hetzner)
"""

EXAMPLES = r"""
- name: Manage users, keys and sudo
  ansible.builtin.include_tasks:
    file: users.yml
    apply:
      tags: [base, base_users]
  when: query('anvil.hetzner.has_work', 'users.yml') | first
  tags: [base, base_users]
"""

RETURN = r"""
_raw:
  description: One boolean per file, true when at least one of its tasks would run.
  type: list
  elements: bool
"""

import threading
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.template import Templar
from ansible.utils.display import Display

display = Display()


# Keywords that hand control to other files or plugins: the file runs (not looked into).
INCLUDES = frozenset((
    "include_tasks", "import_tasks", "include_role", "import_role", "include_vars", "include",
    "ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_role",
    "ansible.builtin.import_role",
))


class Runs(Exception):
    """A task of the file would run (or cannot be shown to be skipped): its name."""


def _whens(node: dict[str, Any]) -> list[Any]:
    when = node.get("when")
    if when is None:
        return []
    return when if isinstance(when, list) else [when]


def _skipped(reason: str) -> dict[str, Any]:
    return {"changed": False, "skipped": True, "skip_reason": reason}


class LookupModule(LookupBase):
    """See DOCUMENTATION."""

    def run(self, terms: list[str], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[bool]:
        variables = dict(variables or {})
        results = []
        for term in terms:
            path = self.find_file_in_search_path(variables, "tasks", term)
            if path is None:
                raise AnsibleLookupError(f"anvil.hetzner.has_work: no task file {term!r} in the role")
            tasks = self._loader.load_from_file(path, trusted_as_template=True) or []
            if not isinstance(tasks, list):
                raise AnsibleLookupError(f"anvil.hetzner.has_work: {path} is not a list of tasks")
            try:
                self._walk_apart(tasks, variables)
            except Runs as task:
                display.vvv(f"anvil.hetzner.has_work: {term} runs: first task that would run: {task}")
                results.append(True)
                continue
            display.vvv(f"anvil.hetzner.has_work: {term}: every task would be skipped")
            results.append(False)
        return results

    def _walk_apart(self, tasks: list[Any], variables: dict[str, Any]) -> None:
        """_walk in a thread of its own: a lookup runs inside the template that called it, whose
        context (a context variable) would change how a condition's undefined values behave
        (`x['missing'] | default(false)` fails there). A new thread starts without that context,
        as a task's `when` is evaluated."""
        outcome: list[BaseException] = []

        def walk() -> None:
            try:
                self._walk(tasks, variables, {})
            except BaseException as exc:  # pylint: disable=broad-exception-caught  # (re-raised below)
                outcome.append(exc)

        thread = threading.Thread(target=walk, name="anvil-has-work")
        thread.start()
        thread.join()
        if outcome:
            raise outcome[0]

    def _walk(self, tasks: list[Any], scope: dict[str, Any], registered: dict[str, Any]) -> None:
        """Raise Runs at the first task that would run; record each skipped task's register in
        `registered` (a host's registered variables outrank block and task vars, as in Ansible)."""
        for node in tasks:
            if not isinstance(node, dict):
                raise Runs(repr(node))
            name = str(node.get("name", "(unnamed)"))
            local = dict(scope)
            if isinstance(node.get("vars"), dict):
                local.update(node["vars"])
            local.update(registered)
            if "block" in node:
                if self._conditions_hold(node, local, name):
                    self._walk(node.get("block") or [], local, registered)
                    # (rescue runs only after a failure, and nothing here ran)
                    self._walk(node.get("always") or [], local, registered)
                else:
                    # every task of the block and of its always is skipped (and registered so);
                    # rescue never starts
                    self._mark_skipped((node.get("block") or []) + (node.get("always") or []), registered)
                continue
            if any(key in INCLUDES or key.startswith("with_") for key in node):
                if self._conditions_hold(node, local, name):
                    raise Runs(name)
                continue
            skipped = self._task_skipped(node, local, name)
            if node.get("register"):
                registered[str(node["register"])] = skipped

    def _mark_skipped(self, tasks: list[Any], registered: dict[str, Any]) -> None:
        for node in tasks:
            if not isinstance(node, dict):
                continue
            if "block" in node:
                self._mark_skipped((node.get("block") or []) + (node.get("always") or []), registered)
            elif node.get("register"):
                registered[str(node["register"])] = _skipped("Conditional result was False")

    def _task_skipped(self, node: dict[str, Any], local: dict[str, Any], name: str) -> dict[str, Any]:
        """The result Ansible registers for this task when every condition is false; else Runs."""
        if "loop" not in node:
            if self._conditions_hold(node, local, name):
                raise Runs(name)
            return _skipped("Conditional result was False")
        control = node.get("loop_control") or {}
        if not isinstance(control, dict) or control.get("extended") or control.get("break_when"):
            raise Runs(name)
        items = self._value(node["loop"], local, name)
        if not isinstance(items, list):
            raise Runs(name)
        if not items:
            return {"changed": False, "skipped": True, "skipped_reason": "No items in the list", "results": []}
        loop_var = str(control.get("loop_var", "item"))
        index_var = control.get("index_var")
        results = []
        for index, item in enumerate(items):
            per_item = dict(local)
            per_item[loop_var] = item
            if index_var:
                per_item[str(index_var)] = index
            if self._conditions_hold(node, per_item, name):
                raise Runs(f"{name} (item {index})")
            results.append(_skipped("Conditional result was False") | {loop_var: item, "ansible_loop_var": loop_var})
        return {"changed": False, "skipped": True, "msg": "All items skipped", "results": results}

    def _templar_for(self, variables: dict[str, Any]) -> Templar:
        return Templar(loader=self._loader, variables=variables)

    def _value(self, expression: Any, variables: dict[str, Any], name: str) -> Any:
        try:
            return self._templar_for(variables).template(expression)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # (any error: the file runs)
            display.vvv(f"anvil.hetzner.has_work: {name}: its loop cannot be read now ({exc}): the file runs")
            raise Runs(name) from exc

    def _conditions_hold(self, node: dict[str, Any], variables: dict[str, Any], name: str) -> bool:
        templar = self._templar_for(variables)
        for condition in _whens(node):
            try:
                if not templar.evaluate_conditional(condition):
                    return False
            except Exception as exc:  # pylint: disable=broad-exception-caught  # (any error: the file runs)
                display.vvv(f"anvil.hetzner.has_work: {name}: its condition cannot be evaluated now ({exc}): the file runs")
                raise Runs(name) from exc
        return True
