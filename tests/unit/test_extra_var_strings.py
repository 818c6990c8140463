"""Options given as ``-e key=value`` arrive as strings: every use of an int/bool/float option converts it.

Ansible's role argument-spec validation checks an option's type but does not convert the variable:
``-e base_swap_enabled=false`` reaches the tasks as the truthy string ``"false"`` and
``-e app_deploy_watch_seconds=30`` as ``"30"`` (``"30" > 0`` is an error, ``range("30")`` too).
So every reference to an int/bool/float option in a role's tasks, handlers, vars, defaults and
templates must pass through ``| int`` / ``| bool`` / ``| float`` (after an optional ``default(...)``),
wherever it is used: ``when:``, ``{% if %}``, ``ternary``, arithmetic, comparisons, module
arguments, derived variables. The check parses every Jinja expression with Jinja's own parser and
looks at each reference's place in the tree, so no form of use escapes it.

What it covers: the top-level options of every role's ``meta/argument_specs.yml`` (including the
``anvil_*`` toggles and other roles' options a role reads, e.g. the firewall reading
``base_ssh_port``), and derived variables that copy one of them unconverted. Sub-options of lists
of mappings (``base_users[].sudo``) cannot be given with ``-e key=value``; ``-e`` with JSON or YAML
keeps their types. Options that reach a Python filter only inside ``__<role>_role_vars`` are the
filter's to convert (``tests/unit/test_*_errors.py``); the Molecule scenarios give them as strings.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from jinja2 import Environment, nodes

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())
CONVERSIONS = {"int": {"int"}, "bool": {"bool"}, "float": {"float"}}
# Filters that only supply a value when the variable is undefined: the conversion may follow them.
PASS_THROUGH = {"default", "d"}
# Tests that do not read the value (``x is defined``).
VALUE_FREE_TESTS = {"defined", "undefined", "none"}
# Keys whose string value Ansible evaluates as a bare expression, not as a template.
BARE_KEYS = {"when", "changed_when", "failed_when", "until", "that"}
ENV = Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])


def _parse(source: str, bare: bool = False) -> nodes.Template:
    with warnings.catch_warnings():
        # Jinja's lexer warns about regex escapes ('\\.') inside string constants; they are the role's text
        warnings.simplefilter("ignore", DeprecationWarning)
        return ENV.parse("{{ (" + source + ") }}" if bare else source)


class _Loader(yaml.SafeLoader):
    """YAML as Ansible reads it, with its tags (``!unsafe``, ``!vault``) kept as plain strings."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node)
                              if isinstance(node, yaml.ScalarNode) else None)


def typed_options() -> dict[str, str]:
    """Every top-level int/bool/float option of every role: name -> type."""
    found: dict[str, str] = {}
    for role in ROLES:
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        for entry in spec["argument_specs"].values():
            for name, option in (entry.get("options") or {}).items():
                if option.get("type") in CONVERSIONS:
                    found[name] = option["type"]
    return found


def _fqcn_short(name: str) -> str:
    return name.rsplit(".", 1)[-1] if name.startswith("ansible.builtin.") else name


def _parents(tree: nodes.Node) -> dict[int, nodes.Node]:
    parents: dict[int, nodes.Node] = {}
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in node.iter_child_nodes():
            parents[id(child)] = node
            stack.append(child)
    return parents


def _referenced(node: nodes.Node, typed: dict[str, str]) -> str | None:
    """The typed variable this node reads, if any (``x``, ``vars['x']``, ``hostvars[h].x``)."""
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in typed:
        return node.name
    if isinstance(node, nodes.Getattr) and node.attr in typed:
        return node.attr
    if (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str) and node.arg.value in typed):
        return node.arg.value
    return None


def _converted(node: nodes.Node, kind: str, parents: dict[int, nodes.Node]) -> bool:
    """True when the value read at ``node`` goes through the conversion for ``kind``."""
    current = node
    while True:
        parent = parents.get(id(current))
        if isinstance(parent, nodes.Test) and parent.node is current and parent.name in VALUE_FREE_TESTS:
            return True
        if not (isinstance(parent, nodes.Filter) and parent.node is current):
            return False
        name = _fqcn_short(parent.name)
        if name in CONVERSIONS[kind]:
            return True
        if name not in PASS_THROUGH:
            return False
        current = parent


