#!/usr/bin/env bash
# Build the systemd test images (Debian 12 "bookworm", Debian 13 "trixie") with debootstrap and
# `docker import`, because no registry can be reached from the test machines.
#
# Usage: tests/images/build.sh [12] [13]     (default: both)
#
# An image is rebuilt only when its recipe (this file) changed: every image carries a tag made of
# the hash of this script and customize.sh, and the stable tag `anvil-hetzner/debian:<N>` points at the newest build.
# debootstrap uses its own default mirror on purpose: no mirror host name lives in this project.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
recipe=$(cat "$0" "$here/customize.sh" | sha256sum | cut -c1-12)
repo=anvil-hetzner/debian

# Packages that a freshly created Hetzner Cloud server already has and that Ansible needs to reach
# it: systemd as PID 1, sshd with root key login, Python for the modules, sudo.
include=systemd,systemd-sysv,dbus,libpam-systemd,python3,python3-apt,sudo,openssh-server,openssh-client,iproute2,iputils-ping,ca-certificates,procps,less,gnupg

suite_of() {
  case "$1" in
    12) echo bookworm ;;
    13) echo trixie ;;
    *) echo "unknown Debian release '$1' (known: 12, 13)" >&2; return 2 ;;
  esac
}

build() {
  local release=$1 suite rootfs
  suite=$(suite_of "$release")
  if docker image inspect "$repo:$release-$recipe" >/dev/null 2>&1; then
    docker tag "$repo:$release-$recipe" "$repo:$release"
    echo "image $repo:$release is current (recipe $recipe)"
    return 0
  fi
  echo "building $repo:$release ($suite, recipe $recipe) ..."
  rootfs=$(mktemp -d /tmp/anvil-rootfs-"$release".XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  # a second try on a fresh directory when a download broke off (the mirror is the only network)
  local try
  for try in 1 2; do
    debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" >"$rootfs.log" 2>&1 && break
    tail -30 "$rootfs.log" >&2
    echo "debootstrap of $suite failed (try $try; log: $rootfs.log)" >&2
    [ "$try" -lt 2 ] || return 1
    rm -rf "$rootfs" && mkdir -p "$rootfs"
  done
  ROOTFS=$rootfs bash "$here/customize.sh"
  tar -C "$rootfs" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c 'ENV container=docker' \
    - "$repo:$release-$recipe" >/dev/null
  docker tag "$repo:$release-$recipe" "$repo:$release"
  rm -f "$rootfs.log"
  echo "built $repo:$release"
}

releases=("$@")
[ ${#releases[@]} -gt 0 ] || releases=(12 13)
for r in "${releases[@]}"; do
  build "$r"
done
