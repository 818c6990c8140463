"""anvil.hetzner.login_probe (the first step of site.yml): reports a login that fails instead of
printing an error, over a real ssh connection to a closed loopback port and a working local one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is


def run(tmp_path: Path, host_vars: str) -> tuple[dict, str]:
    (tmp_path / "hosts").write_text(f"target {host_vars} ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "play.yml").write_text(
        "- hosts: target\n  gather_facts: false\n  tasks:\n"
        "    - anvil.hetzner.login_probe:\n      register: probe\n"
        "    - ansible.builtin.copy:\n        content: '{{ probe | to_json }}'\n"
        f"        dest: {tmp_path}/probe.json\n        mode: '0600'\n      delegate_to: localhost\n"
        "      vars:\n        ansible_connection: local\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    out = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts"), str(tmp_path / "play.yml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads((tmp_path / "probe.json").read_text()), out.stdout + out.stderr


def test_a_login_that_fails_is_reported_not_raised(tmp_path):
    probe, output = run(tmp_path, f"ansible_host=127.0.0.1 ansible_port={closed_port()} ansible_user=deploy "
                                  "ansible_connection=ssh ansible_ssh_common_args='-o ConnectTimeout=5'")
    assert probe["login_ok"] is False
    assert probe["reason"].endswith("Connection refused"), probe["reason"]
    assert "UNREACHABLE" not in output and "[ERROR]" not in output and "fatal:" not in output


def test_a_working_login_is_reported(tmp_path):
    probe, _unused = run(tmp_path, "ansible_connection=local")
    assert probe["login_ok"] is True and probe["reason"] == ""
