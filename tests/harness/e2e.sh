#!/usr/bin/env bash
# The end-to-end test (a lane of `make test`): the lifecycle of `make demo` (tests/harness/lifecycle.sh)
# in its own sandbox project "e2e" (port 18482, network 10.1.0.0/16, its own copy of the sandbox
# inventory under .cache/e2e), then what a release and an operator need:
#
#   provision -> storage -> images -> site -> a backup -> the drill
#   the app answers through Caddy over HTTPS with the row it read from PostgreSQL
#   deploy v2 under a request loop: 0 failed requests, v2 live, the accessories untouched; a site.yml
#   started while that deploy holds the lock waits for it and keeps v2 (changed=0)
#   a backup and the drill again (the metrics say success)
#   site.yml again: changed=0
#   root login refused, password login refused, the deploy user's sudo asks for its password
#   teardown.yml: the API lists nothing labelled env=e2e and Docker has nothing of the project
#
# Each check fails loudly with what it saw. Whatever happens, the project's machines are removed
# and the sandbox stops at the end. Asserts nothing about time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
# before "removing what an earlier e2e run left": that must not be a run still at work
hold_lock e2e "the end-to-end test (tests/harness/e2e.sh)"

LC_NAME=e2e
LC_INV="$ROOT/.cache/e2e/inventory"
LC_PORT=${ANVIL_E2E_PORT:-18482}
LC_TOKEN=e2e-sandbox-token
E2E_STATE="$LC_INV/generated/machines"
# each playbook's bound: the first site.yml on a 2-core machine that runs Molecule lanes beside it
# took 30 minutes (every package installed, the app's images pulled)
LC_PLAY_TIMEOUT=${ANVIL_E2E_PLAY_TIMEOUT:-3600}

fail() { printf '\033[1;31mFAIL: %s\033[0m\n' "$*" >&2; exit 1; }
pass() { printf '\033[1;32mok: %s\033[0m\n' "$*" >&2; }

# Whatever a failed or killed earlier run left: its machines, then its files.
remove_project() { lc_remove_machines "$LC_NAME" "$E2E_STATE"; }

