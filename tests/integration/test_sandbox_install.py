"""Another repository installs the sandbox with pip and starts and stops it with one command.

`pip install tests/sandbox` into a fresh virtualenv (no PYTHONPATH, outside this checkout), then
`hcloud-sandbox up --daemon` prints the URL, a client reads and writes through it, and
`hcloud-sandbox down` stops it and removes the pid file; the state file keeps the write.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5Zm9ydGhlc2FuZGJveGluc3RhbGx0ZXN0 install@test"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("sandbox-venv")
    # from a copy: setuptools builds in the source tree (build/, *.egg-info), never in the checkout
    source = tmp_path_factory.mktemp("sandbox-source") / "sandbox"
    shutil.copytree(ROOT / "tests" / "sandbox", source, ignore=shutil.ignore_patterns("__pycache__"))
    venv.create(where, with_pip=True)
    pip = subprocess.run([str(where / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
                         capture_output=True, text=True, timeout=300, check=False, cwd=where)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return where / "bin" / "hcloud-sandbox"


def _api(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # the sandbox on 127.0.0.1 only
        return json.loads(answer.read())


def test_pip_installed_sandbox_starts_answers_and_stops(installed: Path, tmp_path: Path) -> None:
    pid_file, state = tmp_path / "sb.pid", tmp_path / "state.json"
    env = {"PATH": f"{installed.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    up = subprocess.run([str(installed), "up", "--daemon", "--pid-file", str(pid_file), "--state-file", str(state),
                         "--project", "other:other-token:2"], capture_output=True, text=True, timeout=60, env=env,
                        cwd=tmp_path, check=False)
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), url
    try:
        assert len(_api(f"{url}/servers", "other-token")["servers"]) == 2
        created = _api(f"{url}/ssh_keys", "other-token", "POST", {"name": "ci", "public_key": KEY})
        assert created["ssh_key"]["name"] == "ci"
        assert _api(f"{url}/ssh_keys?name=nobody", "other-token")["ssh_keys"] == []
    finally:
        down = subprocess.run([str(installed), "down", "--pid-file", str(pid_file)], capture_output=True, text=True,
                              timeout=60, env=env, cwd=tmp_path, check=False)
    assert down.returncode == 0, down.stderr
    assert not pid_file.exists()
    assert [k["name"] for k in json.loads(state.read_text())["projects"][0]["world"]["ssh_keys"]] == ["ci"]


def test_the_package_is_the_checkout(installed: Path) -> None:
    """The installed module is a copy, not this checkout on a path."""
    where = subprocess.run([str(installed.parent / "python"), "-c", "import hcloud_sandbox; print(hcloud_sandbox.__file__)"],
                           capture_output=True, text=True, timeout=30, check=False, cwd="/")
    assert where.returncode == 0, where.stderr
    assert str(ROOT) not in where.stdout and "site-packages" in where.stdout
    assert sys.version_info >= (3, 11)
