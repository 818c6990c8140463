"""What tests/callback_plugins/secret_guard.py saw in one scenario's runs; exits 1 on a leak.

Usage: python3 tests/harness/secret_guard_report.py SCENARIO [DIR]   (DIR: .cache/secret-guard)
Also fails when the guard saw no run at all (not enabled, wrong directory): a guard that did not
look cannot say the output was clean.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    scenario = argv[0]
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / ".cache" / "secret-guard"
    runs_file, leaks_file = root / f"{scenario}.runs", root / f"{scenario}.leaks"
    runs = [json.loads(line) for line in runs_file.read_text().splitlines()] if runs_file.is_file() else []
    leaks = [json.loads(line) for line in leaks_file.read_text().splitlines()] if leaks_file.is_file() else []
    if not runs:
        print(f"secret guard: no run of scenario {scenario} was inspected ({runs_file} missing): "
              "is the callback enabled (.config/molecule/config.yml)?")
        return 1
    inspected = sum(r["inspected"] for r in runs)
    secrets = max(r["secrets"] for r in runs)
    print(f"secret guard, {scenario}: {len(runs)} ansible-playbook runs, {inspected} results inspected, "
          f"{secrets} secrets of the scenario's inputs looked for, {len(leaks)} leaks")
    seen = set()
    for leak in leaks:
        key = (leak["secret"], leak["task"], leak["in"])
        if key not in seen:
            seen.add(key)
            print(f"  LEAK: {leak['secret']} shown in the {leak['in']} of [{leak['task']}] on {leak['host']}")
    return 1 if leaks or inspected == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
