"""The worker's progress reporter: coalesces, never blocks the render, always
sends the last value, and stops promptly."""

from __future__ import annotations

import threading
import time

from tasks.reports import ProgressReporter, Start


class SlowClient:
    """Records PATCHes; each takes ``delay`` seconds, like a slow API."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sent: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def patch_progress(self, job_id: str, attempt: str, progress: float, stage: str,
                       audio_seconds: float | None = None, segment: int | None = None) -> None:
        time.sleep(self.delay)
        with self.lock:
            self.sent.append((progress, stage))


def test_close_sends_the_last_value_and_returns_promptly_even_mid_patch():
    client = SlowClient(delay=0.3)
    reporter = ProgressReporter(client, "job", interval=0.05)  # type: ignore[arg-type]
    reporter.update(0.1, "rendering")
    time.sleep(0.05)  # the first PATCH is in flight
    reporter.update(0.7, "rendering")
    started = time.monotonic()
    reporter.close()
    assert time.monotonic() - started < 1.0
    assert not reporter._thread.is_alive()
    assert client.sent[-1] == (0.7, "rendering")


def test_many_updates_are_coalesced_and_in_order():
    client = SlowClient()
    with ProgressReporter(client, "job", interval=0.05) as reporter:  # type: ignore[arg-type]
        for step in range(1, 501):
            reporter.update(step / 500, "rendering")
            time.sleep(0.0005)
    progress = [value for value, _ in client.sent]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(progress) < 100


def test_a_stage_change_is_sent_at_once():
    client = SlowClient()
    with ProgressReporter(client, "job", interval=10.0) as reporter:  # type: ignore[arg-type]
        reporter.update(0.0, "downloading")
        time.sleep(0.1)
        reporter.update(0.05, "rendering")
        time.sleep(0.1)
        assert [stage for _, stage in client.sent] == ["downloading", "rendering"]


def test_close_with_nothing_reported_sends_nothing():
    client = SlowClient()
    reporter = ProgressReporter(client, "job")  # type: ignore[arg-type]
    reporter.close()
    assert client.sent == [] and not reporter._thread.is_alive()


class AnsweringClient(SlowClient):
    """Answers every PATCH as the API does: go on (current) or stop."""

    def __init__(self, current: bool, status: str = "running") -> None:
        super().__init__()
        self.current = current
        self.status = status
        self.attempts: list[str] = []

    def patch_progress(self, job_id: str, attempt: str, progress: float, stage: str,
                       audio_seconds: float | None = None, segment: int | None = None) -> bool:
        super().patch_progress(job_id, attempt, progress, stage)
        self.attempts.append(attempt)
        return self.current

    def start_attempt(self, job_id: str, worker: str, attempt: str,
                      segment: int | None = None, phase: str | None = None) -> Start:
        self.started = worker
        return Start(self.status, "abc" if self.current else None)


def test_start_learns_at_once_that_a_queued_job_was_canceled_or_is_held():
    for status in ("canceled", "running"):  # running: another live attempt holds it
        client = AnsweringClient(current=False, status=status)
        with ProgressReporter(client, "job") as reporter:  # type: ignore[arg-type]
            assert not reporter.start("w1@host/1", "abc").go
            assert reporter.stop.is_set() and client.started == "w1@host/1"


def test_reports_carry_the_attempt_the_start_gave():
    client = AnsweringClient(current=True)
    with ProgressReporter(client, "job") as reporter:  # type: ignore[arg-type]
        assert reporter.start("w1@host/1", "abc").go
        reporter.update(0.1, "rendering")
    assert client.attempts == ["abc"] and not reporter.stop.is_set()


def test_heartbeat_repeats_the_last_report_so_a_stop_is_heard_without_progress():
    client = AnsweringClient(current=True)
    with ProgressReporter(client, "job", heartbeat=0.1) as reporter:  # type: ignore[arg-type]
        reporter.update(0.05, "rendering")
        time.sleep(0.15)
        assert not reporter.stop.is_set()
        client.current = False  # DELETE, a deadline, or a takeover, while the decode is quiet
        time.sleep(0.35)
        assert reporter.stop.is_set()
    assert len(client.sent) >= 3 and set(client.sent) == {(0.05, "rendering")}


def test_an_unreachable_api_does_not_stop_the_work():
    client = AnsweringClient(current=True)
    client.patch_progress = lambda *args: None  # type: ignore[method-assign]
    with ProgressReporter(client, "job", heartbeat=0.05) as reporter:  # type: ignore[arg-type]
        reporter.update(0.05, "rendering")
        time.sleep(0.2)
        assert not reporter.stop.is_set()


def test_no_stage_is_skipped_even_when_stages_change_faster_than_reports_go():
    client = SlowClient(delay=0.1)
    with ProgressReporter(client, "job", interval=10.0) as reporter:  # type: ignore[arg-type]
        for stage in ("downloading", "analyzing", "rendering", "uploading", "finalizing"):
            reporter.update(0.5, stage)
    assert [stage for _, stage in client.sent] == [
        "downloading", "analyzing", "rendering", "uploading", "finalizing"]


def test_flush_waits_for_the_last_value_and_the_heartbeat_goes_on():
    client = SlowClient(delay=0.2)
    with ProgressReporter(client, "job", interval=10.0, heartbeat=0.1) as reporter:  # type: ignore[arg-type]
        reporter.update(0.5, "uploading")
        reporter.update(0.99, "finalizing")
        assert reporter.flush()
        assert client.sent[-1] == (0.99, "finalizing")  # arrived, not merely taken
        sent = len(client.sent)
        time.sleep(0.8)
        assert len(client.sent) > sent  # still beating: the lease is still renewed