# The inventory: the sandbox's, for project e2e on its own port and network.
make_inventory() {
  mkdir -p "$LC_INV"
  rm -rf "$LC_INV/group_vars"
  cp -r "$ROOT/inventories/sandbox/group_vars" "$LC_INV/"
  sed -i 's#10\.0\.0\.0/16#10.1.0.0/16#g' "$LC_INV"/group_vars/*.yml
  sed -e 's/^  name: demo$/  name: e2e/' -e 's/demo-net/e2e-net/' -e 's/demo-admin/e2e-admin/' \
      -e 's#10\.0\.#10.1.#g' "$ROOT/inventories/sandbox/environment.yml" >"$LC_INV/environment.yml"
  sed -e "s#127.0.0.1:18480#127.0.0.1:$LC_PORT#" -e "s/demo-sandbox-token/$LC_TOKEN/" -e 's/env=demo,/env=e2e,/' \
      "$ROOT/inventories/sandbox/demo.hcloud.yml" >"$LC_INV/e2e.hcloud.yml"
  grep -q "name: e2e" "$LC_INV/environment.yml" && grep -q "env=e2e," "$LC_INV/e2e.hcloud.yml" \
    || fail "the e2e inventory was not derived from inventories/sandbox (did its shape change?)"
  # Unlike the demo, the deploy user's sudo asks for its password (base_deploy_user_sudo_nopasswd:
  # false), as a reviewer would have it: the whole lifecycle, the root-first bootstrap included, runs
  # with Ansible's become password; the deploy user is not in the docker group either (that group
  # is root without a password). The password and its hash are made by e2e_sudo_password below.
  cat >>"$LC_INV/group_vars/all.yml" <<'YAML'
# --- e2e only (tests/harness/e2e.sh): sudo with a password ---
base_deploy_user_sudo_nopasswd: false
base_deploy_user_password_hash: "{{ lookup('ansible.builtin.file', inventory_dir ~ '/generated/sudo_password.hash') }}"
ansible_become_password: "{{ lookup('ansible.builtin.file', inventory_dir ~ '/generated/sudo_password') }}"
docker_users: []
YAML
}

# The deploy user's sudo password and its SHA-512 crypt hash (what base puts in /etc/shadow), in
# the generated directory (0700), files 0600.
e2e_sudo_password() {
  [ -s "$LC_GEN/sudo_password" ] \
    || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(18))' >"$LC_GEN/sudo_password")
  [ -s "$LC_GEN/sudo_password.hash" ] || (umask 077; openssl passwd -6 -stdin <"$LC_GEN/sudo_password" >"$LC_GEN/sudo_password.hash")
}

. "$ROOT/tests/harness/lifecycle.sh"
ensure_venv
[ ! -d "$LC_INV/generated" ] || { log "removing what an earlier e2e run left"; lc_sandbox_down; remove_project; rm -rf "$LC_INV"; }
finish() {
  local rc=$?
  trap - EXIT
  lc_sandbox_down
  remove_project
  left=$(docker ps -a --filter "label=hcloud-sandbox.project=$LC_NAME" --format '{{.Names}}')
  [ -z "$left" ] || { echo "containers of project $LC_NAME still there: $left" >&2; rc=1; }
  # every playbook's log (with profile_tasks' times), kept whatever the result
  if [ -d "$LC_LOGS" ]; then rm -rf "$ROOT/.cache/logs/e2e-playbooks"; cp -r "$LC_LOGS" "$ROOT/.cache/logs/e2e-playbooks"; fi
  [ "$rc" -ne 0 ] || rm -rf "$LC_INV"
  [ "$rc" -eq 0 ] || echo "the e2e run's files are kept in $LC_INV/generated; its playbooks' logs in .cache/logs/e2e-playbooks" >&2
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_inventory
lc_step "e2e: set up"
lc_setup
e2e_sudo_password
# the secrets no output may show (tests/callback_plugins/secret_guard.py)
LC_GUARD_FILE="$LC_GEN/secret-guard.yml"
python3 - "$LC_GEN" >"$LC_GUARD_FILE" <<'PY'
import json, pathlib, sys
gen = pathlib.Path(sys.argv[1])
secrets = [(gen / n).read_text().strip() for n in ("postgres_password", "redis_password", "sudo_password", "sudo_password.hash")]
secrets += [line for line in (gen / "operator.agekey").read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")]
secrets.append("".join((gen / "id_ed25519").read_text().splitlines()[1:3]))
print(json.dumps({"anvil_test_secrets": secrets}))
PY
chmod 0600 "$LC_GUARD_FILE"
lc_sandbox_up
lc_step "e2e: provision.yml"
lc_provision
lc_step "e2e: storage-1 and the images"
lc_storage
lc_push
lc_step "e2e: site.yml (first run: root, then the deploy user)"
lc_site site
grep -q "bootstrap: the deploy user cannot log in yet" "$LC_LOGS/site.log" || fail "the first site.yml did not start as root"
lc_offsite_key
lc_step "e2e: a backup, offsite, and the drill"
lc_backup
lc_drill
grep -q 'pg-drill: shop from .*: 1 tables, counts and checksums match' "$LC_LOGS/drill.log" \
  || { grep 'pg-drill' "$LC_LOGS/drill.log" >&2; fail "the drill did not restore the shop database with its table"; }
pass "backup and drill: $(grep -o "pg-drill: shop[^\"']*" "$LC_LOGS/drill.log" | tail -1)"

body=$(lc_https /) || fail "no HTTPS answer from https://shop.demo.internal/ on $LC_WEB_PUBLIC"
[[ "$body" == "shop v1: hello from PostgreSQL (visit "*", counted in Redis)" ]] || fail "the app answered: $body"
pass "the app over HTTPS (certificate from Caddy's local CA): $body"

accessories() { lc_web_sudo docker inspect -f "'{{.Name}} {{.Id}} {{.State.StartedAt}}'" shop-postgres shop-redis; }
before=$(accessories) || fail "the accessories shop-postgres and shop-redis do not run"
published=$(lc_web_sudo docker inspect -f "'{{.Name}} {{json .NetworkSettings.Ports}}'" shop-postgres shop-redis)
if grep -q HostPort <<<"$published"; then fail "an accessory is published on the host: $published"; fi
pass "accessories run, none published"

lc_step "e2e: deploy v2 under a request loop, and site.yml started while it holds the deploy lock"
rm -f "$LC_GEN/loop.stop" "$LC_GEN/loop.json"
timeout 900 "$VENV/bin/python" tests/harness/request_loop.py shop.demo.internal "$LC_GEN/loop.json" \
  --address "$LC_WEB_PUBLIC" --stop-file "$LC_GEN/loop.stop" --interval 0.1 --max-seconds 600 --after-stop 2 &
loop=$!
sleep 2
# The deploy watches v2 for 40 s (the inventory's 5 s otherwise) while it holds the lock: a site.yml
# started meanwhile reaches the app while v1 is still in the history, waits for the lock, and must
# then keep v2 (the role reads the live release under the lock: app_deploy_follow_live), not take
# v1 back.
# (deploy.yml chooses web-1 itself, as CI would call it: no anvil_hosts)
( lc_play deploy-v2 "$VENV" -i "$LC_INV/$LC_NAME.hcloud.yml" -e app_version=v2 \
    -e app_deploy_watch_seconds=40 "$ROOT/playbooks/deploy.yml" ) &
deploy=$!
for _ in $(seq 1 240); do
  lc_web_sudo test -s /var/lib/anvil/locks/app-shop/holder.json 2>/dev/null && break
  kill -0 "$deploy" 2>/dev/null || break
  sleep 0.5
done
lc_web_sudo test -s /var/lib/anvil/locks/app-shop/holder.json || fail "the deploy of v2 never held the deploy lock"
LC_CHANGED=0
lc_site site-during-deploy
during=$LC_CHANGED
deploy_rc=0
wait "$deploy" || deploy_rc=$?
touch "$LC_GEN/loop.stop"
wait "$loop" || fail "the request loop hit its bound: $(cat "$LC_GEN/loop.json" 2>/dev/null)"
[ "$deploy_rc" -eq 0 ] || fail "the deploy of v2 failed (log: $LC_LOGS/deploy-v2.log)"
# how long site.yml's app_deploy waited for the lock (profile_tasks: the next task's header line
# holds the time of the one before)
waited=$(python3 - "$LC_LOGS/site-during-deploy.log" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
heads = [i for i, l in enumerate(lines) if l.startswith(("TASK [", "RUNNING HANDLER [", "PLAY "))]
for n, i in enumerate(heads[:-1]):
    if lines[i].startswith("TASK [anvil.hetzner.app_deploy : Take the deploy lock (waits"):
        nxt = heads[n + 1]
        t = re.search(r"\((\d+):(\d+):([\d.]+)\)", lines[nxt + 1] if nxt + 1 < len(lines) else "")
        print(f"{int(t[1]) * 3600 + int(t[2]) * 60 + float(t[3]):.1f}" if t else "")
        break
PY
)
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) >= 3 else 1)' "${waited:-0}" \
  || fail "site.yml did not wait for the deploy's lock (${waited:-?} s): the two runs did not overlap"
[ "$during" -eq 0 ] || { grep -B3 '^changed:' "$LC_LOGS/site-during-deploy.log" | head -40 >&2
  fail "site.yml run during the deploy of v2 changed $during things (it must keep v2)"; }
pass "site.yml started during the deploy waited ${waited} s for the deploy lock, then kept v2: changed=0"
read -r total failed last < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))
print(s["total"], s["non_2xx"] + s["errors"], (s["versions_in_order"] or ["none"])[-1].split(":")[0].replace(" ", "_"))' "$LC_GEN/loop.json")
[ "$failed" -eq 0 ] || fail "$failed of $total requests failed during the deploy: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["failures"][:5])' "$LC_GEN/loop.json")"
[ "$last" = shop_v2 ] || fail "after the deploy the app answers as $last, not shop v2"
[ "$(accessories)" = "$before" ] || fail "the deploy touched an accessory: before: $before; after: $(accessories)"
pass "deploy v2: 0 of $total requests failed, v2 live, the accessories kept (same containers, not restarted)"
body=$(lc_https /)
[[ "$body" == "shop v2: hello from PostgreSQL (visit "* ]] || fail "after the deploy the app answered: $body"

lc_step "e2e: a second backup and drill"
lc_backup --force
lc_drill
metrics=$(lc_root_ssh "$LC_STORAGE_PUBLIC" "curl -sS --max-time 5 http://$LC_WEB_PRIVATE:9100/metrics")
grep -Eq '^anvil_backup_last_run_success\{[^}]*\} 1$' <<<"$metrics" || fail "the backup metric is not 1: $(grep anvil_backup_last_run <<<"$metrics")"
grep -Eq '^anvil_backup_offsite_success\{[^}]*\} 1$' <<<"$metrics" || fail "the offsite metric is not 1: $(grep anvil_backup_offsite <<<"$metrics")"
grep -Eq '^anvil_backup_restore_drill_success\{[^}]*\} 1$' <<<"$metrics" || fail "the drill metric is not 1: $(grep drill <<<"$metrics")"
pass "backup, offsite copy and drill report success in the metrics (read from the private network)"
if curl -sS --max-time 5 "http://$LC_WEB_PUBLIC:9100/metrics" >/dev/null 2>&1; then fail "node_exporter answers on the public address"; fi
offsite=$(lc_root_ssh "$LC_STORAGE_PUBLIC" "ls /home/backup/backups | wc -l")
[ "$offsite" -ge 2 ] || fail "the Storage Box stand-in holds $offsite backups, not 2"
pass "node_exporter refused on the public address; $offsite backups offsite"

lc_step "e2e: site.yml again (nothing to change)"
LC_CHANGED=0
lc_site site-again
[ "$LC_CHANGED" -eq 0 ] || { grep -B3 '^changed:' "$LC_LOGS/site-again.log" | head -40 >&2; fail "the second site.yml changed $LC_CHANGED things"; }
pass "second site.yml: changed=0 ($(grep -c '^skipping:' "$LC_LOGS/site-again.log") skipping lines, $(grep -c '^ok:' "$LC_LOGS/site-again.log") ok)"

if timeout 30 ssh "${LC_SSH[@]}" "root@$LC_WEB_PUBLIC" true 2>/dev/null; then fail "root logs in on web-1"; fi
if timeout 30 ssh -o BatchMode=yes -o ConnectTimeout=5 -o "UserKnownHostsFile=$LC_GEN/known_hosts" -o PubkeyAuthentication=no \
     -o PreferredAuthentications=password,keyboard-interactive "deploy@$LC_WEB_PUBLIC" true 2>/dev/null; then
  fail "a password login works on web-1"
fi
pass "root login and password login refused"
if refused=$(lc_web_ssh sudo -n true </dev/null 2>&1); then fail "the deploy user's sudo works without its password"; fi
grep -q "a password is required" <<<"$refused" || fail "sudo -n failed, but not for want of the password: $refused"
groups=$(lc_web_ssh id -nG)
if grep -qw docker <<<"$groups"; then fail "the deploy user is in the docker group (root without a password): $groups"; fi
lc_web_sudo grep -q "COMMAND=" /var/log/sudo.log || fail "sudo's log file (base_sudo_logfile) has no command in it"
pass "the deploy user's sudo asks for its password (every run above used it), and it is not in the docker group ($groups)"

lc_step "e2e: teardown.yml"
lc_teardown
left=$(lc_api "/servers?label_selector=env=$LC_NAME" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["servers"]))')
for kind in networks firewalls ssh_keys volumes primary_ips; do
  n=$(lc_api "/$kind" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['$kind']))")
  left=$((left + n))
done
[ "$left" -eq 0 ] || fail "after teardown the API still lists $left resources"
objects=$(docker ps -aq --filter "label=hcloud-sandbox.project=$LC_NAME" | wc -l)
[ "$objects" -eq 0 ] || fail "after teardown $objects containers of the project are left"
pass "teardown: nothing left in the API or in Docker"
lc_step "e2e: passed"
