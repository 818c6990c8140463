#!/usr/bin/env bash
# `make demo`: the whole lifecycle on the local Hetzner Cloud API sandbox, from nothing to an app
# answering over HTTPS, then proof a person can check.
#
#   sandbox up -> provision.yml (web-1, and storage-1: the Storage Box stand-in with the demo's
#   registry) -> site.yml (base, firewall, docker, caddy, node_exporter, the shop app with its
#   PostgreSQL and Redis accessories, postgres_backup) -> a first backup, offsite -> the restore
#   drill -> the proof -> the sandbox stops.
#
# The servers keep running afterwards (they are what the demo made); `make clean` tears them down
# (teardown.yml) and removes everything the demo made. A second `make demo` changes nothing
# (changed=0 in every playbook) and is quick. Progress: one line per step with the elapsed time;
# every playbook's whole output is in inventories/sandbox/generated/logs/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
# one of make demo, make clean, make bench-web at a time: a second one would stop this one's sandbox
# when it ends, make clean would tear the servers down under it
hold_lock demo "make demo${1:+ ($*)}"

LC_NAME=demo
LC_INV="$ROOT/inventories/sandbox"
LC_PORT=18480
LC_TOKEN=demo-sandbox-token
. "$ROOT/tests/harness/lifecycle.sh"

# tests/harness/demo.sh deploy VERSION: what CI does after make demo (playbooks/deploy.yml)
if [ "${1:-}" = deploy ]; then
  [ -n "${2:-}" ] || die "usage: tests/harness/demo.sh deploy VERSION (v1, v2: the demo registry's tags)"
  [ -f "$LC_GEN/sandbox-state.json" ] || die "no demo environment yet: run make demo first"
  lc_sandbox_up
  trap 'lc_sandbox_down' EXIT
  lc_addresses
  lc_step "deploy.yml -e app_version=$2"
  lc_deploy "$2"
  lc_https / | sed 's/^/    /'
  exit 0
fi

lc_step "1/9 set up this machine (Docker engine, virtualenvs, images; built once)"
lc_setup
lc_step "2/9 the Hetzner Cloud API sandbox on 127.0.0.1:$LC_PORT"
lc_sandbox_up
trap 'lc_sandbox_down' EXIT
lc_step "3/9 provision.yml: web-1 and the Storage Box stand-in storage-1"
lc_provision
lc_step "4/9 storage-1: the backup account and the demo registry; the app's images pushed"
lc_storage
lc_push
lc_step "5/9 site.yml on web-1 (the inventory plugin finds it by its labels)"
lc_site
lc_step "6/9 web-1's backup key allowed into the backup account"
lc_offsite_key
lc_step "7/9 a first backup (when there is none), encrypted, copied offsite"
lc_backup
lc_step "8/9 the restore drill"
lc_drill

lc_step "9/9 the proof"
show() { printf '\n\033[1m%s\033[0m\n' "$1"; }
indent() { sed 's/^/    /'; }

show "The app through Caddy over HTTPS (certificate checked against Caddy's local CA):"
echo "  \$ curl --resolve shop.demo.internal:443:$LC_WEB_PUBLIC --cacert inventories/sandbox/generated/caddy-root.crt https://shop.demo.internal/"
lc_https / | indent

show "The containers on web-1 (the app's release, its accessories; none published but through Caddy):"
lc_web_sudo docker ps --format "'{{.Names}}  {{.Image}}  {{.Status}}  ports: {{.Ports}}'" | indent

show "node_exporter from the private network (storage-1 -> $LC_WEB_PRIVATE:9100):"
lc_root_ssh "$LC_STORAGE_PUBLIC" "curl -sS --max-time 5 http://$LC_WEB_PRIVATE:9100/metrics | grep -E '^(node_uname_info|anvil_backup_last_success_timestamp_seconds|anvil_backup_restore_drill_success)' | cut -c1-150" | indent
show "... and from the public address ($LC_WEB_PUBLIC:9100):"
if curl -sS --max-time 5 "http://$LC_WEB_PUBLIC:9100/metrics" >/dev/null 2>"$LC_GEN/public-metrics.err"; then
  echo "    ANSWERED: the metrics port is open to the world" ; exit 1
else
  sed 's/^/    no answer: /' "$LC_GEN/public-metrics.err"
fi

show "The backups offsite (storage-1:/home/backup/backups):"
lc_root_ssh "$LC_STORAGE_PUBLIC" "ls -l /home/backup/backups | tail -n +2" | indent
show "The restore drill:"
grep -o "pg-drill:[^\"']*" "$LC_LOGS/drill.log" | sort -u | indent

show "Logins on web-1:"
if timeout 30 ssh "${LC_SSH[@]}" "root@$LC_WEB_PUBLIC" true 2>"$LC_GEN/root.err"; then
  echo "    root LOGGED IN"; exit 1
fi
echo "    root with the project's key: $(tail -1 "$LC_GEN/root.err")"
if timeout 30 ssh -o BatchMode=yes -o ConnectTimeout=5 -o "UserKnownHostsFile=$LC_GEN/known_hosts" \
     -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive \
     "deploy@$LC_WEB_PUBLIC" true 2>"$LC_GEN/password.err"; then
  echo "    password login WORKED"; exit 1
fi
echo "    deploy with a password: $(tail -1 "$LC_GEN/password.err")"
echo "    deploy with its key: $(lc_web_ssh 'echo logged in as $(id -un) on $(hostname)')"

show "This run: changed=$LC_CHANGED in all its playbooks (a second make demo: changed=0)."
cat <<EOF

  Log in:      ssh -i inventories/sandbox/generated/id_ed25519 -o UserKnownHostsFile=inventories/sandbox/generated/known_hosts deploy@$LC_WEB_PUBLIC
  Deploy v2:   tests/harness/demo.sh deploy v2     (the sandbox starts for it; health-gated blue/green, as CI would)
  Tear down:   make clean     (teardown.yml deletes the servers, the network, the firewalls, the key)
  The sandbox has stopped; the two servers keep running until make clean.
EOF
