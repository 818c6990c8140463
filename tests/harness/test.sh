#!/usr/bin/env bash
# The full test suite: lint, Python unit tests, packaging, then every Molecule scenario.
# Usage: tests/harness/test.sh [scenario ...]   (default: every scenario under molecule/)
# Prints each step's wall time at the end; exits non-zero when any step failed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

start_all=$(date +%s)
declare -a names=() times=() results=()
failed=0

step() {
  local name=$1; shift
  local t0 rc
  t0=$(date +%s)
  log "$name"
  set +e
  "$@"
  rc=$?
  set -e
  names+=("$name"); times+=("$(( $(date +%s) - t0 ))"); results+=("$([ $rc -eq 0 ] && echo ok || echo FAILED)")
  [ $rc -eq 0 ] || failed=1
  return 0
}

summary() {
  printf '\n%-34s %8s  %s\n' "step" "seconds" "result"
  for i in "${!names[@]}"; do
    printf '%-34s %8s  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
  done
  printf '%-34s %8s\n' "total" "$(( $(date +%s) - start_all ))"
}
trap summary EXIT

step "setup: docker engine" ensure_engine
step "setup: virtualenv" ensure_venv
export PATH="$VENV/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
step "setup: test images" ensure_images
[ $failed -eq 0 ] || exit 1

step "lint: yamllint" yamllint --strict .
step "lint: ansible-lint" ansible-lint --offline
step "lint: changelog fragments" antsibull-changelog lint
step "sanity: ansible-test" tests/harness/sanity.sh
step "unit + packaging: pytest" pytest -q tests

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for f in molecule/*/molecule.yml; do
    d=$(dirname "$f")
    # A scenario still being built carries a WIP file saying why; run it by name to work on it.
    if [ -f "$d/WIP" ]; then log "skipping molecule scenario $(basename "$d") (work in progress: $(head -1 "$d/WIP"))"; continue; fi
    scenarios+=("$(basename "$d")")
  done
fi
for s in "${scenarios[@]}"; do
  # what the secret guard (tests/callback_plugins/secret_guard.py) records is this run's only
  rm -f "$ROOT/.cache/secret-guard/$s".{runs,leaks}
  step "molecule: $s" molecule test -s "$s"
  step "secrets in output: $s" python3 tests/harness/secret_guard_report.py "$s"
done

exit $failed
