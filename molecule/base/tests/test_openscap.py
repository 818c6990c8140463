"""The converged Debian 12 host scanned by OpenSCAP with ANSSI BP-28 (intermediary), compared with the
committed list of accepted failures (tests/openscap/anssi_bp28_intermediary-debian12.yml).

- The content is Debian's own: the SCAP Security Guide's Debian 12 data stream ships in Debian 13's
  ssg-debian package (Debian 12's has streams for 10 and 11 only). The Debian 13 host downloads the
  package (it is not installed there); the scanner is Debian 12's openscap-scanner on the host scanned.
- The host is scanned as the cloud VM it stands in for (tests/openscap/as_vm.py): a container has no
  kernel package and a /.dockerenv, and the guide would skip about 140 rules for that.
- A rule that fails and is not on the list fails the test, and so does a listed rule that now passes
  (take it off the list: the list only shrinks) or that fails differently. A sysctl rule listed as
  `kernel` is one whose kernel value the container cannot set (its /proc/sys is the machine's, read
  only): the test still requires the rule's `_static` part, base's file in /etc/sysctl.d, to pass.

This file runs after test_base.py (pytest takes a directory's files in name order): installing the
scanner adds files, which AIDE's tests there must not see.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
import testinfra
import testinfra.utils.ansible_runner
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
testinfra_hosts = RUNNER.get_hosts("debian12")

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
OPENSCAP = PROJECT / "tests" / "openscap"
ACCEPTED = OPENSCAP / "anssi_bp28_intermediary-debian12.yml"
PROFILE = "xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary"
DS_IN_PACKAGE = "./usr/share/xml/scap/ssg/content/ssg-debian12-ds.xml"
WORK = "/var/tmp/anvil-openscap"
# every result that is neither a pass nor a rule the profile or the platform leaves out
OUTSTANDING = {"fail", "error", "unknown", "notchecked"}

sys.path.insert(0, str(OPENSCAP))
from as_vm import as_vm  # noqa: E402 pylint: disable=wrong-import-position


def accepted() -> dict[str, dict[str, str]]:
    return yaml.safe_load(ACCEPTED.read_text())["accepted"]


def run(host, command: str, timeout: int = 600):
    """Every step is bounded: a mirror that accepts and then hangs ends the test, not the lane."""
    result = host.run(f"timeout {timeout} sh -c {shlex.quote(command)}")
    assert result.rc == 0, f"{command}: rc {result.rc}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def scan(host, tmp_path_factory) -> dict:
    local = tmp_path_factory.mktemp("openscap")
    source = testinfra.get_host(f"ansible://{RUNNER.get_hosts('debian13')[0]}", ansible_inventory=INVENTORY)
    # the data stream, from Debian 13's package, downloaded and unpacked there, not installed
    run(source, f"rm -rf {WORK} && mkdir -p {WORK} && cd {WORK} && chown _apt {WORK} && apt-get download -q ssg-debian"
                f" && dpkg-deb --fsys-tarfile ssg-debian_*.deb | tar -xO {DS_IN_PACKAGE} > ssg-debian12-ds.xml")
    fetched = source.ansible("fetch", f"src={WORK}/ssg-debian12-ds.xml dest={local}/ flat=yes", check=False)
    assert not fetched.get("failed"), fetched
    (local / "vm-ds.xml").write_text(as_vm((local / "ssg-debian12-ds.xml").read_text()))
    run(host, f"rm -rf {WORK} && mkdir -p {WORK}")
    for name, src in (("ds.xml", local / "vm-ds.xml"), ("summarize.py", OPENSCAP / "summarize.py")):
        copied = host.ansible("copy", f"src={src} dest={WORK}/{name} mode=0600", check=False)
        assert not copied.get("failed"), copied
    run(host, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openscap-scanner")
    # rc 2: at least one rule failed; 1 would be the scanner's own error
    evaluated = host.run(f"cd {WORK} && timeout 900 oscap xccdf eval --profile {PROFILE} --results xccdf.xml"
                         " --oval-results ds.xml > eval.txt 2> eval.err")
    assert evaluated.rc in (0, 2), host.run(f"tail -20 {WORK}/eval.err").stdout
    summary = json.loads(run(host, f"cd {WORK} && python3 summarize.py xccdf.xml ssg-debian12-oval.xml.result.xml").stdout)
    assert summary["profile"] == PROFILE
    return summary


def test_the_scan_applies_the_profile_as_to_a_vm(scan):
    results = [r for r in scan["rules"].values() if r != "notselected"]
    # ANSSI BP-28 intermediary selects 220 rules for Debian 12; scanned as a container about 140 of
    # them would be notapplicable
    assert len(results) >= 200, len(results)
    assert results.count("notapplicable") < 60, results.count("notapplicable")
    assert results.count("pass") > 100, results.count("pass")


def test_every_failing_rule_is_accepted_with_its_reason_and_no_accepted_rule_passes(scan):
    outstanding = {rule: result for rule, result in scan["rules"].items() if result in OUTSTANDING}
    listed = accepted()
    new = sorted(set(outstanding) - set(listed))
    fixed = sorted(rule for rule in listed if scan["rules"].get(rule) not in OUTSTANDING)
    changed = sorted(rule for rule in set(outstanding) & set(listed) if listed[rule]["result"] != outstanding[rule])
    counts = {result: list(scan["rules"].values()).count(result) for result in sorted(set(scan["rules"].values()))}
    print(f"\nANSSI BP-28 intermediary on Debian 12: {counts}; accepted {len(listed)}")
    assert not new, f"failing and not accepted (fix it, or list it with its reason): {new}"
    assert not fixed, f"accepted but no longer failing (take them off {ACCEPTED.name}): " + \
        ", ".join(f"{rule}: {scan['rules'].get(rule, 'not in the profile')}" for rule in fixed)
    assert not changed, {rule: (listed[rule]["result"], outstanding[rule]) for rule in changed}


def test_kernel_keys_the_container_cannot_set_are_persisted_for_the_vm(scan):
    kernel = sorted(rule for rule, entry in accepted().items() if entry["because"] == "kernel")
    assert kernel, "the list names no kernel rule: then this test has nothing to hold"
    for rule in kernel:
        # the rule is the AND of the files (static) and the kernel's value (runtime)
        assert scan["definitions"].get(f"{rule}_static") == "true", f"{rule}: base's sysctl file does not set it"
        assert scan["definitions"].get(f"{rule}_runtime") == "false", f"{rule}: the runtime part passes, so why listed?"
