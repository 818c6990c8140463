#!/usr/bin/python
# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the login_probe action (plugins/action/login_probe.py); nothing runs on the host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: login_probe
short_description: Find out whether the configured user can log in, without an error when it cannot
version_added: 0.2.0
description:
  - Opens the host's connection with its current settings (C(ansible_user), port, keys) and runs
    C(true). Reports RV(login_ok) instead of failing or printing an unreachable error, so a play can
    choose another user (the bootstrap path of C(anvil.hetzner.site)).
  - Runs on the controller (an action plugin); nothing is copied to the host.
author:
  - anvil.hetzner maintainers (@anvil-hetzner)
options: {}
extends_documentation_fragment:
  - anvil.hetzner.read_only
"""

EXAMPLES = r"""
- name: Can the deploy user log in yet?
  anvil.hetzner.login_probe:
  register: deploy_login
"""

RETURN = r"""
login_ok:
  description: Whether the login worked.
  returned: always
  type: bool
reason:
  description: Why not (the last line of the connection's error), empty when it worked.
  returned: always
  type: str
  sample: "deploy@203.0.113.5: Permission denied (publickey)."
"""
