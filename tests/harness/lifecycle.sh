# shellcheck shell=bash
# The whole lifecycle on the Hetzner API sandbox's machines, as functions that `make demo`
# (tests/harness/demo.sh) and the end-to-end test (tests/harness/e2e.sh) share:
#
#   lc_setup        engine, virtualenvs, images, the operator's keys and the app's secrets
#   lc_sandbox_up   the sandbox (DockerBackend, loopback, state kept in $LC_GEN) in the background
#   lc_provision    playbooks/provision.yml: web-1 and the Storage Box stand-in storage-1
#   lc_storage      storage-1: the backup account and the demo registry (tests/harness/demo-storage.yml)
#   lc_push         the app's images into that registry (tests/harness/push_image.py)
#   lc_site         playbooks/site.yml through the anvil.hetzner.hcloud inventory
#   lc_offsite_key  the backup key postgres_backup made on web-1, allowed into the backup account
#   lc_backup       a backup now, unless one exists (the first one)
#   lc_drill        playbooks/backup_restore_drill.yml
#   lc_teardown     playbooks/teardown.yml
#   lc_sandbox_down the sandbox stops (the servers keep running; lc_teardown removes them)
#
# Settings (set before sourcing): LC_NAME (the environment: demo, e2e), LC_INV (the inventory
# directory: its group_vars, environment.yml and <name>.hcloud.yml), LC_PORT (the sandbox's port on
# 127.0.0.1), LC_TOKEN. Everything generated (keys, secrets, the sandbox's state, logs) is in
# $LC_INV/generated (mode 0700). Each playbook's output goes to $LC_GEN/logs/<step>.log; a step that
# fails prints its log's tail. Every step is bounded in time.
: "${LC_NAME:?}" "${LC_INV:?}" "${LC_PORT:?}" "${LC_TOKEN:?}"
LC_GEN="$LC_INV/generated"
LC_LOGS="$LC_GEN/logs"
LC_START=${LC_START:-$(date +%s)}
LC_SSH=(-o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR -o "UserKnownHostsFile=$LC_GEN/known_hosts"
        -o StrictHostKeyChecking=accept-new -i "$LC_GEN/id_ed25519")
LC_CHANGED=0

# "[mm:ss] what": the step and the time since the start
lc_step() {
  local now=$(( $(date +%s) - LC_START ))
  printf '\033[1m[%02d:%02d] %s\033[0m\n' $((now / 60)) $((now % 60)) "$*" >&2
}

# lc_play STEP VENV ARGS...: ansible-playbook from VENV (.venv or .venv-controller), output in the
# step's log; prints the recap; adds the run's changed count to LC_CHANGED.
lc_play() {
  local step=$1 venv=$2 rc=0 changed
  shift 2
  mkdir -p "$LC_LOGS"
  # LC_GUARD_FILE (the e2e test): tests/callback_plugins/secret_guard.py looks for its secrets in
  # every result, as -vvv would show it (report: tests/harness/secret_guard_report.py e2e)
  # ansible.posix.profile_tasks: every task's time in the log (LC_PROFILE=0: none, for a timed run:
  # the callback's own cost per task would be measured with it)
  local -a guard=(ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks)
  [ "${LC_PROFILE:-1}" != 0 ] || guard=(-u ANSIBLE_CALLBACKS_ENABLED)
  [ -z "${LC_GUARD_FILE:-}" ] || guard=(ANSIBLE_CALLBACK_PLUGINS="$ROOT/tests/callback_plugins"
    ANSIBLE_CALLBACKS_ENABLED=secret_guard,ansible.posix.profile_tasks ANVIL_SECRET_GUARD_DIR="$ROOT/.cache/secret-guard"
    ANVIL_SECRET_GUARD_FILES="$LC_GUARD_FILE" ANVIL_SECRET_GUARD_LABEL="$LC_NAME")
  env "${guard[@]}" ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
    HCLOUD_ENDPOINT="http://127.0.0.1:$LC_PORT/v1" HCLOUD_TOKEN="$LC_TOKEN" \
    timeout -k 30 "${LC_PLAY_TIMEOUT:-1800}" "$venv/bin/ansible-playbook" "$@" >"$LC_LOGS/$step.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$LC_LOGS/$step.log" >&2
    die "$step failed (rc $rc): the whole log is $LC_LOGS/$step.log"
  fi
  changed=$(sed -n 's/.* changed=\([0-9]*\).*/\1/p' "$LC_LOGS/$step.log" | awk '{s += $1} END {print s + 0}')
  LC_CHANGED=$((LC_CHANGED + changed))
  grep -E '^[^ ].* : ok=' "$LC_LOGS/$step.log" | sed 's/^/      /' >&2
}

