"""Client webhooks: sign a job's end per Standard Webhooks and POST it, guarded.

The API decides what is due and records every outcome; this task only does the
one HTTP POST a delivery attempt is. The receiver's URL went through the SSRF
guard when the job was submitted and goes through it again here, at every
attempt (DNS may have changed), with redirects refused.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from standardwebhooks import Webhook

from security.secrets import webhook_secret
from security.urlguard import ForbiddenUrl, UrlFetchError, guarded_request
from tasks.constants import DELIVER_WEBHOOK_TASK
from tasks.reports import ApiUnavailable

if TYPE_CHECKING:
    from tasks.celeryapp import SoundreelCelery

log = logging.getLogger(__name__)

#: The whole attempt: connect, send, and read the (capped) answer.
DELIVERY_DEADLINE = 15.0
#: Bytes of the receiver's answer read (and dropped); the status is what counts.
MAX_ANSWER_BYTES = 64 * 1024


def signed_headers(secret: str, webhook_id: str, body: str, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body``."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body),
        "content-type": "application/json",
        "user-agent": "soundreel-webhooks/1",
    }


def post_once(
    url: str, body: str, headers: dict[str, str], allow: frozenset[str]
) -> dict[str, Any]:
    """One attempt; the outcome as the API records it."""
    started = time.monotonic()
    outcome: dict[str, Any] = {"statusCode": None, "error": None, "forbidden": False}
    try:
        response = guarded_request(
            "POST", url, allow=allow, body=body.encode(), headers=headers,
            deadline=DELIVERY_DEADLINE, max_bytes=MAX_ANSWER_BYTES, follow_redirects=False,
        )
        outcome["statusCode"] = response.status
    except ForbiddenUrl as exc:
        outcome.update(error=f"forbidden_url: {exc.message}", forbidden=True)
    except UrlFetchError as exc:
        outcome["error"] = f"{exc.code}: {exc.message}"
    outcome["durationMs"] = int((time.monotonic() - started) * 1000)
    return outcome


def register(app: SoundreelCelery) -> None:
    @app.task(name=DELIVER_WEBHOOK_TASK, shared=False, acks_late=True)
    def deliver_webhook(job_id: str, claim: str | None = None) -> None:
        """POST the job's webhook once and tell the API how it went (``claim``: the
        token it was handed out with; a task that is not the newest does nothing)."""
        try:
            delivery = app.api.delivery(job_id, claim)
        except ApiUnavailable as exc:
            log.warning("webhook of job %s: the API cannot be asked (%s); the next tick "
                        "hands it out again", job_id, exc)
            return
        if delivery is None or delivery["state"] != "pending":
            return
        secret = webhook_secret(app.settings, delivery["tenant"])
        headers = signed_headers(secret, delivery["webhookId"], delivery["body"],
                                 datetime.now(UTC))
        outcome = post_once(delivery["url"], delivery["body"], headers,
                            app.settings.allow_private_urls)
        log.info("webhook %s of job %s: %s", delivery["webhookId"], job_id,
                 outcome["statusCode"] or outcome["error"])
        try:
            app.api.record_delivery(job_id, delivery["webhookId"], outcome, claim)
        except ApiUnavailable as exc:
            # unrecorded: the claim runs out and the same webhook-id is sent again
            log.warning("webhook of job %s: outcome not recorded (%s)", job_id, exc)
