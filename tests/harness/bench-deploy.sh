#!/usr/bin/env bash
# Benchmark: a deploy behind Caddy while requests flow, side by side in one run (these machines are
# noisy; only what is measured together means anything):
#   - anvil.hetzner.deploy (blue/green, health-gated, graceful Caddy reload), v1 -> v2;
#   - the same change done by hand the way the runbooks do it: remove the live web container, start
#     the new image on the same port (what a `docker compose up` of a changed service amounts to),
#     once behind a plain `reverse_proxy` (as the runbooks write it) and once behind our site's
#     settings (lb_try_duration: Caddy retries a refused upstream for up to 5 s);
#   - the rollback (anvil.hetzner.deploy -e app_deploy_rollback=true) with the registry stopped.
# Each under the same request loop (tests/harness/request_loop.py: a request every INTERVAL
# seconds through Caddy, until the step is over: a stop file after it, bounded by MAX_SECONDS; a loop
# that hit the bound fails the benchmark). Uses the app_deploy Molecule scenario's hosts (converged here, kept
# afterwards: `molecule destroy -s app_deploy` removes them). Prints counts, times and ratios;
# asserts nothing about time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
hold_lock bench-deploy "make bench-deploy"
ensure_engine
ensure_venv
ensure_images
export PATH="$VENV/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
HOST=${HOST:-app-deploy-debian13}
ROUNDS=${ROUNDS:-2}
INTERVAL=${INTERVAL:-0.08}
MAX_SECONDS=${MAX_SECONDS:-600}

log "converging the app_deploy scenario (v1 live)"
molecule converge -s app_deploy > /tmp/anvil-bench-deploy-converge.log 2>&1 || { tail -40 /tmp/anvil-bench-deploy-converge.log; exit 1; }
inventory=$(ls -d "$HOME"/.ansible/tmp/molecule.*.app_deploy/inventory | head -1)
docker cp tests/harness/request_loop.py "$HOST:/root/request_loop.py"

deploy() { # extra args...
  ansible-playbook -i "$inventory" playbooks/deploy.yml -e "@molecule/app_deploy/vars.yml" -e "anvil_hosts=$HOST" "$@" \
    >> /tmp/anvil-bench-deploy.log 2>&1
}
loop_start() { # name
  docker exec "$HOST" rm -f "/root/bench-$1.json" "/root/bench-$1.stop"
  docker exec "$HOST" systemd-run --unit "anvil-bench-$1-$RANDOM" python3 /root/request_loop.py shop.anvil.test \
    "/root/bench-$1.json" --stop-file "/root/bench-$1.stop" --interval "$INTERVAL" --max-seconds "$MAX_SECONDS" >/dev/null
  sleep 2
}
loop_failed() { # name -> "failed total"; the step is over: the loop stops 1 s later
  docker exec "$HOST" touch "/root/bench-$1.stop"
  for _ in $(seq 1 30); do docker exec "$HOST" test -f "/root/bench-$1.json" && break; sleep 1; done
  docker exec "$HOST" python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))
if s["timed_out"]: sys.exit("request loop hit its bound before the step ended: " + sys.argv[1])
print(s["non_2xx"] + s["errors"], s["total"])' "/root/bench-$1.json"
}
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

declare -a ours_failed=() ours_time=() hand_failed=() hand_time=() retry_failed=() rollback_time=()
for round in $(seq 1 "$ROUNDS"); do
  log "round $round: anvil.hetzner.deploy v1 -> v2 under traffic"
  deploy -e app_version=v1 || true   # make sure v1 is live (a no-change run when it is)
  loop_start "ours$round"; t0=$(now); deploy -e app_version=v2; t1=$(now)
  read -r failed total < <(loop_failed "ours$round")
  ours_failed+=("$failed/$total"); ours_time+=("$(secs "$t0" "$t1")")

  for caddy in plain retry; do
    log "round $round: by hand ($caddy Caddy), v2 -> v1 on the same port under traffic"
    if [ "$caddy" = plain ]; then
      docker exec "$HOST" sh -c "sed -i '/lb_try_/d' /etc/caddy/sites.d/shop.caddy && caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile --force 2>/dev/null"
    else
      deploy -e app_version=v2 || true   # our site file back, v2 live again
    fi
    live=$(docker exec "$HOST" docker ps --filter label=anvil.service=web --format '{{.Names}} {{.Ports}}' | head -1)
    name=${live%% *}; port=$(grep -o '127.0.0.1:[0-9]*' <<< "$live" | cut -d: -f2)
    image=$(docker exec "$HOST" docker image ls --format '{{.Repository}}:{{.Tag}}' | grep ':web-r' | head -1)
    loop_start "hand-$caddy$round"; t0=$(now)
    docker exec "$HOST" sh -c "docker rm -f $name >/dev/null && docker run -d --name $name -p 127.0.0.1:$port:8000 \
      --env-file \$(ls -d /var/lib/anvil/apps/shop/releases/*/web.env | head -1) $image >/dev/null"
    # ready when it answers again (what a careful operator waits for)
    docker exec "$HOST" sh -c "until curl -sf -o /dev/null http://127.0.0.1:$port/health; do sleep 0.1; done"
    t1=$(now)
    read -r failed total < <(loop_failed "hand-$caddy$round")
    if [ "$caddy" = plain ]; then hand_failed+=("$failed/$total"); hand_time+=("$(secs "$t0" "$t1")")
    else retry_failed+=("$failed/$total"); fi
    docker exec "$HOST" docker rm -f "$name" >/dev/null
  done

  log "round $round: rollback with the registry stopped"
  deploy -e app_version=v2 || true   # back to a clean v2 (its container was replaced by hand)
  docker exec app-deploy-registry systemctl stop docker-registry
  t0=$(now); deploy -e app_deploy_rollback=true; t1=$(now)
  docker exec app-deploy-registry systemctl start docker-registry
  rollback_time+=("$(secs "$t0" "$t1")")
done

printf '\n%-34s %-22s %-22s %-22s\n' "round" "anvil deploy (ours)" "by hand, plain Caddy" "by hand, Caddy retries"
for i in "${!ours_failed[@]}"; do
  printf '%-34s %-22s %-22s %-22s\n' "$((i + 1)): requests failed" "${ours_failed[$i]}" "${hand_failed[$i]}" "${retry_failed[$i]}"
  printf '%-34s %-22s %-22s\n' "$((i + 1)): wall time (s)" "${ours_time[$i]}" "${hand_time[$i]}"
  printf '%-34s %-22s\n' "$((i + 1)): rollback, registry down (s)" "${rollback_time[$i]}"
done
python3 - "${ours_failed[*]}" "${hand_failed[*]}" "${retry_failed[*]}" "${ours_time[*]}" "${hand_time[*]}" <<'PY'
import sys
failed = lambda s: sum(int(x.split("/")[0]) for x in s.split())
total = lambda s: sum(int(x.split("/")[1]) for x in s.split())
ours, hand, retry = failed(sys.argv[1]), failed(sys.argv[2]), failed(sys.argv[3])
t_ours = sum(map(float, sys.argv[4].split())); t_hand = sum(map(float, sys.argv[5].split()))
print(f"\nfailed requests: ours {ours}/{total(sys.argv[1])}, by hand behind plain Caddy {hand}/{total(sys.argv[2])}, "
      f"by hand behind Caddy with retries {retry}/{total(sys.argv[3])}")
print(f"wall time ours / by hand: {t_ours / t_hand:.1f} (the price of the health gate, migration, watch window and drain)")
PY
