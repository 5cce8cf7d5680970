"""Errors of the jobs domain.

    JobNotFound     no job record with that id (the API answers 404)
    CodedError      a failure a user can act on: a stable ``code`` and a message
                    (the base of tasks.errors.JobFailed and security.urlguard.UrlFetchError)

A store that cannot be reached is ``storage.errors.StorageUnavailable``, for Redis
as for the object store: either way the API answers 503.
"""

from __future__ import annotations


class JobNotFound(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id


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
