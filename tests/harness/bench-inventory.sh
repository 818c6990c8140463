#!/usr/bin/env bash
# Benchmark of the hcloud inventory (see bench-inventory.py): ours vs hetzner.hcloud vs a static
# file, 100 to 10 000 servers, 0 and 50 ms API latency. Arguments go to bench-inventory.py.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
exec "$VENV/bin/python" tests/harness/bench-inventory.py "$@"
