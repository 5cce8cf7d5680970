"""Per-tenant submission limits on ``POST /v1/jobs``: submissions a minute (a token
bucket) and queued jobs at most, kept in Redis (``jobs.limits``), so they hold across
gunicorn processes and API replicas.

Every answer to a submission the limiter saw carries the fields of the IETF draft
*RateLimit header fields for HTTP* (draft-ietf-httpapi-ratelimit-headers): the two
policies, and where the tenant stands in each::

    RateLimit-Policy: "submissions";q=600;w=60, "queued";q=1000;qu="concurrent-requests"
    RateLimit: "submissions";r=599;t=1, "queued";r=999

(``r`` what is left, ``t`` seconds until the bucket is full again). Past a limit the
answer is 429 ``rate_limited`` with ``Retry-After``: seconds until a token is back,
or, for a full queue, QUEUE_RETRY_SECONDS. A limit of 0 is no limit; with both 0
the limiter costs no Redis call. An idempotent replay is answered before the
limiter is asked, so it takes no token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.errors import RateLimited
from jobs.limits import WINDOW_SECONDS, Decision, LimitStore

if TYPE_CHECKING:
    from api.service import Stores

#: ``Retry-After`` when the tenant's queue is full: a job must start before another
#: fits, which no clock says; a few seconds is a polite poll.
QUEUE_RETRY_SECONDS = 10

#: The policies' names in the RateLimit fields.
SUBMISSIONS_POLICY = "submissions"
QUEUED_POLICY = "queued"


class Limits:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.store = LimitStore(stores.jobs.redis)

    def take(self, tenant: str, job_id: str) -> dict[str, str]:
        """Let the submission of ``job_id`` in (the RateLimit headers of the answer), or
        raise `RateLimited`."""
        limits = self.stores.settings.limits_of(tenant)
        if not limits.per_minute and not limits.max_queued:
            return {}
        decision = self.store.take(tenant, job_id, limits.per_minute, limits.max_queued)
        headers = fields(decision)
        if decision.refused_by == "rate":
            raise RateLimited(
                f"Too many submissions: this account may submit {decision.per_minute} jobs a "
                f"minute. Retry in {decision.seconds_to_token} s (Retry-After).",
                headers={**headers, "Retry-After": str(max(decision.seconds_to_token, 1))},
            )
        if decision.refused_by == "queued":
            raise RateLimited(
                f"Too many queued jobs: this account may have {decision.max_queued} jobs "
                "waiting to start. Retry once some have started (Retry-After), or cancel "
                "some.",
                headers={**headers, "Retry-After": str(QUEUE_RETRY_SECONDS)},
            )
        return headers

    def give_back(self, tenant: str, job_id: str) -> None:
        """The submission failed after it was let in: its queued place is free again."""
        limits = self.stores.settings.limits_of(tenant)
        if limits.per_minute or limits.max_queued:
            self.store.give_back(tenant, job_id)


def fields(decision: Decision) -> dict[str, str]:
    """The ``RateLimit-Policy`` and ``RateLimit`` fields for a decision (only the
    policies that are set)."""
    policies, standing = [], []
    if decision.per_minute:
        policies.append(f'"{SUBMISSIONS_POLICY}";q={decision.per_minute};w={WINDOW_SECONDS}')
        standing.append(f'"{SUBMISSIONS_POLICY}";r={int(decision.tokens)};'
                        f"t={decision.seconds_to_full}")
    if decision.max_queued:
        policies.append(f'"{QUEUED_POLICY}";q={decision.max_queued};qu="concurrent-requests"')
        standing.append(f'"{QUEUED_POLICY}";r={max(decision.max_queued - decision.queued, 0)}')
    return {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(standing)}
