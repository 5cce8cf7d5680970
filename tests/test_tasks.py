"""Task plumbing that needs no broker: failure payloads, per-kind time limits, the
order of a render's last reports, and the upload fetched while the start is asked."""

from __future__ import annotations

import functools
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

import tasks.render
from devstack import one_second_wav
from jobs.constants import (
    STAGE_ANALYZING,
    STAGE_DOWNLOADING,
    STAGE_FINALIZING,
    STAGE_UPLOADING,
)
from tasks import background
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
from tasks.reports import ProgressReporter, Start
from tests.helpers.e2e import AudioServer
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
    app.__dict__["object_store"] = Storage("http://127.0.0.1:1")  # fetched ahead, never read
    payload = app.tasks[RENDER_TASK].apply(kwargs={
        "job_id": "j1", "kind": "render", "audio_key": "uploads/a.mp3",
        "output_key": "renders/j1/output.mp4", "options": {}}).get()
    background.drain()  # the hand-off goes on a thread of its own as the task returns
    # handed off while a PATCH was still in flight: nothing waited for it
    assert api.calls[1] == ("hand_off", "complete") and api.in_flight == [STAGE_ANALYZING]
    # the hand-off carries the last stage, and when each stage began
    handed = api.payloads[0]
    assert handed["progress"] == 0.99 and handed["stage"] == STAGE_FINALIZING
    assert list(handed["stages"]) == [STAGE_DOWNLOADING, STAGE_ANALYZING, STAGE_UPLOADING,
                                      STAGE_FINALIZING]
    assert ("progress", STAGE_FINALIZING) not in api.calls
    assert ("complete", None) not in api.calls  # the task itself reports no end
    # the task's return value is what the result callback (its `link`) posts: the same
    # report, so the end keeps the stage times if it lands before the hand-off
    assert payload == handed and payload["result"]["videoKey"]
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


class Storage:
    """Our own storage as a task sees it: signed links to a server, stored outputs kept."""

    def __init__(self, base: str):
        self.base, self.stored = base, {}

    def presigned_url(self, key: str, ttl: int) -> str:
        return f"{self.base}/{key}"

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self.stored[key] = path.read_bytes()


@pytest.fixture
def audio_server(tmp_path: Path) -> Iterator[tuple[str, threading.Event]]:
    """Serves one second of audio at any path; the event is set once asked for it."""
    server = AudioServer(one_second_wav(tmp_path / "one.wav").read_bytes())
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.asked
    finally:
        server.shutdown()


class StartAfterDownload(OrderedApi):
    """An API whose answer to the start comes only once the upload is being fetched:
    a task that fetched only after the answer would never start."""

    def __init__(self, asked: threading.Event, go: bool = True, patience: float = 10) -> None:
        super().__init__()
        self.asked, self.go, self.patience = asked, go, patience

    def start_attempt(self, job_id: str, worker: str, attempt: str,
                      segment: int | None = None, phase: str | None = None) -> Start:
        fetched_first = self.asked.wait(timeout=self.patience)
        self.calls.append(("start", "after the fetch began" if fetched_first else "first"))
        return Start("running", attempt) if self.go else Start("canceled", None)


