#!/usr/bin/env bash
# Benchmark of playbooks/site.yml on the Hetzner API sandbox's machines (`make bench-site`), measured
# side by side in one run:
#   - site.yml on 1 server vs on N servers (default 10; forks 20 from ansible.cfg): the first run
#     (root bootstrap, every package installed) and the no-change run, and their ratios N/1
#     (issue 22's target: <= 2 for N = 10);
#   - the no-change run of one server beside Ansible's own floor on the same host: a ping play with
#     fact gathering over the same SSH settings (pipelining, ControlPersist) - the ratio (target
#     <= 10) and the seconds (target <= 30).
# The servers are labelled role=docker (site.yml gives them base, firewall, docker, node_exporter);
# all N share this machine's cores, so the first-run ratio also measures apt and dpkg competing for
# 2 CPUs, which N real servers do not. Each size is provisioned from an empty project and torn down
# after it; the project is removed on exit whatever happened. Asserts nothing about time.
#
#   tests/harness/bench-site.sh [N]          (every playbook is bounded by lifecycle.sh's lc_play)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

N=${1:-10}
LC_NAME=bench
LC_INV="$ROOT/.cache/bench-site/inventory"
LC_PORT=${ANVIL_BENCH_PORT:-18484}
LC_TOKEN=bench-sandbox-token
. "$ROOT/tests/harness/lifecycle.sh"

remove_project() { lc_remove_machines "$LC_NAME" "$LC_GEN/machines"; }
finish() {
  local rc=$?
  trap - EXIT
  lc_sandbox_down
  remove_project
  rm -rf "$ROOT/.cache/bench-site"
  exit "$rc"
}

# The inventory: the sandbox's connection settings; N servers with role docker.
environment() { # COUNT
  python3 - "$1" "$LC_GEN" >"$LC_INV/environment.yml" <<'PY'
import json, sys
count, gen = int(sys.argv[1]), sys.argv[2]
print(json.dumps({"hcloud_environment": {
    "name": "bench", "location": "fsn1", "server_type": "cx22", "image": "debian-12",
    "ssh_keys": [{"name": "bench-admin", "public_key": open(f"{gen}/id_ed25519.pub").read().strip()}],
    "network": {"name": "bench-net", "ip_range": "10.2.0.0/16", "subnets": ["10.2.1.0/24"]},
    "firewalls": {"docker": [{"port": 22, "source_ips": ["198.18.0.0/15"], "description": "ssh from the controller"}]},
    "servers": [{"name": f"bench-{i}", "role": "docker"} for i in range(1, count + 1)]}}))
PY
}

rm -rf "$ROOT/.cache/bench-site"
mkdir -p "$LC_INV/group_vars"
cp "$ROOT/inventories/sandbox/group_vars/all.yml" "$LC_INV/group_vars/all.yml"
sed -i 's#10\.0\.0\.0/16#10.2.0.0/16#g' "$LC_INV/group_vars/all.yml"
sed -e "s#127.0.0.1:18480#127.0.0.1:$LC_PORT#" -e "s/demo-sandbox-token/$LC_TOKEN/" -e 's/env=demo,/env=bench,/' \
  "$ROOT/inventories/sandbox/demo.hcloud.yml" >"$LC_INV/bench.hcloud.yml"
cat >"$LC_INV/ping.yml" <<'YAML'
---
- name: Ansible's floor (facts and a ping)
  hosts: all
  gather_facts: true
  tasks:
    - name: Ping
      ansible.builtin.ping:
YAML

trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
lc_setup
lc_sandbox_up

timed() { # STEP ARGS... -> seconds on stdout
  local t0
  t0=$(date +%s.%N)
  lc_play "$@" >/dev/null 2>&1 || return 1
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)"
}

declare -A first again floor
for size in 1 "$N"; do
  lc_step "bench-site: $size server(s): provision"
  environment "$size"
  lc_play "provision-$size" "$ROOT/.venv-controller" -i localhost, -e "@$LC_INV/environment.yml" "$ROOT/playbooks/provision.yml"
  rm -f "$LC_GEN/known_hosts"
  lc_step "bench-site: $size server(s): site.yml, first run"
  first[$size]=$(timed "site-$size" "$VENV" -i "$LC_INV/bench.hcloud.yml" "$ROOT/playbooks/site.yml") \
    || die "site.yml failed on $size server(s): $LC_LOGS/site-$size.log"
  lc_step "bench-site: $size server(s): site.yml, no-change run; the ping floor"
  again[$size]=$(timed "site-again-$size" "$VENV" -i "$LC_INV/bench.hcloud.yml" "$ROOT/playbooks/site.yml") \
    || die "the second site.yml failed on $size server(s): $LC_LOGS/site-again-$size.log"
  floor[$size]=$(timed "floor-$size" "$VENV" -i "$LC_INV/bench.hcloud.yml" "$LC_INV/ping.yml") \
    || die "the ping play failed: $LC_LOGS/floor-$size.log"
  grep -E '^[^ ].* : ok=' "$LC_LOGS/site-again-$size.log" | sed 's/^/      /' >&2
  lc_step "bench-site: $size server(s): teardown"
  lc_play "teardown-$size" "$ROOT/.venv-controller" -i localhost, -e "@$LC_INV/environment.yml" \
    -e teardown_confirm=bench "$ROOT/playbooks/teardown.yml"
done

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
printf '\n%-46s %10s %10s %8s\n' "site.yml (roles base, firewall, docker, node_exporter)" "1 server" "$N servers" "$N/1"
printf '%-46s %9ss %9ss %8s\n' "first run (bootstrap as root, installs)" "${first[1]}" "${first[$N]}" "$(ratio "${first[$N]}" "${first[1]}")"
printf '%-46s %9ss %9ss %8s\n' "no-change run" "${again[1]}" "${again[$N]}" "$(ratio "${again[$N]}" "${again[1]}")"
printf '%-46s %9ss %9ss %8s\n' "ping floor (facts + ping)" "${floor[1]}" "${floor[$N]}" "$(ratio "${floor[$N]}" "${floor[1]}")"
printf '\nno-change run of one server / its floor: %s (target <= 10; %s s, target <= 30 s)\n' \
  "$(ratio "${again[1]}" "${floor[1]}")" "${again[1]}"
printf 'the slowest tasks of the %s-server no-change run:\n' "$N"
grep -E -- '-{4,} [0-9.]+s$' "$LC_LOGS/site-again-$N.log" | head -8 | sed 's/^/  /'
