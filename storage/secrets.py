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

from storage.settings import Settings

#: Standard Webhooks' prefix for a base64 secret.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def webhook_secret(settings: Settings, tenant: str) -> str:
    key = (settings.webhook_signing_key or settings.worker_token).encode()
    digest = hmac.new(key, b"soundreel webhook secret:" + tenant.encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.b64encode(digest.digest()).decode()
