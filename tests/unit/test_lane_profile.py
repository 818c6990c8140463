"""tests/harness/lane_profile.py: a lane's time per Molecule action and its slowest tasks, from the
clock lines ansible.posix.profile_tasks writes (framed by Molecule or not)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import lane_profile  # noqa: E402  pylint: disable=wrong-import-position

LOG = """\
INFO     app_deploy \u279c prepare: Executing
  \u2502 TASK [Wait for systemd] ****
  \u2502 Wednesday 02 December 2026  18:00:00 +0000 (0:00:00.500)       0:00:00.500 ****
  \u2502 TASK [anvil.hetzner.docker : Install Docker] ****
  \u2502 Wednesday 02 December 2026  18:00:04 +0000 (0:00:04.000)       0:00:04.500 ****
  \u2502 RUNNING HANDLER [anvil.hetzner.docker : Restart docker] ****
  \u2502 Wednesday 02 December 2026  18:02:04 +0000 (0:02:00.250)       0:02:04.750 ****
  \u2502 PLAY RECAP ****
  \u2502 Wednesday 02 December 2026  18:02:10 +0000 (0:00:06.000)       0:02:10.750 ****
INFO     app_deploy \u279c converge: Executing
TASK [anvil.hetzner.app_deploy : Pull] ****
Wednesday 02 December 2026  18:03:00 +0000 (0:00:00.100)       0:00:00.100 ****
TASK [anvil.hetzner.app_deploy : Start] ****
Wednesday 02 December 2026  18:03:30 +0000 (0:00:30.000)       0:00:30.100 ****
Wednesday 02 December 2026  18:03:31 +0000 (0:00:01.000)       0:00:31.100 ****
"""


def test_actions_and_slowest_tasks():
    actions, tasks = lane_profile.profile(LOG.splitlines())
    assert actions == [("prepare", 130.0), ("converge", 31.0)]
    assert tasks[:4] == [(120.25, "prepare", "anvil.hetzner.docker : Install Docker"),
                         (30.0, "converge", "anvil.hetzner.app_deploy : Pull"),
                         (6.0, "prepare", "anvil.hetzner.docker : Restart docker"),
                         (4.0, "prepare", "Wait for systemd")]
    assert (1.0, "converge", "anvil.hetzner.app_deploy : Start") in tasks


def test_main_prints_the_table(tmp_path, capsys):
    log = tmp_path / "x.log"
    log.write_text(LOG)
    assert lane_profile.main([str(log), "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["prepare", "130"] and out[3].split() == ["sum", "161"]
    assert out[-2].split()[:2] == ["120.2", "prepare"] and len(out) == 7


E2E = """\
\x1b[1m[00:00] e2e: set up\x1b[0m
image anvil-hetzner/debian:12 is current
\x1b[1m[01:04] e2e: provision.yml\x1b[0m
\x1b[1m[03:07] e2e: site.yml (first run: root, then the deploy user)\x1b[0m
\x1b[1m[11:39] e2e: a backup, offsite, and the drill\x1b[0m
"""


def test_oneline_for_molecule_and_e2e():
    assert lane_profile.oneline(LOG.splitlines()) == (
        "prepare 130, converge 31; slowest task 'anvil.hetzner.docker : Install Docker' (prepare, 120 s)")
    assert lane_profile.oneline(E2E.splitlines()) == "set up 64, provision.yml 123, site.yml 512"
    assert lane_profile.oneline(["nothing here"]) == "no times in the log"


def test_short_names_the_longest_steps_first():
    assert lane_profile.short(LOG.splitlines()) == "prepare 130, converge 31"
    assert lane_profile.short(E2E.splitlines(), 2) == "site.yml 512, provision.yml 123"
