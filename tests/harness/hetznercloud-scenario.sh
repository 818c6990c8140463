#!/usr/bin/env bash
# The Molecule scenario molecule/hetznercloud, the way another repository would use it: Molecule's
# Hetzner Cloud driver (molecule-hetznercloud 2.x) creates a server, converges a role over SSH,
# verifies, destroys. Here "Hetzner" is the local API sandbox (tests/sandbox) with the docker
# backend, so the server is a systemd container on this machine, reached over SSH as root.
#
#   tests/harness/hetznercloud-scenario.sh [molecule sub-command]   (default: test)
#
# 1. .cache/venv-mhc (Python >= 3.12) from requirements-molecule-hcloud.txt (= requirements-controller.txt
#    + molecule + molecule-hetznercloud), rebuilt when either file changes;
# 2. the sandbox on 127.0.0.1:$MHC_SANDBOX_PORT with one empty project ($MHC_PROJECT, a fresh token);
# 3. `molecule test -s hetznercloud` with HCLOUD_TOKEN and HCLOUD_ENDPOINT pointed at it;
# 4. proof that nothing is left: no server, SSH key, volume, network, Primary IP in the API, and no
#    container of the project; then the sandbox stops and the project's Docker objects go.
# Prints each step's wall time. Exits non-zero when the scenario failed or something was left.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

# under .cache/: ignored by git, yamllint and ansible-lint (the driver package ships playbooks and templates)
MHC_VENV=${MHC_VENV:-$ROOT/.cache/venv-mhc}
MHC_REQUIREMENTS=$ROOT/requirements-molecule-hcloud.txt
MHC_PROJECT=${MHC_PROJECT:-mhc}
MHC_SANDBOX_PORT=${MHC_SANDBOX_PORT:-18471}
MHC_DIR=${MHC_DIR:-$ROOT/.cache/mhc-sandbox}
SANDBOX_STATE_DIR=$MHC_DIR/state
PID_FILE=$MHC_DIR/sandbox.pid
SANDBOX_LOG=$MHC_DIR/sandbox.log
LABEL=hcloud-sandbox.project=$MHC_PROJECT

start_all=$(date +%s)
declare -a names=() times=()
timed() {
  local name=$1 t0 rc=0; shift
  t0=$(date +%s)
  log "$name"
  "$@" || rc=$?
  names+=("$name"); times+=("$(( $(date +%s) - t0 ))")
  return $rc
}

# The venv: the controller's pins plus the driver's. Same shape as ensure_controller_venv.
ensure_mhc_venv() {
  local want have="" python
  want=$(cat "$CONTROLLER_REQUIREMENTS" "$MHC_REQUIREMENTS" | sha256sum | cut -d' ' -f1)
  [ -f "$MHC_VENV/.requirements.sha256" ] && have=$(cat "$MHC_VENV/.requirements.sha256")
  if [ "$want" != "$have" ] || [ ! -x "$MHC_VENV/bin/molecule" ]; then
    python=$(controller_python)
    log "creating the virtualenv $MHC_VENV ($("$python" -V)) from $(basename "$MHC_REQUIREMENTS")"
    rm -rf "$MHC_VENV"
    # (set -e does not act inside a function called by `timed ... ||`: every step says it)
    "$python" -m venv "$MHC_VENV" || return 1
    "$MHC_VENV/bin/pip" install -q --upgrade pip || return 1
    "$MHC_VENV/bin/pip" install -q -r "$MHC_REQUIREMENTS" || return 1
    echo "$want" >"$MHC_VENV/.requirements.sha256"
  fi
}

# The project's Docker objects (containers, networks, volumes) and host state, through the backend
# itself (standard library; root for the state directory's mounts). Only this project's.
remove_project() {
  HCLOUD_SANDBOX_STATE_DIR=$SANDBOX_STATE_DIR PYTHONPATH=$ROOT/tests/sandbox "$MHC_VENV/bin/python" -c '
import sys
from hcloud_sandbox.docker_backend import DockerBackend
backend = DockerBackend()
backend.remove_project(sys.argv[1])
backend.close()' "$MHC_PROJECT"
}

project_objects() {
  { docker ps -aq --filter "label=$LABEL"; docker network ls -q --filter "label=$LABEL"
    docker volume ls -q --filter "label=$LABEL"; } | wc -l
}

# GET one collection of the sandbox's API (loopback); prints its number of entries.
api_count() {
  "$MHC_VENV/bin/python" - "$HCLOUD_ENDPOINT/$1" "$HCLOUD_TOKEN" "$1" <<'EOF'
import json, sys, urllib.request
url, token, key = sys.argv[1:]
req = urllib.request.Request(url + "?per_page=50", headers={"Authorization": f"Bearer {token}"})
with urllib.request.urlopen(req, timeout=10) as answer:  # the sandbox on 127.0.0.1 only
    print(len(json.load(answer)[key.replace("-", "_")]))
EOF
}

