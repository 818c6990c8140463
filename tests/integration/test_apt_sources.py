"""The docker and caddy roles' official-repository paths, which the Molecule scenarios cannot reach (no
route to the vendors' repositories from the test machines): the deb822 repositories (the parameters the
roles pass to ansible.builtin.deb822_repository) and package lists the roles compute, rendered by
Ansible from the roles' own defaults and vars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "docker"

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    ansible_facts: {facts}
  tasks:
    - ansible.builtin.include_vars: {role}/defaults/main.yml
    - ansible.builtin.include_vars: {role}/vars/main.yml
    - ansible.builtin.copy:
        dest: {out}/result.json
        content: >-
          {{{{ {{'packages': __docker_package_names, 'conflicts': __docker_conflicts[docker_install_source],
                'repository': __docker_apt_repository}} | to_json }}}}
        mode: "0644"
"""


def run_playbook(book: Path, *extra: str) -> None:
    """Run a playbook on localhost with the checkout's ansible.cfg and nothing else of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    args = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(book),
            "-e", f"ansible_python_interpreter={sys.executable}"]
    for item in extra:
        args += ["-e", item]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def render(tmp_path: Path, facts: dict[str, str], *extra: str) -> tuple[dict[str, object], dict[str, list[str]]]:
    book = tmp_path / "render.yml"
    book.write_text(PLAYBOOK.format(facts=json.dumps(facts), role=ROLE, out=tmp_path))
    run_playbook(book, *extra)
    result = json.loads((tmp_path / "result.json").read_text())
    return result.pop("repository"), result


@pytest.mark.parametrize(
    ("facts", "url", "suite", "arch"),
    [
        ({"distribution": "Debian", "distribution_release": "bookworm", "distribution_major_version": "12",
          "architecture": "x86_64"}, "https://download.docker.com/linux/debian", "bookworm", "amd64"),
        ({"distribution": "Debian", "distribution_release": "trixie", "distribution_major_version": "13",
          "architecture": "aarch64"}, "https://download.docker.com/linux/debian", "trixie", "arm64"),
        ({"distribution": "Ubuntu", "distribution_release": "noble", "distribution_major_version": "24",
          "architecture": "x86_64"}, "https://download.docker.com/linux/ubuntu", "noble", "amd64"),
    ],
)
def test_official_source_is_deb822_signed_by_the_vendor_key(tmp_path, facts, url, suite, arch):
    source, result = render(tmp_path, facts)
    assert source == {
        "name": "docker", "types": ["deb"], "uris": [url], "suites": [suite], "components": ["stable"],
        "architectures": [arch], "signed_by": f"{url}/gpg",
    }
    assert result["packages"] == ["docker-ce", "docker-ce-cli", "containerd.io", "docker-compose-plugin",
                                  "docker-buildx-plugin"]
    # the distribution's engine and podman's docker shim go first
    assert {"docker.io", "podman-docker", "containerd", "runc", "docker-compose"} <= set(result["conflicts"])


def test_pinned_official_version_matches_docker_epoch(tmp_path):
    facts = {"distribution": "Debian", "distribution_release": "bookworm", "distribution_major_version": "12",
             "architecture": "x86_64"}
    _unused, result = render(tmp_path, facts, "docker_version=27.3.1", '{"docker_compose": false}')
    assert result["packages"] == ["docker-ce=5:27.3.1*", "docker-ce-cli=5:27.3.1*", "containerd.io",
                                  "docker-buildx-plugin"]


def test_distro_source_packages(tmp_path):
    facts = {"distribution": "Debian", "distribution_release": "trixie", "distribution_major_version": "13",
             "architecture": "x86_64"}
    _unused, result = render(tmp_path, facts, "docker_install_source=distro", "docker_version=26.1.5")
    assert result["packages"] == ["docker.io=26.1.5*", "docker-compose", "docker-buildx"]
    assert {"docker-ce", "containerd.io", "docker-compose-plugin"} <= set(result["conflicts"])


CADDY_PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    ansible_facts: {{distribution: Debian, distribution_release: trixie, os_family: Debian}}
  tasks:
    - ansible.builtin.include_vars: {role}/defaults/main.yml
    - ansible.builtin.include_vars: {role}/vars/main.yml
    - ansible.builtin.copy:
        dest: {out}/caddy.json
        content: "{{{{ __caddy_apt_repository | to_json }}}}"
        mode: "0644"
"""


def test_caddy_official_source_is_deb822_signed_by_the_vendor_key(tmp_path):
    book = tmp_path / "caddy.yml"
    book.write_text(CADDY_PLAYBOOK.format(role=ROOT / "roles" / "caddy", out=tmp_path))
    run_playbook(book)
    assert json.loads((tmp_path / "caddy.json").read_text()) == {
        "name": "caddy-stable", "types": ["deb"], "uris": ["https://dl.cloudsmith.io/public/caddy/stable/deb/debian"],
        "suites": ["any-version"], "components": ["main"],
        "signed_by": "https://dl.cloudsmith.io/public/caddy/stable/gpg.key",
    }
