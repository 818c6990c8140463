#!/usr/bin/env bash
# Build the images `make demo` and the end-to-end test deploy: PostgreSQL, Redis and the sample shop
# app from Debian 12's packages (demo.Dockerfile), with `docker build FROM` the local systemd test
# image (no registry); rebuilt only when the recipe changed. Then flattened into one layer
# (anvil-hetzner/demo:12-flat): nested Docker on these machines stores layers with the vfs driver,
# a full copy of the tree per layer. The shop's second version is the same layer with
# APP_VERSION=v2 (anvil-hetzner/demo:12-v2: a new image config, no new layer).
set -euo pipefail

. "$(dirname "$0")/derived.sh"
build_derived anvil-hetzner/demo 12 demo.Dockerfile demo/shop.py demo/postgres-entrypoint demo/redis-entrypoint
id=$(docker image inspect -f '{{.Id}}' anvil-hetzner/demo:12 | cut -d: -f2 | cut -c1-12)
if ! docker image inspect "anvil-hetzner/demo:flat-$id" >/dev/null 2>&1; then
  echo "flattening anvil-hetzner/demo:12 into one layer ..."
  container=$(docker create anvil-hetzner/demo:12)
  trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
  docker export "$container" | docker import \
    -c 'ENV APP_VERSION=v1' -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/usr/bin/python3", "/app/shop.py"]' - "anvil-hetzner/demo:flat-$id" >/dev/null
fi
docker tag "anvil-hetzner/demo:flat-$id" anvil-hetzner/demo:12-flat
printf 'FROM anvil-hetzner/demo:12-flat\nENV APP_VERSION=v2\n' \
  | DOCKER_BUILDKIT=0 docker build -q -t anvil-hetzner/demo:12-v2 - >/dev/null
echo "images anvil-hetzner/demo:12-flat (v1) and anvil-hetzner/demo:12-v2 are current"
