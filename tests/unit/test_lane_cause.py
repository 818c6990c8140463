"""tests/harness/lane_cause.py: the two lines under `make test`'s table that say why a lane failed
(CI keeps only the end of the output). Each kind of failure a lane's log holds is named, a rescued
or ignored failure is not, and a log without any known kind still gives its last line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import lane_cause  # noqa: E402  pylint: disable=wrong-import-position

IGNORED = """\
TASK [anvil.hetzner.docker : Probe] ****
fatal: [debian12]: FAILED! => changed=false
  msg: |-
    an expected failure
...ignoring
"""
JSON_FATAL = 'TASK [anvil.hetzner.caddy : Validate] ****\nfatal: [debian13]: FAILED! => {"changed": false, "msg": "caddy said \\"no\\""}\n'
YAML_FATAL = """\
TASK [anvil.hetzner.firewall : Enable UFW] ****
fatal: [debian12]: FAILED! => changed=false
  msg: |-
    ufw refused
    the rule
  rc: 1
PLAY RECAP ****
"""
CRITICAL = "CRITICAL Ansible return code was 2, command was: ansible-playbook converge.yml\n"


@pytest.mark.parametrize(("log", "expected"), [
    ("CRITICAL 'molecule/default/molecule.yml' glob failed.  Exiting.\n" + IGNORED + JSON_FATAL + "PLAY RECAP\n"
     + CRITICAL,
     ["task [anvil.hetzner.caddy : Validate]: fatal: [debian13]: FAILED!", 'caddy said "no"', CRITICAL.strip()]),
    # Molecule 25+ frames the output of ansible-playbook
    ("".join(f"  \u2502 {line}\n" for line in YAML_FATAL.splitlines()),
     ["task [anvil.hetzner.firewall : Enable UFW]: fatal: [debian12]: FAILED!", "ufw refused the rule"]),
    (YAML_FATAL, ["task [anvil.hetzner.firewall : Enable UFW]: fatal: [debian12]: FAILED!", "ufw refused the rule"]),
    # the e2e test's own check outranks a fatal line (a rescued one, or the teardown's)
    (JSON_FATAL + "\x1b[1;31mFAIL: the second site.yml changed 2 things\x1b[0m\nsandbox stopped\n",
     ["FAIL: the second site.yml changed 2 things"]),
    ("...\nFAILED tests/test_default.py::test_banned[debian12] - AssertionError: 172.30.77.50 not banned\n"
     "===== 1 failed, 30 passed =====\n",
     ["FAILED tests/test_default.py::test_banned[debian12] - AssertionError: 172.30.77.50 not banned"]),
    ("CRITICAL Idempotence test failed because of the following tasks:\n* [debian12] => x : y\n",
     ["CRITICAL Idempotence test failed because of the following tasks:"]),
    ("Traceback (most recent call last):\n  File x\nhcloud_sandbox.backend.BackendError: docker network create: pool overlaps\n",
     ["hcloud_sandbox.backend.BackendError: docker network create: pool overlaps"]),
    ("line one\nthe last words\n\n", ["the last words"]),
    ("", ["(empty log)"]),
    # only an ignored failure: not a cause
    (IGNORED + "all done\n", ["all done"]),
], ids=["json-fatal+critical", "framed", "yaml-block-msg", "e2e-fail", "pytest", "idempotence", "traceback", "no-kind",
        "empty", "only-ignored"])
def test_the_cause_of_each_kind(log, expected):
    assert lane_cause.cause(log.splitlines()) == expected


def test_long_lines_are_cut_to_the_width():
    lines = lane_cause.cause([f"FAIL: {'x' * 1000}"], 80)
    assert len(lines[0]) == 80 and lines[0].endswith("...")


def test_the_script_prints_it_and_names_a_missing_log(tmp_path):
    log = tmp_path / "caddy.log"
    log.write_text(YAML_FATAL)
    script = ROOT / "tests" / "harness" / "lane_cause.py"
    out = subprocess.run([sys.executable, str(script), str(log), "200"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[1] == "ufw refused the rule"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "none.log")], capture_output=True, text=True,
                         check=True)
    assert "no log" in out.stdout
