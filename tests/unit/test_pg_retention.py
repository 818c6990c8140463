"""The postgres_backup role's retention (roles/postgres_backup/files/pg_retention.py) on dated fixtures:
it keeps exactly what the policy says, never the last verified backups whatever the dates say, and
never counts failed or partial runs."""

from __future__ import annotations

import datetime
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "postgres_backup" / "files" / "pg_retention.py"
SPEC = importlib.util.spec_from_file_location("pg_retention", SCRIPT)
retention = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(retention)

START = datetime.datetime(2026, 1, 1, 2, 30)


def make(root: Path, when: datetime.datetime, seq: int, verified: bool = True) -> str:
    name = when.strftime("%Y%m%dT%H%M%SZ")
    (root / name).mkdir()
    (root / name / "MANIFEST.json").write_text(json.dumps({"seq": seq, "verified": verified, "files": {}}))
    return name


def run(root: Path, *policy: int) -> list[str]:
    daily, weekly, monthly, last = policy
    out = subprocess.run([sys.executable, str(SCRIPT), str(root), "--daily", str(daily), "--weekly", str(weekly),
                          "--monthly", str(monthly), "--keep-last", str(last)],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_a_year_of_daily_backups(tmp_path):
    names = [make(tmp_path, START + datetime.timedelta(days=d), d + 1) for d in range(365)]
    deleted = run(tmp_path, 7, 4, 6, 3)
    kept = sorted(set(names) - set(deleted))
    last = START + datetime.timedelta(days=364)  # 2026-12-31, a Thursday
    expected = {(last - datetime.timedelta(days=d)).strftime("%Y%m%dT%H%M%SZ") for d in range(7)}
    # newest backup of each of the last 4 ISO weeks: Thu 31 Dec (week 53), Sun 27, 20, 13 Dec
    expected |= {"20261231T023000Z", "20261227T023000Z", "20261220T023000Z", "20261213T023000Z"}
    # newest backup of each of the last 6 months: the last day of Jul..Dec
    expected |= {"20260731T023000Z", "20260831T023000Z", "20260930T023000Z", "20261031T023000Z",
                 "20261130T023000Z", "20261231T023000Z"}
    assert kept == sorted(expected)


def test_the_last_verified_backups_stay_whatever_the_dates_say(tmp_path):
    # the clock jumped: the three newest runs (by sequence) carry old dates
    old = [make(tmp_path, START + datetime.timedelta(days=d), 100 + d) for d in range(3)]
    for d in range(20, 30):
        make(tmp_path, START + datetime.timedelta(days=d), d - 19)
    deleted = run(tmp_path, 2, 0, 0, 3)
    assert not set(old) & set(deleted)
    # a policy of zero days/weeks/months still keeps the last ones
    assert sorted(set(p.name for p in tmp_path.iterdir()) - set(run(tmp_path, 0, 0, 0, 3))) == sorted(old)


def test_failed_and_partial_runs_are_never_counted_or_printed(tmp_path):
    good = [make(tmp_path, START + datetime.timedelta(days=d), d + 1) for d in range(3)]
    bad = make(tmp_path, START + datetime.timedelta(days=5), 4, verified=False)
    (tmp_path / "20260110T023000Z").mkdir()  # no manifest: an interrupted copy
    (tmp_path / ".20260111T023000Z.partial").mkdir()
    deleted = run(tmp_path, 1, 0, 0, 1)
    # the unverified newer run does not push the good ones out, and is not touched either
    assert deleted == good[:2] and bad not in deleted


def test_several_backups_a_day_keep_the_newest_of_the_day(tmp_path):
    names = [make(tmp_path, START + datetime.timedelta(hours=h), h + 1) for h in range(48)]
    deleted = run(tmp_path, 2, 0, 0, 1)
    # the last two days with backups are 3 Jan (newest 01:30) and 2 Jan (newest 23:30)
    assert sorted(set(names) - set(deleted)) == ["20260102T233000Z", "20260103T013000Z"]


@pytest.mark.parametrize("policy", [(-1, 0, 0, 1), (1, 1, 1, 0)])
def test_bad_policy_is_refused(tmp_path, policy):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--daily", str(policy[0]), "--weekly",
                             str(policy[1]), "--monthly", str(policy[2]), "--keep-last", str(policy[3])],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2


def test_pure_function_matches(tmp_path):
    for d in range(10):
        make(tmp_path, START + datetime.timedelta(days=d), d + 1)
    assert retention.to_delete(retention.verified_backups(str(tmp_path)), 3, 0, 0, 1) == run(tmp_path, 3, 0, 0, 1)


def test_latest_is_the_last_completed_run_not_the_newest_name(tmp_path):
    for d in range(5):
        make(tmp_path, START + datetime.timedelta(days=d), d + 1)
    skewed = make(tmp_path, START - datetime.timedelta(days=300), 9)  # the clock was wrong on the last run
    make(tmp_path, START + datetime.timedelta(days=30), 10, verified=False)  # a failed run is never the latest
    (tmp_path / "20270101T000000Z").mkdir()  # nor a directory without a manifest
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--latest"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == skewed


def test_latest_without_a_backup_fails(tmp_path):
    (tmp_path / "20260101T000000Z").mkdir()
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--latest"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 1 and "no verified backup" in out.stderr and not out.stdout


def test_pruning_needs_the_whole_policy(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--daily", "3"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 2 and "needed to prune" in out.stderr