def bare_uses(source: str, typed: dict[str, str], bare: bool = False) -> list[tuple[str, int]]:
    """Every (variable, line) read in ``source`` without its conversion. ``bare``: an expression
    as in ``when:``, else a template."""
    tree = _parse(source, bare)
    parents = _parents(tree)
    found = []
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        name = _referenced(node, typed)
        if name and not _converted(node, typed[name], parents):
            found.append((name, node.lineno))
    return found


def all_uses(source: str, typed: dict[str, str], bare: bool = False) -> int:
    tree = _parse(source, bare)
    return sum(1 for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)) if _referenced(node, typed))


def _strings(node: yaml.Node, key: str = "") -> Iterator[tuple[str, str, int]]:
    """(key it is the value of, string, line in the file) for every string in a YAML document."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield from _strings(v, str(k.value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _strings(item, key)
    elif isinstance(node, yaml.ScalarNode) and node.tag in ("tag:yaml.org,2002:str", "!unsafe"):
        # a block scalar's text starts on the line after its indicator
        yield key, node.value, node.start_mark.line + 1 + (1 if node.style in ("|", ">") else 0)


def _expression_sources(path: Path) -> Iterator[tuple[str, bool, int]]:
    """(source, is a bare expression, first line) of every piece of Jinja a role file holds."""
    if path.suffix == ".j2":
        yield path.read_text(), False, 1
        return
    document = yaml.compose(path.read_text(), Loader=_Loader)
    if document is None:
        return
    for key, text, line in _strings(document):
        if key in BARE_KEYS and "{{" not in text and "{%" not in text:
            yield text, True, line
        elif "{{" in text or "{%" in text:
            yield text, False, line


def role_files(roles_dir: Path, roles: list[str]) -> list[Path]:
    files = []
    for role in roles:
        base = roles_dir / role
        for sub, pattern in (("tasks", "*.yml"), ("handlers", "*.yml"), ("vars", "*.yml"),
                             ("defaults", "*.yml"), ("templates", "**/*.j2")):
            files += sorted((base / sub).glob(pattern))
    return files


def derived_copies(files: list[Path], typed: dict[str, str]) -> dict[str, str]:
    """Variables defined (vars, defaults, set_fact, task vars) as an unconverted copy of a typed
    one: ``__x: "{{ base_swap_enabled }}"`` carries the string too, so its uses are checked."""
    derived: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        known = {**typed, **derived}
        for path in files:
            if path.suffix == ".j2":
                continue
            for name, value in _definitions(yaml.load(path.read_text(), Loader=_Loader)):
                if name in known or not isinstance(value, str):
                    continue
                tree = _parse(value)
                outputs = list(tree.find_all(nodes.Output))
                if len(outputs) != 1 or len(outputs[0].nodes) != 1:
                    continue
                expr = outputs[0].nodes[0]
                while isinstance(expr, nodes.Filter) and _fqcn_short(expr.name) in PASS_THROUGH:
                    expr = expr.node
                source = _referenced(expr, known) if expr is not None else None
                if source:
                    derived[name] = known[source]
                    changed = True
    return derived


def _definitions(data) -> Iterator[tuple[str, object]]:
    """(name, value) of every variable a YAML file defines: top-level mappings (vars, defaults),
    ``vars:`` of tasks and ``set_fact`` arguments."""
    if isinstance(data, dict):
        yield from data.items()
    elif isinstance(data, list):
        for task in data:
            if not isinstance(task, dict):
                continue
            for key in ("vars", "ansible.builtin.set_fact", "set_fact"):
                if isinstance(task.get(key), dict):
                    yield from task[key].items()
            for key in ("block", "rescue", "always"):
                yield from _definitions(task.get(key))


def scan(roles_dir: Path, roles: list[str], typed: dict[str, str]) -> tuple[int, list[str]]:
    """(number of uses found, every use not made type-safe as 'file:line: name')."""
    files = role_files(roles_dir, roles)
    known = {**typed, **derived_copies(files, typed)}
    total, bad = 0, []
    for path in files:
        for source, bare, first in _expression_sources(path):
            total += all_uses(source, known, bare)
            for name, line in bare_uses(source, known, bare):
                bad.append(f"{path.relative_to(roles_dir.parent)}:{first + line - 1}: {name} ({known[name]}) "
                           f"used without | {known[name]}")
    return total, bad


TYPED = typed_options()


def test_the_spec_has_many_typed_options():
    # every role has some; a spec reader that found none would make every other test pass
    assert len(TYPED) > 60
    assert TYPED["base_ssh_port"] == "int" and TYPED["docker_live_restore"] == "bool"
    assert TYPED["app_deploy_watch_seconds"] == "int"


@pytest.mark.parametrize("role", ROLES)
def test_every_use_of_a_typed_option_converts_it(role):
    total, bad = scan(ROOT / "roles", [role], TYPED)
    assert total >= 3, f"{role}: only {total} uses of int/bool/float options found: the scan is broken"
    assert bad == [], "\n".join(bad)


def test_the_scan_sees_every_kind_of_use():
    # the whole collection: many uses, from tasks, vars and templates alike
    files = role_files(ROOT / "roles", ROLES)
    total, _bad = scan(ROOT / "roles", ROLES, TYPED)
    assert total > 100
    assert any(f.suffix == ".j2" for f in files) and any(f.parent.name == "vars" for f in files)


BARE = [
    ("{% if base_swap_enabled %}x{% endif %}", False),
    ("{{ base_ssh_password_authentication | ternary('yes', 'no') }}", False),
    ("{{ base_ssh_port + 1 }}", False),
    ("{{ range(base_swappiness) | list }}", False),
    ("{{ caddy_log_roll_keep > 0 }}", False),
    ("{{ base_ssh_port | default(22) }}", False),
    ("{{ base_ssh_port | string | int }}", False),
    ("{{ not docker_live_restore }}", False),
    ("{{ docker_live_restore and docker_userland_proxy | bool }}", False),
    ("{{ hostvars['h']['node_exporter_port'] }}", False),
    ("{{ hostvars['h'].node_exporter_port + 1 }}", False),
    ("{{ base_ssh_port }}", False),
    ("{{ base_swap_enabled | int }}", False),
    ("base_swap_enabled", True),
    ("base_swap_enabled and ansible_check_mode", True),
    ("node_exporter_port == 9100", True),
]
SAFE = [
    ("{% if base_swap_enabled | bool %}x{% endif %}", False),
    ("{{ base_ssh_password_authentication | bool | ternary('yes', 'no') }}", False),
    ("{{ base_ssh_port | int + 1 }}", False),
    ("{{ base_ssh_port | default(22) | int }}", False),
    ("{{ base_ssh_port | d(22) | ansible.builtin.int }}", False),
    ("{{ (base_ssh_port | default(22)) | int }}", False),
    ("{{ hostvars['h']['node_exporter_port'] | int }}", False),
    ("{{ base_ssh_port is defined }}", False),
    ("{% for base_ssh_port in [1] %}{{ loop.index }}{% endfor %}", False),
    ("{{ base_swap_file_size }}", False),
    ("base_swap_enabled | bool", True),
    ("not (docker_live_restore | bool)", True),
]


@pytest.mark.parametrize(("source", "bare"), BARE)
def test_a_bare_use_is_found(source, bare):
    typed = {**TYPED, "base_swap_enabled": "bool"}
    assert bare_uses(source, typed, bare), source


@pytest.mark.parametrize(("source", "bare"), SAFE)
def test_a_converted_use_passes(source, bare):
    typed = {**TYPED, "base_swap_enabled": "bool"}
    assert bare_uses(source, typed, bare) == [], source


def test_a_role_with_a_bare_use_fails(tmp_path):
    """A role directory as the scan reads it: a bare use in a task's when, a template and a derived
    copy are each found; the same role with the conversions passes."""
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "vars").mkdir()
    (role / "templates").mkdir()
    typed = {"demo_enabled": "bool", "demo_port": "int"}
    (role / "vars" / "main.yml").write_text('---\n__demo_on: "{{ demo_enabled }}"\n')
    (role / "tasks" / "main.yml").write_text(
        "---\n- name: Demo\n  ansible.builtin.debug:\n    msg: \"{{ demo_port | int + 1 }}\"\n"
        "  when: __demo_on\n- name: Set\n  ansible.builtin.set_fact:\n    __demo_p: \"{{ demo_port | default(1) }}\"\n"
        "  when:\n    - demo_port | int > 0\n")
    (role / "templates" / "demo.conf.j2").write_text("Port {{ demo_port }}\n{% if demo_enabled | bool %}on{% endif %}\n")
    total, bad = scan(tmp_path / "roles", ["demo"], typed)
    assert total == 7
    assert sorted(b.split(": ", 1)[1].split(" ")[0] for b in bad) == ["__demo_on", "demo_enabled", "demo_port", "demo_port"]
    assert any("demo.conf.j2:1" in b for b in bad)

    (role / "vars" / "main.yml").write_text('---\n__demo_on: "{{ demo_enabled | bool }}"\n')
    (role / "tasks" / "main.yml").write_text(
        "---\n- name: Demo\n  ansible.builtin.debug:\n    msg: \"{{ demo_port | int + 1 }}\"\n"
        "  when: __demo_on\n- name: Set\n  ansible.builtin.set_fact:\n    __demo_p: \"{{ demo_port | default(1) | int }}\"\n"
        "  when:\n    - demo_port | int > 0\n")
    (role / "templates" / "demo.conf.j2").write_text("Port {{ demo_port | int }}\n{% if demo_enabled | bool %}on{% endif %}\n")
    total, bad = scan(tmp_path / "roles", ["demo"], typed)
    assert (total, bad) == (6, [])


# The Molecule scenarios that give every int/bool/float option of their role as a string, as
# `-e key=value` does (converge.yml loads the file on one host, above the scenario's other vars):
# role -> (scenario, host). app_deploy and postgres_backup give theirs in their own scenarios' runs.
STRING_SCENARIOS = {
    "base": ("base", "base-debian13"),
    "firewall": ("firewall", "firewall-debian12"),
    "docker": ("docker", "docker-debian12"),
    "caddy": ("caddy", "caddy-debian13"),
    "node_exporter": ("node_exporter", "node-exporter-debian12"),
    "monitoring": ("monitoring", "monitoring-debian12"),
}
# ansible's own boolean strings (ansible.module_utils.parsing.convert_bool)
BOOL_STRINGS = {"true", "false", "yes", "no", "1", "0", "on", "off", "y", "n", "t", "f"}


@pytest.mark.parametrize("role", sorted(STRING_SCENARIOS))
def test_a_scenario_gives_every_typed_option_as_a_string(role):
    scenario, host = STRING_SCENARIOS[role]
    directory = ROOT / "molecule" / scenario
    given = yaml.safe_load((directory / "extra-vars.yml").read_text())
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    wanted = {name: option["type"] for name, option in spec["argument_specs"]["main"]["options"].items()
              if option.get("type") in CONVERSIONS}
    assert sorted(set(wanted) - set(given)) == [], f"{scenario}: options not given as strings"
    for name, value in given.items():
        assert isinstance(value, str), f"{name}: {value!r} is not a string, as -e key=value gives it"
        kind = wanted.get(name) or TYPED[name]
        if kind == "bool":
            assert value.lower() in BOOL_STRINGS, name
        else:
            {"int": int, "float": float}[kind](value)
    # converge.yml loads it, on that host only (the other host keeps the typed values)
    converge = yaml.safe_load((directory / "converge.yml").read_text())
    loads = [task for play in converge for task in play.get("tasks", [])
             if (task.get("ansible.builtin.include_vars") or {}).get("file") == "extra-vars.yml"]
    assert len(loads) == 1 and loads[0]["when"] == f"inventory_hostname == '{host}'"
