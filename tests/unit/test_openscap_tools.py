"""tests/openscap: the data stream's rewrite that scans a container as a VM, the scan's summary, and
the committed list of accepted failures (molecule/base/tests/test_openscap.py uses all three)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPENSCAP = ROOT / "tests" / "openscap"
sys.path.insert(0, str(OPENSCAP))
from as_vm import as_vm  # noqa: E402  pylint: disable=wrong-import-position

# the shape of the two inventory definitions and the test they are rebuilt on, as ssg-debian 0.1.76
# writes them (the whole data stream is 10 MB; the rest of it is kept byte for byte)
STREAM = """<ds>
        <oval-def:definition id="oval:ssg-installed_env_is_a_container:def:1" version="2" class="inventory">
          <oval-def:metadata><oval-def:title>Check if the scan target is a container</oval-def:title></oval-def:metadata>
          <oval-def:criteria operator="OR">
            <oval-def:criterion comment="Check if /.dockerenv exists" test_ref="oval:ssg-test_installed_env_is_a_docker_container:tst:1"/>
            <oval-def:criterion comment="Check if /run/.containerenv exists" test_ref="oval:ssg-test_installed_env_is_a_podman_container:tst:1"/>
          </oval-def:criteria>
        </oval-def:definition>
        <oval-def:definition id="oval:ssg-installed_env_is_a_machine:def:1" version="2" class="inventory">
          <oval-def:criteria operator="AND">
            <oval-def:extend_definition negate="true" definition_ref="oval:ssg-installed_env_is_a_container:def:1"/>
          </oval-def:criteria>
        </oval-def:definition>
        <oval-def:definition id="oval:ssg-system_with_kernel:def:1" version="1" class="inventory">
          <oval-def:criteria operator="OR">
            <oval-def:criterion comment="kernel is installed" test_ref="oval:ssg-inventory_test_kernel_installed:tst:1"/>
          </oval-def:criteria>
        </oval-def:definition>
        <unix:file_test id="oval:ssg-test_debian:tst:1" version="1" check="all" comment="/etc/debian_version exists"/>
</ds>
"""


def test_as_vm_makes_the_container_check_false_and_the_kernel_check_true_and_keeps_the_rest():
    out = as_vm(STREAM)
    container = out.split('id="oval:ssg-installed_env_is_a_container:def:1"')[1].split("</oval-def:definition>")[0]
    kernel = out.split('id="oval:ssg-system_with_kernel:def:1"')[1].split("</oval-def:definition>")[0]
    assert 'negate="true"' in container and "oval:ssg-test_debian:tst:1" in container and "dockerenv" not in container
    assert 'negate' not in kernel and "oval:ssg-test_debian:tst:1" in kernel and "kernel_installed" not in kernel
    # the machine platform is left as it was: it follows from the container check
    machine = 'id="oval:ssg-installed_env_is_a_machine:def:1"'
    assert out.split(machine)[1].split("</oval-def:definition>")[0] == STREAM.split(machine)[1].split("</oval-def:definition>")[0]
    assert out.count("<oval-def:definition ") == 3 and out.endswith("</ds>\n")


@pytest.mark.parametrize("broken", [
    STREAM.replace("oval:ssg-system_with_kernel:def:1", "oval:ssg-other:def:1"),
    STREAM.replace('<unix:file_test id="oval:ssg-test_debian:tst:1"', "<unix:file_test id=\"x\""),
    STREAM.replace("</ds>", STREAM.split("<ds>")[1]),  # every definition twice
])
def test_as_vm_refuses_a_stream_of_another_shape(broken):
    with pytest.raises(SystemExit, match="as_vm:"):
        as_vm(broken)


XCCDF = """<?xml version="1.0"?>
<Benchmark xmlns="http://checklists.nist.gov/xccdf/1.2">
  <TestResult id="r">
    <profile idref="xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary"/>
    <rule-result idref="xccdf_org.ssgproject.content_rule_sshd_disable_root_login"><result>pass</result></rule-result>
    <rule-result idref="xccdf_org.ssgproject.content_rule_partition_for_var"><result>fail</result></rule-result>
    <rule-result idref="xccdf_org.ssgproject.content_rule_grub2_password"><result>notapplicable</result></rule-result>
  </TestResult>
</Benchmark>
"""
OVAL = """<?xml version="1.0"?>
<oval_results xmlns="http://oval.mitre.org/XMLSchema/oval-results-5"><results><system><definitions>
  <definition definition_id="oval:ssg-sysctl_kernel_dmesg_restrict_static:def:1" result="true"/>
  <definition definition_id="oval:ssg-sysctl_kernel_dmesg_restrict_runtime:def:1" result="false"/>
</definitions></system></results></oval_results>
"""


def test_summarize_gives_every_rule_and_definition(tmp_path):
    (tmp_path / "x.xml").write_text(XCCDF)
    (tmp_path / "o.xml").write_text(OVAL)
    done = subprocess.run([sys.executable, str(OPENSCAP / "summarize.py"), "x.xml", "o.xml"], cwd=tmp_path,
                          capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout) == {
        "profile": "xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary",
        "rules": {"sshd_disable_root_login": "pass", "partition_for_var": "fail", "grub2_password": "notapplicable"},
        "definitions": {"sysctl_kernel_dmesg_restrict_static": "true", "sysctl_kernel_dmesg_restrict_runtime": "false"},
    }


def test_summarize_refuses_results_without_rules(tmp_path):
    (tmp_path / "x.xml").write_text(XCCDF.replace("<TestResult", "<Other").replace("</TestResult>", "</Other>"))
    (tmp_path / "o.xml").write_text(OVAL)
    done = subprocess.run([sys.executable, str(OPENSCAP / "summarize.py"), "x.xml", "o.xml"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode != 0 and "0 TestResults" in done.stderr


REASONS = {"kernel", "container", "image", "default", "content"}


def test_every_accepted_failure_has_a_known_reason_and_its_words():
    listed = yaml.safe_load((OPENSCAP / "anssi_bp28_intermediary-debian12.yml").read_text())
    assert listed["profile"] == "xccdf_org.ssgproject.content_profile_anssi_bp28_intermediary"
    assert listed["accepted"], "an empty list: then the scan passed every rule, and the file goes"
    for rule, entry in listed["accepted"].items():
        assert set(entry) == {"result", "because", "reason"}, rule
        assert entry["result"] in {"fail", "error", "unknown", "notchecked"}, rule
        assert entry["because"] in REASONS, rule
        assert len(entry["reason"].split()) >= 6, f"{rule}: say why in a sentence"
        # a kernel key is a sysctl rule: the scan checks its persisted half
        assert entry["because"] != "kernel" or rule.startswith("sysctl_"), rule
