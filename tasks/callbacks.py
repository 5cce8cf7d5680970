"""Result callbacks: tell the API's completion webhook how a job ended.

``report_result`` is the render task's ``link``, on the callbacks queue: Celery
sends it the task's return value (the webhook payload) as a new task, retried
with backoff until the API takes it. It is the one place a job's end is
reported, for success and failure. ``report_failure`` is the ``link_error``:
Celery calls it in the worker, with the exception, right after the job fails;
it hands the failure off and enqueues ``report_result`` with it.

Between a task's end and its callback the API holds the job's lease for
HANDOFF_SECONDS (the worker hands the outcome off before returning), so no
reaper hands the job to another worker meanwhile; a callback later than that
finds the job already ended from the hand-off, and is ignored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from jobs.constants import FAILED
from tasks.constants import REAP_TASK, REPORT_FAILURE_TASK, REPORT_RESULT_TASK, TIME_LIMITS
from tasks.errors import JobCanceled, JobFailed
from tasks.reports import ApiUnavailable, WebhookRejected, WebhookUnavailable

if TYPE_CHECKING:
    from tasks.celeryapp import SoundreelCelery

log = logging.getLogger(__name__)

#: Retries of the webhook: backoff 1 s, 2 s, 4 s ... capped at 10 min (with full
#: jitter), about 500 tries: the API has days to come back before a report is
#: dropped. Duplicates are harmless: the state machine ignores them.
WEBHOOK_MAX_RETRIES = 500


def time_limit_error(kind: str) -> dict[str, str]:
    return {
        "code": "time_limit_exceeded",
        "message": f"The job ran longer than {TIME_LIMITS[kind][0]} s and was stopped. "
        "Try a shorter clip or a smaller size.",
    }


def failure_payload(
    job_id: str, exc: BaseException, kind: str = "render", attempt: str | None = None
) -> dict[str, Any]:
    """The webhook body for a failed job; unexpected errors say little on purpose."""
    if isinstance(exc, JobFailed):
        error = {"code": exc.code, "message": exc.message}
    elif isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
        error = time_limit_error(kind)
    else:
        error = {
            "code": "internal_error",
            "message": f"The worker hit an unexpected error ({type(exc).__name__}). "
            "It has been logged; resubmit the job, and report it if it happens again.",
        }
    return {"jobId": job_id, "status": FAILED, "attempt": attempt, "error": error}


def register(app: SoundreelCelery) -> None:
    @app.task(
        name=REPORT_RESULT_TASK,
        shared=False,
        bind=True,
        autoretry_for=(WebhookUnavailable,),
        retry_backoff=True,
        retry_backoff_max=600,
        retry_jitter=True,
        max_retries=WEBHOOK_MAX_RETRIES,
    )
    def report_result(self: Any, payload: dict[str, Any]) -> None:
        try:
            app.api.post_webhook(payload)
        except WebhookRejected as exc:
            log.error("job %s: the API rejected the %s report: %s",
                      payload.get("jobId"), payload.get("status"), exc)
            return
        log.info("job %s: reported %s", payload.get("jobId"), payload.get("status"))

    # Not bound: Celery calls an errback with (request, exc, traceback) in-process
    # only when the task's own signature takes them.
    @app.task(name=REPORT_FAILURE_TASK, shared=False)
    def report_failure(request: Any, exc: BaseException, traceback: Any) -> None:
        job_id = (request.kwargs or {}).get("job_id") or request.id
        if isinstance(exc, JobCanceled):
            return  # the API set the record to canceled itself
        attempt = getattr(request, "soundreel_attempt", None)
        if attempt is None:
            # Called in the worker's parent (a hard time limit): the child's attempt
            # id died with it, and `JobDelivery` has reported the failure instead.
            log.warning("job %s: %s outside its attempt; not reported here", job_id,
                        type(exc).__name__)
            return
        payload = failure_payload(
            job_id, exc, (request.kwargs or {}).get("kind", "render"), attempt
        )
        log.warning("job %s failed: %s", job_id, payload["error"]["code"])
        # as a result: handed off (the lease held), then reported by the callback task
        app.api.hand_off(payload)
        app.send_task(REPORT_RESULT_TASK, args=[payload])

    @app.task(name=REAP_TASK, shared=False)
    def reap() -> None:
        """Beat's tick: the API walks the jobs not yet ended (`api.reaper.Reaper.run`)."""
        try:
            counts = app.api.reap()
        except ApiUnavailable as exc:
            log.warning("reaper: the API cannot be reached (%s); next tick", exc)
            return
        lost = {k: v for k, v in counts.items() if v and k != "webhooksSent"}
        if lost:
            log.warning("reaper: %s", counts)
        elif counts.get("webhooksSent"):
            log.info("reaper: %s", counts)
