"""Object keys: which keys are safe (no escape from a prefix or a directory).

A pure module, so request schemas and the client can check keys without loading
an object store.
"""

from __future__ import annotations

import re

from storage.errors import InvalidKey

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*$")
MAX_KEY_LENGTH = 512


def check_key(key: str) -> str:
    """Refuse keys that could escape a prefix or a directory."""
    if (
        not isinstance(key, str)
        or len(key) > MAX_KEY_LENGTH
        or not _KEY.match(key)
        or any(part in (".", "..") for part in key.split("/"))
    ):
        raise InvalidKey(key)
    return key
