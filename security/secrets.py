"""Per-tenant webhook signing secrets, derived rather than stored.

Each tenant's secret is HMAC-SHA256(WEBHOOK_SIGNING_KEY, tenant) (the key defaults
to WORKER_TOKEN), so the API, which shows a tenant its secret, and the workers,
which sign, agree without a secret store, and one tenant's secret says nothing
about another's. Rotating the key rotates every tenant's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from config.settings import Settings

#: Standard Webhooks' prefix for a base64 secret.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def webhook_secret(settings: Settings, tenant: str) -> str:
    digest = hmac.new(_key(settings), b"soundreel webhook secret:" + tenant.encode(),
                      hashlib.sha256)
    return SECRET_PREFIX + base64.b64encode(digest.digest()).decode()


def share_token(settings: Settings, job_id: str) -> str:
    """The token of a job's public status page (``/jobs/<id>?token=``): anyone with
    the link sees that one job's progress and result, and nothing else."""
    return hmac.new(_key(settings), b"soundreel share:" + job_id.encode(),
                    hashlib.sha256).hexdigest()[:32]


def check_share_token(settings: Settings, job_id: str, token: str) -> bool:
    """Constant-time comparison of a status page's token."""
    return hmac.compare_digest(share_token(settings, job_id), token or "")


def _key(settings: Settings) -> bytes:
    """The key both derivations start from (different prefixes keep them apart)."""
    return (settings.webhook_signing_key or settings.worker_token).encode()
