"""The audit rules check (plugins/plugin_utils/audit_rules.py): what auditctl would refuse is
refused, by line, before the file replaces the live one; the role's own rule set passes it on
every architecture it knows, against the host's syscall table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ansible_collections.anvil.hetzner.plugins.filter.base_errors import base_audit_rules, base_errors
from ansible_collections.anvil.hetzner.plugins.plugin_utils import audit_rules as ar

GOOD = [
    "-w /etc/passwd -p wa -k identity",
    "-w /etc/sudoers.d/ -p wa",
    "-a always,exit -F arch=b64 -S adjtimex,settimeofday -k time-change",
    "-a exit,always -F arch=b32 -S 25 -k time",
    "-a always,exit -F path=/usr/bin/sudo -F perm=x -F auid>=1000 -F auid!=4294967295 -k privileged",
    "-a always,exit -F arch=b64 -S openat -F exit=-EACCES -k access",
    "-D", "-b 8192", "-f 1", "-e 2", "--backlog_wait_time 60000", "# a comment", "",
]
BAD = {
    "-w etc/passwd -p wa": "needs an absolute path",
    "-w /etc/passwd -p wz": "-p wz is not",
    "-w /etc/passwd -k": "needs a value",
    "-w /etc/passwd -S open": "does not go with -w",
    "-w /etc/passwd -k this-key-is-much-longer-than-thirty-one": "is not a key",
    "-a always -S open": "is not ACTION,LIST",
    "-a sometimes,exit -S open": "is not ACTION,LIST",
    "-a always,exit -F bogus=1": "'bogus' is not an audit rule field",
    "-a always,exit -F auid": "is not FIELD=VALUE",
    "-a always,exit -F arch=b16": "is not b32 or b64",
    "-a always,exit -F perm=q": "perm=q is not",
    "-a always,exit -S Open!": "is not a syscall name",
    "-a always,exit -p wa": "does not go with -a",
    "-e 3": "is not an auditctl option",
    "-z": "is not an auditctl option",
    "-w '/etc/pass": "cannot be split",
}


@pytest.mark.parametrize("line", GOOD)
def test_good_lines(line):
    assert ar.rule_error(line) is None


@pytest.mark.parametrize(("line", "reason"), sorted(BAD.items()))
def test_bad_lines_say_why(line, reason):
    found = ar.rule_error(line)
    assert found and reason in found, found


def test_syscalls_are_held_against_the_hosts_table():
    table = {"b64": {"openat", "adjtimex"}, "b32": {"open"}}
    assert ar.rule_error("-a always,exit -F arch=b64 -S openat,adjtimex", table) is None
    assert "not a syscall of this host's b64 table" in ar.rule_error("-a always,exit -F arch=b64 -S open", table)
    assert ar.rule_error("-a always,exit -F arch=b32 -S open", table) is None
    assert "no b32 syscall table" in ar.rule_error("-a always,exit -F arch=b32 -S open", {"b64": {"open"}})
    assert ar.file_errors("-w /etc/passwd -p wa\n-w x\n") == ["line 2: -w needs an absolute path: -w x"]


def _table_of(machine):
    """What ausyscall knows, as far as these rules need it (the names of the role's groups)."""
    groups = ar.SYSCALLS[machine]
    return {arch: {name for names in groups[arch].values() for name in names} for arch in groups}


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_roles_rules_pass_the_check(machine):
    privileged = ["/usr/bin/sudo", "/usr/bin/passwd", "/usr/bin/sudo"]
    text = base_audit_rules(machine, privileged, ["-w /srv/app -p wa -k app"])
    assert ar.file_errors(text, _table_of(machine)) == []
    assert text.count("-F path=/usr/bin/sudo ") == 1
    assert "-w /etc/sudoers -p wa -k sudoers" in text and "-w /etc/ssh/sshd_config -p wa -k sshd" in text
    assert text.rstrip().endswith("-w /srv/app -p wa -k app")
    assert ("arch=b32" in text) == (machine == "x86_64")
    assert (" -S open," in text) == (machine == "x86_64")  # aarch64 has no open(2)


def test_extra_rules_are_refused_before_any_change_naming_the_line():
    errors = base_errors({"base_audit_rules_extra": ["-w /etc/hosts -p wa -k hosts", "-a always,exit -F bogus=1",
                                                     "-e 0", "-D"]})
    assert any(e.startswith("base_audit_rules_extra[1]: ") and "'bogus' is not" in e for e in errors), errors
    assert any(e.startswith("base_audit_rules_extra[2]: ") and "base_audit_immutable" in e for e in errors), errors
    assert any(e.startswith("base_audit_rules_extra[3]: ") for e in errors), errors
    assert not any(e.startswith("base_audit_rules_extra[0]") for e in errors), errors


def test_the_check_runs_as_a_script_and_fails_on_a_bad_file(tmp_path, monkeypatch):
    good, bad = tmp_path / "good.rules", tmp_path / "bad.rules"
    good.write_text("-w /etc/passwd -p wa -k identity\n")
    bad.write_text("-w /etc/passwd -p wa -k identity\n-a always,exit -F bogus=1\n")
    for path, code in ((good, 0), (bad, 1)):
        out = subprocess.run([sys.executable, ar.__file__, str(path)], capture_output=True, text=True, timeout=60,
                             check=False)
        assert out.returncode == code, out.stderr
    assert "line 2: -F 'bogus'" in out.stderr


def test_without_ausyscall_syscall_rules_are_refused():
    def run(argv, **kwargs):
        if argv[0] == "ausyscall":
            raise FileNotFoundError("ausyscall")
        return subprocess.CompletedProcess(argv, 0, "x86_64\n", "")
    assert ar.host_syscalls(run) == {}
    assert "no b64 syscall table" in ar.rule_error("-a always,exit -S openat", ar.host_syscalls(run))


def test_the_hosts_table_is_read_from_ausyscall():
    def run(argv, **kwargs):
        if argv[0] == "uname":
            return subprocess.CompletedProcess(argv, 0, "x86_64\n", "")
        table = "Using x86_64 syscall table:\n0\tread\n257\topenat\n" if argv[1] == "x86_64" else "0\trestart_syscall\n5\topen\n"
        return subprocess.CompletedProcess(argv, 0, table, "")
    assert ar.host_syscalls(run) == {"b64": {"read", "openat"}, "b32": {"restart_syscall", "open"}}
