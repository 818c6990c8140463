# anvil.hetzner.postgres_backup: which backups to keep (run by the backup script as
# `python3 /usr/local/lib/anvil/pg_retention.py`; unit-tested in tests/unit/test_pg_retention.py).
#
# A backup is a directory <backup dir>/<UTC time, 20261128T023000Z> holding MANIFEST.json
# ({"seq": N, "time": "...", "verified": true, "files": {...}}); only verified backups count.
# Kept: the newest backup of each of the last --daily days, --weekly ISO weeks and --monthly
# months that have backups, and always the --keep-last verified backups with the highest sequence
# numbers (the order the runs verified them in, whatever the clock said). Everything else that is a
# backup directory is printed, one per line, for the caller to delete; nothing is deleted here.
# Directories without a verified MANIFEST.json (failed runs, partial copies) are never printed:
# the backup script cleans up its own temporary directories.
# With --latest it prints only the newest backup: the verified one with the highest sequence number
# (the last run that completed, even when a wrong clock gave it an older name); the restore command
# and the drill take it from here.
# --also DIR (repeatable) adds the backups of another listing (the Storage Box's manifests, fetched
# by the backup script) to what --latest and --next-seq see.
# With --next-seq it prints the sequence number the next backup gets: one above every number it can
# see - the .seq file (when it holds a number), the ledger, every manifest under root and under each
# --also listing - so a rebuilt directory, a garbage .seq or backups pulled back from the box never
# make a new backup look older than one that exists.
# With --to-upload LISTING it prints the local backups that the offsite copy lacks and that still
# match what this host recorded (every file listed in MANIFEST.json with its SHA-256 and nothing
# missing; MANIFEST.json itself as recorded in the ledger when it was made); a backup that is
# offsite (its MANIFEST.json is in LISTING) or was sent once (the .sent file) is never sent again.
# Damaged local backups are printed on stderr ("damaged NAME: why"), offsite or not, and the exit
# status is 3 when there is one (the uploads printed are still the right ones).
# Offsite pruning runs the policy on the listing of the box's manifests (root = that listing):
# what the box holds decides, never what is present locally, so a host that lost its local copies
# does not delete the offsite ones.
"""Retention, sequence numbers and upload choice for the postgres_backup role's backups."""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import sys

NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


LEDGER = ".ledger"
SENT = ".sent"
SEQ = ".seq"


