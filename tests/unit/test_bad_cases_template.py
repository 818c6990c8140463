"""molecule/shared/bad_cases.yml.j2 turns a scenario's bad_cases.yml into one playbook (a play per
case). Rendered here for every scenario's real cases: the result is YAML, each case has its own play
whose include_role gets exactly the case's variables (values with quotes, braces, newlines and
Jinja in them included), and every play's rescue notes the refusal under the case's own key.
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "molecule" / "shared" / "bad_cases.yml.j2"
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/bad_cases.yml"))


def render(data: dict) -> list[dict]:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    text = env.from_string(TEMPLATE.read_text()).render(
        cases=data["bad_input_cases"], scenario_dir="/s", work_dir="/w", **data)
    return yaml.safe_load(text)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_case_is_a_play_with_exactly_its_variables(scenario: str) -> None:
    data = yaml.safe_load((ROOT / "molecule" / scenario / "bad_cases.yml").read_text())
    plays = render(data)
    cases = data["bad_input_cases"]
    assert len(plays) == len(cases) + 2  # facts first, the refusals written last
    for index, (case, play) in enumerate(zip(cases, plays[1:-1])):
        assert play["hosts"] == "targets" and play["vars_files"] == ["/s/vars.yml"]
        task = play["tasks"][0]
        include = task["block"][0]
        assert include["ansible.builtin.include_role"] == {"name": data["bad_input_role"]}
        assert include["vars"] == case["vars"], case["name"]
        note = task["rescue"][0]["ansible.builtin.set_fact"]["__bad_input_refusals"]
        assert f"'case{index}':" in note and note.startswith("{{") and note.endswith("}}")
    assert plays[-1]["tasks"][0]["ansible.builtin.copy"]["dest"] == "/w/refusals-{{ inventory_hostname }}.json"


def test_awkward_values_reach_the_role_unchanged() -> None:
    awkward = {"a": "quote ' and \" and : colon", "b": "line\nbreak", "c": "{{ not_templated_here }}",
               "d": {"nested": [1, True, None]}, "e": "- not a list"}
    plays = render({"bad_input_role": "anvil.hetzner.base",
                    "bad_input_cases": [{"name": "awkward: 'x'", "var": "a", "vars": awkward}]})
    assert plays[1]["name"] == "Bad input case 0: awkward: 'x'"
    assert plays[1]["tasks"][0]["block"][0]["vars"] == awkward
