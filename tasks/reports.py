"""How a worker talks to the API: progress PATCHes and the completion webhook.

Workers never write the job record; they report, and the API's state machine
decides. Progress is best effort (a lost PATCH only makes a bar jump); the
webhook is retried by the callback task until the API has it.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests

from config import logs
from jobs.constants import RUNNING, STAGE_DOWNLOADING

log = logging.getLogger(__name__)

PROGRESS_TIMEOUT = 3.0
#: The longest one PATCH takes: requests bounds the connect and each read separately.
PATCH_SECONDS = 2 * PROGRESS_TIMEOUT
WEBHOOK_TIMEOUT = 15.0
#: Progress within a stage: at most one PATCH this often, seconds (a new stage goes at once).
PROGRESS_INTERVAL = 0.5
#: With no change, the last progress is sent again this often (the cancel check).
HEARTBEAT_SECONDS = 2.0
#: An attempt's first PATCH waits this long after its start, which wrote its stage and
#: its lease: a job shorter than this (a prepare, a short preview) sends no PATCH at
#: all, and its hand-off carries its stages and their times.
QUIET_START_SECONDS = 0.5


class WebhookRejected(Exception):
    """The API refused the report for good (a 4xx other than 401, 403, 429)."""


class WebhookUnavailable(Exception):
    """The API could not take the report now (5xx, 429, network): retry later."""


class ApiUnavailable(Exception):
    """The API could not be asked (network, 5xx): the delivery waits and asks again."""


@dataclass(frozen=True)
class Start:
    """The API's answer to "may this delivery work on the job?"."""

    status: str
    #: The new attempt's id; None when this delivery must do nothing (another live
    #: attempt holds the job, or it ended, or it was given up).
    attempt: str | None

    @property
    def go(self) -> bool:
        return self.status == RUNNING and self.attempt is not None


#: What a hand-off adds to the result payload, and a PATCH to its progress: fields an
#: API older than the worker does not know.
HANDOFF_FIELDS = ("progress", "stage", "stages")
PATCH_FIELDS = ("stages",)

#: Pauses between tries of a hand-off (a few seconds in all: the lease is still held).
HANDOFF_RETRIES = (0.5, 1.0, 2.0)
#: A report that must arrive (a split's plan, a window's end) is asked again until it
#: does, waiting at most this long between tries.
UNTIL_TAKEN_MAX_WAIT = 10.0
UNTIL_TAKEN_SECONDS = 120.0


def _job_path(job_id: str, segment: int | None) -> str:
    """The internal resource a report is about: the job, or one window of it."""
    base = f"/internal/jobs/{job_id}"
    return base if segment is None else f"{base}/segments/{segment}"


