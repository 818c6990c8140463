"""anvil.hetzner.preloaded held against Ansible itself: after a task whose name templates it (Ansible
templates a task's name in its main process), the process of each later task starts with every
filter, test and lookup plugin of the collection already loaded; without it, each task's process
starts with none of them (Ansible forks one per task and compiles a collection plugin again in each).
The same for site.yml's first play (its hosts) and for a role's first task, through the files the
collection ships. What a task's process holds is read by a lookup plugin of this test's own, in that
process. (What it saves is measured by make bench-web, not here.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ansible_collections.anvil.hetzner.plugins.filter.preloaded import preloaded

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
KINDS = ("filter", "test", "lookup")

# a lookup of this test's own: the collection's plugin modules present in the process it runs in
PROBE = textwrap.dedent('''\
    import json, os, sys
    from ansible.plugins.lookup import LookupBase

    class LookupModule(LookupBase):
        def run(self, terms, variables=None, **kwargs):
            prefix = "ansible_collections.anvil.hetzner.plugins."
            seen = {"pid": os.getpid(), "ppid": os.getppid(),
                    "modules": sorted(m[len(prefix):] for m in sys.modules if m.startswith(prefix))}
            with open(terms[0], "a") as out:
                out.write(json.dumps(seen) + "\\n")
            return [True]
    ''')


def shipped() -> set[str]:
    return {f"{kind}.{path.stem}" for kind in KINDS for path in (PLUGINS / kind).glob("*.py")
            if path.name != "__init__.py"}


def play(tmp_path: Path, text: str) -> list[dict]:
    (tmp_path / "lookup_plugins").mkdir(exist_ok=True)
    (tmp_path / "lookup_plugins" / "loaded_here.py").write_text(PROBE)
    (tmp_path / "play.yml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local",
                          "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    seen = [json.loads(line) for line in (tmp_path / "seen.jsonl").read_text().splitlines()]
    assert len(seen) == 2, out.stdout[-3000:]
    return seen


READS = textwrap.dedent("""\
    - name: Read what this task's process holds
      ansible.builtin.debug:
        msg: "{{ lookup('loaded_here', playbook_dir ~ '/seen.jsonl') }}"
    - name: Once more, in a new process
      ansible.builtin.debug:
        msg: "{{ lookup('loaded_here', playbook_dir ~ '/seen.jsonl') }}"
    """)


def playbook(hosts: str, first: str = "", indent: int = 4) -> str:
    """A play on localhost: its hosts, tasks `first`, then the two reads (indented under `first`'s
    last line when indent is deeper)."""
    return (f"- hosts: {hosts}\n  gather_facts: false\n  tasks:\n" + textwrap.indent(textwrap.dedent(first), "    ")
            + textwrap.indent(READS, " " * indent))


def test_the_filter_returns_its_input_unchanged():
    for value in ("", "all", ["web-1", "web-2"], {"a": [1]}, None, 3):
        assert preloaded(value) == value


def test_without_it_each_tasks_process_compiles_the_collections_plugins_again(tmp_path):
    seen = play(tmp_path, playbook("localhost"))
    # a process per task, each starting without the collection's filters, tests and lookups
    assert len({entry["pid"] for entry in seen}) == 2
    assert all(entry["pid"] != entry["ppid"] for entry in seen)
    for entry in seen:
        assert not shipped() & set(entry["modules"]), entry["modules"]


def test_a_task_name_that_templates_it_loads_every_plugin_for_the_tasks_after_it(tmp_path):
    seen = play(tmp_path, playbook("localhost", """\
        - name: "Start{{ '' | anvil.hetzner.preloaded }}"
          ansible.builtin.debug:
            msg: started
        """))
    assert len({entry["pid"] for entry in seen}) == 2
    for entry in seen:
        assert shipped() <= set(entry["modules"]), sorted(shipped() - set(entry["modules"]))


def test_a_plays_hosts_that_template_it_load_every_plugin(tmp_path):
    seen = play(tmp_path, playbook("\"{{ 'localhost' | anvil.hetzner.preloaded }}\""))
    for entry in seen:
        assert shipped() <= set(entry["modules"]), sorted(shipped() - set(entry["modules"]))


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("roles/*/tasks/assert.yml")))
def test_each_roles_first_task_and_site_yml_template_it(path):
    """Where the collection uses it: the first task of each role's input check (imported first by
    its main.yml, tagged always), and site.yml's first play."""
    role = Path(path).parts[1]
    main = (ROOT / "roles" / role / "tasks" / "main.yml").read_text()
    first = re.search(r"^- name: .*\n\s+ansible\.builtin\.import_tasks: (\S+)\n\s+tags: \[(.*)\]", main, re.M)
    assert first and first.group(1) == "assert.yml" and "always" in first.group(2), main[:600]
    task = re.search(r"^- name: (.*)$", (ROOT / path).read_text(), re.M).group(1)
    assert task.endswith("{{ '' | anvil.hetzner.preloaded }}\""), task
    site = (ROOT / "playbooks" / "site.yml").read_text()
    assert re.search(r"^- name: .*\n  hosts: .*\| anvil\.hetzner\.preloaded \}\}\"$", site, re.M)


def test_a_role_loads_them_for_its_later_tasks(tmp_path):
    """The collection's own file, as a playbook of another repository runs it: a role's first
    task (here the caddy role's input check, which fails on this controller: not a Debian host)
    preloads the plugins; the rescue's process holds them."""
    seen = play(tmp_path, playbook("localhost", """\
        - name: The caddy role's input check
          block:
            - name: Run it
              ansible.builtin.include_role:
                name: anvil.hetzner.caddy
                tasks_from: assert.yml
          rescue:
        """, indent=8))
    for entry in seen:
        assert shipped() <= set(entry["modules"]), sorted(shipped() - set(entry["modules"]))
