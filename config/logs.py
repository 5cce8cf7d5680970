"""Structured logs for the API and the workers: one JSON object per line, with the
request id, job id and tenant of whatever is being done, where known.

The request id comes from the client's ``X-Request-ID`` (or is made up), goes into
the job's task headers, and comes back on every call the worker makes to the API,
so one id follows a job from the POST to its last report. Nothing here logs URLs'
query strings, tokens or keys; callers must not pass them either.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
tenant: ContextVar[str | None] = ContextVar("tenant", default=None)

#: What a client-given request id may look like (anything else is replaced).
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``job_id`` and ``tenant`` to every record that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        data = getattr(record, "data", None)
        if isinstance(data, dict) and ("args" in data or "kwargs" in data):
            # Celery's task lines carry the task's arguments: keep them out of the
            # JSON (a client's URL may be signed); the id and name stay
            record.data = {k: v for k, v in data.items() if k not in ("args", "kwargs")}
        for name, var in (("request_id", request_id), ("job_id", job_id), ("tenant", tenant)):
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


def json_handler(stream: object = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter(FORMAT, rename_fields={"levelname": "level",
                                                              "name": "logger"}))
    handler.addFilter(ContextFilter())
    return handler


def setup(level: str) -> None:
    """JSON logs on stderr for this process (the API, a worker, beat)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(json_handler())
    root.setLevel(level)
