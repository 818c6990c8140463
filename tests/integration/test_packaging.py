"""The collection builds, installs elsewhere, and its roles and playbooks resolve by FQCN there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSION = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    # Nothing of this checkout's Ansible settings may leak in (its collections path holds the checkout).
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # the venv's ansible, activated or not
    build = tmp_path_factory.mktemp("build")
    run(["ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(build)], cwd=build, env=env)
    tarball = build / f"anvil-hetzner-{VERSION}.tar.gz"
    assert tarball.exists()
    target = tmp_path_factory.mktemp("elsewhere")
    collections = target / "collections"
    # --no-deps: the community collections come from the installed `ansible` package (no Galaxy here).
    run(["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(collections), str(tarball)],
        cwd=target, env=env)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return tarball, env | {"WORKDIR": str(target)}


def test_tarball_leaves_out_tests_and_ci(installed):
    tarball, _unused = installed
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "roles/base/tasks/main.yml" in names
    assert "playbooks/site.yml" in names
    assert "plugins/filter/ssh_supported.py" in names
    leaked = [n for n in names if n.split("/")[0] in {"molecule", "tests", ".ci", "collections", ".venv", ".config"}]
    assert leaked == []


def test_role_spec_renders_with_ansible_doc(installed):
    _unused, env = installed
    out = run(["ansible-doc", "-t", "role", "anvil.hetzner.base"], cwd=Path(env["WORKDIR"]), env=env).stdout
    assert "base_deploy_user_authorized_keys" in out
    assert "base_ssh_port" in out
    assert "Harden a fresh Debian or Ubuntu server" in out


def test_plugins_document_themselves(installed):
    _unused, env = installed
    out = run(["ansible-doc", "-t", "filter", "anvil.hetzner.ssh_supported"], cwd=Path(env["WORKDIR"]), env=env)
    assert "ssh -Q" in out.stdout
    out = run(["ansible-doc", "-t", "test", "anvil.hetzner.ip_address"], cwd=Path(env["WORKDIR"]), env=env)
    assert "CIDR" in out.stdout
    out = run(["ansible-doc", "-t", "inventory", "anvil.hetzner.hcloud"], cwd=Path(env["WORKDIR"]), env=env)
    for option in ("api_token", "label_selector", "connect_with", "projects", "keyed_groups", "cache_plugin"):
        assert option in out.stdout, option


def test_inventory_plugin_works_from_the_installed_collection(installed):
    from hcloud_sandbox import Project, Sandbox, generate_world

    _unused, env = installed
    workdir = Path(env["WORKDIR"])
    (workdir / "prod.hcloud.yml").write_text("plugin: anvil.hetzner.hcloud\nlabel_selector: role=db\n")
    with Sandbox([Project("prod", "tok", generate_world(60, prefix="prod"))]) as sandbox:
        out = run(["ansible-inventory", "-i", "prod.hcloud.yml", "--graph", "db"], cwd=workdir,
                  env=env | {"HCLOUD_TOKEN": "tok", "HCLOUD_ENDPOINT": sandbox.url,
                             "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1"})
    hosts = [line.split("--")[-1] for line in out.stdout.splitlines() if "prod-" in line]
    assert hosts, out.stdout + out.stderr
    assert len(hosts) == 10 and all(h.startswith("prod-") for h in hosts)


def test_roles_and_playbook_resolve_by_fqcn_in_another_project(installed):
    _unused, env = installed
    workdir = Path(env["WORKDIR"])
    # every role and every playbook of the collection, by FQCN
    roles = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").exists())
    playbooks = sorted(p.stem for p in (ROOT / "playbooks").glob("*.yml"))
    assert {"app_deploy", "postgres_backup"} <= set(roles) and {"site", "deploy", "backup_restore_drill"} <= set(playbooks)
    (workdir / "play.yml").write_text(
        "- name: Use the installed collection\n"
        "  hosts: all\n"
        "  roles:\n"
        + "".join(f"    - role: anvil.hetzner.{r}\n" for r in roles)
        + "".join(f"- name: And its playbook {p}\n  ansible.builtin.import_playbook: anvil.hetzner.{p}\n" for p in playbooks)
    )
    run(["ansible-playbook", "-i", "localhost,", "--syntax-check", "play.yml"], cwd=workdir, env=env)


def test_prometheus_targets_playbook_writes_file_sd_and_rules(installed, tmp_path):
    """anvil.hetzner.prometheus_targets from the installed collection, writing on the controller: one
    file_sd file per group from the inventory, the alert rules; bad input refused with nothing written."""
    _unused, env = installed
    workdir = Path(env["WORKDIR"])
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "web": {"hosts": {"web1": {"hcloud_private_ipv4": "10.0.0.2", "hcloud_location": "fsn1",
                                   "hcloud_labels": {"role": "web"}}}},
        "db": {"hosts": {"db1": {}}}}}}))
    out = tmp_path / "out"
    base = ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), "anvil.hetzner.prometheus_targets",
            "-e", "anvil_prometheus_host=localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
    settings = {"prometheus_file_sd_dir": str(out / "sd"), "prometheus_file_sd_groups": ["web", "db"],
                "prometheus_rules_dir": str(out / "rules"), "prometheus_rules_validate": False, "prometheus_reload": False}
    result = run(base + ["-e", json.dumps(settings)], cwd=workdir, env=env)
    assert json.loads((out / "sd" / "anvil-web.json").read_text()) == [
        {"targets": ["10.0.0.2:9100"], "labels": {"instance": "web1", "group": "web", "location": "fsn1", "role": "web"}}]
    assert json.loads((out / "sd" / "anvil-db.json").read_text()) == []  # db1 listens on loopback only
    assert "db1: listens on 127.0.0.1 only" in result.stdout
    rules = sorted(p.name for p in (out / "rules").iterdir())
    assert rules == sorted(p.name for p in (ROOT / "roles" / "node_exporter" / "files" / "alerts").glob("*.rules.yml"))
    # bad input: refused before anything is written
    for bad in ({"prometheus_file_sd_dir": str(tmp_path / "bad"), "prometheus_file_sd_groups": ["nope"]},
                {"prometheus_file_sd_dir": "relative/dir"}):
        refused = subprocess.run(base + ["-e", json.dumps(bad)], cwd=workdir, env=env, capture_output=True, text=True,
                                 timeout=300, check=False)
        assert refused.returncode == 2 and "refuses to run, nothing was changed" in refused.stdout + refused.stderr
        assert not (tmp_path / "bad").exists() and not (workdir / "relative").exists()
