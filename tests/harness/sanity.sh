#!/usr/bin/env bash
# ansible-test sanity (the checks Galaxy-published collections run) on this checkout, in
# virtualenvs that ansible-test builds itself (--venv; no container images).
#
# Two facts of these machines are handled here (see ../shared/ENVIRONMENT.md):
# - ansible-test wants the collection at .../ansible_collections/anvil/hetzner: the tracked and
#   new files of the checkout are copied into such a tree under a temporary directory;
# - ansible-test bootstraps pip in each venv with a script it downloads from a host that is not
#   reachable here. It first looks in ~/.ansible/test/cache/get_pip_<version>.py; a stand-in there
#   uses the interpreter's own ensurepip, then pip installs what it was asked for.
# Every sanity test passes without an ignore file. A finding that is wrong for this collection
# would go into tests/sanity/ignore-<ansible-core version>.txt, with its reason in the commit.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

pip_version=$(python3 - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", src.read_text()).group(1))
PY
)
stand_in=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -f "$stand_in" ] || ! grep -q 'anvil.hetzner stand-in' "$stand_in"; then
  mkdir -p "$(dirname "$stand_in")"
  cat >"$stand_in" <<'PY'
# anvil.hetzner stand-in for pip's get-pip.py (its download host is not reachable here):
# bootstrap pip with ensurepip, then install what ansible-test asked for.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
PY
fi

tree=$(mktemp -d /tmp/anvil-sanity.XXXXXX)
trap 'rm -rf "$tree"' EXIT
dest="$tree/ansible_collections/anvil/hetzner"
mkdir -p "$dest"
git ls-files -co --exclude-standard -z | grep -zv '^collections/' | xargs -0 cp --parents -t "$dest"
cd "$dest"
git init -q && git add -A >/dev/null   # ansible-test lists a collection's files through git
ansible-test sanity --venv --python 3.11 --color no "$@"
