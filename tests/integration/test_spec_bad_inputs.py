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
           "app_deploy": "app_deploy_errors", "monitoring": "monitoring_errors"}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID3VHxF/Az01zod1MBwV7V3P53WIpstPgZTETc47VKy/ ci@test"  # a real key
AGE = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"  # age's README example, a real recipient
# What a role needs besides its defaults to pass on this machine: the base role refuses to close
# logins without a key; the docker role refuses to replace the running engine (the test machine's
# own docker.io, which runs the Molecule containers), so it is told to keep that engine.
BASELINE: dict[str, dict[str, Any]] = {
    "base": {"base_deploy_user_authorized_keys": [KEY]}, "firewall": {}, "caddy": {}, "node_exporter": {},
    # the backups need a recipient, and the controller has no postgres user: a remote server
    "postgres_backup": {"postgres_backup_age_recipients": [AGE], "postgres_backup_source": "remote",
                        "postgres_backup_remote": {"host": "db.internal", "user": "backup", "password": "secret-pw-1"}},
    "docker": {"docker_install_source": "distro", "docker_compose": False, "docker_buildx": False},
    # an app needs a name, a web service, a domain (the controller has neither Docker nor Caddy: those
    # refusals are expected too, the check is that each bad option is named)
    "app_deploy": {"app_deploy_name": "shop", "app_deploy_domains": ["shop.example.com"],
                   "app_deploy_services": [{"name": "web", "image": "registry.example.com/shop", "tag": "v1", "port": 8000}]},
    # alerts must reach someone
    "monitoring": {"monitoring_receivers": [{"name": "ops", "type": "webhook", "url": "https://hooks.example.com/a"}]},
}
PRIVATE_AGE = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS5PRT8H"
PRIVATE_SSH = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
               "-----END OPENSSH PRIVATE KEY-----\n")
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
    # issue 20: privileged service users, values checked for real, secrets with a newline, pasted private keys
    ("node_exporter", {"node_exporter_user": "root"}, "node_exporter_user"),
    ("node_exporter", {"node_exporter_basic_auth_users": [{"username": "prometheus", "password": "long-enough-1\n"}]},
     "node_exporter_basic_auth_users[0].password"),
    ("postgres_backup", {"postgres_backup_age_recipients": [AGE[:20] + ("q" if AGE[20] != "q" else "p") + AGE[21:]]},
     "postgres_backup_age_recipients[0]"),
    ("postgres_backup", {"postgres_backup_age_recipients": [PRIVATE_AGE]}, "postgres_backup_age_recipients[0]"),
    ("postgres_backup", {"postgres_backup_remote": {"host": "db.internal", "user": "backup", "password": "secret-pw-1\n"}},
     "postgres_backup_remote.password"),
    ("base", {"base_deploy_user_authorized_keys": [KEY[:-30]]}, "base_deploy_user_authorized_keys[0]"),
    ("base", {"base_deploy_user_authorized_keys": [PRIVATE_SSH]}, "base_deploy_user_authorized_keys[0]"),
    ("docker", {"docker_registries": [{"registry": "ghcr.io", "username": "u", "password": "token-1\n"}]},
     "docker_registries[0].password"),
    ("caddy", {"caddy_sites": [{"domains": ["example.com"], "upstreams": ["127.0.0.1:8080"],
                                "basic_auth": [{"username": "ops", "password": "long-enough-1\n"}]}]}, "caddy_sites"),
    # issue 24: alerts that would reach no one, a token in the clear, a public listener
    ("monitoring", {"monitoring_receivers": []}, "monitoring_receivers"),
    ("monitoring", {"monitoring_receivers": [{"name": "ops", "type": "slack", "url": "http://hooks.slack.com/token-1-x"}]},
     "monitoring_receivers[0].url"),
    ("monitoring", {"monitoring_listen_address": "0.0.0.0"}, "monitoring_listen_address"),
    ("monitoring", {"monitoring_heartbeat_url": "https://hc.example/token-1-x\n"}, "monitoring_heartbeat_url"),
]
# secrets a refusal must never print (no part longer than 8 characters)
SECRETS = ("long-enough-1", "secret-pw-1", "token-1-x", PRIVATE_AGE, PRIVATE_SSH)


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


def run_role(role: str, hosts: dict[str, dict[str, Any]], tmp_path: Path,
             extra_args: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
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
         "--tags", "anvil-spec-test-runs-only-always-tasks", *extra_args],
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
        leaked = [s for s in SECRETS if any(s[j:j + 9] in result["msg"] for j in range(len(s) - 8))]
        if leaked:
            problems.append(f"{option}: the refusal prints a secret")
    assert not problems, "\n".join(problems)


