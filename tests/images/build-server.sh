#!/usr/bin/env bash
# Build anvil-hetzner/server:<N> (N = 12, 13): the machine image of the Hetzner API sandbox's
# DockerBackend (tests/sandbox/hcloud_sandbox/docker_backend.py), Debian's cloud-init on the
# systemd test image anvil-hetzner/debian:<N>, with `docker build FROM` the local image (no
# registry). Rebuilt only when server.Dockerfile, server-cloud.cfg or the base image changed
# (tag = hash of the three).
#
# Usage: tests/images/build-server.sh [12] [13]     (default: both)
set -euo pipefail

. "$(dirname "$0")/derived.sh"

releases=("$@")
[ ${#releases[@]} -gt 0 ] || releases=(12 13)
for r in "${releases[@]}"; do
  build_derived anvil-hetzner/server "$r" server.Dockerfile server-cloud.cfg
done
