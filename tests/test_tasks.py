"""Task plumbing that needs no broker: failure payloads and per-kind time limits."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from tasks.callbacks import failure_payload
from tasks.constants import TIME_LIMITS, VISIBILITY_TIMEOUT
from tasks.errors import DownloadFailed, JobFailed


def test_failure_payload_keeps_the_code_of_job_failures():
    payload = failure_payload("j1", DownloadFailed("gone"), attempt="a1")
    assert payload == {"jobId": "j1", "status": "failed", "attempt": "a1",
                       "error": {"code": "download_failed", "message": "gone"}}
    assert failure_payload("j1", JobFailed("bad", "invalid_audio"))["error"]["code"] == (
        "invalid_audio"
    )


@pytest.mark.parametrize("exc", [SoftTimeLimitExceeded(), TimeLimitExceeded(300)])
def test_time_limits_are_reported_as_such_with_the_kinds_limit(exc):
    error = failure_payload("j1", exc, "preview")["error"]
    assert error["code"] == "time_limit_exceeded"
    assert f"{TIME_LIMITS['preview'][0]} s" in error["message"]


def test_unexpected_errors_say_little():
    error = failure_payload("j1", KeyError("secret/path"))["error"]
    assert error["code"] == "internal_error" and "secret" not in error["message"]


def test_every_hard_limit_is_under_the_visibility_timeout():
    # a task still running when its message becomes visible again would run twice
    for soft, hard in TIME_LIMITS.values():
        assert soft < hard < VISIBILITY_TIMEOUT
