"""The soundreel HTTP API: ``create_app(settings)`` (in ``api.app``).

Serve it with ``flask --app api run`` or ``gunicorn 'api:create_app()'``; with no
argument the settings are read from the environment. ``create_app`` is imported on
first use, so the pure modules here (``api.schemas``) load without Flask.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from api.app import create_app

        return create_app
    raise AttributeError(f"module 'api' has no attribute {name!r}")