def typed_options(role: str) -> dict[str, dict[str, Any]]:
    return {n: o for n, o in spec(role).items() if o["type"] in ("int", "bool", "float") and "default" in o
            and not n.startswith("anvil_")}


def another_valid_value(role: str, name: str, option: dict[str, Any]) -> Any:
    """A value other than the default that the role's filter accepts with the baseline (the default
    when there is none): the flipped bool, the int one above or below, the float plus a half."""
    check = getattr(tables(role), f"{role}_errors")
    base = {**{n: o["default"] for n, o in typed_options(role).items()}, **BASELINE[role]}
    default = option["default"]
    candidates = {"bool": [not default], "int": [default + 1, default - 1], "float": [default + 0.5]}[option["type"]]
    for value in candidates:
        if not check({**base, name: value}) and not check({**base, name: str(value)}):
            return value
    return default


def as_extra_var(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("variant", ["default", "another"])
@pytest.mark.parametrize("role", sorted(FILTERS))
def test_every_typed_option_given_as_a_command_line_string_passes(role, variant, tmp_path):
    """-e key=value for every int/bool/float option (strings, as Ansible gives them) passes the checks."""
    options = typed_options(role)
    values = {n: o["default"] if variant == "default" else another_valid_value(role, n, o) for n, o in options.items()}
    # baseline values win (they are what the role needs here), as command-line strings too
    values.update({n: v for n, v in BASELINE[role].items() if n in options})
    args: list[str] = []
    for name, value in values.items():
        args += ["-e", f"{name}={as_extra_var(value)}"]
    outcome = run_role(role, {"valid": {k: v for k, v in BASELINE[role].items() if k not in options}}, tmp_path,
                       tuple(args))
    assert not outcome["valid"]["failed"], f"{role} refuses its typed options as -e strings: {outcome['valid']}"


@pytest.fixture()
def listener():
    """A TCP port held on 127.0.0.1 by this test (another daemon, for the role under test)."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize(("role", "option"), [("node_exporter", "node_exporter_port"), ("base", "base_ssh_port"),
                                              ("app_deploy", "app_deploy_ports")])
def test_a_port_another_daemon_holds_is_refused(role, option, listener, tmp_path):
    value: Any = {"blue": listener, "green": 18001} if option == "app_deploy_ports" else listener
    outcome = run_role(role, {"taken": {option: value}}, tmp_path)["taken"]
    assert outcome["failed"] and REFUSING_TASKS.match(outcome["task"]), outcome
    assert names(outcome["msg"], option) or names(outcome["msg"], f"{option}.blue"), outcome["msg"]
    assert f"port {listener} is already taken" in outcome["msg"], outcome["msg"]


# The issue-20 cases of the scenarios' bad_cases.yml (molecule/<role>/bad_cases.yml) that do not need the
# test containers' own daemons (sshd on 22: test_a_port_another_daemon_holds_is_refused covers those here).
SCENARIO_CASES = {
    "node_exporter": ["root as the service user", "password ending in a newline"],
    "postgres_backup": ["age recipient with one changed character", "private key pasted as a recipient",
                        "remote password ending in a newline", "host key cut short"],
    "base": ["ssh port node_exporter uses", "authorized key cut short", "private key pasted as an authorized key"],
    "caddy": ["basic-auth password ending in a newline"],
    "docker": ["registry password ending in a newline"],
    "app_deploy": ["registry password ending in a newline"],
}


@pytest.mark.parametrize("role", sorted(SCENARIO_CASES))
def test_the_scenarios_issue_20_cases_are_refused_here_too(role, tmp_path):
    data = yaml.safe_load((ROOT / "molecule" / role / "bad_cases.yml").read_text())
    cases = {case["name"]: case for case in data["bad_input_cases"]}
    missing = [name for name in SCENARIO_CASES[role] if name not in cases]
    assert not missing, f"molecule/{role}/bad_cases.yml lacks {missing}"
    chosen = {f"case{i}": cases[name] for i, name in enumerate(SCENARIO_CASES[role])}
    outcome = run_role(role, {label: case["vars"] for label, case in chosen.items()}, tmp_path)
    problems = []
    for label, case in chosen.items():
        result = outcome[label]
        if not (result["failed"] and REFUSING_TASKS.match(result["task"]) and case["var"] in result["msg"]):
            problems.append(f"{case['name']}: not refused naming {case['var']} ({result})")
        shown = [s for s in case.get("never_shown", []) if s in result["msg"]]
        if shown:
            problems.append(f"{case['name']}: the refusal shows {shown}")
    assert not problems, "\n".join(problems)
