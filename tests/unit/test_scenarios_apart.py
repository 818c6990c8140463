"""Molecule scenarios can run at the same time (tests/harness/test.sh runs them in lanes).

Two scenarios running together must not share a container name, a Docker network or a subnet:
the second `create` would remove or join the first one's containers. Every scenario is also in
test.sh's order (longest first), so a new one is not silently appended after the short ones.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent for p in (ROOT / "molecule").glob("*/molecule.yml"))


def _platforms(scenario: Path) -> list[dict]:
    """The scenario's own platforms, or the shared ones (.config/molecule/config.yml) as Molecule
    fills them in for it."""
    own = yaml.safe_load((scenario / "molecule.yml").read_text()) or {}
    if "platforms" in own:
        return own["platforms"]
    shared = (ROOT / ".config/molecule/config.yml").read_text().replace("${MOLECULE_SCENARIO_NAME}", scenario.name)
    return yaml.safe_load(shared)["platforms"]


def test_container_names_are_unique_across_scenarios() -> None:
    seen: dict[str, str] = {}
    for scenario in SCENARIOS:
        for platform in _platforms(scenario):
            name = platform["name"]
            assert name not in seen, f"{scenario.name} and {seen.get(name)} both name a container {name}"
            seen[name] = scenario.name
    assert len(seen) >= len(SCENARIOS)


def test_networks_and_subnets_are_unique_across_scenarios() -> None:
    networks: dict[str, str] = {}
    subnets: list[tuple[ipaddress.IPv4Network, str]] = []
    for scenario in SCENARIOS:
        for platform in _platforms(scenario):
            for net in platform.get("docker_networks", []):
                owner = networks.setdefault(net["name"], scenario.name)
                assert owner == scenario.name, f"{scenario.name} and {owner} share the network {net['name']}"
                for ipam in net.get("ipam_config", []):
                    subnet = ipaddress.ip_network(ipam["subnet"])
                    for other, other_owner in subnets:
                        assert other_owner == scenario.name or not subnet.overlaps(other), (
                            f"{scenario.name}'s {subnet} overlaps {other_owner}'s {other}")
                    subnets.append((subnet, scenario.name))


def test_every_scenario_is_in_the_lane_order() -> None:
    script = (ROOT / "tests/harness/test.sh").read_text()
    order = re.search(r"for s in ([a-z_ ]+); do\n\s+\[ -f \"molecule/\$s/molecule.yml\" \]", script)
    assert order, "test.sh no longer lists the scenarios longest first"
    listed = order.group(1).split()
    assert sorted(listed) == sorted(s.name for s in SCENARIOS if not (s / "WIP").exists())
