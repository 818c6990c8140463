"""Make the collection importable as ansible_collections.anvil.hetzner from the checkout, and the
Hetzner API sandbox (tests/sandbox/hcloud_sandbox) importable as hcloud_sandbox."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "collections", ROOT / "tests" / "sandbox"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture()
def no_bcrypt(monkeypatch):
    """Python as on a controller without the bcrypt library: importing it fails."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "bcrypt":
            raise ImportError("No module named 'bcrypt'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
