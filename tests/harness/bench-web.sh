#!/usr/bin/env bash
# Benchmark: the no-change run of the whole site.yml on a web host with every role (base, firewall,
# docker, caddy, node_exporter, app_deploy with its accessories, postgres_backup) beside Ansible's
# own floor on the same host (`make bench-web`).
#
# The host is `make demo`'s web-1 (made by make demo first when there is no demo environment), brought
# to this revision by one site.yml that is not measured. Side by side, ROUNDS rounds (default 3), alternating on the same host over the
# same SSH settings (pipelining, ControlPersist from ansible.cfg), without the profile_tasks callback:
#   - site.yml, no-change run (each round must report changed=0, or the run is not a no-change run);
#   - the floor: a play with fact gathering and a ping.
# Prints each round, the medians, the ratio site/floor (issue 22's target: <= 10) and the seconds
# (target: <= 30), the controller's CPU seconds for each, and the slowest tasks of the last run.
# Asserts nothing about time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
# make demo's environment: one of make demo, make clean, make bench-web at a time
hold_lock demo "make bench-web"
ROUNDS=${ROUNDS:-3}

LC_NAME=demo
LC_INV="$ROOT/inventories/sandbox"
LC_PORT=18480
LC_TOKEN=demo-sandbox-token
. "$ROOT/tests/harness/lifecycle.sh"

if [ ! -f "$LC_GEN/sandbox-state.json" ]; then
  log "bench-web: no demo environment yet; make demo first"
  tests/harness/demo.sh
fi

work=$(mktemp -d /tmp/anvil-bench-web.XXXXXX)
trap 'lc_sandbox_down; rm -rf "$work"' EXIT
cat >"$work/ping.yml" <<'YAML'
---
- name: Ansible's floor (facts and a ping)
  hosts: web
  gather_facts: true
  tasks:
    - name: Ping
      ansible.builtin.ping:
YAML
lc_sandbox_up

# timed STEP PLAYBOOK -> "wall controller-cpu" (seconds); the controller's CPU is that of
# ansible-playbook and every process it waited for (bash's `times`, children's user + system)
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  LC_PROFILE=0 lc_play "$1" "$VENV" -i "$LC_INV/$LC_NAME.hcloud.yml" "$2" >/dev/null 2>&1 || return 1
  t1=$(date +%s.%N)
  # `times` into a file, not a pipe: a pipe's left side is a forked shell whose children's times are 0
  times >"$work/times"
  sed -n 2p "$work/times" | python3 -c '
import re, sys
t0, t1 = float(sys.argv[1]), float(sys.argv[2])
cpu = sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", sys.stdin.read()))
print(f"{t1 - t0:.1f} {cpu:.1f}")' "$t0" "$t1"
}

# The demo's servers may have been made by an older revision: one site.yml first brings web-1 to what
# this revision writes (not measured), so every measured run is a no-change run.
lc_step "bench-web: site.yml once to bring web-1 to this revision (not measured)"
lc_play bench-web-converge "$VENV" -i "$LC_INV/$LC_NAME.hcloud.yml" "$ROOT/playbooks/site.yml"

declare -a site_wall site_cpu floor_wall floor_cpu
for round in $(seq 1 "$ROUNDS"); do
  lc_step "bench-web: round $round of $ROUNDS: site.yml (no-change), then the floor"
  read -r w c < <(timed "bench-web-site-$round" "$ROOT/playbooks/site.yml") \
    || die "site.yml failed: $LC_LOGS/bench-web-site-$round.log"
  changed=$(sed -n 's/.* changed=\([0-9]*\).*/\1/p' "$LC_LOGS/bench-web-site-$round.log" | awk '{s += $1} END {print s + 0}')
  [ "$changed" -eq 0 ] || die "site.yml changed $changed things in round $round: not a no-change run ($LC_LOGS/bench-web-site-$round.log)"
  site_wall+=("$w"); site_cpu+=("$c")
  read -r w c < <(timed "bench-web-floor-$round" "$work/ping.yml") || die "the ping play failed: $LC_LOGS/bench-web-floor-$round.log"
  floor_wall+=("$w"); floor_cpu+=("$c")
  printf '  round %s: site.yml %ss (controller CPU %ss), floor %ss (controller CPU %ss)\n' \
    "$round" "${site_wall[-1]}" "${site_cpu[-1]}" "${floor_wall[-1]}" "${floor_cpu[-1]}"
done

python3 - "${site_wall[*]}" "${site_cpu[*]}" "${floor_wall[*]}" "${floor_cpu[*]}" <<'PY'
import statistics, sys
sw, sc, fw, fc = ([float(x) for x in arg.split()] for arg in sys.argv[1:5])
site, floor = statistics.median(sw), statistics.median(fw)
print(f"\n{'web-1, medians of ' + str(len(sw)) + ' rounds':<44} {'wall':>8} {'ctrl CPU':>9}")
print(f"{'site.yml no-change (all seven roles)':<44} {site:>7.1f}s {statistics.median(sc):>8.1f}s")
print(f"{'floor (facts + ping)':<44} {floor:>7.1f}s {statistics.median(fc):>8.1f}s")
print(f"\nno-change site.yml / floor: {site / floor:.2f} (target <= 10); {site:.1f} s (target <= 30 s)")
PY
last="$LC_LOGS/bench-web-site-$ROUNDS.log"
grep -E '^[^ ].* : ok=' "$last" | sed 's/^/  recap: /'
printf '  %s "skipping" lines, %s "ok" lines\n' "$(grep -c '^skipping:' "$last" || true)" "$(grep -c '^ok:' "$last" || true)"
# the timed runs ran without profile_tasks (its cost per task would be in the numbers): one more
# no-change run with it, not timed, for the slowest tasks
lc_play bench-web-profile "$VENV" -i "$LC_INV/$LC_NAME.hcloud.yml" "$ROOT/playbooks/site.yml" 2>/dev/null
last="$LC_LOGS/bench-web-profile.log"
echo "the slowest tasks of a no-change run (profiled, not timed):"
grep -E -- '-{4,} [0-9.]+s$' "$last" | head -10 | sed 's/^/  /'
