"""The postgres_backup role's retention (roles/postgres_backup/files/pg_retention.py) on dated fixtures:
it keeps exactly what the policy says, never the last verified backups whatever the dates say, and
never counts failed or partial runs."""

from __future__ import annotations

import datetime
import hashlib
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


# --- the offsite copy: sequence numbers from what is visible, which backups to send, pruning by the
# box's own listing ---

def backup(root: Path, name: str, seq: int, files: dict[str, bytes] | None = None, ledger: bool = True) -> str:
    """A backup as the backup script makes it: files, MANIFEST.json with their SHA-256, a ledger line."""
    (root / name).mkdir(parents=True)
    entries = {}
    for file, data in (files or {"shop.dump.age": b"age-encrypted " + name.encode()}).items():
        (root / name / file).write_bytes(data)
        entries[file] = {"sha256": hashlib.sha256(data).hexdigest()}
    manifest = root / name / "MANIFEST.json"
    manifest.write_text(json.dumps({"seq": seq, "time": name, "verified": True, "files": entries}))
    if ledger:
        with (root / ".ledger").open("a") as out:
            out.write(f"{name} {seq} {hashlib.sha256(manifest.read_bytes()).hexdigest()}\n")
    return name


def listing_of(box: Path, into: Path) -> Path:
    """What the backup script fetches from the box: each backup directory with its MANIFEST.json only."""
    into.mkdir()
    for entry in box.iterdir():
        if entry.is_dir():
            (into / entry.name).mkdir()
            if (entry / "MANIFEST.json").exists():
                (into / entry.name / "MANIFEST.json").write_bytes((entry / "MANIFEST.json").read_bytes())
    return into


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("seq_file", [None, "", "garbage\n", "-4", "1e9", "3\n"])
def test_next_seq_is_above_every_backup_visible_whatever_seq_says(tmp_path, seq_file):
    local = tmp_path / "local"
    local.mkdir()
    backup(local, "20260301T023000Z", 7)
    if seq_file is not None:
        (local / ".seq").write_text(seq_file)
    assert cli(str(local), "--next-seq").stdout.strip() == "8"


def test_a_rebuilt_host_numbers_above_the_offsite_backups(tmp_path):
    box, local = tmp_path / "box", tmp_path / "local"
    for day, seq in ((1, 40), (2, 41), (3, 42), (4, 43)):
        backup(box, f"2026030{day}T023000Z", seq, ledger=False)
    local.mkdir()  # rebuilt: empty directory, no .seq, no ledger
    listing = listing_of(box, tmp_path / "listing")
    assert cli(str(local), "--next-seq").stdout.strip() == "1"
    assert cli(str(local), "--next-seq", "--also", str(listing)).stdout.strip() == "44"
    # the backups pulled back from the box (higher numbers than the fresh .seq) count as well
    for name in ("20260303T023000Z", "20260304T023000Z"):
        backup(local, name, 42 if name.endswith("3T023000Z") else 43, ledger=False)
    (local / ".seq").write_text("1\n")
    assert cli(str(local), "--next-seq").stdout.strip() == "44"
    # and "latest" is the highest number, not the newest name
    backup(local, "20260101T023000Z", 44)
    assert cli(str(local), "--latest").stdout.strip() == "20260101T023000Z"


def test_the_ledger_and_unverified_manifests_keep_their_numbers(tmp_path):
    backup(tmp_path, "20260301T023000Z", 5)
    (tmp_path / "20260301T023000Z" / "MANIFEST.json").unlink()  # the manifest lost: the ledger remembers
    (tmp_path / "20260302T023000Z").mkdir()
    (tmp_path / "20260302T023000Z" / "MANIFEST.json").write_text(json.dumps({"seq": 3, "verified": False}))
    assert retention.highest_seq(str(tmp_path)) == 5


