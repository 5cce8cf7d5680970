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

    def patch_progress(self, job_id: str, progress: float, stage: str) -> None:
        try:
            response = self._session.patch(
                f"{self.base_url}/internal/jobs/{job_id}",
                json={"progress": round(progress, 4), "stage": stage},
                headers=self._headers,
                timeout=PROGRESS_TIMEOUT,
            )
            if response.status_code >= 400:
                log.warning("progress report for job %s answered %s", job_id, response.status_code)
        except requests.RequestException as exc:
            log.warning("progress report for job %s failed: %s", job_id, type(exc).__name__)

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
    monotonic because callers' values are.
    """

    def __init__(self, client: ApiClient, job_id: str, interval: float = PROGRESS_INTERVAL):
        self._client = client
        self._job_id = job_id
        self._interval = interval
        self._latest: tuple[float, str] | None = None
        self._sent: tuple[float, str] | None = None
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"progress-{job_id}", daemon=True)
        self._thread.start()

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
        last_send = 0.0
        while True:
            with self._wake:
                while True:
                    pending = self._latest is not None and self._latest != self._sent
                    if not pending:
                        if self._closed:
                            return
                        self._wake.wait()
                        continue
                    assert self._latest is not None
                    stage_changed = self._sent is None or self._latest[1] != self._sent[1]
                    remaining = last_send + self._interval - time.monotonic()
                    if remaining <= 0 or stage_changed or self._closed:
                        break
                    self._wake.wait(timeout=remaining)
                latest = self._sent = self._latest
            self._client.patch_progress(self._job_id, *latest)
            last_send = time.monotonic()
