"""playbooks/deploy.yml and backup_restore_drill.yml (playbooks/tasks/choose_hosts.yml) choose the
hosts site.yml gives their role (deploy: hosts in web or app that describe an app; drill: hosts
with backups; the anvil_<role> toggle winning, given as -e strings too), or exactly those of
-e anvil_hosts; and they fail, before any host is touched, when that leaves no host: a deploy or a
drill from CI that did nothing must not pass. site.yml and prometheus_targets.yml fail the same way
when their pattern matches no host at all. Run through ansible-playbook on local hosts; the work
itself is left out with --tags (the choice is tagged always), so nothing is deployed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

APP = {"app_deploy_name": "shop"}
INVENTORY = {
    "web": {"web-1": APP, "web-2": {}},                        # web-2 describes no app
    "app": {"app-1": dict(APP, anvil_app_deploy="false"),       # turned off, as -e or a file gives it
            "app-2": APP},
    "db": {"db-1": APP,                                         # not a web/app group
           "db-2": dict(APP, anvil_app_deploy="yes")},          # the toggle wins
}


def inventory(tmp_path: Path, groups: dict) -> Path:
    data = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "children": {group: {"hosts": hosts} for group, hosts in groups.items()}}}
    path = tmp_path / "hosts.yml"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def deploy(tmp_path: Path, groups: dict, *extra: str, playbook: str = "deploy.yml") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default",
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_GATHERING="explicit", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return subprocess.run(["ansible-playbook", "-i", str(inventory(tmp_path, groups)), "--tags", "anvil-test-none",
                           str(ROOT / "playbooks" / playbook), *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


def chosen(out: subprocess.CompletedProcess, what: str = "anvil.hetzner.deploy") -> list[str]:
    found = re.findall(rf"msg: '?{re.escape(what)} runs on: ([^'\n]*)", out.stdout)
    assert len(found) == 1, out.stdout[-3000:] + out.stderr[-2000:]
    return found[0].split(", ")


def test_by_default_the_hosts_site_yml_deploys_the_app_to(tmp_path):
    out = deploy(tmp_path, INVENTORY)
    assert out.returncode == 0, out.stdout[-3000:]
    # web-2: no app; app-1: toggled off; db-1: not a web/app host; db-2: outside web/app, toggle yes
    assert sorted(chosen(out)) == ["app-2", "db-2", "web-1"]


def test_anvil_hosts_names_the_hosts_and_a_false_toggle_still_wins(tmp_path):
    out = deploy(tmp_path, INVENTORY, "-e", "anvil_hosts=web-2:db-1:app-1")
    assert out.returncode == 0, out.stdout[-3000:]
    assert sorted(chosen(out)) == ["db-1", "web-2"]  # app-1's anvil_app_deploy is "false"


def test_a_limit_narrows_the_choice(tmp_path):
    out = deploy(tmp_path, INVENTORY, "--limit", "web-1,db-1")
    assert out.returncode == 0, out.stdout[-3000:]
    assert chosen(out) == ["web-1"]


@pytest.mark.parametrize(("groups", "extra", "says"), [
    ({"db": {"db-1": APP}}, [], "of the 1 hosts it looked at (db-1), none is one of the hosts site.yml deploys the app to"),
    ({"web": {"web-2": {}}}, [], "(web-2), none is one of the hosts site.yml deploys the app to"),
    ({}, [], "the inventory has no host in all"),
    (INVENTORY, ["-e", "anvil_app_deploy=false"], "none is one of the hosts site.yml deploys the app to"),
    (INVENTORY, ["-e", "anvil_hosts=nosuch"], "the inventory has no host in anvil_hosts=nosuch"),
    (INVENTORY, ["-e", "anvil_hosts=app-1"], "none is one of those whose anvil_app_deploy is not false"),
    # a limit outside the pattern, or outside the hosts chosen: nothing would run
    (INVENTORY, ["-e", "anvil_hosts=web", "--limit", "db-1"], "the inventory has no host in anvil_hosts=web within --limit db-1"),
    (INVENTORY, ["--limit", "db-1,web-2"], "(web-2, db-1), none is one of"),
], ids=["no-web-or-app-host", "no-app-described", "empty-inventory", "toggled-off-everywhere", "pattern-matches-nothing",
        "pattern-toggled-off", "limit-outside-the-pattern", "limit-outside-the-choice"])
def test_a_deploy_that_would_deploy_nowhere_fails(tmp_path, groups, extra, says):
    out = deploy(tmp_path, groups, *extra)
    assert out.returncode != 0, out.stdout[-3000:]
    assert "anvil.hetzner.deploy found no host to run on, nothing was changed" in out.stdout
    assert says in re.sub(r"\s+", " ", out.stdout), out.stdout[-3000:]
    assert "runs on:" not in out.stdout


@pytest.mark.parametrize("extra", [[], ["-e", "anvil_hosts=web"]], ids=["default", "anvil_hosts"])
def test_a_toggle_that_is_not_a_boolean_is_refused(tmp_path, extra):
    out = deploy(tmp_path, INVENTORY, "-e", "anvil_app_deploy=maybe", *extra)
    assert out.returncode != 0
    assert "anvil.hetzner.deploy refuses to run, nothing was changed: anvil_app_deploy: 'maybe' is not a boolean" in out.stdout
    assert "runs on:" not in out.stdout


def test_imported_twice_each_import_chooses_afresh(tmp_path):
    # (molecule's scenarios import these playbooks with vars; two imports in one run must not share
    # the first one's choice, nor skip the second one's refusal)
    (tmp_path / "twice.yml").write_text(f"""\
