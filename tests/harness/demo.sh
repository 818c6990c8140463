#!/usr/bin/env bash
# The main job on the local default: runs playbooks/site.yml end to end over SSH against a local
# systemd container that stands in for a fresh Hetzner server (until the Hetzner sandbox exists).
# The first run logs in as root and hardens; every later run logs in as the deploy user and
# changes nothing. Remove the container with: docker rm -f anvil-demo
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_engine
ensure_venv
ensure_images 12

gen="$ROOT/inventories/local/generated"
mkdir -p "$gen"
[ -f "$gen/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C anvil-demo -f "$gen/id_ed25519"

if ! docker container inspect anvil-demo >/dev/null 2>&1; then
  log "starting the demo server (container anvil-demo, ssh on 127.0.0.1:2201)"
  docker run -d --name anvil-demo --hostname anvil-demo \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    -p 127.0.0.1:2201:22 anvil-hetzner/debian:12 /lib/systemd/systemd >/dev/null
  docker exec anvil-demo systemctl is-system-running --wait >/dev/null || true
  # What Hetzner does at server creation: the project's key in root's authorized_keys.
  docker exec -i anvil-demo sh -c 'umask 077; cat >> /root/.ssh/authorized_keys' <"$gen/id_ed25519.pub"
  rm -f "$gen/known_hosts"
elif [ "$(docker container inspect -f '{{.State.Running}}' anvil-demo)" != true ]; then
  docker start anvil-demo >/dev/null
fi

for _ in $(seq 1 30); do
  ssh-keyscan -p 2201 127.0.0.1 >/dev/null 2>&1 && break
  sleep 1
done

log "ansible-playbook playbooks/site.yml (inventory: inventories/local/hosts.yml)"
ansible-playbook -i inventories/local/hosts.yml playbooks/site.yml "$@"
