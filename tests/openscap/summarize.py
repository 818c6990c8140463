"""Summarise an OpenSCAP scan as JSON, on the scanned host (Python's standard library only).

usage: summarize.py XCCDF-RESULTS OVAL-RESULTS...
prints {"profile": ..., "rules": {rule: result}, "definitions": {definition: result}}: every rule of
the profile with its XCCDF result (the prefix xccdf_org.ssgproject.content_rule_ dropped), and every
OVAL definition's result (the prefix oval:ssg- and the suffix :def:1 dropped), so that a test can
look at a rule's parts: a sysctl rule is the AND of its `_static` definition (the files in
/etc/sysctl.d) and its `_runtime` one (the kernel's value).
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

XCCDF = "{http://checklists.nist.gov/xccdf/1.2}"
OVAL_RESULTS = "{http://oval.mitre.org/XMLSchema/oval-results-5}"
RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"


def rules(path: str) -> tuple[str, dict[str, str]]:
    results = list(ET.parse(path).getroot().iter(XCCDF + "TestResult"))
    if len(results) != 1:
        raise SystemExit(f"summarize: {path} holds {len(results)} TestResults, not one")
    profile = results[0].find(XCCDF + "profile")
    found = {}
    for rule in results[0].iter(XCCDF + "rule-result"):
        found[rule.get("idref", "").removeprefix(RULE_PREFIX)] = rule.findtext(XCCDF + "result", "")
    return (profile.get("idref", "") if profile is not None else ""), found


def definitions(path: str) -> dict[str, str]:
    found = {}
    for definition in ET.parse(path).getroot().iter(OVAL_RESULTS + "definition"):
        name = definition.get("definition_id", "").removeprefix("oval:ssg-").removesuffix(":def:1")
        found[name] = definition.get("result", "")
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    profile, found = rules(argv[1])
    if not found:
        raise SystemExit(f"summarize: {argv[1]} has no rule results")
    oval: dict[str, str] = {}
    for path in argv[2:]:
        oval.update(definitions(path))
    json.dump({"profile": profile, "rules": found, "definitions": oval}, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
