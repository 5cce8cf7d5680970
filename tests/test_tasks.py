"""Task plumbing that needs no broker: failure payloads, per-kind time limits, and the
order of a render's last reports."""

from __future__ import annotations

import threading
import time
import warnings

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

import tasks.render
from jobs.constants import (
    STAGE_ANALYZING,
    STAGE_DOWNLOADING,
    STAGE_FINALIZING,
    STAGE_UPLOADING,
)
from tasks.callbacks import failure_payload
from tasks.celeryapp import create_celery
from tasks.constants import (
    REAP_TASK,
    RENDER_TASK,
    REPORT_RESULT_TASK,
    TIME_LIMITS,
    VISIBILITY_TIMEOUT,
)
from tasks.errors import DownloadFailed, JobFailed
from tasks.reports import Start
from tests.helpers.stacks import settings_for


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


class OrderedApi:
    """The internal API as the render task sees it: records every call in order. A
    progress PATCH stays in flight until the hand-off comes (a slow API)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.handed_off = threading.Event()
        self.in_flight: list[str] = []
        self.payloads: list[dict] = []

    def start_attempt(self, job_id: str, worker: str, attempt: str,
                      segment: int | None = None, phase: str | None = None) -> Start:
        self.calls.append(("start", None))
        return Start("running", attempt)

    def patch_progress(self, job_id: str, attempt: str, progress: float, stage: str,
                       audio_seconds: float | None = None, segment: int | None = None,
                       stages: dict[str, float] | None = None) -> bool:
        self.in_flight.append(stage)
        self.handed_off.wait(timeout=30)
        self.calls.append(("progress", stage))
        return True

    def hand_off(self, payload: dict) -> bool:
        self.calls.append(("hand_off", payload["status"]))
        self.payloads.append(payload)
        self.handed_off.set()
        return True

    def post_webhook(self, payload: dict) -> None:
        self.calls.append((payload["status"], None))


def test_the_task_hands_off_its_last_stage_without_waiting_for_a_patch_and_the_callback_ends_it(
    monkeypatch: pytest.MonkeyPatch,
):
    api = OrderedApi()
    app = create_celery(settings_for({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    app.__dict__["api"] = api

    def run_job(store, *, report, **_):  # noqa: ANN001, ANN003, ANN202
        report(0.0, STAGE_DOWNLOADING)
        report(0.05, STAGE_ANALYZING)
        while not api.in_flight:  # that report is on its way (and stays there)
            time.sleep(0.001)
        report(0.95, STAGE_UPLOADING)
        return {"videoKey": "renders/j1/output.mp4"}

    monkeypatch.setattr(tasks.render, "run_job", run_job)
    app.__dict__["object_store"] = None
    payload = app.tasks[RENDER_TASK].apply(kwargs={
        "job_id": "j1", "kind": "render", "audio_key": "uploads/a.mp3",
        "output_key": "renders/j1/output.mp4", "options": {}}).get()
    # handed off while a PATCH was still in flight: nothing waited for it
    assert api.calls[1] == ("hand_off", "complete") and api.in_flight == [STAGE_ANALYZING]
    # the hand-off carries the last stage, and when each stage began
    handed = api.payloads[0]
    assert handed["progress"] == 0.99 and handed["stage"] == STAGE_FINALIZING
    assert list(handed["stages"]) == [STAGE_DOWNLOADING, STAGE_ANALYZING, STAGE_UPLOADING,
                                      STAGE_FINALIZING]
    assert ("progress", STAGE_FINALIZING) not in api.calls
    assert ("complete", None) not in api.calls  # the task itself reports no end
    # the task's return value is what the result callback (its `link`) posts: the
    # outcome alone, as an API of any version takes it
    assert payload == {k: v for k, v in handed.items() if k not in ("progress", "stage",
                                                                     "stages")}
    assert payload["result"]["videoKey"]
    app.tasks[REPORT_RESULT_TASK].apply(args=[payload]).get()
    assert api.calls[-1] == ("complete", None)


def test_each_app_registers_its_own_tasks():
    # Celery shares decorated tasks between apps by default: a second app in one process
    # (tests, an embedding) got the first one's task functions, bound to the first
    # app's settings and API client, and Celery warned that the name was taken.
    settings = settings_for({"REDIS_URL": "redis://127.0.0.1:1/0"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apps = [create_celery(settings) for _ in range(2)]
        for app in apps:
            app.finalize()
    assert not [w for w in caught if "already registered" in str(w.message)]
    reaped: list[int] = []
    for number, app in enumerate(apps):
        app.__dict__["api"] = type("Api", (), {"reap": lambda self, n=number: reaped.append(n)
                                              or {}})()
    for number, app in enumerate(apps):
        app.tasks[REAP_TASK].apply().get()
        assert reaped[-1] == number  # its own API client, not the other app's
