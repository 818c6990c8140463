#!/usr/bin/env bash
# The provisioning controller: a virtualenv on Python >= 3.12 with the pinned ansible 14.x
# (hetzner.hcloud 6.x) from requirements-controller.txt, beside the suite's .venv (Python 3.11,
# ansible 12.x, whose hetzner.hcloud 5.4.0 server modules crash on today's API: no `datacenter`).
# lib.sh sources it; `ensure_controller_venv` builds the venv and changes no PATH (the suite keeps
# .venv first): run "$CONTROLLER_VENV/bin/ansible-playbook" where hetzner.hcloud 6 is needed.
set -euo pipefail

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CONTROLLER_VENV=${CONTROLLER_VENV:-$ROOT/.venv-controller}
CONTROLLER_REQUIREMENTS=${CONTROLLER_REQUIREMENTS:-$ROOT/requirements-controller.txt}

# An interpreter of at least Python 3.12: $CONTROLLER_PYTHON, else pyenv's newest 3.12 (the version
# requirements-controller.txt was frozen and tested with), then 3.13, under pyenv's root (the interpreter itself, not pyenv's shim, which follows the local .python-version), else
# python3.13 / python3.12 / python3 on PATH. Prints its path; fails when there is none.
controller_python() {
  local candidate root
  local -a candidates=()
  [ -n "${CONTROLLER_PYTHON:-}" ] && candidates+=("$CONTROLLER_PYTHON")
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for candidate in $(ls -d "$root"/versions/3.12* 2>/dev/null | sort -rV) \
                   $(ls -d "$root"/versions/3.13* 2>/dev/null | sort -rV); do
    candidates+=("$candidate/bin/python3")
  done
  candidates+=(python3.13 python3.12 python3)
  for candidate in "${candidates[@]}"; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "no Python >= 3.12 found (set CONTROLLER_PYTHON, or install one: pyenv install 3.12)" >&2
  return 1
}

# The controller virtualenv; rebuilt when requirements-controller.txt changes. Same shape as
# lib.sh's ensure_venv: a hash stamp, a fresh venv on any change.
ensure_controller_venv() {
  local want have="" python
  want=$(sha256sum "$CONTROLLER_REQUIREMENTS" | cut -d' ' -f1)
  [ -f "$CONTROLLER_VENV/.requirements.sha256" ] && have=$(cat "$CONTROLLER_VENV/.requirements.sha256")
  if [ "$want" != "$have" ] || [ ! -x "$CONTROLLER_VENV/bin/ansible-playbook" ]; then
    python=$(controller_python)
    printf '\033[1m==> %s\033[0m\n' "creating the controller virtualenv $CONTROLLER_VENV ($("$python" -V)) from $(basename "$CONTROLLER_REQUIREMENTS")" >&2
    rm -rf "$CONTROLLER_VENV"
    "$python" -m venv "$CONTROLLER_VENV"
    "$CONTROLLER_VENV/bin/pip" install -q --upgrade pip
    "$CONTROLLER_VENV/bin/pip" install -q -r "$CONTROLLER_REQUIREMENTS"
    echo "$want" >"$CONTROLLER_VENV/.requirements.sha256"
  fi
}
