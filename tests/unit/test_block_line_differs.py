"""block_differs and line_differs predict what ansible.builtin.blockinfile and lineinfile would do,
so a no-change run can skip them. Every case is checked against the real modules (check mode on
a copy of the file): a prediction that disagrees with the module is a task wrongly skipped or run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.anvil.hetzner.plugins.filter.file_differs import block_differs, line_differs

ROOT = Path(__file__).resolve().parents[2]
MARKER = "# {mark} anvil test"
BLOCK = "-A DOCKER-USER -j RETURN\n-A DOCKER-USER -j DROP\n"
IN_PLACE = "*filter\n# BEGIN anvil test\n-A DOCKER-USER -j RETURN\n-A DOCKER-USER -j DROP\n# END anvil test\nCOMMIT\n"

BLOCK_CASES = {
    "in place": (IN_PLACE, True),
    "in place, file without a final newline": (IN_PLACE.rstrip("\n"), True),
    "one line changed": (IN_PLACE.replace("DROP", "REJECT"), True),
    "a line more in the block": (IN_PLACE.replace("# END", "-A DOCKER-USER -j LOG\n# END"), True),
    "missing": ("*filter\nCOMMIT\n", True),
    "only the begin marker": ("*filter\n# BEGIN anvil test\nCOMMIT\n", True),
    "empty file": ("", True),
    "absent and missing": ("*filter\nCOMMIT\n", False),
    "absent but there": (IN_PLACE, False),
}
LINE_CASES = {
    "in place": ("IPV6=yes\nDEFAULT_INPUT_POLICY=DROP\n", "IPV6=yes"),
    "other value": ("IPV6=no\nDEFAULT_INPUT_POLICY=DROP\n", "IPV6=yes"),
    "missing": ("DEFAULT_INPUT_POLICY=DROP\n", "IPV6=yes"),
    "two lines, the last one right": ("IPV6=no\nIPV6=yes\n", "IPV6=yes"),
    "two lines, the last one wrong": ("IPV6=yes\nIPV6=no\n", "IPV6=yes"),
    "commented only": ("#IPV6=yes\n", "IPV6=yes"),
    "empty file": ("", "IPV6=yes"),
}


def module_says(tmp_path: Path) -> dict[str, bool]:
    """`changed` of the real modules in check mode, one task per case, in one run."""
    tasks = []
    for index, (name, (text, present)) in enumerate(BLOCK_CASES.items()):
        path = tmp_path / f"block{index}"
        path.write_text(text)
        tasks.append({"name": f"block {name}", "ansible.builtin.blockinfile": {
            "path": str(path), "marker": MARKER, "block": BLOCK, "state": "present" if present else "absent"},
            "register": f"block{index}"})
    for index, (name, (text, line)) in enumerate(LINE_CASES.items()):
        path = tmp_path / f"line{index}"
        path.write_text(text)
        tasks.append({"name": f"line {name}", "ansible.builtin.lineinfile": {
            "path": str(path), "regexp": "^IPV6=", "line": line}, "register": f"line{index}"})
    names = [f"block{i}" for i in range(len(BLOCK_CASES))] + [f"line{i}" for i in range(len(LINE_CASES))]
    tasks.append({"ansible.builtin.copy": {"dest": str(tmp_path / "out.json"), "content": "{{ {"
                  + ", ".join(f"'{n}': {n}.changed" for n in names) + "} | to_json }}"},
                  "check_mode": False})
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "check_mode": True, "tasks": tasks}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    out = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                          f"ansible_python_interpreter={sys.executable}", str(playbook)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads((tmp_path / "out.json").read_text())


def test_predictions_agree_with_the_modules(tmp_path):
    said = module_says(tmp_path)
    for index, (name, (text, present)) in enumerate(BLOCK_CASES.items()):
        assert block_differs(text, BLOCK, MARKER, present) == said[f"block{index}"], name
    for index, (name, (text, line)) in enumerate(LINE_CASES.items()):
        assert line_differs(text, "^IPV6=", line) == said[f"line{index}"], name
    # the cases hold both answers, so agreement is not a constant
    assert set(said.values()) == {True, False}


@pytest.mark.parametrize("content", [None, 42])
def test_a_file_not_read_differs(content):
    assert block_differs(content, BLOCK, MARKER)
    assert line_differs(content, "^IPV6=", "IPV6=yes")
