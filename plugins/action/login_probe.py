# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Try to log in with the host's connection settings and report the outcome instead of failing."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """See plugins/modules/login_probe.py for the documentation."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        try:
            # The same connection (user, port, keys, ssh args) that every later task uses.
            rc, _out, err = self._connection.exec_command("true")
            ok, reason = rc == 0, to_text(err).strip()
        except AnsibleConnectionFailure as exc:
            ok, reason = False, to_text(exc).strip()
        finally:
            self._connection.close()
        lines = [line for line in reason.splitlines() if line.strip()]
        result.update(changed=False, login_ok=ok, reason="" if ok else (lines[-1] if lines else "no answer"))
        return result
