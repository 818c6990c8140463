"""Make the collection importable as ansible_collections.anvil.hetzner from the checkout, and the
Hetzner API sandbox (tests/sandbox/hcloud_sandbox) importable as hcloud_sandbox."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "collections", ROOT / "tests" / "sandbox"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
