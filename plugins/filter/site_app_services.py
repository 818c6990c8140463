# Copyright (c) 2026 anvil.hetzner contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml: the app's services pinned to the release that is live on the host."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

DOCUMENTATION = r"""
name: site_app_services
short_description: The app's services (app_deploy_services) with each image pinned to what the live release runs
version_added: 0.8.0
description:
  - C(site.yml) deploys the app described in the inventory the first time; afterwards new versions come
    from C(anvil.hetzner.deploy) (CI). So that a later C(site.yml) keeps the release that is live instead
    of going back to the tags written in the inventory, each service that the live release also runs gets
    that release's tag (or digest). Everything else of the description (environment, command, volumes,
    accessories) applies as written.
  - With O(version) (C(-e app_version=...)), every service that has a tag gets it, as C(deploy.yml) does.
  - Without a live release (a first deploy, an unreadable or missing history) the services are returned
    as given.
  - The app_deploy role applies it with O(history) when C(app_deploy_follow_live) is set (C(site.yml)
    does), after it has read the history under its deploy lock; C(site.yml) itself uses only O(version).
options:
  _input:
    description: C(app_deploy_services).
    type: list
    elements: dict
    required: true
  history:
    description: The host's release history (C(/var/lib/anvil/apps/<name>/history.json)), as text or parsed; empty for none.
    type: raw
    default: ""
  version:
    description: The version asked for (C(app_version)); empty to follow the live release.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: The services as site.yml deploys them
  ansible.builtin.set_fact:
    services: "{{ app_deploy_services | anvil.hetzner.site_app_services(history=history_text) }}"
"""

RETURN = r"""
_value:
  description: The services, each with its C(tag) or C(digest) set as described above.
  type: list
  elements: dict
"""


def _live(history: Any) -> Mapping[str, Any] | None:
    if isinstance(history, str):
        try:
            history = json.loads(history) if history.strip() else {}
        except ValueError:
            return None
    if not isinstance(history, Mapping):
        return None
    releases = history.get("releases")
    if not isinstance(releases, list):
        return None
    return next((r for r in releases if isinstance(r, Mapping) and r.get("id") == history.get("live")
                 and r.get("status") == "live"), None)


def _pin(image: str) -> dict[str, str]:
    """`registry:5000/team/app:v2` -> {'tag': 'v2'}; `...@sha256:...` -> {'digest': 'sha256:...'}."""
    if "@" in image:
        return {"digest": image.split("@", 1)[1]}
    last = image.rsplit("/", 1)[-1]
    return {"tag": last.rsplit(":", 1)[1]} if ":" in last else {}


def site_app_services(services: Any, history: Any = "", version: Any = "") -> Any:
    if not isinstance(services, list):
        return services  # the role's input check names what is wrong with it
    if version not in (None, ""):
        return [dict(s, tag=str(version)) if isinstance(s, Mapping) and "tag" in s else s for s in services]
    live = _live(history)
    if live is None:
        return services
    running = {s.get("name"): s.get("image", "") for s in live.get("services") or [] if isinstance(s, Mapping)}
    out = []
    for service in services:
        if not isinstance(service, Mapping) or service.get("name") not in running:
            out.append(service)
            continue
        pin = _pin(str(running[service["name"]]))
        if not pin:
            out.append(service)
            continue
        kept = {k: v for k, v in service.items() if k not in ("tag", "digest")}
        out.append({**kept, **pin})
    return out


class FilterModule:
    """anvil.hetzner site.yml filter."""

    def filters(self) -> dict[str, Any]:
        return {"site_app_services": site_app_services}
