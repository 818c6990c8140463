# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: no secret of the test's inputs reaches Ansible's output, at any verbosity.

Enabled for every Molecule run by .config/molecule/config.yml (and by tests that run
ansible-playbook). It looks at what the stdout callback is given to show, as -vvv would show it
(every result with its ``invocation``, loop item labels, stdout/stderr/msg, warnings, the task
names), which is more than -v or -vv print. Results of ``no_log`` tasks reach callbacks censored,
as they reach the screen.

The secrets come from the scenario's own inputs (``$MOLECULE_SCENARIO_DIRECTORY``'s vars.yml and
molecule.yml, or the files in ``ANVIL_SECRET_GUARD_FILES``, colon-separated):
- every string under a key whose name says it is a secret (password, passwd, secret, token,
  private_key, api_key, and ``_pass`` suffixes),
- every value of an ``environment`` mapping (an app's environment is treated as secret),
- every string listed under ``anvil_test_secrets``.
Strings shorter than 6 characters and Jinja expressions are left out (they would match anything).

A leak is recorded (never its value: the source key and the task) as one JSON line in
``$ANVIL_SECRET_GUARD_DIR/<scenario>.leaks``; every run adds a line to ``<scenario>.runs``
saying how many results it inspected and how many secrets it knew, so that a guard that saw
nothing cannot pass unnoticed (tests/harness/secret_guard_report.py reads both). At the end of a
run that leaked, the run fails (an AssertionError in a callback is raised by ansible-core).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: secret_guard
type: aggregate
short_description: Fail a test run whose output shows a secret of its inputs (test-only)
description:
  - Inspects every task result the way C(-vvv) shows it and records any known secret found in it.
  - Test-only; shipped outside the collection (tests/ is excluded from the build).
requirements:
  - enable in the configuration (callbacks_enabled) and set ANVIL_SECRET_GUARD_DIR
"""

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ansible.plugins.callback import CallbackBase

SECRET_KEY = re.compile(r"(password|passwd|secret|token|private_key|api_key|_pass$)", re.IGNORECASE)
MIN_LEN = 6


def _walk(data: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(key path, value) of every leaf of YAML data."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            yield from _walk(value, f"{path}[{index}]")
    else:
        yield path, data


def _usable(value: Any) -> bool:
    return isinstance(value, str) and len(value.strip()) >= MIN_LEN and "{{" not in value and "{%" not in value


def secrets_in(data: Any) -> dict[str, str]:
    """Secret value -> where it was found (a key path), from one YAML document."""
    found: dict[str, str] = {}
    for path, value in _walk(data, ""):
        parts = re.split(r"[.\[]", path)
        leaf = parts[-1]
        in_environment = any(part == "environment" for part in parts[:-1])
        listed = parts[0] == "anvil_test_secrets"
        if not _usable(value):
            continue
        if SECRET_KEY.search(leaf) or in_environment or listed:
            found.setdefault(value.strip(), path)
    return found


def load_secrets(files: list[Path]) -> dict[str, str]:
    found: dict[str, str] = {}
    for file in files:
        if not file.is_file():
            continue
        # molecule.yml uses merge keys and ${VAR} interpolation: plain YAML reads it fine
        for document in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            for value, where in secrets_in(document).items():
                found.setdefault(value, f"{file.name}:{where}")
    return found


def strings_of(data: Any) -> Iterator[str]:
    """Every string in a result (keys too), whatever the nesting; other leaves as str()."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield str(key)
            yield from strings_of(value)
    elif isinstance(data, (list, tuple, set)):
        for value in data:
            yield from strings_of(value)
    elif isinstance(data, bytes):
        yield data.decode("utf-8", "replace")
    elif data is not None:
        yield str(data)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "secret_guard"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.label = os.environ.get("MOLECULE_SCENARIO_NAME") or os.environ.get("ANVIL_SECRET_GUARD_LABEL", "default")
        files = [Path(p) for p in os.environ.get("ANVIL_SECRET_GUARD_FILES", "").split(":") if p]
        scenario_dir = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
        if not files and scenario_dir:
            files = [Path(scenario_dir) / "vars.yml", Path(scenario_dir) / "molecule.yml"]
        self.secrets = load_secrets(files)
        out = os.environ.get("ANVIL_SECRET_GUARD_DIR")
        self.out = Path(out) if out else None
        self.inspected = 0
        self.leaks: list[dict[str, str]] = []

    def _check(self, what: str, host: str, task: str, data: Any) -> None:
        self.inspected += 1
        if not self.secrets:
            return
        texts = list(strings_of(data))
        for value, where in self.secrets.items():
            if any(value in text for text in texts):
                leak = {"scenario": self.label, "secret": where, "host": host, "task": self._redact(task), "in": what}
                if leak not in self.leaks:
                    self.leaks.append(leak)

    def _redact(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, "***")
        return text

    def _result(self, result: Any, what: str) -> None:
        host = result.host.get_name()
        task = result.task_name
        self._check("task name", host, task, task)
        self._check(what, host, task, result._result)

    # every result the stdout callback may show
    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result, "ok result")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result, "failed result")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped result")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result(result, "unreachable result")

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._result(result, "loop item result")

    def v2_runner_item_on_failed(self, result: Any) -> None:
        self._result(result, "failed loop item result")

    def v2_runner_item_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped loop item result")

    def v2_runner_retry(self, result: Any) -> None:
        self._result(result, "retry")

    def v2_runner_on_async_poll(self, result: Any) -> None:
        self._result(result, "async poll")

    def v2_runner_on_async_ok(self, result: Any) -> None:
        self._result(result, "async result")

    def v2_runner_on_async_failed(self, result: Any) -> None:
        self._result(result, "failed async result")

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._check("task banner", "-", task.get_name(), task.get_name())

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._check("handler banner", "-", task.get_name(), task.get_name())

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / f"{self.label}.runs", "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"pid": os.getpid(), "inspected": self.inspected,
                                         "secrets": len(self.secrets)}) + "\n")
            if self.leaks:
                with open(self.out / f"{self.label}.leaks", "a", encoding="utf-8") as handle:
                    for leak in self.leaks:
                        handle.write(json.dumps(leak) + "\n")
        if self.leaks:
            lines = [f"{leak['secret']} shown in the {leak['in']} of [{leak['task']}] on {leak['host']}"
                     for leak in self.leaks]
            self._display.error("secret_guard: a secret reached the output:\n  " + "\n  ".join(lines))
            # ansible-core re-raises an AssertionError from a callback: the run fails
            raise AssertionError(f"secret_guard: {len(self.leaks)} secret(s) shown in the output")
