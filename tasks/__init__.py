"""Celery app and tasks. ``celery -A tasks worker`` builds the app from the environment.

The module attribute ``app`` is made on first access, so importing ``tasks``
(as the API does, to send tasks) reads no environment.
"""

from __future__ import annotations

from typing import Any

from tasks.celeryapp import SoundreelCelery, create_celery

__all__ = ["SoundreelCelery", "create_celery"]


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from config.settings import Settings

        app = create_celery(Settings.from_env())
        globals()["app"] = globals()["celery"] = app
        return app
    raise AttributeError(name)
