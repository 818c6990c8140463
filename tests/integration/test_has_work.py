"""anvil.hetzner.has_work held against Ansible itself: for task files of every shape a role uses
(conditions on variables and on a probe's result, task and block vars, loops with loop_var and
index_var, empty loops, blocks and their always, a register that a later condition reads, includes,
errors), the lookup's answer before the file runs must equal whether Ansible then ran any of its
tasks. Each task of these files records its name when it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def mark(name: str, extra: str = "") -> str:
    """A task that records that it ran."""
    return (f"- name: {name}\n  ansible.builtin.set_fact:\n"
            f"    __ran: \"{{{{ __ran | default([]) + ['{name}'] }}}}\"\n{textwrap.indent(extra, '  ')}")


FILES = {
    # every condition false: plain, on a probe-like result, through task vars (templated lazily)
    "all_false.yml": mark("plain", "when: not enabled\n")
    + mark("probe", "when: probe.exists['/etc/x'] | default(false)\n")
    + mark("task vars", "vars:\n  n: \"{{ wanted | length }}\"\nwhen: n | int > 0\n")
    + mark("list of conditions", "when:\n  - enabled\n  - wanted | length > 5\n"),
    # a loop: one item holds the condition
    "loop_item.yml": mark("loop", "loop: [1, 2, 3]\nwhen: item == pick | int\n"),
    "loop_var.yml": mark("loop var", "loop: \"{{ wanted }}\"\nloop_control:\n  loop_var: w\n  index_var: i\n"
                                     "when: w == 'b' and i == 1\n"),
    "empty_loop.yml": mark("empty", "loop: []\n"),
    # a skipped task's register, read by the next task's condition
    "register_skipped.yml": mark("first", "when: not enabled\nregister: reg_a\n")
    + mark("second", "when: reg_a is skipped and enabled\n"),
    "register_loop_skipped.yml": mark("first", "loop: [1, 2]\nwhen: item > 5\nregister: reg_b\n")
    + mark("second", "when: reg_b.results | selectattr('skipped') | list | length == 2 and enabled\n"),
    # blocks: the block's condition, its vars, its always (inherits the block's condition)
    "block_false.yml": "- name: a block\n  when: not enabled\n  block:\n"
    + textwrap.indent(mark("in block") + mark("in block 2", "register: reg_c\n"), "    ")
    + "  always:\n" + textwrap.indent(mark("in always"), "    ")
    + mark("after block", "when: reg_c is not skipped\n"),
    "block_true.yml": "- name: a block\n  when: enabled\n  vars:\n    limit: 9\n  block:\n"
    + textwrap.indent(mark("in block", "when: wanted | length > limit\n"), "    "),
    "block_always.yml": "- name: a block\n  when: enabled\n  block:\n"
    + textwrap.indent(mark("in block", "when: not enabled\n"), "    ")
    + "  always:\n" + textwrap.indent(mark("in always"), "    "),
    "rescue_only.yml": "- name: a block\n  block:\n"
    + textwrap.indent(mark("in block", "when: not enabled\n"), "    ")
    + "  rescue:\n" + textwrap.indent(mark("in rescue"), "    "),
    "no_when.yml": mark("always runs"),
    "include.yml": "- name: an include\n  ansible.builtin.include_tasks: no_when.yml\n  when: enabled\n",
    "include_false.yml": "- name: an include\n  ansible.builtin.include_tasks: no_when.yml\n  when: not enabled\n",
    # a file of includes each gated by has_work on its own file (the roles' parts.yml)
    "parts.yml": "- name: part one\n  ansible.builtin.include_tasks: all_false.yml\n"
    "  when: query('anvil.hetzner.has_work', 'all_false.yml') | first\n"
    "- name: part two\n  ansible.builtin.include_tasks: block_true.yml\n"
    "  when: query('anvil.hetzner.has_work', 'block_true.yml') | first\n",
}


def run(tmp_path: Path, variables: dict) -> list[dict]:
    tasks = tmp_path / "roles" / "gate" / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (tasks / name).write_text("---\n" + text)
    (tasks / "main.yml").write_text(textwrap.dedent("""\
        ---
        - name: Predict
          ansible.builtin.set_fact:
            predicted: "{{ query('anvil.hetzner.has_work', file) | first }}"
            __ran: []
        - name: Run
          ansible.builtin.include_tasks: "{{ file }}"
        - name: Record
          ansible.builtin.set_fact:
            outcomes: "{{ outcomes | default([]) + [{'file': file, 'predicted': predicted, 'ran': __ran}] }}"
        """))
    (tmp_path / "play.yml").write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - ansible.builtin.include_role:
                name: gate
              loop: {json.dumps(sorted(FILES))}
              loop_control:
                loop_var: file
            - ansible.builtin.copy:
                content: "{{{{ outcomes | to_json }}}}"
                dest: {tmp_path}/outcomes.json
                mode: "0600"
        """))
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_ROLES_PATH=str(tmp_path / "roles"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", f"@{tmp_path}/vars.json",
                          "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads((tmp_path / "outcomes.json").read_text())


@pytest.mark.parametrize("variables", [
    {"enabled": False, "wanted": [], "pick": "9", "probe": {"exists": {"/etc/x": False}}},
    {"enabled": True, "wanted": ["a", "b"], "pick": "2", "probe": {"exists": {"/etc/x": True}}},
    {"enabled": True, "wanted": [], "pick": "3", "probe": {"exists": {}}},
], ids=["all off", "all on", "mixed"])
def test_the_answer_is_what_ansible_then_does(tmp_path, variables):
    outcomes = run(tmp_path, variables)
    assert sorted(o["file"] for o in outcomes) == sorted(FILES)
    wrong = [o for o in outcomes if o["predicted"] != bool(o["ran"])]
    assert wrong == [], wrong
    # both answers occur (a lookup that always says true, or false, fails here)
    assert {o["predicted"] for o in outcomes} == {True, False}


def test_a_condition_that_cannot_be_evaluated_lets_the_file_run(tmp_path):
    """An undefined variable: the file runs, and Ansible reports the error as before."""
    variables = {"enabled": False, "wanted": [], "pick": "1", "probe": {"exists": {}}}
    FILES_BROKEN = dict(FILES)
    try:
        FILES["broken.yml"] = mark("broken", "when: not_defined_anywhere\n")
        with pytest.raises(AssertionError, match="not_defined_anywhere"):
            run(tmp_path, variables)
    finally:
        FILES.clear()
        FILES.update(FILES_BROKEN)
