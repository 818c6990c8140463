"""Bad values for every option of every role, derived from the argument specs and the roles' check
tables, fed to the real roles through ansible-playbook: each must be refused, naming the option.

Where the values come from:
- the argument spec (meta/argument_specs.yml): a wrong type for every int, bool, list and dict
  option, a value outside `choices`, an unknown key in a list of mappings;
- the role's filter (OPTIONS in plugins/filter/<role>_errors.py and friends): the values each check
  must refuse (ports out of range, malformed addresses, sizes, calendars, names...), and
  SUBOPTION_BAD for lists of mappings.
A new option that is neither a bool, nor has choices, nor is listed in its role's OPTIONS (or in
FREE_FORM with a reason) fails test_every_option_has_a_refusal: no option ships without one.

How it runs: one host per batch (every option of the role set to its k-th bad value at once),
`ansible_connection: local`, `--check`, and `--tags` naming no task, so only the tasks tagged
`always` run: the argument-spec validation and the role's assert.yml (read-only probes). Nothing
that changes anything is ever reached, whatever the outcome. A batch passes when the role fails in
one of those two steps and its message names every option of the batch.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILTERS = {"base": "base_errors", "firewall": "firewall_errors", "docker": "docker_daemon", "caddy": "caddy_errors",
           "node_exporter": "node_exporter_errors", "postgres_backup": "postgres_backup_errors",
           "app_deploy": "app_deploy_errors"}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnlyAAAAAAAAAAAAAAAA ci@test"
# What a role needs besides its defaults to pass on this machine: the base role refuses to close
# logins without a key; the docker role refuses to replace the running engine (the test machine's
# own docker.io, which runs the Molecule containers), so it is told to keep that engine.
BASELINE: dict[str, dict[str, Any]] = {
    "base": {"base_deploy_user_authorized_keys": [KEY]}, "firewall": {}, "caddy": {}, "node_exporter": {},
    # the backups need a recipient, and the controller has no postgres user: a remote server
    "postgres_backup": {"postgres_backup_age_recipients": ["age1" + "q" * 58], "postgres_backup_source": "remote",
                        "postgres_backup_remote": {"host": "db.internal", "user": "backup", "password": "secret-pw-1"}},
    "docker": {"docker_install_source": "distro", "docker_compose": False, "docker_buildx": False},
    # an app needs a name, a web service, a domain (the controller has neither Docker nor Caddy: those
    # refusals are expected too, the check is that each bad option is named)
    "app_deploy": {"app_deploy_name": "shop", "app_deploy_domains": ["shop.example.com"],
                   "app_deploy_services": [{"name": "web", "image": "registry.example.com/shop", "tag": "v1", "port": 8000}]},
}
FACTS = {"distribution": "Debian", "distribution_major_version": "12", "distribution_version": "12.8",
         "distribution_release": "bookworm", "os_family": "Debian", "architecture": "x86_64",
         "virtualization_role": "guest", "virtualization_type": "docker"}
# The inputs named in issues 11 and 12 (combinations the tables cannot derive), each on a host of its own.
COMBINATIONS = [
    ("base", {"base_deploy_user": "root"}, "base_deploy_user"),
    ("base", {"base_deploy_user": "root", "base_ssh_permit_root_login": "yes"}, "base_deploy_user"),
    ("base", {"base_ssh_allow_users": ["nobody"], "base_deploy_user_authorized_keys": []}, "base_deploy_user_authorized_keys"),
    ("docker", {"docker_prune_schedule": "every tuesday-ish"}, "docker_prune_schedule"),
    ("caddy", {"caddy_hsts_max_age": -5}, "caddy_hsts_max_age"),
    ("node_exporter", {"node_exporter_listen_address": "0.0.0.0"}, "node_exporter_listen_address"),
    ("node_exporter", {"node_exporter_listen_address": "::"}, "node_exporter_listen_address"),
    ("node_exporter", {"node_exporter_listen_address": "203.0.113.7"}, "node_exporter_listen_address"),
    ("node_exporter", {"hcloud_private_ipv4": "198.51.100.4"}, "hcloud_private_ipv4"),
    ("node_exporter", {"node_exporter_collectors": ["systemd"], "node_exporter_collectors_disabled": ["systemd"]},
     "node_exporter_collectors_disabled"),
    ("node_exporter", {"node_exporter_collectors": ["watchdog"]}, "node_exporter_collectors"),
    ("node_exporter", {"node_exporter_tls_cert_file": "/etc/ssl/anvil-missing.pem"}, "node_exporter_tls_key_file"),
]


def spec(role: str) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return data["argument_specs"]["main"]["options"]


def tables(role: str) -> Any:
    return importlib.import_module(f"ansible_collections.anvil.hetzner.plugins.filter.{FILTERS[role]}")


def spec_bad_values(option: dict[str, Any]) -> list[Any]:
    """Values Ansible's argument validation must refuse for this option."""
    kind, elements = option["type"], option.get("elements")
    values: list[Any] = []
    if option.get("choices"):
        values.append("not-a-choice-x")
    if kind == "int":
        values.append("not-a-number")
    elif kind == "bool":
        values.append("maybe")
    elif kind == "dict":
        values.append(["not", "a", "mapping"])
    elif kind == "list":
        values.append({"not": "a list"})
        if elements == "int":
            values.append(["not-a-number"])
        elif elements == "dict" and option.get("options"):
            values.append([{"no_such_key_x": 1}])
    return values


