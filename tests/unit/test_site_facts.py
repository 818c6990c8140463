"""site.yml gathers the facts subsets min, network and virtual only: every fact the roles and
playbooks read must come from one of them (a fact of the hardware subset would be undefined)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# What ansible.builtin.setup's subsets give (ansible-core's fact collectors): min's platform,
# distribution, python, service and package manager, user, env...; network's addresses and
# interfaces; virtual's virtualization_*.
GATHERED = re.compile(r"^(distribution\w*|architecture|machine|system|kernel\w*|python\w*|os_family|pkg_mgr|service_mgr|"
                      r"user_\w+|env|date_time|lsb|fqdn|hostname|nodename|domain|selinux\w*|apparmor|"
                      r"all_ipv[46]_addresses|default_ipv[46]|interfaces|dns|virtualization_\w+|fips|local|cmdline|"
                      r"proc_cmdline|ssh_host_key_\w+|userspace_\w+|is_chroot|discovered_interpreter_python)$")
FACT = re.compile(r"ansible_facts\[['\"](\w+)['\"]\]|ansible_facts\.(\w+)|ansible_facts\.get\(['\"](\w+)['\"]")


def test_site_gathers_min_network_and_virtual():
    plays = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    setups = [t for p in plays for t in p.get("tasks", []) if "ansible.builtin.setup" in t]
    assert len(setups) == 1 and setups[0]["ansible.builtin.setup"]["gather_subset"] == ["!all", "min", "network", "virtual"]


def test_every_fact_read_is_in_a_gathered_subset():
    files = [p for d in ("roles", "playbooks", "plugins/filter") for p in (ROOT / d).rglob("*")
             if p.suffix in (".yml", ".j2", ".py") and p.is_file()]
    outside = set()
    for path in files:
        for match in FACT.finditer(path.read_text()):
            name = next(g for g in match.groups() if g)
            if not GATHERED.match(name):
                outside.add(f"{path.relative_to(ROOT)}: {name}")
    assert outside == set()


def test_the_check_sees_a_hardware_fact():
    assert not GATHERED.match("memtotal_mb") and not GATHERED.match("mounts")
    assert FACT.search("{{ ansible_facts['memtotal_mb'] }}").group(1) == "memtotal_mb"