def read_manifest(root: str, name: str) -> dict | None:
    """The parsed MANIFEST.json of root/name, or None when it is missing or not JSON."""
    try:
        with open(os.path.join(root, name, "MANIFEST.json"), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _seq_of(manifest: dict | None) -> int | None:
    seq = manifest.get("seq") if manifest else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None


def verified_backups(root):
    """(seq, time, name) of every verified backup under root."""
    found = []
    if not os.path.isdir(root):
        return found
    for name in sorted(os.listdir(root)):
        if not NAME.match(name):
            continue
        manifest = read_manifest(root, name)
        try:
            when = datetime.datetime.strptime(name, "%Y%m%dT%H%M%SZ")
        except ValueError:
            continue
        if manifest is not None and manifest.get("verified") is True and _seq_of(manifest) is not None:
            found.append((manifest["seq"], when, name))
    return found


def read_ledger(root: str) -> dict[str, tuple[int, str]]:
    """{name: (seq, sha256 of MANIFEST.json)} as the backup script recorded each backup it made."""
    ledger = {}
    try:
        with open(os.path.join(root, LEDGER), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return ledger
    for line in lines:
        fields = line.split()
        if (len(fields) == 3 and NAME.match(fields[0]) and re.match(r"^[0-9]{1,18}$", fields[1])
                and re.match(r"^[0-9a-f]{64}$", fields[2])):
            ledger[fields[0]] = (int(fields[1]), fields[2])
    return ledger


def read_names(path: str) -> set[str]:
    """Backup names listed one per line in path (the .sent file); missing file: none."""
    try:
        with open(path, encoding="utf-8") as handle:
            return {line.strip() for line in handle if NAME.match(line.strip())}
    except OSError:
        return set()


def highest_seq(root: str, listings: tuple[str, ...] | list[str] = ()) -> int:
    """The highest sequence number visible: .seq, the ledger, every manifest under root and the listings."""
    seen = [0]
    try:
        with open(os.path.join(root, SEQ), encoding="utf-8") as handle:
            text = handle.read().strip()
        if re.match(r"^[0-9]{1,18}$", text):
            seen.append(int(text))
    except OSError:
        pass
    seen += [seq for seq, _sum in read_ledger(root).values()]
    for directory in (root, *listings):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            # unverified manifests count too: their number was handed out once
            seq = _seq_of(read_manifest(directory, name)) if NAME.match(name) else None
            if seq is not None:
                seen.append(seq)
    return max(seen)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damage(root: str, name: str, ledger: dict[str, tuple[int, str]]) -> str | None:
    """Why root/name no longer is the backup that was made, or None when it still is."""
    path = os.path.join(root, name, "MANIFEST.json")
    if not os.path.isfile(path):
        return "MANIFEST.json is missing"
    if name in ledger and _sha256(path) != ledger[name][1]:
        return "MANIFEST.json differs from the one recorded when the backup was made"
    manifest = read_manifest(root, name)
    if manifest is None or not isinstance(manifest.get("files"), dict):
        return "MANIFEST.json is not a manifest"
    for file, entry in sorted(manifest["files"].items()):
        if "/" in file or file.startswith(".") or not isinstance(entry, dict):
            return f"MANIFEST.json lists {file!r}, which is not a file of a backup"
        where = os.path.join(root, name, file)
        if not os.path.isfile(where):
            return f"{file} is missing"
        if _sha256(where) != entry.get("sha256"):
            return f"{file} does not match its SHA-256 in MANIFEST.json"
    return None


def upload_plan(root: str, offsite_names: set[str], sent: set[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(names to upload, oldest first by sequence; [(name, why)] of damaged local backups)."""
    ledger = read_ledger(root)
    uploads, damaged = [], []
    for seq, _when, name in sorted(verified_backups(root)):
        why = damage(root, name, ledger)
        if why is not None:
            damaged.append((name, why))
        elif name not in offsite_names and name not in sent:
            uploads.append(name)
    # a backup whose manifest is gone or unreadable is damaged too (it was made: the ledger says so)
    listed = {name for _seq, _when, name in verified_backups(root)}
    for name in sorted(set(ledger) - listed):
        if os.path.isdir(os.path.join(root, name)):
            damaged.append((name, damage(root, name, ledger) or "MANIFEST.json is not a verified manifest"))
    return uploads, sorted(damaged)


def to_delete(backups, daily, weekly, monthly, keep_last):
    """Names of the backups the policy does not keep."""
    keep = {name for _seq, _when, name in sorted(backups, reverse=True)[:keep_last]}
    by_time = sorted(backups, key=lambda b: (b[1], b[0]), reverse=True)
    for count, bucket in ((daily, lambda t: t.date()), (weekly, lambda t: tuple(t.isocalendar())[:2]),
                          (monthly, lambda t: (t.year, t.month))):
        seen = []
        for _seq, when, name in by_time:
            key = bucket(when)
            if key in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(key)
            keep.add(name)
    return sorted(name for _seq, _when, name in backups if name not in keep)


def latest(backups):
    """Name of the backup the last completed run made, or None."""
    return max(backups)[2] if backups else None


def main(argv):
    parser = argparse.ArgumentParser(prog="pg_retention")
    parser.add_argument("root")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--latest", action="store_true", help="print the newest verified backup and stop")
    mode.add_argument("--next-seq", action="store_true", help="print the next backup's sequence number")
    mode.add_argument("--to-upload", metavar="LISTING", help="print the local backups to send offsite")
    parser.add_argument("--also", action="append", default=[], metavar="DIR",
                        help="another listing of backups (offsite manifests) for --latest and --next-seq")
    parser.add_argument("--daily", type=int)
    parser.add_argument("--weekly", type=int)
    parser.add_argument("--monthly", type=int)
    parser.add_argument("--keep-last", type=int)
    args = parser.parse_args(argv)
    if args.latest:
        backups = verified_backups(args.root)
        for other in args.also:
            backups += verified_backups(other)
        name = latest(backups)
        if name is None:
            print(f"pg_retention: no verified backup in {args.root}", file=sys.stderr)
            return 1
        print(name)
        return 0
    if args.next_seq:
        print(highest_seq(args.root, args.also) + 1)
        return 0
    if args.to_upload is not None:
        offsite = {name for _seq, _when, name in verified_backups(args.to_upload)}
        uploads, damaged = upload_plan(args.root, offsite, read_names(os.path.join(args.root, SENT)))
        for name in uploads:
            print(name)
        for name, why in damaged:
            print(f"damaged {name}: {why}", file=sys.stderr)
        return 3 if damaged else 0
    if None in (args.daily, args.weekly, args.monthly, args.keep_last):
        parser.error("--daily, --weekly, --monthly and --keep-last are needed to prune")
    if min(args.daily, args.weekly, args.monthly) < 0 or args.keep_last < 1:
        parser.error("counts must be 0 or more, --keep-last 1 or more")
    for name in to_delete(verified_backups(args.root), args.daily, args.weekly, args.monthly, args.keep_last):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
