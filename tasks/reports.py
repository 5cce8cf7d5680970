"""How a worker talks to the API: progress PATCHes and the completion webhook.

Workers never write the job record; they report, and the API's state machine
decides. Progress is best effort (a lost PATCH only makes a bar jump); the
webhook is retried by the callback task until the API has it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import requests

log = logging.getLogger(__name__)

PROGRESS_TIMEOUT = 3.0
WEBHOOK_TIMEOUT = 15.0
#: At most one progress PATCH this often, seconds; stage changes go at once.
PROGRESS_INTERVAL = 0.5
#: With no change, the last progress is sent again this often (the cancel check).
HEARTBEAT_SECONDS = 2.0


class WebhookRejected(Exception):
    """The API refused the report for good (a 4xx other than 401, 403, 429)."""


class WebhookUnavailable(Exception):
    """The API could not take the report now (5xx, 429, network): retry later."""


class ApiClient:
    """The API's internal endpoints, authenticated with the shared worker token."""

    def __init__(self, base_url: str, token: str, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session or requests.Session()

    def patch_progress(self, job_id: str, progress: float, stage: str) -> str | None:
        """Report progress; return the job's status as the API sees it (None if unknown).

        The answer is how a worker learns that its job was canceled.
        """
        body = {"progress": round(progress, 4), "stage": stage}
        return self._status_of("PATCH", f"/internal/jobs/{job_id}", body, job_id, "progress")

    def start_attempt(self, job_id: str) -> str | None:
        """Tell the API a delivery starts work; its answer says whether to go on
        ("running") or not (canceled, failed after too many attempts, complete).
        None when the API cannot be asked: the work goes on and reports later."""
        return self._status_of("POST", f"/internal/jobs/{job_id}/start", None, job_id, "start")

    def _status_of(
        self, method: str, path: str, body: dict[str, Any] | None, job_id: str, what: str
    ) -> str | None:
        """A best-effort call answered with the job's status; None on any trouble."""
        try:
            response = self._session.request(
                method, f"{self.base_url}{path}", json=body, headers=self._headers,
                timeout=PROGRESS_TIMEOUT,
            )
            if response.status_code >= 400:
                log.warning("%s report for job %s answered %s", what, job_id,
                            response.status_code)
                return None
            return response.json().get("status")
        except (requests.RequestException, ValueError) as exc:
            log.warning("%s report for job %s failed: %s", what, job_id, type(exc).__name__)
            return None

    def post_webhook(self, payload: dict[str, Any]) -> None:
        try:
            response = self._session.post(
                f"{self.base_url}/internal/webhooks/worker",
                json=payload,
                headers=self._headers,
                timeout=WEBHOOK_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise WebhookUnavailable(f"{type(exc).__name__}: {exc}") from exc
        # 401/403: a token being rotated on one side first; retry until both agree
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise WebhookUnavailable(f"API answered {response.status_code}")
        if response.status_code >= 400:
            raise WebhookRejected(f"API answered {response.status_code}: {response.text[:200]}")


class ProgressReporter:
    """Coalesces a render's many progress calls into a few PATCHes, off the hot path.

    `update` only records the latest value; a background thread sends it, so a
    slow or unreachable API never slows the render down. Progress sent is
    monotonic because callers' values are. The last value is sent again every
    HEARTBEAT_SECONDS when nothing changes (long decodes), so the worker hears of
    a cancel within seconds: `canceled` is set when the API answers "canceled".
    """

    def __init__(
        self,
        client: ApiClient,
        job_id: str,
        interval: float = PROGRESS_INTERVAL,
        heartbeat: float = HEARTBEAT_SECONDS,
    ):
        self._client = client
        self._job_id = job_id
        self._interval = interval
        self._heartbeat = heartbeat
        self._latest: tuple[float, str] | None = None
        self._sent: tuple[float, str] | None = None
        self._wake = threading.Condition()
        self._closed = False
        self.canceled = threading.Event()
        self._last_send = 0.0
        self._thread = threading.Thread(target=self._run, name=f"progress-{job_id}", daemon=True)
        self._thread.start()

    def start(self) -> str | None:
        """Ask the API, before any work, whether this delivery should work on the job;
        return its status ("running" to go on). A job canceled while queued, or given
        up after too many attempts, is known before anything is downloaded."""
        status = self._client.start_attempt(self._job_id)
        if status == "canceled":
            self.canceled.set()
        return status

    def update(self, progress: float, stage: str) -> None:
        with self._wake:
            self._latest = (progress, stage)
            self._wake.notify()

    def close(self) -> None:
        """Send the last value and stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=PROGRESS_TIMEOUT + 1)

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._wake:
                while True:
                    now = time.monotonic()
                    pending = self._latest is not None and self._latest != self._sent
                    if not pending and self._closed:
                        return
                    if pending:
                        assert self._latest is not None
                        changed = self._sent is None or self._latest[1] != self._sent[1]
                        due = self._last_send + self._interval
                        if now >= due or changed or self._closed:
                            break
                        self._wake.wait(timeout=due - now)
                    elif self._latest is not None:
                        beat = self._last_send + self._heartbeat
                        if now >= beat:
                            break
                        self._wake.wait(timeout=beat - now)
                    else:
                        self._wake.wait()
                latest = self._sent = self._latest
            assert latest is not None
            self._send(*latest)

    def _send(self, progress: float, stage: str) -> None:
        if self._client.patch_progress(self._job_id, progress, stage) == "canceled":
            self.canceled.set()
        self._last_send = time.monotonic()
