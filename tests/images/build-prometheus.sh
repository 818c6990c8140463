#!/usr/bin/env bash
# Build anvil-hetzner/prometheus:12: Prometheus + promtool from Debian 12's packages (2.42, the
# oldest Prometheus the shipped alert rules must load in) on the Debian 12 systemd test image,
# with `docker build FROM` the local image (no registry). Rebuilt only when prometheus.Dockerfile
# or the base image changed (tag = hash of both).
set -euo pipefail

. "$(dirname "$0")/derived.sh"
build_derived anvil-hetzner/prometheus 12 prometheus.Dockerfile
