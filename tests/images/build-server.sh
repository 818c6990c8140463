#!/usr/bin/env bash
# Build anvil-hetzner/server:<N> (N = 12, 13): the machine image of the Hetzner API sandbox's
# DockerBackend (tests/sandbox/hcloud_sandbox/docker_backend.py), Debian's cloud-init on the
# systemd test image anvil-hetzner/debian:<N>, with `docker build FROM` the local image (no
# registry). Rebuilt only when server.Dockerfile, server-cloud.cfg or the base image changed
# (tag = hash of the three).
#
# Usage: tests/images/build-server.sh [12] [13]     (default: both)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=anvil-hetzner/server

build() {
  local release=$1 base=anvil-hetzner/debian:$1 recipe
  docker image inspect "$base" >/dev/null 2>&1 || "$here/build.sh" "$release"
  recipe=$( { cat "$here/server.Dockerfile" "$here/server-cloud.cfg"; docker image inspect -f '{{.Id}}' "$base"; } \
    | sha256sum | cut -c1-12)
  if docker image inspect "$repo:$release-$recipe" >/dev/null 2>&1; then
    docker tag "$repo:$release-$recipe" "$repo:$release"
    echo "image $repo:$release is current (recipe $recipe)"
    return 0
  fi
  echo "building $repo:$release (recipe $recipe) ..."
  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" -t "$repo:$release-$recipe" \
    -f "$here/server.Dockerfile" "$here" >/dev/null
  docker tag "$repo:$release-$recipe" "$repo:$release"
  echo "built $repo:$release"
}

releases=("$@")
[ ${#releases[@]} -gt 0 ] || releases=(12 13)
for r in "${releases[@]}"; do
  build "$r"
done
