# Copyright (c) 2026 anvil.hetzner contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml: which of the main job's roles a host gets, from its groups and toggles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.common.validation import check_type_bool

DOCUMENTATION = r"""
name: site_concerns
short_description: Which roles of playbooks/site.yml a host gets, from its inventory groups and the anvil_<role> toggles
version_added: 0.8.0
description:
  - C(base) always. C(firewall) and C(node_exporter) unless turned off. C(docker) for hosts in the
    groups C(docker), C(web) or C(app); C(caddy) for hosts in C(web) or C(app) and for hosts in C(monitoring)
    with a C(monitoring_web_domain); C(postgres_backup)
    for hosts with C(postgres_backup_age_recipients); C(app_deploy) for hosts in C(web) or C(app)
    that describe an app (C(app_deploy_name)); C(monitoring) for hosts in the group C(monitoring).
  - A toggle C(anvil_<role>) set for the host (inventory, group_vars, C(-e)) wins over the group
    rule. Toggles given as C(-e anvil_docker=false) are strings; C(true)/C(false)/C(yes)/C(no)/C(on)/
    C(off)/C(1)/C(0) are read as Ansible reads booleans, any other value is an error.
options:
  _input:
    description: The host's variables (C(hostvars[inventory_hostname])); C(group_names) is read from them.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide what each host gets
  ansible.builtin.set_fact:
    __anvil_site: "{{ hostvars[inventory_hostname] | anvil.hetzner.site_concerns }}"
"""

RETURN = r"""
_value:
  description: What the host gets.
  type: dict
  contains:
    toggles:
      description: Every C(anvil_<role>) toggle as a boolean (what the roles read of each other).
      type: dict
    roles:
      description: The roles the host gets, in the order site.yml runs them.
      type: list
      elements: str
    errors:
      description: One message per toggle whose value is not a boolean (empty when all are).
      type: list
      elements: str
"""

# In the order site.yml runs them.
ROLES = ("base", "firewall", "docker", "caddy", "node_exporter", "app_deploy", "postgres_backup", "monitoring")
WEB_GROUPS = frozenset(("web", "app"))


def _defaults(host: Mapping[str, Any], groups: set[str]) -> dict[str, bool]:
    web = bool(groups & WEB_GROUPS)
    recipients = host.get("postgres_backup_age_recipients") or []
    app_name = host.get("app_deploy_name") or ""
    return {
        "firewall": True,
        "docker": web or "docker" in groups,
        # a monitoring server with a domain: Prometheus and Alertmanager through Caddy (monitoring_web_domain)
        "caddy": web or ("monitoring" in groups and bool(host.get("monitoring_web_domain"))),
        "node_exporter": True,
        "postgres_backup": isinstance(recipients, list) and len(recipients) > 0,
        "app_deploy": web and isinstance(app_name, str) and app_name.strip() != "",
        "monitoring": "monitoring" in groups,
    }


def site_concerns(host: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(host, Mapping):
        return {"toggles": {}, "roles": [], "errors": [f"site_concerns: expected the host's variables, got {type(host).__name__}"]}
    groups = set(host.get("group_names") or [])
    on = _defaults(host, groups)
    errors = []
    for role in ROLES[1:]:
        name = f"anvil_{role}"
        if name not in host or host[name] is None:
            continue
        try:
            on[role] = check_type_bool(host[name])
        except TypeError:
            errors.append(f"{name}: {host[name]!r} is not a boolean (true/false, yes/no, on/off, 1/0)")
    return {"toggles": {f"anvil_{role}": on[role] for role in ROLES[1:]},
            "roles": ["base"] + [role for role in ROLES[1:] if on[role]],
            "errors": errors}


class FilterModule:
    """anvil.hetzner site.yml filter."""

    def filters(self) -> dict[str, Any]:
        return {"site_concerns": site_concerns}
