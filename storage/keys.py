"""Object keys: which keys are safe (no escape from a prefix or a directory).

A pure module, so request schemas and the client can check keys without loading
an object store.
"""

from __future__ import annotations

import re

from storage.errors import InvalidKey

_KEY = re.compile(r"^[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*$")
#: Half of S3's 1024 bytes: every store takes it.
MAX_KEY_LENGTH = 512
#: The longest segment between slashes: a file or folder name on local disks (NAME_MAX).
#: S3 has no such limit, but one key must work on every store.
MAX_SEGMENT_BYTES = 255


def long_segment(key: str) -> str | None:
    """The first segment of ``key`` longer than MAX_SEGMENT_BYTES, or None."""
    return next((part for part in key.split("/")
                 if len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES), None)


def folders_of(key: str) -> list[str]:
    """The folders a key lies in, outermost first: ``a/b/c.mp4`` -> ``a``, ``a/b``."""
    parts = key.split("/")[:-1]
    return ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def check_key(key: str) -> str:
    """Refuse keys that could escape a prefix or a directory, or that a store could not hold."""
    if (
        not isinstance(key, str)
        or len(key) > MAX_KEY_LENGTH
        or not _KEY.match(key)
        or long_segment(key) is not None
        or any(part in (".", "..") for part in key.split("/"))
    ):
        raise InvalidKey(key)
    return key