def own_session(base_url: str) -> requests.Session:
    """A session to the API that takes the environment's proxy and CA settings for
    ``base_url`` once: left to itself, requests reads them again on every call
    (about half a millisecond of CPU each, a job's reports make several)."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # none kept
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.trust_env = False
    return session


def _refused_field(response: requests.Response) -> str | None:
    """The field a 400 names (its first part: ``stages`` of ``stages.x``); None if it
    names none (an API that does not say is taken to refuse the newer fields)."""
    try:
        field = response.json()["error"]["field"]
    except (ValueError, KeyError, TypeError):
        return None
    return field.split(".")[0] if isinstance(field, str) else None


class ApiClient:
    """The API's internal endpoints, authenticated with the shared worker token."""

    def __init__(self, base_url: str, token: str, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session or own_session(self.base_url)
        self._older_api = False  # it refused the newer fields: send reports without them

    def start_attempt(self, job_id: str, worker: str, attempt: str,
                      segment: int | None = None, phase: str | None = None) -> Start:
        """Ask before any work (on the job, one window of it, or its join); raise
        `ApiUnavailable` when the API cannot answer."""
        body: dict[str, Any] = {"worker": worker, "attempt": attempt}
        if phase is not None:
            body["phase"] = phase
        response = self._request("POST", f"{_job_path(job_id, segment)}/start", body)
        if response.status_code == 404:
            return Start("missing", None)  # the record expired or never was
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise ApiUnavailable(f"API answered {response.status_code}")
        if response.status_code >= 400:
            log.error("start of job %s refused: %s", job_id, response.status_code)
            return Start("refused", None)
        try:
            data = response.json()
            return Start(str(data["status"]), data.get("attempt"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiUnavailable(f"unreadable answer: {type(exc).__name__}") from None

    def patch_progress(
        self, job_id: str, attempt: str, progress: float, stage: str,
        audio_seconds: float | None = None, segment: int | None = None,
        stages: dict[str, float] | None = None,
    ) -> bool | None:
        """Report progress (and renew the lease). True: go on; False: stop (the job
        ended or another attempt took it over); None: the API could not be asked.
        A window of a split job reports its own progress (the stage is the job's)."""
        body: dict[str, Any] = {"progress": round(progress, 4), "attempt": attempt}
        if segment is None:
            body["stage"] = stage
            if audio_seconds is not None:
                body["audioSeconds"] = round(audio_seconds, 3)
            if stages:
                body["stages"] = stages
        try:
            response = self._report("PATCH", _job_path(job_id, segment), body, PATCH_FIELDS)
            if response.status_code == 404:
                return False
            if response.status_code >= 400:
                log.warning("progress report for job %s answered %s", job_id,
                            response.status_code)
                return None
            return bool(response.json().get("current"))
        except (ApiUnavailable, ValueError) as exc:
            log.warning("progress report for job %s failed: %s", job_id, exc)
            return None

    def hand_off(self, payload: dict[str, Any]) -> bool:
        """The job's outcome as its task returns (``payload`` as the completion webhook
        takes it): the API holds the lease until the result callback reports it. False
        if the API could not take it (the callback still reports the end; only a
        callback later than the lease could then see the job handed on)."""
        for wait in HANDOFF_RETRIES:
            try:
                response = self._report("POST", f"/internal/jobs/{payload['jobId']}/handoff",
                                        payload, HANDOFF_FIELDS)
            except ApiUnavailable as exc:
                log.warning("job %s: hand-off not sent (%s)", payload.get("jobId"), exc)
            else:
                if response.status_code < 500 and response.status_code not in (401, 403, 429):
                    return response.status_code < 400
                log.warning("job %s: hand-off answered %s", payload.get("jobId"),
                            response.status_code)
            time.sleep(wait)
        return False

    def split(self, job_id: str, plan: dict[str, Any]) -> bool:
        """Hand a split job's windows to the API, which records and sends them; asked
        until it answers (the plan is the work of a whole decode). False: the job
        went on without it (canceled, or another attempt took over)."""
        return self._until_taken(f"/internal/jobs/{job_id}/split", plan)

    def end_segment(self, job_id: str, segment: int, attempt: str,
                    error: dict[str, str] | None = None) -> bool:
        """A window stored (or failed for good), asked until the API answers."""
        body: dict[str, Any] = {"attempt": attempt}
        if error:
            body["error"] = error
        return self._until_taken(f"{_job_path(job_id, segment)}/end", body)

    def _until_taken(self, path: str, body: dict[str, Any]) -> bool:
        """False also when the API could not be reached for UNTIL_TAKEN_SECONDS: the
        lease then lapses and the reaper hands the work on."""
        wait, give_up = HANDOFF_RETRIES[0], time.monotonic() + UNTIL_TAKEN_SECONDS
        while time.monotonic() < give_up:
            try:
                response = self._request("POST", path, body)
            except ApiUnavailable as exc:
                log.warning("%s not taken (%s); again in %.1f s", path, exc, wait)
            else:
                if response.status_code < 500 and response.status_code not in (401, 403, 429):
                    return response.status_code < 400 and bool(response.json().get("applied"))
                log.warning("%s answered %s; again in %.1f s", path, response.status_code, wait)
            time.sleep(wait)
            wait = min(wait * 2, UNTIL_TAKEN_MAX_WAIT)
        return False

    def release(self, job_id: str, worker: str, error: dict[str, str] | None = None,
                segment: int | None = None) -> None:
        """From a worker's parent: the child doing ``worker``'s attempt is gone."""
        body: dict[str, Any] = {"worker": worker}
        if error:
            body["error"] = error
        try:
            response = self._request("POST", f"{_job_path(job_id, segment)}/release", body)
            log.info("job %s: released %s (%s)", job_id, worker, response.status_code)
        except ApiUnavailable as exc:
            # the lease then expires by itself and the reaper takes over
            log.warning("job %s: release of %s not sent: %s", job_id, worker, exc)

    def delivery(self, job_id: str, claim: str | None = None) -> dict[str, Any] | None:
        """A client webhook to send: url, webhookId, tenant, body, state; None when
        there is none, or this task's ``claim`` is no longer the delivery's newest."""
        query = f"?claim={claim}" if claim else ""
        response = self._request("GET", f"/internal/deliveries/{job_id}{query}", None)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise ApiUnavailable(f"API answered {response.status_code}")
        return response.json()

    def record_delivery(self, job_id: str, webhook_id: str, outcome: dict[str, Any],
                        claim: str | None = None) -> None:
        body = {"webhookId": webhook_id, "statusCode": outcome["statusCode"],
                "error": outcome["error"], "durationMs": outcome["durationMs"],
                "forbidden": outcome["forbidden"], "claim": claim}
        response = self._request("POST", f"/internal/deliveries/{job_id}/attempts", body)
        if response.status_code == 409:
            log.info("webhook of job %s: a newer attempt was handed out", job_id)
            return
        if response.status_code >= 400:
            raise ApiUnavailable(f"API answered {response.status_code}")

    def reap(self) -> dict[str, int]:
        response = self._request("POST", "/internal/reap", None, timeout=60)
        if response.status_code >= 400:
            raise ApiUnavailable(f"API answered {response.status_code}")
        return response.json()

    def cached_result(self, job_id: str, attempt: str, sha256: str) -> dict[str, Any] | None:
        """The job's result from the render cache, for its fetched audio's hash; None
        (render it) on a miss, or when the API cannot say."""
        body = {"attempt": attempt, "audioSha256": sha256}
        try:
            response = self._request("POST", f"/internal/jobs/{job_id}/cache", body)
            if response.status_code != 200:
                log.warning("cache check of job %s answered %s", job_id, response.status_code)
                return None
            return response.json().get("result")
        except (ApiUnavailable, ValueError) as exc:
            log.warning("cache check of job %s failed: %s", job_id, exc)
            return None

    def _report(self, method: str, path: str, body: dict[str, Any],
                newer: tuple[str, ...], timeout: float = PROGRESS_TIMEOUT) -> requests.Response:
        """A report that may carry ``newer`` fields. An API older than this worker
        (workers upgraded first) refuses them with 400: the report goes again without
        them, and this client sends them no more, so leases are still renewed and
        hand-offs taken (stage times are then the API's own, as before)."""
        if self._older_api:
            body = {k: v for k, v in body.items() if k not in newer}
        response = self._request(method, path, body, timeout)
        if response.status_code == 400 and any(k in body for k in newer) \
                and _refused_field(response) in (*newer, None):
            log.warning("the API refused a report's stage times: it is older than this "
                        "worker; reporting without them")
            self._older_api = True
            return self._report(method, path, body, newer, timeout)
        return response

    def _headers_now(self) -> dict[str, str]:
        """The token, and the request id of the job being worked on (for the logs)."""
        if rid := logs.request_id.get():
            return {**self._headers, "X-Request-ID": rid}
        return self._headers

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None,
        timeout: float = PROGRESS_TIMEOUT,
    ) -> requests.Response:
        try:
            return self._session.request(
                method, f"{self.base_url}{path}", json=body, headers=self._headers_now(),
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise ApiUnavailable(type(exc).__name__) from None

    def post_webhook(self, payload: dict[str, Any]) -> None:
        """The job's end. The payload may carry the attempt's last progress and stage
        times, as its hand-off does (the webhook may land first): an API older than
        this worker takes it without them."""
        try:
            response = self._report("POST", "/internal/webhooks/worker", payload,
                                    HANDOFF_FIELDS, timeout=WEBHOOK_TIMEOUT)
        except ApiUnavailable as exc:
            raise WebhookUnavailable(str(exc)) from exc
        # 401/403: a token being rotated on one side first; retry until both agree
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise WebhookUnavailable(f"API answered {response.status_code}")
        if response.status_code >= 400:
            raise WebhookRejected(f"API answered {response.status_code}: {response.text[:200]}")


class ProgressReporter:
    """Sends a job's progress to the API from a background thread; the task never waits.

    `update` records the latest value and returns at once: a slow or unreachable API
    never slows the work down. A new stage is sent at once (or, if a PATCH is in
    flight, as soon as it returns); progress within a stage coalesces to at most one
    PATCH per ``interval``. Nothing is sent in the first ``quiet`` seconds after the
    start (which wrote the stage and the lease), so a short job sends no PATCH. Every
    report carries the seconds from the attempt's start to each stage reached so far,
    so stage times stay true when several stages pass during one PATCH. Progress sent
    is monotonic because callers' values are.

    The last value sent is repeated every HEARTBEAT_SECONDS when nothing changes
    (long decodes): that heartbeat renews the attempt's lease, and its answer tells
    the worker within seconds when to stop (`stop` is set: canceled, timed out, or
    taken over by another attempt). At the end the task calls `settle`: no value is
    sent after that, and the hand-off carries the last one (the heartbeat goes on
    until `close`, holding the lease while the hand-off is tried).
    """

    def __init__(
        self,
        client: ApiClient,
        job_id: str,
        interval: float = PROGRESS_INTERVAL,
        heartbeat: float = HEARTBEAT_SECONDS,
        quiet: float = QUIET_START_SECONDS,
        segment: int | None = None,
    ):
        self._client = client
        self._job_id = job_id
        #: The window of a split job this reports on (None: the job itself).
        self.segment = segment
        self._interval = interval
        self._heartbeat = heartbeat
        self._quiet = quiet
        self._quiet_until = 0.0  # no PATCH before this (set by the start)
        self._latest: tuple[float, str] | None = None
        self._sent: tuple[float, str] | None = None
        #: Seconds from the attempt's start (``_origin``) to each stage reached.
        self._stages: dict[str, float] = {}
        self._origin = time.monotonic()
        self._wake = threading.Condition()
        self._closed = False
        self._settled = False  # the hand-off carries what is left
        self._kept = False  # a hand-off in flight closes it once it has landed
        self._flushing = False  # someone waits for the latest value to land: send it now
        self._sending = False  # a PATCH is in flight
        self.stop = threading.Event()
        self.attempt = ""
        self._audio_seconds: float | None = None
        self._last_send = 0.0
        # in a copy of this context, so the thread's reports carry the job's request id
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,),
                                        name=f"progress-{job_id}", daemon=True)
        self._thread.start()

    def start(self, worker: str, attempt: str, phase: str | None = None) -> Start:
        """Ask the API, before any work, whether this delivery should work on the job
        as ``attempt``. A job canceled while queued, held by a live attempt, or given
        up after too many attempts is known before anything is downloaded."""
        asked = time.monotonic()
        answer = self._client.start_attempt(self._job_id, worker, attempt, self.segment, phase)
        answered = time.monotonic()
        if answer.go:
            with self._wake:
                self.attempt = answer.attempt or ""
                # the API wrote the start somewhere in the round trip: its middle is the
                # best guess of the record's ``startedAt`` on this clock
                self._origin = (asked + answered) / 2
                # the start put the job at `downloading` and renewed the lease: a report
                # saying only that is not needed, and the heartbeat counts from here
                self._sent = (0.0, STAGE_DOWNLOADING)
                self._last_send = answered
                self._quiet_until = self._origin + self._quiet
                self._wake.notify_all()
        else:
            self.stop.set()
        return answer

    def measured(self, audio_seconds: float) -> None:
        """The audio's length, sent with the following reports (the API's ``eta``)."""
        self._audio_seconds = audio_seconds

    def update(self, progress: float, stage: str) -> None:
        """Record the latest value; it is sent from the thread (never waits)."""
        with self._wake:
            if stage not in self._stages:
                self._stages[stage] = round(max(time.monotonic() - self._origin, 0.0), 3)
            self._latest = (progress, stage)
            self._wake.notify_all()

    def settle(self, progress: float | None = None, stage: str | None = None) -> dict[str, Any]:
        """The task is about to hand its outcome off: nothing more is sent, and this
        is what the hand-off carries (the last progress, its stage, every stage's
        time; ``progress`` and ``stage`` first, if given), so the task does not wait
        for a PATCH to land first."""
        with self._wake:
            self._settled = True
            if progress is not None and stage is not None:
                self.update(progress, stage)
            last: dict[str, Any] = {"stages": dict(self._stages)}
            if self._latest is not None:
                last.update(progress=round(self._latest[0], 4), stage=self._latest[1])
            return last

    def flush(self) -> bool:
        """Send the latest value now (whatever the interval and the quiet start) and
        wait until it has reached the API (or could not), for a report that must come
        after it (a split's plan, a window's end); the heartbeat goes on. False if the
        API took longer than a PATCH in flight and this one together."""
        with self._wake:
            self._flushing = True
            self._wake.notify_all()
            try:
                return self._wake.wait_for(
                    # nothing reported since the start: nothing to wait for
                    lambda: self._latest is None or self._closed or (
                        self._latest == self._sent and not self._sending),
                    timeout=2 * PATCH_SECONDS + 1)
            finally:
                self._flushing = False

    def close(self) -> None:
        """Send the last value (unless `settle` handed it over) and stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout=2 * PATCH_SECONDS + 1)

    def __enter__(self) -> ProgressReporter:
        return self

    def keep_open(self) -> None:
        """The ``with`` block ends without closing the reporter: a hand-off sent on
        another thread closes it once it has landed, so the heartbeat holds the lease
        until then (hand-offs may queue behind one another while the API is slow)."""
        self._kept = True

    def __exit__(self, *exc: object) -> None:
        if not self._kept:
            self.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                while True:
                    now = time.monotonic()
                    latest, sent = self._latest, self._sent
                    pending = latest is not None and latest != sent and not self._settled
                    if self._closed and not pending:
                        return
                    if pending:
                        assert latest is not None
                        changed = sent is None or latest[1] != sent[1]
                        due = max(now if changed else self._last_send + self._interval,
                                  self._quiet_until)
                        if self._closed or self._flushing or now >= due:
                            break
                        self._wake.wait(timeout=due - now)
                    elif sent is not None:
                        beat = self._last_send + self._heartbeat
                        if now >= beat:
                            break
                        self._wake.wait(timeout=beat - now)
                    else:
                        self._wake.wait()
                value = latest if pending else sent
                self._sent = value
                self._sending = True
                stages = dict(self._stages)
            assert value is not None
            try:
                self._send(*value, stages)
            finally:
                with self._wake:
                    self._sending = False
                    self._wake.notify_all()  # a flush may be waiting for this one

    def _send(self, progress: float, stage: str, stages: dict[str, float]) -> None:
        answer = self._client.patch_progress(self._job_id, self.attempt, progress, stage,
                                             self._audio_seconds, segment=self.segment,
                                             stages=stages or None)
        if answer is False:
            self.stop.set()
        self._last_send = time.monotonic()
