# Copyright (c) 2026 anvil.hetzner contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/provision.yml and playbooks/teardown.yml: the description's check, the plan, the hosts
and the teardown plan. The logic is in plugins/plugin_utils/hcloud_env.py."""

from __future__ import annotations

# Documentation: one plugins/filter/<filter name>.yml per filter of this file.

from collections.abc import Mapping
from typing import Any

from ansible_collections.anvil.hetzner.plugins.plugin_utils import hcloud_env


def provision_errors(env: Any, catalogue: Mapping[str, Any] | None = None, existing: Mapping[str, Any] | None = None,
                     token: Any = None) -> list[str]:
    return hcloud_env.environment_errors(env, catalogue=catalogue, existing=existing, token=token)


def provision_plan(env: Mapping[str, Any]) -> dict[str, Any]:
    return hcloud_env.plan(env)


def provision_hosts(servers: Any, catalogue: Mapping[str, Any] | None = None, networks: Any = None,
                    options: Mapping[str, Any] | None = None, env: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    return hcloud_env.inventory_hosts(servers, catalogue=catalogue, networks=networks, options=options, env=env)


def teardown_plan(existing: Mapping[str, Any], env_name: str) -> dict[str, Any]:
    return hcloud_env.teardown_plan(existing, env_name)


class FilterModule:
    """anvil.hetzner provisioning filters."""

    def filters(self) -> dict[str, Any]:
        return {"provision_errors": provision_errors, "provision_plan": provision_plan,
                "provision_hosts": provision_hosts, "teardown_plan": teardown_plan}