def filter_bad_values(role: str, name: str) -> list[Any]:
    module = tables(role)
    if name in module.OPTIONS:
        return list(module.OPTIONS[name].bad)
    return list(getattr(module, "SUBOPTION_BAD", {}).get(name, ()))


def batches(role: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, variables) per host: batch k sets every option to its k-th bad value."""
    out = []
    for kind, source in (("spec", lambda n, o: spec_bad_values(o)), ("filter", lambda n, o: filter_bad_values(role, n))):
        per_option = {n: source(n, o) for n, o in spec(role).items() if not n.startswith("anvil_")}
        depth = max((len(v) for v in per_option.values()), default=0)
        for k in range(depth):
            out.append((f"{kind}{k}", {n: v[k] for n, v in per_option.items() if len(v) > k}))
    return out


@pytest.mark.parametrize("role", sorted(FILTERS))
def test_every_option_has_a_refusal(role):
    module = tables(role)
    missing = []
    for name, option in spec(role).items():
        if name.startswith("anvil_") or option["type"] == "bool" or option.get("choices"):
            continue
        if name in module.OPTIONS:
            continue
        if name in module.FREE_FORM:
            assert module.FREE_FORM[name], f"{name}: FREE_FORM needs a reason"
            if option["type"] == "list" and option.get("elements") == "dict":
                assert module.SUBOPTION_BAD.get(name), f"{name}: a list of mappings needs SUBOPTION_BAD values"
            continue
        missing.append(name)
    assert not missing, f"options of {role} without a check that refuses bad values (add them to OPTIONS): {missing}"
    assert set(module.OPTIONS) <= set(spec(role)), "OPTIONS names an option the spec does not have"


def run_role(role: str, hosts: dict[str, dict[str, Any]], tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Run the role on local hosts, only its `always` tasks, in check mode; per host: failed task + message."""
    inventory = {"all": {"hosts": {h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                       **BASELINE[role], **v} for h, v in hosts.items()}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "all", "gather_facts": False, "vars": {"ansible_facts": FACTS},
        "roles": [f"anvil.hetzner.{role}"]}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_FORKS="20", ANSIBLE_GATHERING="explicit", ANSIBLE_FACT_CACHING="memory",
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    result = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"), "--check",
         "--tags", "anvil-spec-test-runs-only-always-tasks"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(result.stdout)
    outcome = {h: {"failed": False, "task": "", "msg": ""} for h in hosts}
    for task in report["plays"][0]["tasks"]:
        for host, res in task["hosts"].items():
            if res.get("failed") and not outcome[host]["failed"]:
                outcome[host] = {"failed": True, "task": task["task"]["name"], "msg": str(res.get("msg", ""))}
    return outcome


REFUSING_TASKS = re.compile(r"^anvil\.hetzner\.\w+ : (Validating arguments against arg spec|Refuse )")


def names(message: str, option: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(option)}(?![\w])", message) is not None


@pytest.mark.parametrize("role", sorted(FILTERS))
def test_the_role_refuses_every_derived_bad_value(role, tmp_path):
    cases = dict(batches(role))
    extra = {f"combo{i}": v for i, (r, v, _unused) in enumerate(COMBINATIONS) if r == role}
    outcome = run_role(role, {"valid": {}, **cases, **extra}, tmp_path)
    assert not outcome["valid"]["failed"], f"the role's defaults (plus {BASELINE[role]}) are refused: {outcome['valid']}"
    problems = []
    for label, variables in cases.items():
        result = outcome[label]
        if not result["failed"] or not REFUSING_TASKS.match(result["task"]):
            problems.append(f"{label}: not refused by the checks ({result})")
            continue
        unnamed = [n for n in variables if not names(result["msg"], n)]
        if unnamed:
            problems.append(f"{label}: refused, but without naming {unnamed}: {result['msg'][:2000]}")
    for i, (r, variables, option) in enumerate(COMBINATIONS):
        if r != role:
            continue
        result = outcome[f"combo{i}"]
        if not (result["failed"] and REFUSING_TASKS.match(result["task"]) and names(result["msg"], option)):
            problems.append(f"{variables}: not refused naming {option} ({result})")
    assert not problems, "\n".join(problems)
