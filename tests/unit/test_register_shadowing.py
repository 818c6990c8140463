"""No task's own `vars:` reuse the name of a variable registered in the same playbook or role.

A registered variable outranks a task's vars (Ansible's variable precedence), and it stays on the
host for the rest of the run, later plays included. So a task that says `vars: {served: ...}`
after an earlier `register: served` on the same host silently reads the old result: an assertion
then compares the wrong value (this made the app_deploy scenario's lock test fail with correct
data). The check looks at every playbook file alone and at every role's task files together.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted([p for p in (ROOT / "molecule").rglob("*.yml") if p.name != "molecule.yml"]
                   + list((ROOT / "playbooks").rglob("*.yml")))
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
SCOPES = [[p] for p in PLAYBOOKS] + [sorted((r / "tasks").glob("*.yml")) + sorted((r / "handlers").glob("*.yml"))
                                     for r in ROLES]


def _mappings(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, dict):
        yield data
        for value in data.values():
            yield from _mappings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _mappings(item)


def shadowed(files: list[Path]) -> list[str]:
    registered: set[str] = set()
    task_vars: dict[str, str] = {}
    for path in files:
        for item in _mappings(yaml.safe_load(path.read_text())):
            if isinstance(item.get("register"), str):
                registered.add(item["register"])
            # a task's (or block's) vars; a play's vars (it has hosts) rank below registered ones too,
            # but a play that registers and reads the same name is the play's own business
            if isinstance(item.get("vars"), dict) and "hosts" not in item and "name" in item:
                for key in item["vars"]:
                    task_vars.setdefault(key, f"{path.relative_to(ROOT)}: {item['name']!r}")
    return sorted(f"{task_vars[name]} sets vars.{name}, a name registered elsewhere" for name in registered & set(task_vars))


def test_there_are_scopes() -> None:
    assert len(PLAYBOOKS) > 20 and len(ROLES) >= 7


@pytest.mark.parametrize("files", SCOPES, ids=[str(s[0].relative_to(ROOT)) if s else "empty" for s in SCOPES])
def test_no_task_var_is_shadowed_by_a_registered_one(files: list[Path]) -> None:
    assert shadowed(files) == []


def test_the_check_finds_a_shadowed_name(tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  tasks:\n    - name: a\n      ansible.builtin.command: 'true'\n"
                    "      register: served\n    - name: b\n      ansible.builtin.assert: {that: [x]}\n"
                    "      vars: {served: 1}\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert shadowed([play]) == ["play.yml: 'b' sets vars.served, a name registered elsewhere"]
    finally:
        ROOT = saved
