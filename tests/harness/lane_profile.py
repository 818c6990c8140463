"""Where a lane of `make test` spent its time, from its log (.cache/logs/<lane>.log).

Usage: python3 tests/harness/lane_profile.py LOG [TOP]
       python3 tests/harness/lane_profile.py --oneline LOG   (one line: all actions, the slowest task)
       python3 tests/harness/lane_profile.py --short LOG     (the 4 longest actions: test.sh's table)

Reads the lines ansible.posix.profile_tasks writes before every task ("Wednesday 02 December 2026
18:19:30 +0000 (0:00:01.234)  0:00:05.678 ****": the clock, then the previous task's time) and
Molecule's "<scenario> ➜ <action>: Executing" lines. Prints each Molecule action's wall time (from the
first to the last clock seen in it) and the TOP slowest tasks (default 15) with their action, so that
the CI budget goes where the time is (CONTRIBUTING.md, "CI time budget").
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lane_cause import plain  # noqa: E402  pylint: disable=wrong-import-position

CLOCK = re.compile(r"^\w+ (?P<when>\d{2} \w+ \d{4}\s+\d{2}:\d{2}:\d{2}) [+-]\d{4} \((?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)\)")
ACTION = re.compile(r"➜ (?P<action>[\w-]+): Executing")
STEP = re.compile(r"^\[(?P<m>\d+):(?P<s>\d{2})\] e2e: (?P<step>.*)$")
TASK = re.compile(r"^(TASK|RUNNING HANDLER) \[(?P<name>.*?)\]")


def profile(lines: list[str]) -> tuple[list[tuple[str, float]], list[tuple[float, str, str]]]:
    actions: list[list] = []  # [name, first clock, last clock]
    tasks: list[tuple[float, str, str]] = []
    action, task, pending = "(before Molecule)", None, None
    for raw in lines:
        line = plain(raw)
        match = ACTION.search(line)
        if match:
            action, task = match.group("action"), None
            continue
        match = TASK.match(line)
        if match:
            pending = match.group("name")
            continue
        match = CLOCK.match(line)
        if not match:
            continue
        when = datetime.strptime(" ".join(match.group("when").split()), "%d %B %Y %H:%M:%S").timestamp()
        took = int(match.group("h")) * 3600 + int(match.group("m")) * 60 + float(match.group("s"))
        if task is not None:
            tasks.append((took, action, task))
        task, pending = pending, None
        if not actions or actions[-1][0] != action:
            actions.append([action, when, when])
        actions[-1][2] = when
    merged: dict[str, float] = {}
    for name, first, last in actions:
        merged[name] = merged.get(name, 0.0) + (last - first)
    return list(merged.items()), sorted(tasks, reverse=True)


def steps(lines: list[str]) -> list[tuple[str, int]]:
    """The e2e test's steps and their seconds (from one "[mm:ss] e2e: step" line to the next)."""
    marks = [(m.group("step"), int(m.group("m")) * 60 + int(m.group("s")))
             for m in (STEP.match(plain(line).strip()) for line in lines) if m]
    return [(name, later - at) for (name, at), (_next, later) in zip(marks, marks[1:])]


def oneline(lines: list[str]) -> str:
    actions, tasks = profile(lines)
    if actions:
        text = ", ".join(f"{name} {secs:.0f}" for name, secs in actions if name != "(before Molecule)")
        if tasks:
            text += f"; slowest task {tasks[0][2]!r} ({tasks[0][1]}, {tasks[0][0]:.0f} s)"
        return text
    marked = steps(lines)
    if marked:
        return ", ".join(f"{name.split(' (')[0]} {secs}" for name, secs in marked)
    return "no times in the log"


def short(lines: list[str], count: int = 4) -> str:
    """The `count` longest Molecule actions (or e2e steps), longest first: "side_effect 953, prepare 264"."""
    actions = [(name, secs) for name, secs in profile(lines)[0] if name != "(before Molecule)"]
    if not actions:
        actions = [(name.split(" (")[0].split(",")[0], float(secs)) for name, secs in steps(lines)]
    return ", ".join(f"{name} {secs:.0f}" for name, secs in sorted(actions, key=lambda a: -a[1])[:count])


def main(argv: list[str]) -> int:
    if argv[0] in ("--oneline", "--short"):
        path = Path(argv[1])
        text = path.read_text(errors="replace").splitlines() if path.is_file() else None
        print(f"(no log: {path})" if text is None else (oneline if argv[0] == "--oneline" else short)(text))
        return 0
    path = Path(argv[0])
    top = int(argv[1]) if len(argv) > 1 else 15
    actions, tasks = profile(path.read_text(errors="replace").splitlines())
    print(f"{path.name}: seconds per Molecule action (first to last task clock)")
    for name, secs in actions:
        print(f"  {name:<24} {secs:8.0f}")
    print(f"  {'sum':<24} {sum(secs for _name, secs in actions):8.0f}")
    print(f"the {top} slowest tasks")
    for took, action, name in tasks[:top]:
        print(f"  {took:8.1f}  {action:<14} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