start_sandbox() {
  mkdir -p "$MHC_DIR"
  if [ -f "$PID_FILE" ]; then
    log "stopping a sandbox left by an earlier run ($PID_FILE)"
    PYTHONPATH=$ROOT/tests/sandbox "$MHC_VENV/bin/python" -m hcloud_sandbox down --pid-file "$PID_FILE" || true
  fi
  if [ "$(project_objects)" -ne 0 ]; then
    log "removing Docker objects of project $MHC_PROJECT left by an earlier run"
    remove_project || return 1
  fi
  HCLOUD_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export HCLOUD_TOKEN
  rm -f "$SANDBOX_LOG"
  HCLOUD_ENDPOINT=$(HCLOUD_SANDBOX_STATE_DIR=$SANDBOX_STATE_DIR PYTHONPATH=$ROOT/tests/sandbox \
    "$MHC_VENV/bin/python" -m hcloud_sandbox up --backend docker --host 127.0.0.1 --port "$MHC_SANDBOX_PORT" \
      --project "$MHC_PROJECT:$HCLOUD_TOKEN:0:0" --daemon --pid-file "$PID_FILE" --log-file "$SANDBOX_LOG") || return 1
  export HCLOUD_ENDPOINT
  log "sandbox: $HCLOUD_ENDPOINT (project $MHC_PROJECT, log $SANDBOX_LOG)"
  sandbox_started=1
}

# Nothing of the scenario in the API, and no machine of the project (only its public network).
check_nothing_left() {
  local kind n left=0
  for kind in servers ssh_keys volumes networks primary_ips load_balancers; do
    n=$(api_count "$kind") || return 1
    [ "$n" -eq 0 ] || { echo "left in the API: $n $kind" >&2; left=1; }
  done
  n=$(docker ps -aq --filter "label=$LABEL" | wc -l)
  [ "$n" -eq 0 ] || { echo "left: $n containers of project $MHC_PROJECT:" >&2
                      docker ps -a --filter "label=$LABEL" --format '  {{.Names}} {{.Status}}' >&2; left=1; }
  # the driver's calls reached this sandbox (HCLOUD_ENDPOINT honoured): one server made, one deleted
  "$MHC_VENV/bin/python" - "${HCLOUD_ENDPOINT%/v1}/_sandbox/requests" <<'EOF' || left=1
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:  # the sandbox on 127.0.0.1 only
    by_path = json.load(answer)["by_path"]
writes = {k: v for k, v in sorted(by_path.items()) if not k.startswith("GET ")}
print("API writes of the run:", json.dumps(writes))
for call in ("POST /v1/servers", "DELETE /v1/servers/{id}", "POST /v1/ssh_keys", "DELETE /v1/ssh_keys/{id}"):
    if by_path.get(call) != 1:
        sys.exit(f"expected exactly one {call!r}, the sandbox saw {by_path.get(call, 0)}")
EOF
  [ $left -eq 0 ] && echo "nothing left: no servers, ssh_keys, volumes, networks, primary_ips, load_balancers; no hcsb-$MHC_PROJECT- containers"
  return $left
}

stop_sandbox() {
  [ "${sandbox_started:-0}" -eq 1 ] || return 0
  sandbox_started=0
  PYTHONPATH=$ROOT/tests/sandbox "$MHC_VENV/bin/python" -m hcloud_sandbox down --pid-file "$PID_FILE" || true
  remove_project || return 1
  local n
  n=$(project_objects)
  [ "$n" -eq 0 ] || { echo "left after removing project $MHC_PROJECT: $n Docker objects" >&2; return 1; }
  echo "sandbox stopped; project $MHC_PROJECT has no Docker object left"
}

summary() {
  stop_sandbox || true
  printf '\n%-34s %8s\n' "step" "seconds"
  for i in "${!names[@]}"; do printf '%-34s %8s\n' "${names[$i]}" "${times[$i]}"; done
  printf '%-34s %8s\n' "total" "$(( $(date +%s) - start_all ))"
}
trap summary EXIT

rc=0
timed "setup: docker engine" ensure_engine
timed "setup: virtualenv .cache/venv-mhc" ensure_mhc_venv
timed "setup: server image (Debian 12)" bash -c '"$0"/tests/images/build.sh 12 && "$0"/tests/images/build-server.sh 12' "$ROOT"
export PATH="$MHC_VENV/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
timed "sandbox: start" start_sandbox
timed "molecule ${1:-test} -s hetznercloud" molecule "${1:-test}" -s hetznercloud || rc=$?
timed "check: nothing left in the API" check_nothing_left || rc=1
timed "sandbox: stop, remove project" stop_sandbox || rc=1
exit $rc
