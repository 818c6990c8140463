#!/usr/bin/env bash
# Build anvil-hetzner/prometheus:12: Prometheus + promtool from Debian 12's packages (2.42, the
# oldest Prometheus the shipped alert rules must load in) on the Debian 12 systemd test image,
# with `docker build FROM` the local image (no registry). Rebuilt only when prometheus.Dockerfile
# or the base image changed (tag = hash of both).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=anvil-hetzner/debian:12
repo=anvil-hetzner/prometheus
docker image inspect "$base" >/dev/null 2>&1 || "$here/build.sh" 12
recipe=$( { cat "$here/prometheus.Dockerfile"; docker image inspect -f '{{.Id}}' "$base"; } | sha256sum | cut -c1-12)
if docker image inspect "$repo:12-$recipe" >/dev/null 2>&1; then
  docker tag "$repo:12-$recipe" "$repo:12"
  echo "image $repo:12 is current (recipe $recipe)"
  exit 0
fi
echo "building $repo:12 (recipe $recipe) ..."
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" -t "$repo:12-$recipe" \
  -f "$here/prometheus.Dockerfile" "$here" >/dev/null
docker tag "$repo:12-$recipe" "$repo:12"
echo "built $repo:12"
