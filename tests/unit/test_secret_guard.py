"""The test-only secret guard (tests/callback_plugins/secret_guard.py), run through ansible-playbook:
what -vvv would show of a secret is caught (a message, a loop label, module arguments, a task name),
what no_log or a loop label hides is not, and a run that leaked fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "callback_plugins"))
import secret_guard  # noqa: E402  pylint: disable=wrong-import-position

SECRET = "s3cr3t-Value-$-#-'quoted'"
ENV_SECRET = "env-only-secret-42"
LISTED = "listed-secret-xyz"


def test_secrets_come_from_keys_environments_and_the_list():
    found = secret_guard.secrets_in({
        "postgres_backup_remote": {"host": "db.internal", "password": SECRET},
        "app_deploy_services": [{"name": "web", "environment": {"API_URL": ENV_SECRET}}],
        "anvil_test_secrets": [LISTED],
        "caddy_sites": [{"domain": "shop.example.com"}],
        "short_token": "abc",
        "templated_token": "{{ vault_token }}",
    })
    assert found == {SECRET: "postgres_backup_remote.password",
                     ENV_SECRET: "app_deploy_services[0].environment.API_URL",
                     LISTED: "anvil_test_secrets[0]"}


def run(tmp_path: Path, tasks: list, verbosity: str = "-vvv") -> tuple[subprocess.CompletedProcess, list, list]:
    inputs = tmp_path / "vars.yml"
    inputs.write_text(yaml.safe_dump({"demo_password": SECRET, "anvil_test_secrets": [LISTED]}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars_files": [str(inputs)],
                                         "tasks": tasks}]))
    out = tmp_path / "guard"
    env = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "tests" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="secret_guard", ANVIL_SECRET_GUARD_DIR=str(out),
               ANVIL_SECRET_GUARD_FILES=str(inputs), ANVIL_SECRET_GUARD_LABEL="unit",
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    env.pop("MOLECULE_SCENARIO_NAME", None)
    proc = subprocess.run(["ansible-playbook",
                           "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                           verbosity, str(playbook)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    runs = [json.loads(x) for x in (out / "unit.runs").read_text().splitlines()] if (out / "unit.runs").exists() else []
    leaks = [json.loads(x) for x in (out / "unit.leaks").read_text().splitlines()] if (out / "unit.leaks").exists() else []
    return proc, runs, leaks


@pytest.mark.parametrize("task, where", [
    ({"name": "Show it", "ansible.builtin.debug": {"msg": "the value is {{ demo_password }}"}}, "ok result"),
    ({"name": "Loop without a label", "ansible.builtin.debug": {"msg": "x"},
      "loop": [{"user": "a", "password": "{{ demo_password }}"}]}, "loop item result"),
    ({"name": "Module arguments", "ansible.builtin.command": {"argv": ["true", "{{ demo_password }}"]},
      "changed_when": False}, "ok result"),
    ({"name": "Failed with it", "ansible.builtin.fail": {"msg": "no: {{ demo_password }}"}, "ignore_errors": True},
     "failed result"),
    ({"name": "Named {{ demo_password }}", "ansible.builtin.debug": {"msg": "x"}}, "task name"),
    ({"name": "A listed one", "ansible.builtin.set_fact": {"x": "listed-secret-xyz"}}, "ok result"),
    # a loop label changes the "(item=...)" text only: from -v on, the result shown still holds the item
    ({"name": "Labelled loop", "ansible.builtin.set_fact": {"y": "{{ item.user }}"},
      "loop": [{"user": "a", "password": "{{ demo_password }}"}], "loop_control": {"label": "{{ item.user }}"}},
     "loop item result"),
])
def test_a_shown_secret_is_caught_and_fails_the_run(tmp_path, task, where):
    proc, runs, leaks = run(tmp_path, [task])
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "secret_guard: a secret reached the output" in proc.stdout + proc.stderr
    assert runs and runs[0]["inspected"] >= 1 and runs[0]["secrets"] == 2
    assert any(leak["in"] == where for leak in leaks), leaks
    # the report names the key, never the value
    assert SECRET not in json.dumps(leaks) and LISTED not in json.dumps(leaks)


@pytest.mark.parametrize("task", [
    {"name": "Hidden", "ansible.builtin.debug": {"msg": "{{ demo_password }}"}, "no_log": True},
    {"name": "Loop without output", "ansible.builtin.set_fact": {"y": "{{ item.user }}"}, "no_log": True,
     "loop": [{"user": "a", "password": "{{ demo_password }}"}], "loop_control": {"label": "{{ item.user }}"}},
    {"name": "Loop over names", "ansible.builtin.debug": {"msg": "{{ item }}"}, "loop": ["a", "b"]},
    {"name": "Unrelated", "ansible.builtin.debug": {"msg": "nothing to see"}},
])
def test_what_is_hidden_passes(tmp_path, task):
    proc, runs, leaks = run(tmp_path, [task])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert leaks == []
    assert runs and runs[0]["inspected"] >= 1


def test_the_report_fails_on_leaks_and_on_no_runs(tmp_path):
    report = [sys.executable, str(ROOT / "tests" / "harness" / "secret_guard_report.py")]
    assert subprocess.run(report + ["unit", str(tmp_path / "none")], capture_output=True, check=False).returncode == 1
    run(tmp_path, [{"name": "Show it", "ansible.builtin.debug": {"msg": "{{ demo_password }}"}}])
    bad = subprocess.run(report + ["unit", str(tmp_path / "guard")], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "LEAK: vars.yml:demo_password" in bad.stdout and SECRET not in bad.stdout
    clean = tmp_path / "clean"
    clean.mkdir()
    run(clean, [{"name": "Unrelated", "ansible.builtin.debug": {"msg": "ok"}}])
    good = subprocess.run(report + ["unit", str(clean / "guard")], capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stdout
