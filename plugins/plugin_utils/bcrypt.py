# Copyright: anvil.hetzner maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reproducible bcrypt hashes (used by the bcrypt_hash and caddy filters)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def reproducible_salt(password: str, context: Sequence[str], cost: int = 12) -> bytes:
    """bcrypt salt from SHA-256 over the context and the password, NUL-separated."""
    seed = hashlib.sha256("\0".join([*context, password]).encode()).digest()[:16]
    return b"$2b$%02d$" % cost + base64.b64encode(seed).translate(bytes.maketrans(_STD, _BCRYPT))[:22]


def reproducible_bcrypt(password: Any, context: Sequence[str], cost: int = 12) -> str:
    """bcrypt of ``password``; the same password and context always give the same hash.

    Raises TypeError/ValueError for bad arguments and ImportError (with advice) without the
    bcrypt library; never includes the password in a message.
    """
    if not isinstance(password, str) or not password:
        raise ValueError("the password must be a non-empty string")
    if isinstance(context, str) or not all(isinstance(part, str) for part in context):
        raise TypeError("context must be a list of strings")
    if not 4 <= int(cost) <= 31:
        raise ValueError(f"cost must be from 4 to 31, got {cost}")
    if len(password.encode()) > 72:
        raise ValueError("bcrypt uses only the first 72 bytes of a password; use a shorter one")
    try:
        import bcrypt  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ImportError("the bcrypt Python library is missing on the controller (pip install bcrypt); "
                          "no password was hashed and nothing was written") from exc
    return bcrypt.hashpw(password.encode(), reproducible_salt(password, context, int(cost))).decode()
