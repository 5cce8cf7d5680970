"""Errors raised by the storage package (and by the job store, for Redis).

    StorageError
    ├── InvalidKey          an object key that could escape its prefix or directory
    ├── ObjectNotFound      no object under that key (or a bad / expired local link)
    └── StorageUnavailable  Redis or the object store cannot be reached (503)
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error."""


class InvalidKey(StorageError):
    def __init__(self, key: object) -> None:
        super().__init__(
            f"invalid object key {key!r}: use letters, digits, '.', '_', '-' and '/' "
            "between non-empty segments"
        )


class ObjectNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no object at {key!r}")
        self.key = key


class StorageUnavailable(StorageError):
    """The backing service is down or unreachable; callers answer 503, not 500."""
