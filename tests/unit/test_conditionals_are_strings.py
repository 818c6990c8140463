"""Every conditional in the project's Ansible content is a string, as ansible-core 2.19+ requires.

An unquoted YAML item holding ``: `` (``- out is search('pg-backup: verified')``) is parsed as a
one-key mapping, not as the expression. ansible-core then fails the task with "Conditional
expressions must be strings" only when the task runs, which for a fault test deep in a Molecule
side effect is twenty minutes into CI (this happened twice). The check walks every task list of
the roles, playbooks and scenarios and fails on the first non-string conditional, naming the file
and the task.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONDITIONAL_KEYS = ("when", "changed_when", "failed_when", "until", "that")
SOURCES = sorted(
    list((ROOT / "roles").glob("*/tasks/*.yml"))
    + list((ROOT / "roles").glob("*/handlers/*.yml"))
    + list((ROOT / "playbooks").rglob("*.yml"))
    + [p for p in (ROOT / "molecule").rglob("*.yml") if p.name != "molecule.yml"]
)


def _mappings(data: Any, task: str = "<top>") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping (a play, a task, a module's arguments such as assert's), with the name of the
    task or play it belongs to."""
    if isinstance(data, dict):
        task = str(data.get("name", task))
        yield task, data
        for value in data.values():
            yield from _mappings(value, task)
    elif isinstance(data, list):
        for item in data:
            yield from _mappings(item, task)


def _bad_conditionals(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    found = []
    for name, task in _mappings(data):
        for key in CONDITIONAL_KEYS:
            if key not in task:
                continue
            if key == "that" and not isinstance(task.get("that"), (list, str)):
                continue
            items = task[key] if isinstance(task[key], list) else [task[key]]
            for item in items:
                if not isinstance(item, (str, bool)):
                    found.append(f"{path.relative_to(ROOT)}: task {name!r}: {key}: {item!r}")
    return found


def test_the_sources_exist() -> None:
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_every_conditional_is_a_string(path: Path) -> None:
    assert _bad_conditionals(path) == []


def test_the_check_finds_an_unquoted_colon(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("- name: x\n  ansible.builtin.assert:\n    that:\n      - out is search('a: b')\n"
                   "- name: y\n  ansible.builtin.debug: {}\n  when: \"x is search('a: b')\"\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = _bad_conditionals(bad)
    finally:
        ROOT = saved
    assert len(found) == 1 and "'x'" in found[0] and "that" in found[0]
