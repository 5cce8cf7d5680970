"""Bearer-token checks: client API keys (one tenant each), the worker token and the
metrics token.

Tokens are compared as SHA-256 digests with `hmac.compare_digest`, against every
key, so neither the time taken nor an early exit tells a prober anything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from flask import request

from api.errors import Unauthorized


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class KeyRing:
    """API keys -> tenants, held as digests."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = [(_digest(key), tenant) for key, tenant in keys.items()]

    def tenant_for(self, token: str) -> str | None:
        given = _digest(token)
        found = None
        for digest, tenant in self._keys:
            if hmac.compare_digest(digest, given):
                found = tenant
        return found


def require_tenant(keys: KeyRing) -> str:
    token = bearer_token()
    if token is None:
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
    tenant = keys.tenant_for(token)
    if tenant is None:
        raise Unauthorized("That API key is not valid.")
    return tenant


def require_token(expected: str, message: str) -> None:
    """`Unauthorized` unless the request's bearer token is ``expected`` (a shared secret
    such as the worker token or METRICS_TOKEN)."""
    token = bearer_token()
    if token is None or not hmac.compare_digest(_digest(token), _digest(expected)):
        raise Unauthorized(message)


def require_worker(worker_token: str) -> None:
    require_token(worker_token, "Internal endpoints need the worker token.")
