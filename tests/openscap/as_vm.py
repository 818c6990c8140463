"""Write a copy of the SCAP Security Guide's Debian 12 data stream that scans a container as the
cloud VM it stands in for.

The guide decides two platforms from what it finds on the disk: `machine` (no /.dockerenv, no
/run/.containerenv) and `system_with_kernel` (the linux-base package is installed). A Molecule host is
a container with no kernel package, so about 140 of the ANSSI BP-28 intermediary rules would be
"notapplicable" there, and a scan would pass by skipping them. A Hetzner Cloud server has a kernel and
is not a container: in the copy, the container check is always false and the kernel check always true.
Nothing else of the data stream changes; each rewrite must match exactly once.

usage: as_vm.py SOURCE-DS DEST-DS
"""
from __future__ import annotations

import re
import sys

# the criteria of each inventory definition, replaced by a test of /etc/debian_version (true on every
# Debian host): negated for "is a container", as it is for "has a kernel"
REWRITES = {
    "oval:ssg-installed_env_is_a_container:def:1":
        '<oval-def:criteria operator="AND" negate="true">'
        '<oval-def:criterion comment="anvil: scanned as a VM, never a container" test_ref="oval:ssg-test_debian:tst:1"/>'
        '</oval-def:criteria>',
    "oval:ssg-system_with_kernel:def:1":
        '<oval-def:criteria operator="AND">'
        '<oval-def:criterion comment="anvil: scanned as a VM, which has a kernel" test_ref="oval:ssg-test_debian:tst:1"/>'
        '</oval-def:criteria>',
}


def as_vm(text: str) -> str:
    if text.count('id="oval:ssg-test_debian:tst:1"') != 1:
        raise SystemExit("as_vm: the data stream has no single oval:ssg-test_debian:tst:1 to build on")
    for definition, criteria in REWRITES.items():
        pattern = re.compile(r'(<oval-def:definition id="' + re.escape(definition) + r'"[^>]*>.*?)'
                             r'<oval-def:criteria\b.*?</oval-def:criteria>', re.S)
        text, count = pattern.subn(lambda m: m.group(1) + criteria, text)
        if count != 1:
            raise SystemExit(f"as_vm: {definition} found {count} times, not once: is this the Debian 12 data stream?")
    return text


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as source:
        text = source.read()
    with open(argv[2], "w", encoding="utf-8") as dest:
        dest.write(as_vm(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
