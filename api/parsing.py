"""Request bodies to models: the JSON of a Flask request, validated into a schema,
or a 400/413 that names the first bad field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from api.errors import BadRequest, PayloadTooLarge
from api.schemas import CODED_ERRORS

M = TypeVar("M", bound=BaseModel)

#: Largest JSON body accepted (job requests and worker reports are a few KB).
MAX_JSON_BYTES = 256 * 1024


def json_body() -> Any:
    """The request's JSON, or a 400/413 for anything else: not JSON, too big, or
    nested deeply enough to exhaust the parser."""
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes.")
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes.")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest(
            "The body must be JSON (Content-Type: application/json).", code="invalid_json"
        ) from None


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` or raise a 400 that names the first bad field."""
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "is not a known field"
        text = f"{field}: {message}" if field else message
        code = first["type"] if first["type"] in CODED_ERRORS else None
        raise BadRequest(text, code=code, field=field) from None
