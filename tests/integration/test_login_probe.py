"""anvil.hetzner.login_probe (the first step of site.yml): reports a login that fails instead of
printing an error, over a real ssh connection to a closed loopback port and a working local one;
tries again while the server resets the connection (a fresh server whose sshd cloud-init
restarts), within its timeout, and never retries a refused key or a changed host key."""

from __future__ import annotations

import importlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is


def playbook(tmp_path: Path) -> subprocess.CompletedProcess:
    """ansible-playbook on tmp_path's hosts and play.yml, with the project's settings only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts"), str(tmp_path / "play.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def run(tmp_path: Path, host_vars: str, args: str = "") -> tuple[dict, str]:
    (tmp_path / "hosts").write_text(f"target {host_vars} ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "play.yml").write_text(
        "- hosts: target\n  gather_facts: false\n  tasks:\n"
        f"    - anvil.hetzner.login_probe: {{{args}}}\n      register: probe\n"
        "    - ansible.builtin.copy:\n        content: '{{ probe | to_json }}'\n"
        f"        dest: {tmp_path}/probe.json\n        mode: '0600'\n      delegate_to: localhost\n"
        "      vars:\n        ansible_connection: local\n")
    out = playbook(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads((tmp_path / "probe.json").read_text()), out.stdout + out.stderr


def test_a_login_that_fails_is_reported_not_raised(tmp_path):
    probe, output = run(tmp_path, f"ansible_host=127.0.0.1 ansible_port={closed_port()} ansible_user=deploy "
                                  "ansible_connection=ssh ansible_ssh_common_args='-o ConnectTimeout=5'")
    assert probe["login_ok"] is False and probe["attempts"] == 1 and probe["unanswered"] is True
    assert probe["reason"].endswith("Connection refused"), probe["reason"]
    assert "UNREACHABLE" not in output and "[ERROR]" not in output and "fatal:" not in output


def test_a_working_login_is_reported(tmp_path):
    probe, _unused = run(tmp_path, "ansible_connection=local")
    assert probe["login_ok"] is True and probe["reason"] == ""


class Resetter:
    """A loopback port that accepts each connection and resets it at once (RST): what a client
    sees while sshd restarts. Counts the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop for real: close() alone does not wake a thread blocked in accept(), and the closed
        socket stays listening on its port (resetting whatever connects) for the rest of the pytest
        session; shutdown() wakes the thread."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()


def test_a_reset_connection_is_tried_again_until_the_timeout(tmp_path):
    server = Resetter()
    try:
        probe, output = run(tmp_path, f"ansible_host=127.0.0.1 ansible_port={server.port} ansible_user=deploy "
                                      "ansible_connection=ssh ansible_ssh_common_args='-o ConnectTimeout=5'",
                            "timeout: 6, delay: 1")
    finally:
        server.close()
    assert probe["login_ok"] is False and probe["unanswered"] is True
    assert probe["attempts"] >= 3 and server.connections >= probe["attempts"], (probe, server.connections)
    assert "reset" in probe["reason"].lower() or "closed" in probe["reason"].lower(), probe["reason"]
    assert "UNREACHABLE" not in output and "fatal:" not in output


def test_without_a_timeout_a_reset_is_tried_once(tmp_path):
    server = Resetter()
    try:
        probe, _unused = run(tmp_path, f"ansible_host=127.0.0.1 ansible_port={server.port} ansible_user=deploy "
                                       "ansible_connection=ssh ansible_ssh_common_args='-o ConnectTimeout=5'")
    finally:
        server.close()
    assert probe["login_ok"] is False and probe["attempts"] == 1 and server.connections == 1


@pytest.mark.parametrize(("args", "message"), [
    ("timeout: soon", r"argument 'timeout' is of type .* unable to convert to int"),
    ("timeout: -1", r"timeout must be 0 or more, delay 1 or more"),
    ("delay: 0", r"timeout must be 0 or more, delay 1 or more"),
])
def test_a_bad_timeout_is_refused(tmp_path, args, message):
    (tmp_path / "hosts").write_text(f"target ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "play.yml").write_text("- hosts: target\n  gather_facts: false\n  tasks:\n"
                                       f"    - anvil.hetzner.login_probe: {{{args}}}\n")
    out = playbook(tmp_path)
    assert out.returncode != 0 and re.search(message, out.stdout + out.stderr), out.stdout + out.stderr


# What OpenSSH prints (ssh -v's last line, as the connection plugin reports it)
@pytest.mark.parametrize(("reason", "again"), [
    ("ssh: connect to host 198.18.0.3 port 22: Connection refused", True),
    ("kex_exchange_identification: read: Connection reset by peer", True),
    ("kex_exchange_identification: Connection closed by remote host", True),
    ("Connection closed by 198.18.0.3 port 22", True),
    ("ssh: connect to host 203.0.113.5 port 22: Connection timed out", True),
    ("ssh: connect to host 203.0.113.5 port 22: No route to host", True),
    ("banner exchange: Connection to 203.0.113.5 port 22: Broken pipe", True),
    ("deploy@203.0.113.5: Permission denied (publickey).", False),
    ("Host key verification failed.", False),
    ("Received disconnect from 203.0.113.5 port 22:2: Too many authentication failures", False),
    ("ssh: Could not resolve hostname web-1: Name or service not known", False),
])
def test_which_failures_are_tried_again(reason, again):
    module = importlib.import_module("ansible_collections.anvil.hetzner.plugins.action.login_probe")
    assert module.retried(reason) is again
