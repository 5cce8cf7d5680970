"""Client webhooks, as the API runs them: hand due deliveries to workers, give a
worker what one attempt needs, record its outcome, list and redeliver (the state
machine is ``jobs.deliveries.DELIVERY_RULES``)."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from api import answers, metrics
from api.errors import Conflict
from api.schemas import DeliveryOutcome
from api.views import JobViews
from jobs.constants import DELIVERY_PENDING
from jobs.deliveries import CLAIM_SECONDS, Delivery, StaleClaim, after_attempt, redelivered
from jobs.errors import JobNotFound
from jobs.store import iso_at
from tasks.constants import DELIVER_WEBHOOK_TASK

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)


class Deliveries:
    def __init__(self, stores: Stores, views: JobViews) -> None:
        self.stores = stores
        self.views = views

    def dispatch(self, job_id: str | None = None) -> int:
        """Hand due deliveries (or ``job_id``'s) to workers. One that cannot be sent
        now stays claimed for CLAIM_SECONDS, then is due again: never lost."""
        try:
            claimed = self.stores.deliveries.claim_due(time.time(), job_id=job_id)
            for due, token in claimed:
                # a task not started within its claim is dropped: the next tick makes
                # a new one, so copies never pile up behind a busy callbacks queue
                self.stores.celery.send_task(DELIVER_WEBHOOK_TASK, args=[due, token],
                                      expires=CLAIM_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the job's own answer matters more
            log.warning("webhook dispatch deferred: %s", type(exc).__name__)
            return 0
        return len(claimed)

    def for_worker(self, job_id: str, claim: str | None) -> dict[str, Any] | None:
        """What a worker needs for one attempt, or None for a task that is not the
        delivery's newest (or whose records are gone). The body is the job as polled
        minus its links, made from the ended job's record, which no longer changes:
        the same bytes on every try."""
        delivery = self.stores.deliveries.get(job_id)
        try:
            job = self.stores.jobs.get(job_id)
        except JobNotFound:
            job = None
        if delivery is None or job is None:
            self.stores.deliveries.forget(job_id)
            return None
        if claim is not None and self.stores.deliveries.claim_of(job_id) != claim:
            return None
        # the job as polled minus its links; no link is presigned for it
        body = json.dumps(self.views.document(job).body(), separators=(",", ":"))
        return {"jobId": job_id, "tenant": delivery.tenant, "webhookId": delivery.webhook_id,
                "url": delivery.url, "state": delivery.state, "body": body}

    def record(self, job_id: str, outcome: DeliveryOutcome) -> Delivery:
        def change(delivery: Delivery) -> Delivery:
            return after_attempt(
                delivery, outcome.status_code, outcome.error, outcome.duration_ms, time.time(),
                self.stores.settings.webhook_retry_scale, final_error=outcome.forbidden,
            )

        try:
            delivery = self.stores.deliveries.update(job_id, change, outcome.claim)
        except StaleClaim:
            raise Conflict("A newer attempt of this webhook was handed out; this outcome "
                           "is not recorded.", code="stale_claim") from None
        outcome_name = "retry" if delivery.state == DELIVERY_PENDING else delivery.state
        metrics.WEBHOOK_ATTEMPTS.labels(outcome=outcome_name).inc()
        log.info("webhook %s of job %s: %s (%s)", delivery.webhook_id, job_id,
                 outcome.status_code or outcome.error, delivery.state)
        return delivery

    def of(self, tenant: str, job_id: str) -> answers.Deliveries:
        job = self.views.job_for(tenant, job_id)
        delivery = self.stores.deliveries.get(job_id)
        if delivery is None:
            state = "none" if not job.webhook_url else "waiting"  # waiting: not ended yet
            return answers.Deliveries.model_validate({
                "jobId": job_id, "webhookUrl": job.webhook_url, "webhookId": None,
                "state": state, "nextAttemptAt": None, "attempts": []})
        return answers.Deliveries.model_validate({
            "jobId": job_id,
            "webhookUrl": delivery.url,
            "webhookId": delivery.webhook_id,
            "state": delivery.state,
            "nextAttemptAt": iso_at(delivery.next_attempt_at)
            if delivery.state == DELIVERY_PENDING and delivery.next_attempt_at else None,
            "attempts": [
                {"at": iso_at(a["at"]), "statusCode": a["statusCode"], "error": a["error"],
                 "durationMs": a["durationMs"]}
                for a in delivery.attempts
            ],
        })

    def redeliver(self, tenant: str, job_id: str) -> answers.Deliveries:
        job = self.views.job_for(tenant, job_id)
        if not job.webhook_url:
            raise Conflict("The job has no webhookUrl.", code="no_webhook")
        if self.stores.deliveries.get(job_id) is None:
            raise Conflict("The job has not ended yet; its webhook is sent when it does.",
                           code="job_not_finished")
        self.stores.deliveries.update(job_id, lambda d: redelivered(d, time.time()))
        self.dispatch(job_id)
        return self.of(tenant, job_id)