- name: First
  ansible.builtin.import_playbook: {ROOT}/playbooks/deploy.yml
  vars: {{anvil_hosts: web-1}}
- name: Second
  ansible.builtin.import_playbook: {ROOT}/playbooks/deploy.yml
  vars: {{anvil_hosts: app-2}}
- name: Third, refused
  ansible.builtin.import_playbook: {ROOT}/playbooks/deploy.yml
  vars: {{anvil_hosts: app-1}}
""", encoding="utf-8")
    out = deploy(tmp_path, INVENTORY, playbook=str(tmp_path / "twice.yml"))
    assert out.returncode != 0, out.stdout[-3000:]
    assert re.findall(r"anvil.hetzner.deploy runs on: ([^'\n]*)", out.stdout) == ["web-1", "app-2"]
    assert "none is one of those whose anvil_app_deploy is not false" in re.sub(r"\s+", " ", out.stdout)


RECIPIENTS = {"postgres_backup_age_recipients": ["age1qqqq"]}
BACKUPS = {
    "web": {"web-1": RECIPIENTS, "web-2": {}},                               # web-2 has no backups
    "db": {"db-1": RECIPIENTS, "db-2": dict(RECIPIENTS, anvil_postgres_backup="off")},
    "storage": {"storage-1": {}},
}


def test_the_drill_by_default_runs_where_site_yml_puts_backups(tmp_path):
    out = deploy(tmp_path, BACKUPS, playbook="backup_restore_drill.yml")
    assert out.returncode == 0, out.stdout[-3000:]
    assert sorted(chosen(out, "anvil.hetzner.backup_restore_drill")) == ["db-1", "web-1"]


def test_the_drill_runs_on_the_hosts_named(tmp_path):
    out = deploy(tmp_path, BACKUPS, "-e", "anvil_hosts=db:web-2", playbook="backup_restore_drill.yml")
    assert out.returncode == 0, out.stdout[-3000:]
    # web-2 named, though it has no backups (the drill says so); db-2's anvil_postgres_backup is "off"
    assert sorted(chosen(out, "anvil.hetzner.backup_restore_drill")) == ["db-1", "web-2"]


@pytest.mark.parametrize(("groups", "extra", "says"), [
    ({"storage": BACKUPS["storage"]}, [], "of the 1 hosts it looked at (storage-1), none is one of the hosts with backups"),
    (BACKUPS, ["-e", "anvil_postgres_backup=no"], "none is one of the hosts with backups"),
    (BACKUPS, ["-e", "anvil_hosts=nosuch"], "the inventory has no host in anvil_hosts=nosuch"),
    (BACKUPS, ["-e", "anvil_postgres_backup=later"], "refuses to run, nothing was changed: anvil_postgres_backup: 'later' is not a boolean"),
], ids=["no-host-with-backups", "toggled-off-everywhere", "pattern-matches-nothing", "toggle-not-a-boolean"])
def test_a_drill_that_would_drill_nothing_fails(tmp_path, groups, extra, says):
    out = deploy(tmp_path, groups, *extra, playbook="backup_restore_drill.yml")
    assert out.returncode != 0, out.stdout[-3000:]
    assert "anvil.hetzner.backup_restore_drill " in out.stdout and "nothing was changed" in out.stdout
    assert says in re.sub(r"\s+", " ", out.stdout), out.stdout[-3000:]
    assert "runs on:" not in out.stdout


@pytest.mark.parametrize(("groups", "extra", "says"), [
    ({}, [], "the inventory has no host in all"),
    ({"web": {"web-1": APP}}, ["-e", "anvil_hosts=db"], "the inventory has no host in anvil_hosts=db"),
    ({"web": {"web-1": APP}, "db": {"db-1": {}}}, ["-e", "anvil_hosts=web", "--limit", "db-1"],
     "the inventory has no host in anvil_hosts=web within --limit db-1"),
], ids=["empty-inventory", "pattern-matches-nothing", "limit-outside-the-pattern"])
def test_a_site_run_that_matched_no_host_fails(tmp_path, groups, extra, says):
    out = deploy(tmp_path, groups, *extra, playbook="site.yml")
    assert out.returncode != 0, out.stdout[-3000:]
    assert "anvil.hetzner.site found no host to run on, nothing was changed" in out.stdout
    assert says in re.sub(r"\s+", " ", out.stdout), out.stdout[-3000:]


@pytest.mark.parametrize(("extra", "says"), [
    ([], "the inventory has no host in the group prometheus"),
    (["-e", "anvil_prometheus_host=nosuch"], "the inventory has no host in anvil_prometheus_host=nosuch"),
], ids=["no-prometheus-group", "host-named-is-not-there"])
def test_prometheus_targets_without_a_prometheus_host_fails(tmp_path, extra, says):
    # (with a Prometheus host it writes the targets: test_packaging, from the installed collection)
    out = deploy(tmp_path, {"web": {"web-1": APP}}, "-e", f"prometheus_file_sd_dir={tmp_path / 'sd'}", *extra,
                 playbook="prometheus_targets.yml")
    assert out.returncode != 0, out.stdout[-3000:]
    assert "anvil.hetzner.prometheus_targets found no host to run on, nothing was changed" in out.stdout
    assert says in re.sub(r"\s+", " ", out.stdout), out.stdout[-3000:]
    assert not (tmp_path / "sd").exists()
