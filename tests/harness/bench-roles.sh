#!/usr/bin/env bash
# Benchmark: how fast is a no-change run of base + firewall, and of the whole site.yml?
#
# Side by side in one run (these machines are noisy; only ratios measured together mean anything):
#   - this checkout's base + firewall, no-change rerun, on container A;
#   - the same playbook from BASELINE_REV (default: the commit before issue 11's rework) on
#     container B, converged by that revision's own code;
#   - this checkout's whole site.yml (base, firewall, docker, caddy, node_exporter; Debian's packages), no-change
#     rerun, on container A;
#   - a ping-only playbook with fact gathering (Ansible's floor for one host).
# Everything runs over the docker connection against fresh Debian 12 containers. Prints times and
# ratios and asserts nothing about absolute time. ROUNDS (default 3) rounds, alternating.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
hold_lock bench-roles "make bench-roles"
ROUNDS=${ROUNDS:-3}
BASELINE_REV=${BASELINE_REV:-e632ba3}

ensure_engine
ensure_venv
ensure_images 12

work=$(mktemp -d /tmp/anvil-bench.XXXXXX)
names=(anvil-bench-new anvil-bench-old)
cleanup() {
  cp "$work"/*.log /tmp/ 2>/dev/null || true
  for n in "${names[@]}"; do docker rm -f "$n" >/dev/null 2>&1 || true; done
  git -C "$ROOT" worktree remove --force "$work/old" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The baseline revision, checked out beside this one, with its own collection link.
git -C "$ROOT" worktree add --detach "$work/old" "$BASELINE_REV" >/dev/null 2>&1
for n in "${names[@]}"; do
  docker rm -f "$n" >/dev/null 2>&1 || true
  docker run -d --name "$n" --hostname "$n" --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cgroupns=host \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    anvil-hetzner/debian:12 /lib/systemd/systemd >/dev/null
done
for n in "${names[@]}"; do docker exec "$n" systemctl is-system-running --wait >/dev/null 2>&1 || true; done

ssh-keygen -q -t ed25519 -N "" -f "$work/key"
# The host is in group web with the toggles site.yml would write set as inventory variables, so that
# base + firewall alone and site.yml configure the same host alike (without them, base + firewall
# alone would read Docker and Caddy as absent and turn forwarding and 80/443 off that site.yml had
# on: neither run would be a no-change run).
inventory() { # name
  cat <<YAML
all:
  children:
    web:
      hosts:
        $1:
          ansible_connection: community.docker.docker
  vars:
    anvil_docker: true
    anvil_caddy: true
    anvil_node_exporter: true
    base_deploy_user_authorized_keys: ["$(cat "$work/key.pub")"]
    docker_install_source: distro
    docker_compose: false
    docker_buildx: false
    caddy_install_source: distro
YAML
}
inventory anvil-bench-new >"$work/new.yml"
inventory anvil-bench-old >"$work/old.yml"
cat >"$work/roles.yml" <<'YAML'
- name: Base and firewall
  hosts: all
  become: true
  roles:
    - anvil.hetzner.base
    - anvil.hetzner.firewall
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

timed() { # dir inventory log playbook... ; prints seconds; fails when the playbook fails
  local dir=$1 inv=$2 log=$3 t0 t1; shift 3
  t0=$(date +%s.%N)
  (cd "$dir" && ANSIBLE_CONFIG="$dir/ansible.cfg" ansible-playbook -i "$inv" "$@" >"$log" 2>&1) \
    || { tail -30 "$log" >&2; return 1; }
  t1=$(date +%s.%N)
  calc "$t1 - $t0"
}
unchanged() { grep -qE "^anvil-bench-[a-z]+ +: ok=[0-9]+ +changed=0 " "$1" || { echo "a rerun changed something: $1" >&2; exit 1; }; }
tasks() { grep -cE '^TASK \[' "$1"; }

log "converging: this checkout's site.yml on A, $BASELINE_REV's base + firewall on B"
timed "$ROOT" "$work/new.yml" "$work/site-first.log" playbooks/site.yml >/dev/null
timed "$work/old" "$work/old.yml" "$work/old-first.log" "$work/roles.yml" >/dev/null

new_t=0; old_t=0; site_t=0; floor_t=0
for i in $(seq 1 "$ROUNDS"); do
  n=$(timed "$ROOT" "$work/new.yml" "$work/bench-new.log" "$work/roles.yml"); unchanged "$work/bench-new.log"
  o=$(timed "$work/old" "$work/old.yml" "$work/bench-old.log" "$work/roles.yml"); unchanged "$work/bench-old.log"
  s=$(timed "$ROOT" "$work/new.yml" "$work/bench-site.log" playbooks/site.yml); unchanged "$work/bench-site.log"
  f=$(timed "$ROOT" "$work/new.yml" "$work/bench-ping.log" "$work/ping.yml")
  printf 'round %d: base+firewall %6.2f s (was %6.2f s)   site.yml %6.2f s   ping floor %5.2f s\n' "$i" "$n" "$o" "$s" "$f"
  new_t=$(calc "$new_t + $n"); old_t=$(calc "$old_t + $o"); site_t=$(calc "$site_t + $s"); floor_t=$(calc "$floor_t + $f")
done
new=$(calc "$new_t / $ROUNDS"); old=$(calc "$old_t / $ROUNDS"); site=$(calc "$site_t / $ROUNDS"); floor=$(calc "$floor_t / $ROUNDS")
printf '\nno-change runs on one Debian 12 container (docker connection), mean of %d rounds\n' "$ROUNDS"
printf '  %-44s %7.2f s  %4d tasks\n' "base + firewall, this checkout" "$new" "$(tasks "$work/bench-new.log")"
printf '  %-44s %7.2f s  %4d tasks\n' "base + firewall, $BASELINE_REV" "$old" "$(tasks "$work/bench-old.log")"
printf '  %-44s %7.2f s  %4d tasks\n' "site.yml (base, firewall, docker, caddy, node_exp.)" "$site" "$(tasks "$work/bench-site.log")"
printf '  %-44s %7.2f s\n' "ping-only floor" "$floor"
printf '  %-44s %7.2f   (%.0f %% less wall time)\n' "base + firewall: new / old" "$(calc "$new / $old")" "$(calc "100 * (1 - $new / $old)")"
printf '  %-44s %7.2f\n' "base + firewall / floor" "$(calc "$new / $floor")"
printf '  %-44s %7.2f\n' "site.yml / floor" "$(calc "$site / $floor")"
