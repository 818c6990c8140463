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
  - With O(timeout), a login that fails because the server is not up yet or its sshd restarts
    (refused, reset, timed out, closed before the banner) is tried again every O(delay) seconds
    until O(timeout) seconds have passed. A fresh server answers on its SSH port before cloud-init
    is done, and cloud-init restarts sshd once. A refused key or a changed host key is reported at
    once.
  - Runs on the controller (an action plugin); nothing is copied to the host.
author:
  - anvil.hetzner maintainers (@anvil-hetzner)
options:
  timeout:
    description:
      - For how many seconds a login that fails at the connection (not at the key) is tried again.
        V(0) tries once.
    type: int
    default: 0
  delay:
    description: Seconds between two tries.
    type: int
    default: 2
extends_documentation_fragment:
  - anvil.hetzner.read_only
"""

EXAMPLES = r"""
- name: Can the deploy user log in yet?
  anvil.hetzner.login_probe:
  register: deploy_login

- name: Can root log in? (a fresh server may still be booting, for up to two minutes)
  anvil.hetzner.login_probe:
    timeout: 120
  register: root_login
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
unanswered:
  description:
    - Whether the last try failed at the connection (the server is down or not up yet), not at the
      key or the host key.
  returned: always
  type: bool
attempts:
  description: How many logins were tried.
  returned: always
  type: int
  sample: 1
"""
