"""The alert rules shipped in roles/node_exporter/files/alerts/: promtool (Debian 12's, 2.42, the
oldest Prometheus they must load in; from the anvil-hetzner/prometheus:12 test image) checks every
file and runs the unit tests in tests/prometheus/. Every alert must be proven to fire and proven to
stay quiet, and the tests must notice a broken rule: each alert's expression is replaced by one that
never fires and by one that always fires, and its tests must fail both times."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles" / "node_exporter" / "files" / "alerts"
TESTS = ROOT / "tests" / "prometheus"
IMAGE = "anvil-hetzner/prometheus:12"


def promtool(workdir: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script with promtool in the test image, workdir mounted read-only at /src."""
    missing = shutil.which("docker") is None or subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode != 0
    if missing:
        pytest.fail(f"{IMAGE} is missing: run tests/images/build-prometheus.sh (make test builds it)")
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{workdir}:/src:ro", "-w", "/src",
                           IMAGE, "sh", "-c", script], capture_output=True, text=True, timeout=300, check=False)


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.rules.yml"))


def alerts_of(path: Path) -> list[str]:
    return [r["alert"] for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_every_rule_file_loads_in_promtool() -> None:
    files = " ".join(str(p.relative_to(ROOT)) for p in rule_files())
    result = promtool(ROOT, f"promtool check rules {files}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(rule_files())


def test_alert_unit_tests_pass() -> None:
    result = promtool(ROOT, "promtool test rules tests/prometheus/*.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(list(TESTS.glob("*.test.yml")))


def test_every_alert_is_proven_to_fire_and_to_stay_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    tested_files: set[str] = set()
    for test in TESTS.glob("*.test.yml"):
        doc = yaml.safe_load(test.read_text())
        tested_files |= {Path(f).name for f in doc["rule_files"]}
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    every = {a for p in rule_files() for a in alerts_of(p)}
    assert len(every) >= 19
    assert {p.name for p in rule_files()} <= tested_files, "a rules file has no test file"
    assert every - fires == set(), "alerts never shown firing"
    assert every - quiet == set(), "alerts never shown staying quiet"


def test_tests_fail_when_a_rule_is_broken(tmp_path: Path) -> None:
    """Mutants: for every alert, a copy of the rules where its expression never fires and one where it
    always fires; the alert's test file must fail against each."""
    mutants = []
    for path in rule_files():
        doc = yaml.safe_load(path.read_text())
        for gi, group in enumerate(doc["groups"]):
            for ri, rule in enumerate(group["rules"]):
                if "alert" not in rule:
                    continue
                for kind, expr in (("never", "vector(0) > 1"), ("always", "vector(1)")):
                    name = f"{rule['alert']}-{kind}"
                    tree = tmp_path / name
                    shutil.copytree(RULES, tree / RULES.relative_to(ROOT))
                    shutil.copytree(TESTS, tree / TESTS.relative_to(ROOT))
                    mutated = yaml.safe_load(path.read_text())
                    mutated["groups"][gi]["rules"][ri]["expr"] = expr
                    (tree / path.relative_to(ROOT)).write_text(yaml.safe_dump(mutated, sort_keys=False))
                    test_file = TESTS / path.name.replace(".rules.yml", ".test.yml")
                    mutants.append((name, test_file.relative_to(ROOT)))
    # control: an unmutated copy, run the same way, must pass (a mutant that fails for another
    # reason, e.g. a wrong path, would otherwise count as caught)
    shutil.copytree(RULES, tmp_path / "control" / RULES.relative_to(ROOT))
    shutil.copytree(TESTS, tmp_path / "control" / TESTS.relative_to(ROOT))
    control = "(cd control && promtool test rules tests/prometheus/*.test.yml >/dev/null 2>&1) && echo CONTROL PASSED; "
    runs = [f"(cd {name} && promtool test rules {test} >/dev/null 2>&1) && echo SURVIVED {name}" for name, test in mutants]
    script = control + "; ".join(runs) + "; true"
    result = promtool(tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert "CONTROL PASSED" in result.stdout, result.stdout + result.stderr
    assert "SURVIVED" not in result.stdout, f"tests that did not notice a broken rule:\n{result.stdout}"
    assert len(mutants) >= 38