def test_only_intact_backups_the_box_lacks_are_sent_oldest_first(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    names = [backup(local, f"2026030{d}T023000Z", d) for d in range(1, 6)]
    box = tmp_path / "box"
    box.mkdir()
    (box / names[0]).mkdir()
    (box / names[0] / "MANIFEST.json").write_bytes((local / names[0] / "MANIFEST.json").read_bytes())
    (box / names[1]).mkdir()  # an upload that did not finish (no manifest): not a backup there
    uploads, damaged = retention.upload_plan(str(local), {n for _s, _w, n in retention.verified_backups(str(box))},
                                             sent={names[2]})
    # [0] is offsite, [2] was sent once (and pruned offsite since): neither again
    assert uploads == [names[1], names[3], names[4]] and damaged == []


DAMAGE = {
    "a file changed": lambda d: (d / "shop.dump.age").write_bytes(b"age-encrypted garbage"),
    "a file truncated": lambda d: (d / "shop.dump.age").write_bytes((d / "shop.dump.age").read_bytes()[:2]),
    "a file removed": lambda d: (d / "globals.sql.age").unlink(),
    "the manifest edited to match a substituted file": lambda d: (
        (d / "shop.dump.age").write_bytes(b"other"),
        (d / "MANIFEST.json").write_text((d / "MANIFEST.json").read_text().replace(
            json.loads((d / "MANIFEST.json").read_text())["files"]["shop.dump.age"]["sha256"],
            hashlib.sha256(b"other").hexdigest()))),
    "the manifest removed": lambda d: (d / "MANIFEST.json").unlink(),
    "the manifest not JSON": lambda d: (d / "MANIFEST.json").write_text("{"),
    "the manifest's file list emptied": lambda d: (d / "MANIFEST.json").write_text(
        json.dumps({**json.loads((d / "MANIFEST.json").read_text()), "files": {}})),
}


@pytest.mark.parametrize("how", sorted(DAMAGE))
@pytest.mark.parametrize("offsite", [True, False], ids=["offsite", "not-yet-offsite"])
def test_a_damaged_local_backup_is_reported_and_never_sent(tmp_path, how, offsite):
    local, box = tmp_path / "local", tmp_path / "box"
    local.mkdir()
    box.mkdir()
    good = backup(local, "20260301T023000Z", 1)
    hurt = backup(local, "20260302T023000Z", 2, files={"shop.dump.age": b"dump", "globals.sql.age": b"globals"})
    if offsite:
        (box / hurt).mkdir()
        (box / hurt / "MANIFEST.json").write_bytes((local / hurt / "MANIFEST.json").read_bytes())
    DAMAGE[how](local / hurt)
    out = cli(str(local), "--to-upload", str(box))
    assert out.returncode == 3
    assert out.stdout.split() == [good]
    assert out.stderr.startswith(f"damaged {hurt}: "), out.stderr


def test_a_consistent_backup_without_a_ledger_line_is_sent(tmp_path):
    # made before the ledger existed, or copied in by the operator: its files still match its manifest
    local = tmp_path / "local"
    local.mkdir()
    name = backup(local, "20260301T023000Z", 1, ledger=False)
    (tmp_path / "box").mkdir()
    out = cli(str(local), "--to-upload", str(tmp_path / "box"))
    assert (out.returncode, out.stdout.split(), out.stderr) == (0, [name], "")


def test_offsite_pruning_follows_the_box_not_local_absence(tmp_path):
    # four offsite backups of four days; the rebuilt host has only its one new backup
    box = tmp_path / "box"
    for day in range(1, 5):
        backup(box, f"2026030{day}T023000Z", 10 + day, ledger=False)
    backup(box, "20260305T023000Z", 15, ledger=False)  # the rebuilt host's first, uploaded
    listing = listing_of(box, tmp_path / "listing")
    # 7 daily: all five days kept - nothing offsite goes because the host lost its copies
    assert run(listing, 7, 0, 0, 3) == []
    # a policy of 2 days keeps 2 days and never fewer than the last 3 there by sequence
    assert run(listing, 2, 0, 0, 3) == ["20260301T023000Z", "20260302T023000Z"]
    # incomplete uploads (no manifest) are never pruned nor counted
    (listing / "20260228T023000Z").mkdir()
    assert "20260228T023000Z" not in run(listing, 0, 0, 0, 1)
