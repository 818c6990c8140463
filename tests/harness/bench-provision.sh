#!/usr/bin/env bash
# Benchmark of playbooks/provision.yml (see bench_provision.py): 1 server vs 10 servers, side by side
# in one run, rounds alternating (1, 10, 1, 10, ...), on the Hetzner API sandbox with the DockerBackend
# (real containers). Prints each run's wall time, the ratio 10/1 (issue 21's target: <= 3), the
# no-change run, teardown, create -> root SSH for one server (hcloud-python, median of samples) and
# the slowest tasks of the 10-server runs (ansible.posix.profile_tasks). Asserts nothing about time.
#
#   tests/harness/bench-provision.sh [--sizes 1,10] [--rounds 2] [--ssh-samples 5] [--port 0] ...
# The sandbox listens on 127.0.0.1 only (a free port unless --port); its project is unique to this
# run and removed on exit, whatever happened. BENCH_TIMEOUT (s, default 3000) bounds the whole run.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_engine
ensure_venv
ensure_controller_venv
ensure_images

PROJECT="bench-prov-$$-$(date +%s)"
WORK=$(mktemp -d /tmp/anvil-bench-provision.XXXXXX)
LOGS="$ROOT/.cache/logs/bench-provision"
rm -rf "$LOGS"
mkdir -p "$LOGS"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # the helper removes its project itself; this is for a helper that was killed
  timeout 180 "$VENV/bin/python" - "$PROJECT" "$WORK/state" <<'PY' || echo "cleanup of $PROJECT failed" >&2
import sys
sys.path.insert(0, "tests/sandbox")
from hcloud_sandbox.docker_backend import DockerBackend
backend = DockerBackend(state_dir=sys.argv[2])
backend.remove_project(sys.argv[1])
backend.close()
PY
  left=$(docker ps -a --filter "label=hcloud-sandbox.project=$PROJECT" --format '{{.Names}}')
  [ -z "$left" ] || echo "containers of $PROJECT still there: $left" >&2
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "benchmark of provision.yml (project $PROJECT, logs in $LOGS)"
# --foreground: the helper gets the signal itself (its finally removes the project); -k: then KILL
timeout --foreground -k 120 "${BENCH_TIMEOUT:-3000}" \
  "$VENV/bin/python" tests/harness/bench_provision.py --project "$PROJECT" --state-dir "$WORK" --log-dir "$LOGS" "$@"
