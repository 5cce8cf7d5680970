"""The worker's progress reporter: coalesces, never blocks the render, always
sends the last value, and stops promptly."""

from __future__ import annotations

import threading
import time

import pytest

from tasks.reports import ProgressReporter, Start, WebhookRejected


class SlowClient:
    """Records PATCHes; each takes ``delay`` seconds, like a slow API."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sent: list[tuple[float, str]] = []
        self.stages: list[dict[str, float] | None] = []  # what each PATCH carried
        self.lock = threading.Lock()

    def patch_progress(self, job_id: str, attempt: str, progress: float, stage: str,
                       audio_seconds: float | None = None, segment: int | None = None,
                       stages: dict[str, float] | None = None) -> None:
        time.sleep(self.delay)
        with self.lock:
            self.sent.append((progress, stage))
            self.stages.append(stages)


class GatedClient(SlowClient):
    """Each PATCH is held in flight until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.in_flight = threading.Event()

    def patch_progress(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        self.in_flight.set()
        self.gate.wait(timeout=30)
        super().patch_progress(*args, **kwargs)


def wait_for(check, timeout: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


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
                       audio_seconds: float | None = None, segment: int | None = None,
                       stages: dict[str, float] | None = None) -> bool:
        super().patch_progress(job_id, attempt, progress, stage, stages=stages)
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


def test_a_flush_with_nothing_reported_since_the_start_has_nothing_to_wait_for():
    """A split render's audio unit reports no progress before its end: its flush must
    not wait out its timeout (the end, and the join after it, would wait with it)."""
    client = AnsweringClient(current=True)
    with ProgressReporter(client, "job", segment=3) as reporter:  # type: ignore[arg-type]
        assert reporter.start("w1@host/1", "abc").go
        assert reporter.flush() is True


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
    client.patch_progress = lambda *args, **kwargs: None  # type: ignore[method-assign]
    with ProgressReporter(client, "job", heartbeat=0.05) as reporter:  # type: ignore[arg-type]
        reporter.update(0.05, "rendering")
        time.sleep(0.2)
        assert not reporter.stop.is_set()


def test_a_stage_change_is_sent_without_waiting_for_the_coalescing_interval():
    client = SlowClient()
    with ProgressReporter(client, "job", interval=60.0) as reporter:  # type: ignore[arg-type]
        reporter.update(0.05, "analyzing")
        assert wait_for(lambda: client.sent == [(0.05, "analyzing")])

        def work() -> None:
            reporter.update(0.5, "analyzing")  # within the stage: held for the interval
            reporter.update(0.95, "uploading")  # a new stage: goes now, and replaces it

        threading.Thread(target=work, daemon=True).start()
        assert wait_for(lambda: client.sent[-1:] == [(0.95, "uploading")])
        assert (0.5, "analyzing") not in client.sent
        assert set(client.stages[-1] or {}) == {"analyzing", "uploading"}


def test_updates_never_wait_for_a_patch_in_flight():
    client = GatedClient()
    reporter = ProgressReporter(client, "job", interval=60.0)  # type: ignore[arg-type]
    done = threading.Event()

    def work() -> None:
        reporter.update(0.0, "downloading")
        assert client.in_flight.wait(timeout=5)  # that report is now stuck in flight
        for progress, stage in ((0.05, "analyzing"), (0.5, "analyzing"), (0.95, "uploading")):
            reporter.update(progress, stage)
        reporter.settle(0.99, "finalizing")
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        # the work went through every stage while its first report was still in flight
        assert done.wait(timeout=5) and client.sent == []
    finally:
        client.gate.set()
        worker.join()
        reporter.close()
    assert client.sent == [(0.0, "downloading")]  # settled: the hand-off carries the rest


def test_every_stage_time_reaches_the_api_when_stages_change_faster_than_reports_go():
    client = SlowClient(delay=0.1)
    stages = ("downloading", "analyzing", "rendering", "uploading", "finalizing")
    with ProgressReporter(client, "job", interval=10.0) as reporter:  # type: ignore[arg-type]
        for stage in stages:
            reporter.update(0.5, stage)
    assert client.sent[-1] == (0.5, "finalizing") and len(client.sent) < len(stages)
    carried = client.stages[-1] or {}
    assert list(carried) == list(stages)
    assert [carried[s] for s in stages] == sorted(carried[s] for s in stages)


def test_settle_gives_the_hand_off_the_last_value_and_every_stage_time():
    client = SlowClient()
    with ProgressReporter(client, "job", interval=60.0) as reporter:  # type: ignore[arg-type]
        reporter.update(0.05, "analyzing")
        reporter.update(0.95, "uploading")
        last = reporter.settle(0.99, "finalizing")
    assert last["progress"] == 0.99 and last["stage"] == "finalizing"
    assert list(last["stages"]) == ["analyzing", "uploading", "finalizing"]
    assert all(seconds >= 0 for seconds in last["stages"].values())
    assert (0.99, "finalizing") not in client.sent  # the hand-off carries it, not a PATCH


def test_the_heartbeat_goes_on_after_settle_holding_the_lease_for_the_hand_off():
    client = AnsweringClient(current=True)
    with ProgressReporter(client, "job", interval=60.0, heartbeat=0.1) as reporter:  # type: ignore[arg-type]
        reporter.update(0.5, "uploading")
        assert wait_for(lambda: client.sent == [(0.5, "uploading")])
        reporter.settle(0.99, "finalizing")
        assert wait_for(lambda: len(client.sent) >= 3)  # still beating
    assert set(client.sent) == {(0.5, "uploading")}


def test_a_short_attempt_sends_no_patch_and_its_hand_off_carries_every_stage():
    # the start wrote the stage and the lease: a job done within the quiet start
    # reports nothing more until its hand-off, which carries each stage's time
    client = AnsweringClient(current=True)
    with ProgressReporter(client, "job", interval=60.0, quiet=60.0) as reporter:  # type: ignore[arg-type]
        assert reporter.start("w1@host/1", "abc").go
        for progress, stage in ((0.0, "downloading"), (0.05, "analyzing"), (0.95, "uploading")):
            reporter.update(progress, stage)
        last = reporter.settle(0.99, "finalizing")
    assert client.sent == []
    assert list(last["stages"]) == ["downloading", "analyzing", "uploading", "finalizing"]


def test_after_the_quiet_start_the_latest_stage_goes_at_once():
    client = AnsweringClient(current=True)
    with ProgressReporter(client, "job", interval=60.0, heartbeat=60.0, quiet=0.2) as reporter:  # type: ignore[arg-type]
        assert reporter.start("w1@host/1", "abc").go
        reporter.update(0.0, "downloading")  # what the start already wrote: never sent
        reporter.update(0.05, "analyzing")
        reporter.update(0.06, "analyzing")
        assert client.sent == []  # quiet, for now
        assert wait_for(lambda: client.sent == [(0.06, "analyzing")])
        assert set(client.stages[-1] or {}) == {"downloading", "analyzing"}


def test_the_api_session_keeps_the_environments_proxy_and_ca_for_the_api(monkeypatch):
    from tasks.reports import own_session

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "api.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/private-ca.pem")
    proxied = own_session("http://api.example:8000")
    assert proxied.proxies.get("http") == "http://proxy.example:3128"
    assert proxied.verify == "/etc/ssl/private-ca.pem" and not proxied.trust_env
    assert "http" not in own_session("http://api.internal:8000").proxies  # NO_PROXY


