#!/usr/bin/env bash
# `make clean`: tear down what `make demo` made (teardown.yml through the sandbox, which starts
# for it and stops after), remove the machines of any interrupted demo or e2e run, then the
# generated files and caches. Leaves nothing running.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
# not under a run that is still using what this removes: the demo (make demo, make bench-web), the
# e2e's machines, .cache (make test)
hold_lock demo "make clean"
hold_lock e2e "make clean"
hold_lock test "make clean"


gen="$ROOT/inventories/sandbox/generated"
LC_NAME=demo LC_INV="$ROOT/inventories/sandbox" LC_PORT=18480 LC_TOKEN=demo-sandbox-token
. "$ROOT/tests/harness/lifecycle.sh"
if [ -f "$gen/sandbox-state.json" ] && [ -x "$ROOT/.venv-controller/bin/ansible-playbook" ] && docker info >/dev/null 2>&1; then
  log "teardown.yml of the demo environment"
  lc_sandbox_up
  trap 'lc_sandbox_down' EXIT
  lc_teardown || log "teardown.yml failed; removing the demo's machines directly"
  lc_sandbox_down
fi
lc_remove_machines demo "$gen/machines"
lc_remove_machines e2e "$ROOT/.cache/e2e/inventory/generated/machines"
# the demo container of earlier versions of make demo
docker rm -f anvil-demo >/dev/null 2>&1 || true
rm -rf "$ROOT/.cache" "$gen"
log "clean: nothing of the demo is left"
