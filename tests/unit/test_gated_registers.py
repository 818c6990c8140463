"""A part of a role that anvil.hetzner.has_work skips is not included at all: its tasks register
nothing, where a skipped task used to register a skipped result. So a variable registered (or set)
in a gated part and read anywhere else (another part, handlers, vars, templates, the playbooks) must
be read with `| default(...)` or behind `is defined`. Found by the e2e's second site.yml, whose
base skipped install.yml and then read its register in audit.yml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GATE = re.compile(r"query\('anvil\.hetzner\.has_work', '(?P<file>[^']+)'\)")


def names_made(tasks: list, out: set[str]) -> None:
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        if task.get("register"):
            out.add(task["register"])
        facts = task.get("ansible.builtin.set_fact") or task.get("set_fact")
        if isinstance(facts, dict):
            out.update(k for k in facts if k != "cacheable")
        for key in ("block", "rescue", "always"):
            names_made(task.get(key), out)


def gated_roles() -> dict[str, list[str]]:
    roles = {}
    # (main.yml gates its parts files, which gate the parts themselves)
    for tasks in sorted(ROOT.glob("roles/*/tasks/*.yml")):
        files = GATE.findall(tasks.read_text())
        if files:
            roles.setdefault(tasks.parent.parent.name, []).extend(files)
    return roles


def readers(role: str, own: Path) -> list[Path]:
    """Every file that may read the part's variables at another time: the role's other files, and
    its templates unless only the part itself renders them."""
    base = ROOT / "roles" / role
    yml = [p for p in base.rglob("*.yml") if p != own]
    variables = {}
    for vars_file in base.glob("vars/*.yml"):
        variables.update({k: yaml.dump(v) for k, v in (yaml.safe_load(vars_file.read_text()) or {}).items()})
    templates = []
    for template in base.glob("templates/**/*.j2"):
        # the files that render it: those naming it, or naming a role variable that names it
        names = [template.name] + [k for k, v in variables.items() if template.name in v]
        users = {p for p in base.rglob("*.yml") if "vars" not in p.parts and any(n in p.read_text() for n in names)}
        if users != {own}:
            templates.append(template)
    return yml + templates + sorted((ROOT / "playbooks").rglob("*.yml"))


def unguarded(text: str, name: str) -> list[str]:
    bad = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(name)}(?!\w)", text):
        after = text[match.end():match.end() + 40]
        before = text[max(0, match.start() - 1):match.start()]
        guarded = (re.match(r"\s*\|\s*default\(", after) or re.match(r"\s+is\s+(not\s+)?defined", after)
                   or (before == "(" and re.match(r"\s*\|\s*default\(", after)))
        # `name:` as a key (set_fact of the same name), a register line, a comment's mention
        line_start = text.rfind("\n", 0, match.start()) + 1
        line = text[line_start:text.find("\n", match.end())]
        if guarded or re.match(rf"\s*(register:\s*)?{re.escape(name)}:?\s*", line) and ":" in line[:line.find(name) + len(name) + 1] \
                or line.lstrip().startswith("#"):
            continue
        if re.search(rf"\b{re.escape(name)} is defined\b", text):
            continue
        bad.append(line.strip())
    return bad


def test_every_role_with_gates_is_found():
    roles = gated_roles()
    assert {"base", "docker", "firewall", "caddy", "node_exporter", "postgres_backup", "monitoring"} <= set(roles)
    # the parts inside the parts files too
    assert {"parts_ssh.yml", "install.yml", "ssh.yml", "service.yml"} <= set(roles["base"])


def test_what_a_gated_part_makes_is_read_elsewhere_only_with_a_default():
    problems = []
    for role, files in gated_roles().items():
        for name in files:
            own = ROOT / "roles" / role / "tasks" / name
            made: set[str] = set()
            names_made(yaml.safe_load(own.read_text()), made)
            for var in sorted(made):
                for path in readers(role, own):
                    for line in unguarded(path.read_text(), var):
                        problems.append(f"{role}/tasks/{name} makes {var}; {path.relative_to(ROOT)} reads it unguarded: {line}")
    assert problems == [], "\n".join(problems)


def test_the_check_finds_an_unguarded_read():
    assert unguarded("  when: __x_done is changed\n", "__x_done")
    assert not unguarded("  when: __x_done | default({}) is changed\n", "__x_done")
    assert not unguarded("  when: __x_done is defined and __x_done is changed\n", "__x_done")