lc_setup() {
  ensure_engine
  ensure_venv
  ensure_controller_venv
  ensure_images 12
  # the app's images (its messages in a log: the legacy builder's notices are noise; on a failure
  # the log's end is shown, a broken download in the image's apt too)
  mkdir -p "$ROOT/.cache/logs"
  "$ROOT/tests/images/build-demo.sh" 2>"$ROOT/.cache/logs/build-demo-$LC_NAME.log" || {
    tail -n 30 "$ROOT/.cache/logs/build-demo-$LC_NAME.log" >&2
    die "building the demo app's images failed (log: .cache/logs/build-demo-$LC_NAME.log)"
  }
  ensure_host_tools
  mkdir -p "$LC_GEN"
  chmod 0700 "$LC_GEN"
  [ -f "$LC_GEN/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C "anvil-$LC_NAME" -f "$LC_GEN/id_ed25519"
  # the operator's age identity: stays here, on the controller; the servers get the public key
  [ -f "$LC_GEN/operator.agekey" ] || (umask 077; age-keygen -o "$LC_GEN/operator.agekey" 2>/dev/null)
  age-keygen -y "$LC_GEN/operator.agekey" >"$LC_GEN/operator.agekey.pub"
  local secret
  for secret in postgres_password redis_password; do
    [ -s "$LC_GEN/$secret" ] || (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$LC_GEN/$secret")
  done
}

lc_sandbox_up() {
  if [ -f "$LC_GEN/sandbox.pid" ] && kill -0 "$(cat "$LC_GEN/sandbox.pid")" 2>/dev/null; then
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$LC_PORT") 2>/dev/null; then
    die "port 127.0.0.1:$LC_PORT is taken by another program; the $LC_NAME inventory expects the sandbox there"
  fi
  # the machines' state (volumes, cloud-init seeds) beside the API's own state file
  HCLOUD_SANDBOX_STATE_DIR="$LC_GEN/machines" PYTHONPATH="$ROOT/tests/sandbox" timeout 60 "$VENV/bin/python" \
    -m hcloud_sandbox up --backend docker --port "$LC_PORT" --project "$LC_NAME:$LC_TOKEN:0:0" \
    --state-file "$LC_GEN/sandbox-state.json" --daemon --pid-file "$LC_GEN/sandbox.pid" \
    --log-file "$LC_GEN/sandbox.log" --url-file "$LC_GEN/sandbox.url" >/dev/null \
    || die "the sandbox did not start: $(tail -5 "$LC_GEN/sandbox.log" 2>/dev/null)"
}

# lc_remove_machines PROJECT STATE_DIR: whatever the sandbox's DockerBackend made for PROJECT
# (containers, networks, volumes, firewall tables), for a run that was interrupted or is done
lc_remove_machines() {
  [ -x "$VENV/bin/python" ] && docker info >/dev/null 2>&1 || return 0
  HCLOUD_SANDBOX_STATE_DIR="$2" timeout 300 "$VENV/bin/python" - "$1" <<'PY' || echo "could not remove the machines of $1" >&2
import sys
sys.path.insert(0, "tests/sandbox")
from hcloud_sandbox.docker_backend import DockerBackend
backend = DockerBackend()
backend.remove_project(sys.argv[1])
backend.close()
PY
}

lc_sandbox_down() {
  [ -f "$LC_GEN/sandbox.pid" ] || return 0
  PYTHONPATH="$ROOT/tests/sandbox" timeout 60 "$VENV/bin/python" -m hcloud_sandbox down --pid-file "$LC_GEN/sandbox.pid" \
    >/dev/null 2>&1 || true
}

# lc_api PATH: GET from the sandbox's API (JSON on stdout)
lc_api() {
  curl -sSf --max-time 10 -H "Authorization: Bearer $LC_TOKEN" "http://127.0.0.1:$LC_PORT/v1$1"
}

# After provision: the servers' addresses, in $LC_GEN (read by group_vars/web.yml) and as
# LC_WEB_PUBLIC, LC_WEB_PRIVATE, LC_STORAGE_PUBLIC, LC_STORAGE_PRIVATE.
lc_addresses() {
  local servers
  servers=$(lc_api "/servers?label_selector=env=$LC_NAME")
  eval "$(python3 - "$servers" <<'PY'
import json, shlex, sys
servers = {s["labels"].get("role"): s for s in json.loads(sys.argv[1])["servers"]}
for role, var in (("web", "WEB"), ("storage", "STORAGE")):
    s = servers[role]
    print(f"LC_{var}_PUBLIC=" + shlex.quote(s["public_net"]["ipv4"]["ip"]))
    print(f"LC_{var}_PRIVATE=" + shlex.quote(s["private_net"][0]["ip"]))
    print(f"LC_{var}_ID={s['id']}")
PY
)"
  printf '%s\n' "$LC_STORAGE_PRIVATE:5000" >"$LC_GEN/registry"
  printf '%s\n' "$LC_STORAGE_PRIVATE" >"$LC_GEN/storage_host"
  # servers made anew (a first run, a rebuilt environment) have new host keys
  local ids="$LC_WEB_ID $LC_STORAGE_ID"
  if [ "$(cat "$LC_GEN/server-ids" 2>/dev/null)" != "$ids" ]; then
    rm -f "$LC_GEN/known_hosts" "$LC_GEN/caddy-root.crt" "$LC_GEN"/pushed-*
    printf '%s\n' "$ids" >"$LC_GEN/server-ids"
  fi
}

lc_provision() {
  lc_play provision "$ROOT/.venv-controller" -i localhost, -e "@$LC_INV/environment.yml" \
    -e "hcloud_sandbox_generated=$LC_GEN" "$ROOT/playbooks/provision.yml"
  lc_addresses
}

# lc_root_ssh HOST COMMAND: as root on a server (only the Storage Box stand-in lets root in for good)
lc_root_ssh() {
  local host=$1
  shift
  timeout 120 ssh "${LC_SSH[@]}" "root@$host" "$@"
}

lc_storage() {
  lc_play storage "$VENV" -i "$LC_STORAGE_PUBLIC," -u root --private-key "$LC_GEN/id_ed25519" \
    --ssh-common-args "-o UserKnownHostsFile=$LC_GEN/known_hosts -o StrictHostKeyChecking=accept-new" \
    -e "ansible_python_interpreter=/usr/bin/python3" "$@" "$ROOT/tests/harness/demo-storage.yml"
  # its host key, as the backup's known_hosts pins it (what ssh-keyscan of its private address gives)
  lc_root_ssh "$LC_STORAGE_PUBLIC" cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1-2 >"$LC_GEN/storage_host_key"
}

lc_push() {
  timeout 900 "$VENV/bin/python" "$ROOT/tests/harness/push_image.py" anvil-hetzner/demo:12-flat \
    "http://$LC_STORAGE_PUBLIC:5000" demo/postgres:15 demo/redis:7 demo/shop:v1 --cache "$ROOT/.cache/demo-layers" \
    --stamp "$LC_GEN/pushed-v1" | sed 's/^/      /' >&2
  timeout 900 "$VENV/bin/python" "$ROOT/tests/harness/push_image.py" anvil-hetzner/demo:12-v2 \
    "http://$LC_STORAGE_PUBLIC:5000" demo/shop:v2 --cache "$ROOT/.cache/demo-layers" \
    --stamp "$LC_GEN/pushed-v2" | sed 's/^/      /' >&2
}

lc_site() { # [step name] [extra ansible-playbook args]
  local step=${1:-site}
  shift || true
  lc_play "$step" "$VENV" -i "$LC_INV/$LC_NAME.hcloud.yml" "$@" "$ROOT/playbooks/site.yml"
}

# lc_web_ssh COMMAND: as the deploy user on web-1
lc_web_ssh() {
  timeout 300 ssh "${LC_SSH[@]}" "deploy@$LC_WEB_PUBLIC" "$@"
}

# lc_web_sudo COMMAND: as root through the deploy user's sudo; with the password in
# $LC_GEN/sudo_password when the inventory gives the deploy user sudo with a password (the e2e),
# on sudo's standard input, never on a command line
lc_web_sudo() {
  if [ -s "$LC_GEN/sudo_password" ]; then
    lc_web_ssh sudo -S -p "''" "$@" <"$LC_GEN/sudo_password"
  else
    lc_web_ssh sudo -n "$@" </dev/null
  fi
}

lc_offsite_key() {
  local key
  key=$(lc_web_sudo cat /etc/anvil/postgres_backup_offsite_key.pub)
  [ -n "$key" ] || die "web-1 has no offsite backup key (postgres_backup did not run?)"
  lc_play storage-key "$VENV" -i "$LC_STORAGE_PUBLIC," -u root --private-key "$LC_GEN/id_ed25519" \
    --ssh-common-args "-o UserKnownHostsFile=$LC_GEN/known_hosts -o StrictHostKeyChecking=accept-new" \
    -e "ansible_python_interpreter=/usr/bin/python3" -e "{\"demo_backup_keys\": [\"$key\"]}" \
    "$ROOT/tests/harness/demo-storage.yml"
}

# lc_backup [--force]: a backup through the role's own unit (what the timer runs), unless one
# exists already; fails when the unit fails.
lc_backup() {
  if [ "${1:-}" != --force ] && lc_web_sudo sh -c "'ls /var/backups/postgres/*/MANIFEST.json'" >/dev/null 2>&1; then
    return 0
  fi
  lc_web_sudo systemctl start anvil-pg-backup.service \
    || { lc_web_sudo journalctl -u anvil-pg-backup.service -n 30 --no-pager >&2 || true; die "the backup failed"; }
}

lc_drill() {
  lc_play drill "$VENV" -i "$LC_INV/$LC_NAME.hcloud.yml" "$ROOT/playbooks/backup_restore_drill.yml"
}

# (deploy.yml's own choice of hosts, as CI would call it: web-1, in group web, describes the app)
lc_deploy() { # VERSION
  lc_play "deploy-$1" "$VENV" -i "$LC_INV/$LC_NAME.hcloud.yml" -e "app_version=$1" "$ROOT/playbooks/deploy.yml"
}

lc_teardown() {
  lc_play teardown "$ROOT/.venv-controller" -i localhost, -e "@$LC_INV/environment.yml" \
    -e "hcloud_sandbox_generated=$LC_GEN" -e "teardown_confirm=$LC_NAME" "$ROOT/playbooks/teardown.yml"
}

# The app through Caddy over HTTPS, as a browser would see it: the name resolved to web-1's public
# address, the certificate checked against Caddy's local CA (read from web-1).
lc_https() { # [path]
  [ -s "$LC_GEN/caddy-root.crt" ] \
    || lc_web_sudo cat /var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt >"$LC_GEN/caddy-root.crt"
  curl -sS --max-time 10 --resolve "shop.demo.internal:443:$LC_WEB_PUBLIC" --cacert "$LC_GEN/caddy-root.crt" \
    "https://shop.demo.internal${1:-/}"
}
