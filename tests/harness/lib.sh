#!/usr/bin/env bash
# Shared helpers of the test harness: a Docker engine, the virtualenv and the test images.
# Every function is idempotent and fast when its work is already done.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31merror: %s\033[0m\n' "$*" >&2; exit 1; }

# hold_lock NAME WHAT: this run holds the machine-wide lock NAME (demo, e2e, test, ...) until it has
# ended (this script and what it started in its session: a step it left running when it was killed
# keeps the lock), or stops here with who holds it (WHAT of the holder, its pid, since when) before
# it changes anything. A run that just ended is waited for ANVIL_LOCK_WAIT seconds (default 5). The
# lock is held by tests/harness/lock.py beside this script; daemons in a session of their own
# (dockerd, the sandbox, ssh's masters) do not keep it. One directory for every checkout and user on
# this machine (they share its engine and ports): ANVIL_LOCK_DIR, default /tmp/anvil-hetzner-locks.
# A script that a holder runs (bench-web's make demo) has the lock already (ANVIL_LOCKS_HELD).
hold_lock() {
  local name=$1 what=$2 answer="" fd dir=${ANVIL_LOCK_DIR:-/tmp/anvil-hetzner-locks}
  case " ${ANVIL_LOCKS_HELD:-} " in *" $name "*) return 0 ;; esac
  exec {fd}< <(exec python3 "$ROOT/tests/harness/lock.py" "$dir/$name.lock" "$$" "$what" "${ANVIL_LOCK_WAIT:-5}" </dev/null)
  read -r answer <&"$fd" || true
  exec {fd}<&-
  case $answer in
    locked) export ANVIL_LOCKS_HELD="${ANVIL_LOCKS_HELD:+$ANVIL_LOCKS_HELD }$name" ;;
    busy\ *) die "$what: not started, nothing was changed: ${answer#busy } is using the same environment ($name); wait for that run to end, or stop it (lock: $dir/$name.lock)" ;;
    *) die "$what: could not take the lock $dir/$name.lock (tests/harness/lock.py failed)" ;;
  esac
}

# apt-get install, as root or through sudo.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get -o Acquire::Retries=5 update -qq
  # NEEDRESTART_SUSPEND: needrestart's apt hook (on some machines) would look for services to restart
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 ${sudo:+$sudo -E} apt-get -o Acquire::Retries=5 install -y -qq "$@" >/dev/null
}

# A Docker engine that answers. Installs Debian's docker.io when dockerd is missing and starts it
# in the background when no engine runs (these machines have no systemd).
ensure_engine() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing Debian's docker.io (no Docker engine on this machine)"
    apt_install docker.io
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd in the background (log: /var/log/dockerd.log)"
    # in a session of its own: a daemon, not part of the run that holds a harness lock (hold_lock),
    # and outside the terminal's foreground group (a Ctrl-C of this run is not sent to it)
    (setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &)
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  docker info >/dev/null 2>&1 || { echo "the Docker engine did not start; see /var/log/dockerd.log" >&2; return 1; }
}

# The virtualenv with the pinned tools; rebuilt when requirements-dev.txt changes.
ensure_venv() {
  local want have=""
  want=$(sha256sum "$ROOT/requirements-dev.txt" | cut -d' ' -f1)
  [ -f "$VENV/.requirements.sha256" ] && have=$(cat "$VENV/.requirements.sha256")
  if [ "$want" != "$have" ] || [ ! -x "$VENV/bin/ansible-playbook" ]; then
    log "creating the virtualenv $VENV from requirements-dev.txt"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r "$ROOT/requirements-dev.txt"
    echo "$want" >"$VENV/.requirements.sha256"
  fi
  export PATH="$VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
}

# The machine's own tools the harness uses: debootstrap (the images), age (the operator's backup
# identity in make demo and the e2e) and openssl (the e2e's sudo password hash), in one apt run
# before any lane starts (two apt runs at once would fight over dpkg's lock).
ensure_host_tools() {
  local -a missing=()
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v age-keygen >/dev/null 2>&1 || missing+=(age)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] || { log "installing ${missing[*]}"; apt_install "${missing[@]}"; }
}

# Debian 12 and 13 systemd images, built with debootstrap when missing or when the recipe changed.
ensure_images() {
  ensure_host_tools
  "$ROOT/tests/images/build.sh" "$@"
  "$ROOT/tests/images/build-prometheus.sh"
  # the sandbox's servers (hcloud_sandbox.docker_backend): the Debian images with cloud-init
  "$ROOT/tests/images/build-server.sh"
}

# the provisioning controller (Python >= 3.12, hetzner.hcloud 6): ensure_controller_venv
. "$ROOT/tests/harness/controller.sh"
