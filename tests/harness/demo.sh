#!/usr/bin/env bash
# The main job on the local default: `ansible-playbook playbooks/site.yml` with the
# anvil.hetzner.hcloud inventory, against the Hetzner Cloud API sandbox on loopback, whose one
# server is a local systemd container that looks like a fresh Hetzner server (root with a key).
# The first run logs in as root and hardens; every later run logs in as the deploy user and changes
# nothing. The sandbox runs only while this script does; the container stays
# (remove it with: make clean).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_engine
ensure_venv
ensure_images 12

inv="$ROOT/inventories/sandbox"
gen="$inv/generated"
port=18480
mkdir -p "$gen"
[ -f "$gen/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C anvil-demo -f "$gen/id_ed25519"

if ! docker container inspect anvil-demo >/dev/null 2>&1; then
  log "starting the demo server (container anvil-demo)"
  docker run -d --name anvil-demo --hostname demo-web-1 \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    anvil-hetzner/debian:12 /lib/systemd/systemd >/dev/null
  docker exec anvil-demo systemctl is-system-running --wait >/dev/null || true
  # What Hetzner does at server creation: the project's key in root's authorized_keys.
  docker exec -i anvil-demo sh -c 'umask 077; cat >> /root/.ssh/authorized_keys' <"$gen/id_ed25519.pub"
  rm -f "$gen/known_hosts"
elif [ "$(docker container inspect -f '{{.State.Running}}' anvil-demo)" != true ]; then
  docker start anvil-demo >/dev/null
fi
address=$(docker container inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' anvil-demo)
# What a Hetzner private network gives the server: its address on an interface (the sandbox's
# demo-net below gives demo-web-1 10.0.0.2; node_exporter listens there). Lost on a restart: re-added.
docker exec anvil-demo sh -c 'ip -4 addr show dev eth0 | grep -q "inet 10.0.0.2/" || ip addr add 10.0.0.2/32 dev eth0'

[ -n "$address" ] || die "anvil-demo has no address on the Docker network"

# The sandbox's world: project "demo" with the container as its server's public IPv4, plus a
# server that the inventory's label selector leaves out.
cat >"$gen/world.json" <<JSON
{"projects": [{"name": "demo", "token": "demo-sandbox-token",
  "networks": [{"name": "demo-net", "ip_range": "10.0.0.0/16"}],
  "servers": [
    {"name": "demo-web-1", "labels": {"env": "demo", "role": "web"}, "location": "fsn1",
     "server_type": "cx22", "image": "debian-12", "ipv4": "$address", "ipv6": null,
     "networks": {"demo-net": "10.0.0.2"}},
    {"name": "other-db-1", "labels": {"env": "other", "role": "db"}, "ipv4": "192.0.2.10"}
  ]}]}
JSON
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  die "port 127.0.0.1:$port is taken (another demo running?); the sandbox inventory expects it free"
fi
rm -f "$gen/sandbox.url"
PYTHONPATH="$ROOT/tests/sandbox" python -m hcloud_sandbox --port "$port" --fixture "$gen/world.json" \
  --url-file "$gen/sandbox.url" >"$gen/sandbox.log" 2>&1 &
sandbox_pid=$!
trap 'kill $sandbox_pid 2>/dev/null && wait $sandbox_pid 2>/dev/null; true' EXIT
for _ in $(seq 1 50); do [ -s "$gen/sandbox.url" ] && break; sleep 0.1; done
[ -s "$gen/sandbox.url" ] || die "the sandbox did not start: $(cat "$gen/sandbox.log")"
log "Hetzner API sandbox on $(cat "$gen/sandbox.url"); demo-web-1 is $address"

# One TCP probe per second (not ssh-keyscan, which opens a connection per key type and trips
# the firewall's SSH rate limit on reruns).
for _ in $(seq 1 30); do
  (exec 3<>"/dev/tcp/$address/22") 2>/dev/null && break
  sleep 1
done

log "ansible-playbook playbooks/site.yml (inventory: inventories/sandbox/demo.hcloud.yml)"
ansible-inventory -i inventories/sandbox/demo.hcloud.yml --graph
ansible-playbook -i inventories/sandbox/demo.hcloud.yml playbooks/site.yml "$@"
