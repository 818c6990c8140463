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
"""Print the backup directories a retention policy lets go."""

import argparse
import datetime
import json
import os
import re
import sys

NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


def verified_backups(root):
    """(seq, time, name) of every verified backup under root."""
    found = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "MANIFEST.json")
        if not NAME.match(name) or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                manifest = json.load(handle)
            when = datetime.datetime.strptime(name, "%Y%m%dT%H%M%SZ")
        except (OSError, ValueError):
            continue
        if manifest.get("verified") is True and isinstance(manifest.get("seq"), int):
            found.append((manifest["seq"], when, name))
    return found


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
    parser.add_argument("--latest", action="store_true", help="print the newest verified backup and stop")
    parser.add_argument("--daily", type=int)
    parser.add_argument("--weekly", type=int)
    parser.add_argument("--monthly", type=int)
    parser.add_argument("--keep-last", type=int)
    args = parser.parse_args(argv)
    if args.latest:
        name = latest(verified_backups(args.root))
        if name is None:
            print(f"pg_retention: no verified backup in {args.root}", file=sys.stderr)
            return 1
        print(name)
        return 0
    if None in (args.daily, args.weekly, args.monthly, args.keep_last):
        parser.error("--daily, --weekly, --monthly and --keep-last are needed to prune")
    if min(args.daily, args.weekly, args.monthly) < 0 or args.keep_last < 1:
        parser.error("counts must be 0 or more, --keep-last 1 or more")
    for name in to_delete(verified_backups(args.root), args.daily, args.weekly, args.monthly, args.keep_last):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
