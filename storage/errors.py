"""Errors raised by the storage package.

    StorageError
    ├── InvalidKey          an object key that could escape its prefix or directory
    ├── ObjectNotFound      no object under that key (or a bad / expired local link)
    ├── JobNotFound         no job record with that id
    └── StorageUnavailable  Redis or the object store cannot be reached

    CodedError              a failure a user can act on: a stable ``code`` and a
                            message (the base of tasks.errors.JobFailed and
                            storage.urlguard.UrlFetchError)
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


class JobNotFound(StorageError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id


class StorageUnavailable(StorageError):
    """The backing service is down or unreachable; callers answer 503, not 500."""


class CodedError(Exception):
    """A failure with a stable ``code`` and a ``message`` written for the user.

    It pickles by both, so it crosses Celery's process boundaries (a pool child's
    failure reaches the parent) intact.
    """

    code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.message, self.code))
