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
hold_lock bench-site "make bench-site"

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

# CPU seconds used so far: the whole machine (/proc/stat: user, nice, system, irq, softirq, steal) and
# the project's servers (their containers' cpuacct cgroups; cgroup v1 as the engine runs here, v2
# beside it)
cpu_now() {
  local ids
  ids=$(docker ps -q --no-trunc --filter "label=hcloud-sandbox.project=$LC_NAME" --filter label=hcloud-sandbox.kind=server)
  python3 - $ids <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
fields = open("/proc/stat").readline().split()[1:]
machine = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7)) / hz
servers = 0.0
for cid in sys.argv[1:]:
    for path, scale, key in ((f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e9, None),
                             (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e6, "usage_usec")):
        try:
            text = open(path).read()
        except OSError:
            continue
        value = int(text.split()[0]) if key is None else int(dict(l.split() for l in text.splitlines())[key])
        servers += value / scale
        break
print(f"{machine:.2f} {servers:.2f}")
PY
}

# timed STEP ARGS... -> "wall controller-cpu servers-cpu machine-cpu" (seconds); the controller's CPU
# is ansible-playbook's and that of every process it waited for (bash's `times`, children's user +
# system)
timed() {
  local t0 t1 m0 s0 m1 s1
  read -r m0 s0 < <(cpu_now)
  t0=$(date +%s.%N)
  lc_play "$@" >/dev/null 2>&1 || return 1
  t1=$(date +%s.%N)
  read -r m1 s1 < <(cpu_now)
  # `times` into a file, not a pipe: a pipe's left side is a forked shell whose children's times are 0
  times >"$LC_INV/times"
  sed -n 2p "$LC_INV/times" | python3 -c '
import re, sys
t0, t1, m0, m1, s0, s1 = (float(x) for x in sys.argv[1:7])
cpu = sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", sys.stdin.read()))
print(f"{t1 - t0:.1f} {cpu:.1f} {s1 - s0:.1f} {m1 - m0:.1f}")' "$t0" "$t1" "$m0" "$m1" "$s0" "$s1"
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

# Each measurement is "wall controller-cpu servers-cpu machine-cpu"; the table shows the wall time, the
# CPU that went into it, and the lower bound the machine's cores put on the wall time (all CPU used
# on the machine in that run / the number of cores): a run whose wall time is near that bound was
# waiting for CPU, not for Ansible.
python3 - "$N" "$(nproc)" "${first[1]}" "${first[$N]}" "${again[1]}" "${again[$N]}" "${floor[1]}" "${floor[$N]}" <<'PY'
import sys
n, cores = int(sys.argv[1]), int(sys.argv[2])
runs = [[float(x) for x in arg.split()] for arg in sys.argv[3:9]]
rows = (("first run (bootstrap as root, installs)", runs[0], runs[1]),
        ("no-change run", runs[2], runs[3]),
        ("ping floor (facts + ping)", runs[4], runs[5]))
print(f"\nsite.yml (roles base, firewall, docker, node_exporter) on {cores} cores")
print(f"{'':<42} {'1 server':>9} {str(n) + ' servers':>11} {str(n) + '/1':>6}"
      f" | {n}-server CPU s: {'ctrl':>6} {'servers':>8} {'machine':>8} {'CPU-bound':>9}")
for name, one, many in rows:
    print(f"{name:<42} {one[0]:>8.1f}s {many[0]:>10.1f}s {many[0] / one[0]:>6.2f}"
          f" | {'':>15} {many[1]:>6.1f} {many[2]:>8.1f} {many[3]:>8.1f} {many[3] / cores:>8.1f}s")
again, floor = rows[1], rows[2]
print(f"\nno-change run of one server / its floor: {again[1][0] / floor[1][0]:.2f} (target <= 10;"
      f" {again[1][0]:.1f} s, target <= 30 s)")
print(f"no-change N/1 ({again[2][0] / again[1][0]:.2f}) over the floor's own N/1 ({floor[2][0] / floor[1][0]:.2f}):"
      f" {(again[2][0] / again[1][0]) / (floor[2][0] / floor[1][0]):.2f}")
for name, one, many in rows:
    print(f"{name}: {n} servers took {many[0]:.1f} s; the machine's CPU alone needs {many[3] / cores:.1f} s"
          f" ({100 * many[3] / cores / many[0]:.0f}% of the wall time)")
PY
printf 'the slowest tasks of the %s-server no-change run:\n' "$N"
grep -E -- '-{4,} [0-9.]+s$' "$LC_LOGS/site-again-$N.log" | head -8 | sed 's/^/  /'
