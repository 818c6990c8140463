"""Every role's defaults and argument spec agree (names, documented defaults)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())


def load(role: str) -> tuple[dict, dict]:
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return defaults, spec["argument_specs"]["main"]["options"]


def test_every_role_has_a_spec():
    assert ROLES == sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
    assert "base" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_name_the_same_variables(role):
    defaults, options = load(role)
    assert set(defaults) - set(options) == set(), "defaults without documentation"
    # anvil_* are cross-role toggles the role reads (documented in its spec), never defaults of its own
    undocumented_default = {k for k, v in options.items()
                            if not v.get("required") and k not in defaults and not k.startswith("anvil_")}
    assert undocumented_default == set(), "options without a default in defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_documented_defaults_equal_real_defaults(role):
    defaults, options = load(role)
    for name, option in options.items():
        if "default" in option:
            assert option["default"] == defaults[name], name


@pytest.mark.parametrize("role", ROLES)
def test_variables_carry_the_role_prefix(role):
    defaults, options = load(role)
    assert all(name.startswith((f"{role}_", "anvil_")) for name in options)


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_described_and_typed(role):
    _unused, options = load(role)
    for name, option in options.items():
        assert option.get("description"), name
        assert option.get("type"), name


def test_every_filter_has_its_own_documentation():
    """ansible-doc shows a filter's own text: a <name>.yml beside a multi-filter file, or the
    DOCUMENTATION of a file that defines only that filter (never another filter's text)."""
    import ast
    import importlib

    for path in sorted((ROOT / "plugins" / "filter").glob("*.py")):
        module = importlib.import_module(f"ansible_collections.anvil.hetzner.plugins.filter.{path.stem}")
        names = sorted(module.FilterModule().filters())
        embedded = [n.targets[0].id for n in ast.parse(path.read_text()).body
                    if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
                    and n.targets[0].id == "DOCUMENTATION"]
        for name in names:
            sidecar = path.parent / f"{name}.yml"
            if sidecar.exists():
                doc = yaml.safe_load(sidecar.read_text())["DOCUMENTATION"]
            else:
                assert embedded and len(names) == 1, f"{name} ({path.name}) has no documentation of its own"
                doc = yaml.safe_load(module.DOCUMENTATION)
            assert doc["name"] == name and doc.get("short_description"), name


def _apt_tasks(node):
    """Every task (nested in blocks too) that calls the apt module."""
    if isinstance(node, list):
        for item in node:
            yield from _apt_tasks(item)
    elif isinstance(node, dict):
        for key in ("block", "rescue", "always"):
            yield from _apt_tasks(node.get(key, []))
        for module in ("ansible.builtin.apt", "apt"):
            if isinstance(node.get(module), dict):
                yield node.get("name", "?"), node[module]


@pytest.mark.parametrize("role", ROLES)
def test_an_apt_cache_age_only_counts_with_package_lists(role):
    """A fresh image has no package lists but a recent cache time: a fixed cache_valid_time skips the
    update and the install finds no package. Every apt task that trusts the cache's age takes it from
    the role's probe of /var/lib/apt/lists (0 when there are none)."""
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        for name, args in _apt_tasks(yaml.safe_load(path.read_text()) or []):
            if "cache_valid_time" in args:
                value = str(args["cache_valid_time"])
                assert "{{" in value and "apt" in value, f"{path.name}: {name}: cache_valid_time {value}"
