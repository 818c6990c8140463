# shellcheck shell=bash
# Sourced by build-prometheus.sh and build-server.sh: an image built with `docker build FROM` the
# local systemd test image anvil-hetzner/debian:<release> (no registry), tagged <repo>:<release>.
# Rebuilt only when the recipe changed: the tag <repo>:<release>-<hash of the recipe files and the
# base image's id>.
# Usage: build_derived REPO RELEASE DOCKERFILE [OTHER RECIPE FILE ...]   (paths relative to here)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

build_derived() {
  local repo=$1 release=$2 dockerfile=$3 base=anvil-hetzner/debian:$2 recipe
  shift 3
  docker image inspect "$base" >/dev/null 2>&1 || "$here/build.sh" "$release"
  recipe=$( { (cd "$here" && cat "$dockerfile" "$@"); docker image inspect -f '{{.Id}}' "$base"; } \
    | sha256sum | cut -c1-12)
  if docker image inspect "$repo:$release-$recipe" >/dev/null 2>&1; then
    docker tag "$repo:$release-$recipe" "$repo:$release"
    echo "image $repo:$release is current (recipe $recipe)"
    return 0
  fi
  echo "building $repo:$release (recipe $recipe) ..."
  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base" -t "$repo:$release-$recipe" \
    -f "$here/$dockerfile" "$here" >/dev/null
  docker tag "$repo:$release-$recipe" "$repo:$release"
  echo "built $repo:$release"
}
