# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Try to log in with the host's connection settings and report the outcome instead of failing."""

from __future__ import annotations

import re
import time
from typing import Any

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

# What a server says while it boots or while its sshd restarts (cloud-init restarts it once on a
# fresh server, after the SSH port already answered): tried again until the timeout. Anything else
# (a refused key, a changed host key, a name that does not resolve) is the answer at once.
RETRIED = re.compile(
    r"Connection refused|Connection reset|Connection timed out|Operation timed out|kex_exchange_identification"
    r"|Connection closed by|banner exchange|No route to host|Network is unreachable|Broken pipe",
    re.IGNORECASE,
)

ARGUMENT_SPEC = {
    "timeout": {"type": "int", "default": 0},
    "delay": {"type": "int", "default": 2},
}


def retried(reason: str) -> bool:
    """Whether a failed login is worth another try: the server is not up yet, or sshd restarts."""
    return bool(RETRIED.search(reason))


class ActionModule(ActionBase):
    """See plugins/modules/login_probe.py for the documentation."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["timeout"] < 0 or args["delay"] < 1:
            result.update(failed=True, msg="anvil.hetzner.login_probe: timeout must be 0 or more, delay 1 or more (seconds)")
            return result
        deadline = time.monotonic() + args["timeout"]
        attempts = 0
        while True:
            attempts += 1
            ok, reason = self._try()
            if ok or not retried(reason) or time.monotonic() + args["delay"] > deadline:
                break
            time.sleep(args["delay"])
        lines = [line for line in reason.splitlines() if line.strip()]
        result.update(changed=False, login_ok=ok, attempts=attempts, unanswered=not ok and retried(reason),
                      reason="" if ok else (lines[-1] if lines else "no answer"))
        return result

    def _try(self) -> tuple[bool, str]:
        try:
            # The same connection (user, port, keys, ssh args) that every later task uses.
            rc, _out, err = self._connection.exec_command("true")
            return rc == 0, to_text(err).strip()
        except AnsibleConnectionFailure as exc:
            return False, to_text(exc).strip()
        finally:
            self._connection.close()
