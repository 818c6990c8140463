#!/usr/bin/env bash
# The full test suite: lint, Python unit tests, packaging, then every Molecule scenario and the
# end-to-end test (e2e).
# Usage: tests/harness/test.sh [scenario ...]   (default: e2e and every scenario under molecule/)
# Prints each step's wall time at the end; exits non-zero when any step failed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
# one make test at a time on this machine: the lanes share fixed scenario, network and port names
hold_lock test "make test"

start_all=$(date +%s)
# free disk at the start and the end (a nearly full disk fails Docker and the sandbox's volumes in
# ways that look like anything else): in the summary
disk_free() { df -h --output=avail,size "${1:-/}" 2>/dev/null | tail -1 | awk '{print $1 " free of " $2}'; }
disk_at_start=$(disk_free /)
declare -a names=() times=() results=()
failed=0

step() {
  local name=$1; shift
  local t0 rc
  t0=$(date +%s)
  log "$name"
  set +e
  "$@" &
  wait $!
  rc=$?
  set -e
  names+=("$name"); times+=("$(( $(date +%s) - t0 ))"); results+=("$([ $rc -eq 0 ] && echo ok || echo FAILED)")
  [ $rc -eq 0 ] || failed=1
  return 0
}

# The table, then what failed and why (tests/harness/lane_cause.py): CI keeps only the end of the
# output, so these come last, each lane's row with its longest steps (tests/harness/lane_profile.py;
# all of them above the table).
summary() {
  local i s
  if [ ${#ran_lanes[@]} -gt 0 ]; then
    printf '\nseconds per step of each lane:\n'
    for s in "${ran_lanes[@]}"; do
      printf '  %s: %s\n' "$s" "$(python3 "$ROOT/tests/harness/lane_profile.py" --oneline "$logs/$s.log" | cut -c1-400)"
    done
  fi
  printf '\n%-34s %8s  %s\n' "step" "seconds" "result"
  for i in "${!names[@]}"; do
    printf '%-34s %8s  %s\n' "${names[$i]}" "${times[$i]}" "${results[$i]}"
  done
  printf '%-34s %8s\n' "total" "$(( $(date +%s) - start_all ))"
  printf 'disk (/): %s at the start, %s at the end\n' "$disk_at_start" "$(disk_free /)"
  local -a bad=()
  for i in "${!names[@]}"; do [[ "${results[$i]}" != ok* || "${results[$i]}" == *SECRETS* ]] && bad+=("${names[$i]}"); done
  [ ${#bad[@]} -eq 0 ] || printf 'FAILED: %s\n' "$(IFS=,; echo "${bad[*]}" | sed 's/,/, /g')"
  for s in "${failed_lanes[@]}"; do
    python3 "$ROOT/tests/harness/lane_cause.py" "$logs/$s.log" 240 | sed "s/^/why $s: /"
  done
}
declare -a failed_lanes=() ran_lanes=()
trap summary EXIT

step "setup: docker engine" ensure_engine
step "setup: virtualenv" ensure_venv
step "setup: controller virtualenv" ensure_controller_venv
export PATH="$VENV/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
step "setup: test images" ensure_images
[ $failed -eq 0 ] || exit 1

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  # longest first, so that the lanes end together (times of a fresh-clone run: CONTRIBUTING.md)
  for s in app_deploy postgres_backup monitoring node_exporter firewall docker base caddy hetznercloud; do
    [ -f "molecule/$s/molecule.yml" ] && scenarios+=("$s")
  done
  for f in molecule/*/molecule.yml; do
    d=$(dirname "$f")
    s=$(basename "$d")
    # A scenario still being built carries a WIP file saying why; run it by name to work on it.
    if [ -f "$d/WIP" ]; then log "skipping molecule scenario $s (work in progress: $(head -1 "$d/WIP"))"; continue; fi
    [[ " ${scenarios[*]} " == *" $s "* ]] || scenarios+=("$s")
  done
  for i in "${!scenarios[@]}"; do
    [ -f "molecule/${scenarios[$i]}/WIP" ] && unset 'scenarios[i]'
  done
  scenarios=("${scenarios[@]}")
  # the end-to-end test (tests/harness/e2e.sh: provision, site, deploy under traffic, backup, drill,
  # teardown on the sandbox's machines) is a lane like a scenario, first: it takes longest
  scenarios=(e2e "${scenarios[@]}")
fi

# Scenarios run in ANVIL_TEST_JOBS lanes at once (default 2: each scenario mostly waits on apt,
# systemd and the network, so two share 2 cores well). Every scenario has its own containers,
# Docker network and subnet. A lane's output goes to .cache/logs/<scenario>.log (its end is
# printed when the scenario fails), so parallel runs never interleave on the screen.
jobs=${ANVIL_TEST_JOBS:-2}
logs="$ROOT/.cache/logs"
mkdir -p "$logs"
run_scenario() {
  local s=$1 t0 rc
  t0=$(date +%s)
  # what the secret guard (tests/callback_plugins/secret_guard.py) records is this run's only
  rm -f "$ROOT/.cache/secret-guard/$s".{runs,leaks}
  set +e
  # hetznercloud: the molecule-hetznercloud driver against the sandbox, with its own venv and sandbox;
  # e2e: the end-to-end test
  case $s in
    hetznercloud) tests/harness/hetznercloud-scenario.sh ;;
    e2e) tests/harness/e2e.sh ;;
    # COLUMNS: Molecule folds its framed output at the terminal's width (80 without one)
    *) COLUMNS=240 molecule test -s "$s" ;;
  esac >"$logs/$s.log" 2>&1
  rc=$?
  set -e
  echo "$rc $(( $(date +%s) - t0 ))" >"$logs/$s.result"
}
run_lanes() {
  local s
  for s in "${scenarios[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    log "molecule: $s (log: .cache/logs/$s.log)"
    run_scenario "$s" &
  done
  wait || true
}
for s in "${scenarios[@]}"; do rm -f "$logs/$s.result" "$logs/$s.log"; done

# The lanes start now and the checks below run beside them: lint, sanity and pytest keep about one
# core busy, the lanes leave about that much idle while they wait on apt and systemd.
run_lanes &
lanes=$!
# What was running when the run was stopped from outside (CI keeps only the end of the output):
# pytest's test in progress (tests/conftest.py writes .cache/logs/pytest-progress.log) and each
# lane, finished or still at work (its last task).
stopped_report() {
  local s now last
  now=$(date +%s)
  if [ -f "$logs/pytest-progress.log" ]; then
    python3 - "$logs/pytest-progress.log" "$now" <<'PY' || true
import sys
running = {}
for line in open(sys.argv[1], encoding="utf-8"):
    when, what, nodeid = line.rstrip("\n").split(" ", 2)
    if what == "start":
        running[nodeid] = int(when)
    else:
        running.pop(nodeid, None)
for nodeid, when in running.items():
    print(f"pytest was running {nodeid} for {int(sys.argv[2]) - when} s")
PY
  fi
  for s in "${scenarios[@]}"; do
    if [ -f "$logs/$s.result" ]; then
      printf 'lane %s: finished: %s\n' "$s" "$(awk '{print ($1 == 0 ? "ok" : "FAILED") ", " $2 " s"}' "$logs/$s.result")"
      [ "$(cut -d' ' -f1 "$logs/$s.result")" = 0 ] ||
        python3 "$ROOT/tests/harness/lane_cause.py" "$logs/$s.log" 240 | sed "s/^/why $s: /"
    elif [ -f "$logs/$s.log" ]; then
      last=$(grep -aE 'TASK \[|==>|^step ' "$logs/$s.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200)
      printf 'lane %s: still running (log %s s old), at: %s\n' "$s" "$(( now - $(stat -c %Y "$logs/$s.log") ))" "$last"
    else
      printf 'lane %s: not started\n' "$s"
    fi
  done
}
# Ctrl-C, or a TERM from CI's time limit, stops everything this script started: the lanes and the
# running check get TERM (e2e.sh then removes its machines; Molecule's containers go at the next
# run's first destroy). step() waits with `wait`, so the trap runs at once, not after the step.
tree() { local p; for p in $(pgrep -P "$1" 2>/dev/null); do tree "$p"; done; echo "$1"; }
stop_all() {
  trap - INT TERM
  log "stopping the lanes and the running step"
  stopped_report
  # shellcheck disable=SC2046 # the pids, one word each
  kill -TERM $(tree $$ | grep -vx "$$") 2>/dev/null || true
  wait 2>/dev/null || true
  exit 130
}
trap stop_all INT TERM
step "lint: yamllint" yamllint --strict .
step "lint: ansible-lint" ansible-lint --offline
step "lint: changelog fragments" antsibull-changelog lint
step "sanity: ansible-test" tests/harness/sanity.sh
# Bounded three ways: each test at 600 s (tests/conftest.py: it fails with its stack), a stack dump
# of every thread for a test still running at 900 s (one stuck where a signal cannot reach it), and
# the whole step at ANVIL_PYTEST_SECONDS (a TERM, which tests/conftest.py makes an interrupt: pytest
# reports where it stood, the run goes on).
rm -f "$logs/pytest-progress.log"
ANVIL_PYTEST_PROGRESS="$logs/pytest-progress.log" step "unit + packaging: pytest" \
  timeout -k 60 "${ANVIL_PYTEST_SECONDS:-3600}" pytest -q --durations=12 -o faulthandler_timeout=900 tests
wait "$lanes" || true
for s in "${scenarios[@]}"; do
  read -r rc secs <"$logs/$s.result" 2>/dev/null || { rc=1; secs=0; }
  ran_lanes+=("$s")
  if [ "$rc" -ne 0 ]; then
    failed=1
    failed_lanes+=("$s")
    log "molecule: $s FAILED; the end of its output (all of it: .cache/logs/$s.log):"
    tail -n 300 "$logs/$s.log"
  fi
  # the secret guard's verdict goes in the lane's row: "ok, no secret shown" or what leaked
  guard=$(python3 tests/harness/secret_guard_report.py "$s" 2>&1) && grc=0 || grc=$?
  [ "$grc" -eq 0 ] || { failed=1; printf '%s\n' "$guard" >&2; }
  names+=("molecule: $s"); times+=("$secs")
  results+=("$([ "$rc" -eq 0 ] && echo ok || echo FAILED)$([ "$grc" -eq 0 ] && echo ", no secret shown" || echo ", SECRETS SHOWN or not inspected") ($(python3 tests/harness/lane_profile.py --short "$logs/$s.log" | cut -c1-120))")
done

exit $failed
