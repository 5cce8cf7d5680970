"""API errors: every 4xx and 5xx is JSON ``{"error": {"code", "message"}}``.

    ApiError                    code, status, message
    ├── BadRequest              400 invalid_request / invalid_json (names the field),
    │                               empty_file, wrong_upload_kind, unknown_upload, …
    ├── Unauthorized            401 unauthorized
    ├── NotFound                404 not_found
    ├── Conflict                409 (e.g. output_key_taken)
    ├── PayloadTooLarge         413 payload_too_large
    ├── Unprocessable           422 (e.g. idempotency_key_reused)
    ├── UnsupportedMediaType    415 unsupported_media_type, content_mismatch
    ├── RateLimited             429 rate_limited (with Retry-After and RateLimit headers)
    └── ServiceUnavailable      503 service_unavailable

Storage errors, Werkzeug's HTTP errors and anything unexpected are turned into
the same shape by `register_error_handlers`; nothing answers with an HTML page.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from api import answers
from jobs.errors import JobNotFound
from storage.errors import StorageUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        #: Response headers the answer carries (e.g. Retry-After).
        self.headers = headers or {}
        if code:
            self.code = code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return answers.Error.model_validate({"error": error}).body()


class BadRequest(ApiError):
    status, code = 400, "invalid_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class Unprocessable(ApiError):
    status, code = 422, "unprocessable"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


#: Werkzeug's status -> our code, for errors Flask raises itself.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _respond(error: ApiError, headers: dict[str, str] | None = None) -> Any:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(headers or {})
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="soundreel"'
    if error.status == 503:
        response.headers["Retry-After"] = "5"
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Any:
        return _respond(error, error.headers)

    @app.errorhandler(JobNotFound)
    def job_not_found(error: JobNotFound) -> Any:
        return _respond(NotFound(f"No job {error.job_id}."))

    @app.errorhandler(StorageUnavailable)
    @app.errorhandler(OperationalError)
    def unavailable(error: Exception) -> Any:
        log.error("backing service unavailable: %s", error)
        return _respond(
            ServiceUnavailable("The job store or queue is unreachable right now; retry shortly.")
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if isinstance(error, RequestRedirect):
            # a slash too many or too few: Werkzeug's redirect would name the Host the
            # client sent; the API answers only for the paths it has
            return _respond(NotFound("No such route."))
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = error.description or error.name
        if status == 413:
            message = "The upload is larger than the limit (MAX_UPLOAD_BYTES)."
        result = ApiError(message, code=code)
        result.status = status
        # keep Allow (405), WWW-Authenticate and the like; the body is ours
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return _respond(result, headers)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Any:
        log.exception("unhandled error")
        result = ApiError("Something went wrong on our side; it has been logged.",
                          code="internal_error")
        result.status = 500
        return _respond(result)