def prepare_task(api: OrderedApi, storage: Storage):  # noqa: ANN201
    app = create_celery(settings_for({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    app.__dict__["api"], app.__dict__["object_store"] = api, storage
    return app.tasks[RENDER_TASK]


def test_the_upload_is_fetched_while_the_api_is_asked_to_start_the_job(
    audio_server: tuple[str, threading.Event], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    base, asked = audio_server
    api, storage = StartAfterDownload(asked), Storage(base)
    payload = prepare_task(api, storage).apply(kwargs={
        "job_id": "j1", "kind": "prepare", "audio_key": "uploads/a.wav",
        "output_key": "prepared/j1/audio.wav", "options": {}}).get()
    assert api.calls[0] == ("start", "after the fetch began")
    assert payload["status"] == "complete" and payload["result"]["duration"] == 1.0
    # the fetched file is the one prepared: its audio is stored, nothing is left behind
    assert storage.stored["prepared/j1/audio.wav"][:4] == b"RIFF"
    assert list(tmp_path.glob("soundreel-*")) == []


def test_an_upload_fetched_for_a_job_that_does_not_start_is_removed(
    audio_server: tuple[str, threading.Event], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    base, asked = audio_server
    api = StartAfterDownload(asked, go=False)
    prepare_task(api, Storage(base)).apply(kwargs={
        "job_id": "j1", "kind": "prepare", "audio_key": "uploads/a.wav",
        "output_key": "prepared/j1/audio.wav", "options": {}})
    assert api.calls == [("start", "after the fetch began")]
    deadline = time.monotonic() + 10
    while list(tmp_path.glob("soundreel-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(tmp_path.glob("soundreel-*")) == []


def test_a_clients_audio_url_is_not_fetched_before_the_job_starts(
    audio_server: tuple[str, threading.Event],
):
    base, asked = audio_server
    api = StartAfterDownload(asked, go=False, patience=1)
    prepare_task(api, Storage(base)).apply(kwargs={
        "job_id": "j1", "kind": "prepare", "audio_key": "", "audio_url": f"{base}/a.wav",
        "output_key": "prepared/j1/audio.wav", "options": {}})
    assert api.calls == [("start", "first")] and not asked.is_set()


def test_a_pool_process_sends_the_hand_offs_it_holds_before_it_exits():
    from celery import signals

    create_celery(settings_for({"REDIS_URL": "redis://127.0.0.1:1/0"}))  # its signals
    sent: list[str] = []

    def slow_hand_off(job_id: str) -> None:
        time.sleep(0.3)
        sent.append(job_id)

    background.submit("handoff", slow_hand_off, "j1")
    background.submit("handoff", slow_hand_off, "j2")
    assert sent == []  # on their way: the task did not wait for them
    # what billiard's child does as it exits (replaced, or the worker stopping)
    signals.worker_process_shutdown.send(sender=None, pid=0, exitcode=0)
    assert sent == ["j1", "j2"]
    # a process goes on after a drain (a test, an embedding): the thread comes back
    assert background.submit("handoff", lambda: "again").result(timeout=5) == "again"


def test_a_job_whose_upload_cannot_be_fetched_ahead_fetches_it_after_its_start(
    audio_server: tuple[str, threading.Event], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    base, asked = audio_server

    class FlakyStorage(Storage):
        """Its first signed link fails (a storage adapter's error)."""

        signed = 0

        def presigned_url(self, key: str, ttl: int) -> str:
            self.signed += 1
            if self.signed == 1:
                raise RuntimeError("signing failed")
            return super().presigned_url(key, ttl)

    api, storage = StartAfterDownload(asked, patience=0.5), FlakyStorage(base)
    payload = prepare_task(api, storage).apply(kwargs={
        "job_id": "j1", "kind": "prepare", "audio_key": "uploads/a.wav",
        "output_key": "prepared/j1/audio.wav", "options": {}}).get()
    # nothing was fetched ahead: the job started, then fetched its upload as before
    assert api.calls[0] == ("start", "first") and payload["status"] == "complete"
    assert storage.stored["prepared/j1/audio.wav"][:4] == b"RIFF"
    assert list(tmp_path.glob("soundreel-*")) == []


class SlowHandOff(OrderedApi):
    """An API slow to take hand-offs: each waits until the test lets it through."""

    def __init__(self) -> None:
        super().__init__()
        self.go_on = threading.Event()
        self.beats = 0

    def patch_progress(self, job_id: str, attempt: str, progress: float, stage: str,
                       audio_seconds: float | None = None, segment: int | None = None,
                       stages: dict[str, float] | None = None) -> bool:
        self.beats += 1
        return True

    def hand_off(self, payload: dict) -> bool:
        self.go_on.wait(timeout=30)
        return super().hand_off(payload)


def test_the_heartbeat_holds_the_lease_until_the_hand_off_has_landed(
    monkeypatch: pytest.MonkeyPatch,
):
    api = SlowHandOff()
    app = create_celery(settings_for({"REDIS_URL": "redis://127.0.0.1:1/0"}))
    app.__dict__["api"], app.__dict__["object_store"] = api, None
    monkeypatch.setattr(tasks.render, "run_job", lambda store, **_: {"videoKey": "x"})
    monkeypatch.setattr(tasks.render, "ProgressReporter",
                        functools.partial(ProgressReporter, heartbeat=0.05))
    app.tasks[RENDER_TASK].apply(kwargs={
        "job_id": "j1", "kind": "render", "audio_key": "", "audio_url": None,
        "output_key": "renders/j1/output.mp4", "options": {}}).get()
    # the task has returned; its hand-off waits on the API: the lease is still renewed
    beats = api.beats
    time.sleep(0.5)
    assert api.beats > beats and ("hand_off", "complete") not in api.calls
    api.go_on.set()
    background.drain()
    assert ("hand_off", "complete") in api.calls
    beats = api.beats
    time.sleep(0.3)
    assert api.beats == beats  # landed: the heartbeat has stopped


def test_a_download_stops_between_chunks_when_asked(tmp_path: Path):
    from tasks.download import download

    server = AudioServer()
    try:
        with pytest.raises(DownloadFailed, match="stopped"):
            download(server.url, tmp_path / "input", max_bytes=10**9, should_stop=lambda: True)
    finally:
        server.shutdown()
