"""Why a lane of `make test` failed, in at most two short lines, from its log.

Usage: python3 tests/harness/lane_cause.py LOG [WIDTH]

CI keeps only the end of the suite's output, so test.sh prints this under its summary table. The
cause is the last line of the log that says what failed, of these kinds (the last one wins: a run
stops at its real failure, and an earlier `fatal:` may have been rescued or ignored):

  FAIL: ...                                     the e2e test's own checks (tests/harness/e2e.sh)
  fatal: [host]: FAILED! => ... / failed: [...]  an Ansible task, with the TASK line above it
  FAILED tests/...::test_x - ...                a testinfra or pytest test
  CRITICAL ... / ERROR: ... / error: ...        Molecule, or a harness step
  Traceback's last line                         a Python helper

A fatal line followed by "...ignoring" does not count. Without any of them: the log's last line.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Molecule 25+ frames a command's output: "  │ " before each line
FRAME = re.compile(r"^\s*[│┌└][─ ]?")
TASK = re.compile(r"^TASK \[(?P<name>.*?)\]")
KINDS = (
    re.compile(r"^FAIL: "),
    re.compile(r"^(fatal|failed): \["),
    re.compile(r"^FAILED \S+::"),
    re.compile(r"^(E +)?\S*(CRITICAL|ERROR)\b"),  # CRITICAL_KIND
    re.compile(r"^(error|Error|ERROR): "),
    re.compile(r"^[A-Za-z_.]*(Error|Exception): "),
)
CRITICAL_KIND = 3
# what every Molecule run prints and is no failure
BENIGN = re.compile(r"CRITICAL 'molecule/default/molecule.yml' glob failed")
# the fields of an Ansible failure worth reading first
MSG = re.compile(r'"(msg|stderr|reason)": "(?P<text>(?:[^"\\]|\\.)*)"')


def plain(line: str) -> str:
    """A log line without colours and without Molecule's frame (lane_profile.py reads lines so too)."""
    return FRAME.sub("", ANSI.sub("", line)).rstrip()


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def yaml_field(lines: list[str]) -> str:
    """The first msg/stderr/reason of a result printed in the yaml format (a block scalar too)."""
    for index, line in enumerate(lines):
        key, value = (line.strip().split(":", 1) + [""])[:2]
        if key not in ("msg", "stderr", "reason") or not line.startswith(" "):
            continue
        value = value.strip()
        if value[:1] not in ("|", ">"):
            return value.strip("'\"")
        indent = len(line) - len(line.lstrip())
        body = []
        for item in lines[index + 1:]:
            if item.strip() and len(item) - len(item.lstrip()) <= indent:
                break
            body.append(item.strip())
        return " ".join(body)
    return ""


def cause(lines: list[str], width: int = 300) -> list[str]:
    lines = [plain(line) for line in lines]
    last: dict[int, int] = {}
    for index, line in enumerate(lines):
        stripped = line.strip()
        kind = next((k for k, pattern in enumerate(KINDS) if pattern.search(stripped)), None)
        if kind is None or BENIGN.search(stripped):
            continue
        following = next((lines[j].strip() for j in range(index + 1, min(index + 40, len(lines))) if lines[j].strip()
                          and not lines[j].startswith((" ", "\t"))), "")
        if not following.startswith("...ignoring"):
            last[kind] = index
    if not last:
        return [shorten(next((line for line in reversed(lines) if line.strip()), "(empty log)"), width)]
    found = last[min(last)]
    out = [shorten(text, width) for text in describe(lines, found)]
    # Molecule's own verdict too (e.g. "Idempotence test failed ..."), when it is not the line above
    critical = last.get(CRITICAL_KIND)
    if critical is not None and critical != found:
        out.append(shorten(lines[critical].strip(), width))
    return out


def describe(lines: list[str], found: int) -> list[str]:
    line = lines[found].strip()
    if not line.startswith(("fatal:", "failed:")):
        return [line]
    task = next((m.group("name") for m in (TASK.match(lines[j]) for j in range(found, -1, -1)) if m), None)
    match = MSG.search(" ".join(lines[found:found + 30]))
    if match is None:
        text = yaml_field(lines[found + 1:found + 40])
    else:
        text = match.group("text").encode().decode("unicode_escape", errors="replace")
    head = f"task [{task}]: " if task else ""
    return [head + line.split("=>")[0].strip(), text or line]


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    width = int(argv[1]) if len(argv) > 1 else 300
    if not path.is_file():
        print(f"(no log: {path})")
        return 0
    for line in cause(path.read_text(errors="replace").splitlines(), width):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
