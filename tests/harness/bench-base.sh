#!/usr/bin/env bash
# Benchmark: how fast is a no-change rerun of the base role?
# Converges `base` once on a fresh Debian 12 container, then measures, side by side in one run,
# RUNS no-change reruns of the role and RUNS runs of a ping-only playbook against the same host
# (Ansible's own floor for one host over the docker connection). Prints times and ratios; asserts
# nothing about absolute time (these machines are noisy).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
RUNS=${RUNS:-3}

ensure_engine
ensure_venv
ensure_images 12

name=anvil-bench-base
work=$(mktemp -d /tmp/anvil-bench.XXXXXX)
cleanup() { cp "$work/rerun.log" /tmp/anvil-bench-rerun.log 2>/dev/null || true; docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns=host \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
  anvil-hetzner/debian:12 /lib/systemd/systemd >/dev/null
docker exec "$name" systemctl is-system-running --wait >/dev/null || true

ssh-keygen -q -t ed25519 -N "" -f "$work/key"
cat >"$work/inventory.yml" <<YAML
all:
  hosts:
    $name:
      ansible_connection: community.docker.docker
  vars:
    base_deploy_user_authorized_keys: ["$(cat "$work/key.pub")"]
YAML
cat >"$work/base.yml" <<'YAML'
- name: Base
  hosts: all
  roles: [anvil.hetzner.base]
YAML
cat >"$work/ping.yml" <<'YAML'
- name: Floor
  hosts: all
  gather_facts: true
  tasks:
    - name: Ping
      ansible.builtin.ping:
YAML

calc() { python3 -c "print(round($1, 3))"; }

timed() { # prints seconds with millisecond precision; fails when the playbook fails
  local t0 t1
  t0=$(date +%s.%N)
  ansible-playbook -i "$work/inventory.yml" "$@" >"$work/last.log" 2>&1 || { tail -30 "$work/last.log" >&2; return 1; }
  t1=$(date +%s.%N)
  calc "$t1 - $t0"
}

first=$(timed "$work/base.yml")
grep -q 'changed=0' "$work/last.log" && { echo "first run changed nothing: wrong set-up" >&2; exit 1; }
rerun_total=0; floor_total=0
for i in $(seq 1 "$RUNS"); do
  r=$(timed "$work/base.yml")
  grep -qE "$name +: ok=[0-9]+ +changed=0 " "$work/last.log" || { echo "rerun $i changed something" >&2; exit 1; }
  cp "$work/last.log" "$work/rerun.log"
  f=$(timed "$work/ping.yml")
  printf 'round %d: no-change rerun %6.2f s   ping floor %6.2f s\n' "$i" "$r" "$f"
  rerun_total=$(calc "$rerun_total + $r"); floor_total=$(calc "$floor_total + $f")
done
rerun=$(calc "$rerun_total / $RUNS"); floor=$(calc "$floor_total / $RUNS")
printf '\nbase on one Debian 12 container (docker connection), %d rounds\n' "$RUNS"
printf '  first (converging) run   %6.2f s\n' "$first"
printf '  no-change rerun (mean)   %6.2f s\n' "$rerun"
printf '  ping-only floor (mean)   %6.2f s\n' "$floor"
printf '  rerun / first            %6.2f\n' "$(calc "$rerun / $first")"
printf '  rerun / floor            %6.2f\n' "$(calc "$rerun / $floor")"
