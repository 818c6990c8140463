"""The host_probe module, run for real on this machine through ansible's module runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.anvil.hetzner.plugins.modules.host_probe import weak_moduli

ROOT = Path(__file__).resolve().parents[2]


def run(args: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    out = subprocess.run(
        ["ansible", "localhost", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-m", "anvil.hetzner.host_probe", "-a", json.dumps(args), "-o"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert " | SUCCESS => " in out.stdout, out.stdout + out.stderr
    return json.loads(out.stdout.split(" | SUCCESS => ", 1)[1])


def test_paths_users_and_packages(tmp_path):
    (tmp_path / "a.log").write_text("x")
    result = run({"paths": [str(tmp_path / "*.log"), str(tmp_path / "none")], "users": ["root", "no-such-user-x"],
                  "packages": ["dpkg", "no-such-package-x"]})
    assert result["changed"] is False
    assert result["exists"] == {str(tmp_path / "*.log"): True, str(tmp_path / "none"): False}
    assert result["missing_users"] == ["no-such-user-x"]
    assert result["installed_packages"] == ["dpkg"]


@pytest.mark.skipif(not Path("/usr/bin/systemd-analyze").exists(), reason="needs systemd-analyze")
def test_calendars_are_judged_by_systemd_analyze():
    result = run({"calendars": ["daily", "Mon *-*-* 04:00", "every tuesday-ish", "25:99"]})
    assert result["calendars_checked"] is True
    assert result["invalid_calendars"] == ["every tuesday-ish", "25:99"]


def test_weak_moduli_counts_short_groups(tmp_path):
    moduli = tmp_path / "moduli"
    moduli.write_text("# comment\n20230101 2 6 100 2047 2 FFFF\n20230101 2 6 100 3071 2 FFFF\n"
                      "20230101 2 6 100 4095 5 FFFF\n")
    assert weak_moduli(str(moduli), 3072) == 1
    assert weak_moduli(str(moduli), 4096) == 2
    assert weak_moduli(str(tmp_path / "missing"), 3072) == 0


def test_home_paths_and_file_facts(tmp_path):
    from ansible_collections.anvil.hetzner.plugins.modules.host_probe import describe, home_path
    import pwd
    root_home = pwd.getpwnam("root").pw_dir
    assert home_path("~root/.ssh/authorized_keys") == f"{root_home}/.ssh/authorized_keys"
    assert home_path("~no-such-user-x/.ssh/x") == "~no-such-user-x/.ssh/x"
    assert home_path("/etc/passwd") == "/etc/passwd"
    f = tmp_path / "f"
    f.write_text("a = 1\n")
    f.chmod(0o640)
    entry = describe(str(f))
    assert entry["exists"] and not entry["isdir"] and entry["mode"] == "0640"
    import hashlib
    assert entry["sha1"] == hashlib.sha1(b"a = 1\n").hexdigest()
    assert describe(str(tmp_path))["isdir"] is True
    assert describe(str(tmp_path / "missing"))["exists"] is False