class OlderApi:
    """A session to an API that predates the stage times: it refuses unknown fields (400)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def request(self, method: str, url: str, json: dict, headers: dict, timeout: float):  # noqa: ANN201
        self.bodies.append(json)
        known = {"progress", "stage", "attempt", "audioSeconds"} if method == "PATCH" else {
            "jobId", "status", "attempt", "result", "error"}
        status = 400 if set(json) - known else 200
        return type("Answer", (), {"status_code": status,
                                   "json": staticmethod(lambda: {"current": True})})()


def test_workers_upgraded_before_the_api_still_renew_leases_and_hand_off():
    from tasks.reports import ApiClient

    session = OlderApi()
    api = ApiClient("http://api", "token" * 4, session=session)  # type: ignore[arg-type]
    assert api.patch_progress("j1", "a1", 0.5, "rendering", stages={"rendering": 1.0}) is True
    assert api.hand_off({"jobId": "j1", "status": "complete", "attempt": "a1",
                         "result": {}, "progress": 0.99, "stage": "finalizing",
                         "stages": {"finalizing": 2.0}})
    # refused once, then sent as the older API takes them, from then on at once
    assert api.patch_progress("j1", "a1", 0.6, "rendering", stages={"rendering": 1.0}) is True
    assert [sorted(body) for body in session.bodies] == [
        ["attempt", "progress", "stage", "stages"], ["attempt", "progress", "stage"],
        ["attempt", "jobId", "result", "status"], ["attempt", "progress", "stage"]]


def test_an_api_older_than_the_worker_takes_the_end_without_the_stage_times():
    from tasks.reports import ApiClient

    session = OlderApi()
    api = ApiClient("http://api", "token" * 4, session=session)  # type: ignore[arg-type]
    # the task's return value, which the result callback posts, carries its stage times
    api.post_webhook({"jobId": "j1", "status": "complete", "attempt": "a1", "result": {},
                      "progress": 0.99, "stage": "finalizing", "stages": {"finalizing": 2.0}})
    assert [sorted(body) for body in session.bodies] == [
        ["attempt", "jobId", "progress", "result", "stage", "stages", "status"],
        ["attempt", "jobId", "result", "status"]]  # refused once, then taken without them


def test_flush_sends_at_once_waits_for_the_last_value_and_the_heartbeat_goes_on():
    client = AnsweringClient(current=True)
    with ProgressReporter(client, "job", interval=60.0, heartbeat=0.1, quiet=60.0) as reporter:  # type: ignore[arg-type]
        assert reporter.start("w1@host/1", "abc").go
        reporter.update(0.08, "analyzing")
        assert reporter.flush()  # for a report that must come after it: not quiet
        assert client.sent[-1] == (0.08, "analyzing")  # arrived, not merely taken
        sent = len(client.sent)
        assert wait_for(lambda: len(client.sent) > sent)  # still beating


def test_a_current_apis_400_about_the_result_does_not_drop_the_stage_times():
    from tasks.reports import ApiClient

    class CurrentApi:
        """It takes stage times, and refuses a result that is not one, naming the field."""

        def __init__(self) -> None:
            self.bodies: list[dict] = []

        def request(self, method: str, url: str, json: dict, headers: dict, timeout: float):  # noqa: ANN201
            self.bodies.append(json)
            bad = isinstance((json.get("result") or {}).get("duration"), str)
            answer = {"error": {"code": "bad_request", "field": "result.duration"}}
            return type("Answer", (), {"status_code": 400 if bad else 200,
                                       "text": "", "json": staticmethod(lambda: answer)})()

    session = CurrentApi()
    api = ApiClient("http://api", "token" * 4, session=session)  # type: ignore[arg-type]
    end = {"jobId": "j1", "status": "complete", "attempt": "a1", "stages": {"finalizing": 2.0}}
    with pytest.raises(WebhookRejected):
        api.post_webhook({**end, "result": {"duration": "x"}})
    api.post_webhook({**end, "result": {"duration": 1.0}})
    # refused once for its result, not asked again without the stage times; the next
    # report still carries them
    assert ["stages" in body for body in session.bodies] == [True, True]
