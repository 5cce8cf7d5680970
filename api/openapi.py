"""The API described as OpenAPI 3.1: ``GET /openapi.json``, and readable at ``GET /docs``.

The document is generated, not written by hand:

- request bodies and the query of ``GET /v1/jobs`` are the JSON schemas of the very
  pydantic models that validate requests (`api.schemas.JobRequest`, `JobListQuery`,
  and `render.spec.RenderSpec` inside ``options``), through pydantic's
  ``models_json_schema(..., by_alias=True)``;
- responses are the pydantic models of `api.answers`, the very classes the handlers
  build their answers with (`JobViews.view`, `Deliveries.of`, `Uploads.upload`, the
  v1 and observability routes, `api.errors`); they refuse unknown fields, so an
  answer cannot say what the document does not (and the schemathesis run in
  ``tests/test_openapi.py`` checks the live API against the document);
- the paths and methods are the app's own routes (`paths` reads the URL map): a
  route of a documented blueprint without its operation, or an operation without
  its route, stops the document from being built.

Covered: every ``/v1`` route, ``/healthz``, ``/readyz`` and ``/metrics``. Left out on
purpose: ``/internal/*`` (worker-only, behind the worker token), ``/files/*`` (the
signed links a job's ``downloadUrl`` points at) and the browser pages.

``/docs`` is rendered on the server from the same document (no CDN, no script), under
the strict Content-Security-Policy the other pages use. Both are built once per app
and kept in ``app.extensions``.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template
from markupsafe import Markup, escape
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Map

from api.answers import COMPONENT as _COMPONENT
from api.answers import (
    JOB_ID_PATTERN,
    Deliveries,
    Error,
    Health,
    Job,
    JobDocument,
    JobList,
    Readiness,
    Upload,
    WebhookSecret,
)
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.idempotency import MAX_KEY_LENGTH
from api.schemas import JobListQuery, JobRequest
from render.spec import RenderSpec

bp = Blueprint("openapi", __name__, template_folder="templates")

OPENAPI_VERSION = "3.1.0"
#: Where every named schema lives in the document.
REF_TEMPLATE = "#/components/schemas/{model}"

_DOCUMENT_KEY = "soundreel.openapi.document"
_DOCS_KEY = "soundreel.openapi.docs"

#: The docs page loads nothing but this origin's stylesheets.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=name)}


# --- response models: what the handlers answer ----------------------------------------




def _resolve_components(schema: Any) -> Any:
    if isinstance(schema, dict):
        if set(schema) == {_COMPONENT}:
            return _ref(schema[_COMPONENT])
        return {key: _resolve_components(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_resolve_components(value) for value in schema]
    return schema


JOB_OPTIONS = "JobOptions"


REQUEST_MODELS: tuple[type[BaseModel], ...] = (JobRequest, JobListQuery)
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error, Upload, Job, JobList, Deliveries, WebhookSecret, Health, Readiness, JobDocument,
)


def component_schemas() -> dict[str, Any]:
    """Every named schema: request models as they validate, answers as they serialize."""
    _, top = models_json_schema(
        [(m, "validation") for m in REQUEST_MODELS]
        + [(m, "serialization") for m in RESPONSE_MODELS],
        by_alias=True, ref_template=REF_TEMPLATE,
    )
    schemas = _resolve_components(top["$defs"])
    options = RenderSpec.model_json_schema(by_alias=True, mode="serialization",
                                           ref_template=REF_TEMPLATE)
    options["title"] = JOB_OPTIONS
    options["description"] = (
        "The options the job was accepted with: every RenderSpec field, defaults filled "
        "in, under the request's field names (camelCase)."
    )
    schemas[JOB_OPTIONS] = options
    return dict(sorted(schemas.items()))


# --- operations -------------------------------------------------------------------------

#: What each error status means, and the codes it carries.
ERRORS: dict[int, str] = {
    400: "Bad request",
    401: "Missing or wrong API key (`unauthorized`)",
    404: "Not found (`not_found`): an unknown job, or another tenant's",
    409: "Conflict",
    413: "Too large (`payload_too_large`)",
    415: "Not a file the service takes: a name it does not take "
         "(`unsupported_media_type`), or a file whose first bytes are not what its name "
         "says (`content_mismatch`)",
    422: "Bad Idempotency-Key (`invalid_idempotency_key`), or reused for a different "
         "request (`idempotency_key_reused`)",
    429: "Past one of your account's limits (`rate_limited`): submissions a minute, or "
         "jobs queued at once; retry after Retry-After seconds (RateLimit and "
         "RateLimit-Policy say where you stand)",
    503: "Redis (job store or broker) unreachable (`service_unavailable`); retry after "
         "Retry-After seconds",
}

#: The fields of the IETF draft "RateLimit header fields for HTTP" on submissions.
_RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": 'your limits: `"submissions";q=<per minute>;w=60` (a token bucket) '
                       'and `"queued";q=<jobs>;qu="concurrent-requests"` (jobs waiting to '
                       "start); a limit that is not set is left out",
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": 'where you stand: `"submissions";r=<left>;t=<seconds until full>`, '
                       '`"queued";r=<places left>`',
    },
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string"},
                               "description": 'Bearer realm="soundreel"'}},
    429: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
                          "description": "seconds"},
          **_RATE_LIMIT_HEADERS},
    503: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
                          "description": "seconds"}},
}

_REQUEST_ID_HEADER = {
    "X-Request-ID": {"schema": {"type": "string"},
                     "description": "this request's id (the client's X-Request-ID when it "
                                    "sent a valid one), also in the logs"},
}
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {"schema": {"const": "true"},
                            "description": "the stored answer to an earlier request with "
                                           "the same Idempotency-Key"},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answer(description: str, schema: dict[str, Any],
            headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "headers": {**(headers or {}), **_REQUEST_ID_HEADER},
            "content": _json(schema)}


def _errors(**codes: str) -> dict[str, Any]:
    """Error answers, e.g. ``_errors(e400="invalid_request, invalid_json")``."""
    answers = {}
    for name, detail in codes.items():
        status = int(name[1:])
        text = ERRORS[status] + (f": {detail}" if detail else "")
        answers[str(status)] = _answer(text, _ref("Error"), _ERROR_HEADERS.get(status))
    return answers


JOB_ID_PARAMETER = {
    "name": "jobId", "in": "path", "required": True,
    "description": "the job's id, as POST /v1/jobs answered it",
    "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
}
#: From a submitted job to what can be done with it (OpenAPI links).
JOB_LINKS = {
    name: {"operationId": operation, "parameters": {"jobId": "$response.body#/jobId"}}
    for name, operation in (("poll", "getJob"), ("cancel", "cancelJob"),
                            ("deliveries", "getDeliveries"), ("redeliver", "redeliverWebhook"))
}
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
    "description": "Retry safely: within 24 h the same key with the same request returns "
                   "the first answer (Idempotent-Replayed: true) instead of doing it again; "
                   "the same key with a different request is 422. A UUID is ideal.",
    # printable ASCII with no space at either end (HTTP would strip it); the service
    # takes any printable characters, this is what a client can rely on
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
               "pattern": "^[!-~]([ -~]*[!-~])?$"},
}
#: Words for the query parameters of GET /v1/jobs (their schemas come from JobListQuery).
LIST_QUERY_DESCRIPTIONS = {
    "status": "only jobs in this status",
    "kind": "only jobs of this kind",
    "limit": "jobs per page",
    "cursor": "nextCursor of the previous page",
}
#: File name endings POST /v1/uploads takes (its first bytes must agree with the name; the
#: worker decodes the rest).
UPLOAD_TYPES = "audio (wav, mp3, m4a, aac, ogg, opus, flac, aiff, webm…), images (png, jpg, " \
               "webp) or captions (srt, vtt, json)"


def query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """A query model's fields as query parameters, schemas taken from the model's own.

    An absent parameter is the field's None, so the ``null`` branch of an optional
    field is dropped: a query string cannot say null."""
    schema = schemas[model.__name__]
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
        if "anyOf" in prop and len(branches) == 1:
            rest = {k: v for k, v in prop.items() if k != "anyOf"}
            prop = {**branches[0], **rest}
            if prop.get("default", ...) is None:
                del prop["default"]
        parameters.append({
            "name": name, "in": "query", "required": name in required,
            "description": LIST_QUERY_DESCRIPTIONS.get(name, ""), "schema": prop,
        })
    return parameters


def operations(schemas: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every documented operation, by the Flask endpoint that serves it and its method:
    `paths` takes the paths and methods from the app's own routes."""
    bearer = [{"bearerAuth": []}]
    job_answer = _ref("Job")
    return {
        ("v1.upload", "post"): {
            "operationId": "createUpload", "tags": ["uploads"], "security": bearer,
            "summary": "Upload a file",
            "description": f"Store {UPLOAD_TYPES} for later jobs. The answer's key is what "
                           "a job names in audioKey (audio) or an options.*Key (artworkKey "
                           "and backgroundKey: an image; captionsKey: captions). A file that "
                           "is empty, or whose first bytes are not what its name says, is "
                           "refused and nothing is stored.",
            "parameters": [IDEMPOTENCY_PARAMETER],
            "requestBody": {"required": True, "content": {"multipart/form-data": {
                "schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {
                        "type": "string", "format": "binary",
                        "contentMediaType": "application/octet-stream",
                        "description": f"the file; its name must end like {UPLOAD_TYPES}",
                    }},
                },
                "encoding": {"file": {"headers": {"Content-Disposition": {
                    "schema": {"type": "string"},
                    "example": 'form-data; name="file"; filename="episode.mp3"',
                }}}},
            }}},
            "responses": {
                "201": _answer("Stored", _ref("Upload"), _REPLAYED_HEADER),
                **_errors(e400="no field `file` (`invalid_request`), an empty file "
                               "(`empty_file`), or a body that is not multipart "
                               "(`bad_request`)",
                          e401="",
                          e409="`idempotency_in_progress`: the same Idempotency-Key is "
                               "still being answered; retry",
                          e413="past MAX_UPLOAD_BYTES",
                          e415="", e422="", e503=""),
            },
        },
        ("v1.submit_job", "post"): {
                "operationId": "createJob", "tags": ["jobs"], "security": bearer,
                "summary": "Submit a job",
                "description": "Render, preview or prepare an uploaded file (audioKey) or a "
                               "public URL (audioUrl): give exactly one. A prepare job takes "
                               "no options.",
                "parameters": [IDEMPOTENCY_PARAMETER],
                "requestBody": {"required": True, "content": _json(_ref("JobRequest"))},
                "responses": {
                    "202": {**_answer("Accepted and queued", job_answer, {
                        "Location": {"required": True, "description": "the job's URL",
                                     "schema": {"type": "string",
                                                "pattern": "^/v1/jobs/[0-9a-f]{32}$"}},
                        **_REPLAYED_HEADER,
                        **_RATE_LIMIT_HEADERS,
                    }), "links": JOB_LINKS},
                    **_errors(e400="a bad or unknown field (`invalid_request`, `field` names "
                                   "it), a body that is not a JSON object (`invalid_json`), "
                                   "a key that is not one of your uploads (`unknown_audio`, "
                                   "`unknown_upload`), an upload in a field it does not fit "
                                   "such as an image as audioKey (`wrong_upload_kind`), a "
                                   "URL into a private network (`forbidden_url`), or an "
                                   "outputKey with a name between slashes over 255 bytes "
                                   "(`output_key_too_long`)",
                              e401="",
                              e409="`output_key_taken` (another tenant writes to that "
                                   "outputKey), `output_key_conflict` (a folder of an "
                                   "outputKey in use, or inside one), or "
                                   "`idempotency_in_progress`",
                              e413="a JSON body over 256 KiB", e422="", e429="",
                              e503=""),
                },
        },
        ("v1.list_jobs", "get"): {
                "operationId": "listJobs", "tags": ["jobs"], "security": bearer,
                "summary": "List your jobs",
                "description": "Newest first, a page at a time. A page may be short (even "
                               "empty) with a cursor when a filter is rare: follow nextCursor "
                               "until it is null.",
                "parameters": query_parameters(JobListQuery, schemas),
                "responses": {
                    "200": _answer("A page of jobs", _ref("JobList")),
                    **_errors(e400="a bad or unknown query parameter (`invalid_request`)",
                              e401="", e503=""),
                },
            },
        ("v1.get_job", "get"): {
                "operationId": "getJob", "tags": ["jobs"], "security": bearer,
                "summary": "Poll a job",
                "description": "Status, progress, stage, queue position, ETA, result and a "
                               "fresh downloadUrl (video links last 7 days, others 1 hour).",
                "responses": {"200": _answer("The job", job_answer),
                              **_errors(e401="", e404="", e503="")},
        },
        ("v1.cancel_job", "delete"): {
                "operationId": "cancelJob", "tags": ["jobs"], "security": bearer,
                "summary": "Cancel a job",
                "description": "A queued job never starts; a running one stops within "
                               "seconds and leaves nothing behind.",
                "responses": {"200": _answer("The job, now canceled", job_answer),
                              **_errors(e401="", e404="",
                                        e409="`job_finished`: it has already ended",
                                        e503="")},
            },
        ("v1.job_deliveries", "get"): {
                "operationId": "getDeliveries", "tags": ["webhooks"], "security": bearer,
                "summary": "The job's webhook deliveries",
                "responses": {"200": _answer("Its webhook and every attempt",
                                             _ref("Deliveries")),
                              **_errors(e401="", e404="", e503="")},
            },
        ("v1.redeliver", "post"): {
                "operationId": "redeliverWebhook", "tags": ["webhooks"], "security": bearer,
                "summary": "Send the job's webhook again",
                "description": "Same webhook-id, a fresh retry schedule.",
                "responses": {"202": _answer("Queued for delivery", _ref("Deliveries")),
                              **_errors(e401="", e404="",
                                        e409="`no_webhook` (the job has no webhookUrl) or "
                                             "`job_not_finished`",
                                        e503="")},
            },
        ("v1.webhook_secret_of_tenant", "get"): {
            "operationId": "getWebhookSecret", "tags": ["webhooks"], "security": bearer,
            "summary": "Your webhook signing secret",
            "description": "Verify webhook-signature with any Standard Webhooks library.",
            "responses": {"200": _answer("The secret", _ref("WebhookSecret")),
                          **_errors(e401="")},
        },
        ("observability.healthz", "get"): {
            "operationId": "healthz", "tags": ["operations"], "security": [],
            "summary": "Liveness", "description": "The process is up; nothing else is checked.",
            "responses": {"200": _answer("Up", _ref("Health"))},
        },
        ("observability.readyz", "get"): {
            "operationId": "readyz", "tags": ["operations"], "security": [],
            "summary": "Readiness",
            "description": "Can this process serve: Redis and storage reachable. Workers are "
                           "not a condition; when one last called is in the body.",
            "responses": {"200": _answer("Ready", _ref("Readiness")),
                          "503": _answer("Not ready", _ref("Readiness"))},
        },
        ("observability.metrics", "get"): {
            "operationId": "metrics", "tags": ["operations"], "security": [],
            "summary": "Prometheus metrics",
            "description": "When the operator sets METRICS_TOKEN, only with "
                           "`Authorization: Bearer <METRICS_TOKEN>`.",
            "responses": {"200": {"description": "Prometheus text exposition",
                                  "headers": _REQUEST_ID_HEADER,
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **_errors(e401="METRICS_TOKEN is set and was not sent")},
        },
    }


#: The blueprints whose routes the document describes (not /internal, /files or pages).
DOCUMENTED_BLUEPRINTS = ("v1", "observability")
_ROUTE_PARAMETER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def paths(schemas: dict[str, Any], url_map: Map) -> dict[str, Any]:
    """The document's paths, from the app's routes: every route of a documented
    blueprint must have its operation, and every operation its route."""
    described = operations(schemas)
    found: dict[str, Any] = {}
    for rule in sorted(url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.endpoint.split(".", 1)[0] not in DOCUMENTED_BLUEPRINTS:
            continue
        path = _ROUTE_PARAMETER.sub(lambda m: "{" + to_camel(m.group(1)) + "}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation = described.pop((rule.endpoint, method.lower()), None)
            if operation is None:
                raise RuntimeError(f"{method} {rule.rule} ({rule.endpoint}) is not documented")
            entry = found.setdefault(path, {})
            if "job_id" in rule.arguments:
                entry["parameters"] = [JOB_ID_PARAMETER]
            entry[method.lower()] = operation
    if described:
        raise RuntimeError(f"operations with no route: {sorted(described)}")
    return found




def webhooks() -> dict[str, Any]:
    """What the service POSTs to a job's webhookUrl when the job ends."""
    signed = {
        name: {"in": "header", "name": name, "required": True, "description": text,
               "schema": {"type": "string"}}
        for name, text in (
            ("webhook-id", "msg_<jobId>: the same on every retry and redelivery; dedupe on it"),
            ("webhook-timestamp", "seconds since the epoch"),
            ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body> with your "
                                  "secret (GET /v1/webhooks/secret)"),
        )
    }
    return {"jobEnded": {"post": {
        "operationId": "jobEnded", "tags": ["webhooks"],
        "summary": "A job ended (complete, failed, canceled or timed_out)",
        "description": "Signed per Standard Webhooks. Answer 2xx to acknowledge; timeouts "
                       "(15 s), connection errors, 5xx and 429 are retried (5 s, 5 min, "
                       "30 min, 2 h, 5 h, 10 h, then daily for 3 days); other answers are "
                       "final. Redirects are not followed.",
        "parameters": list(signed.values()),
        "requestBody": {"required": True, "content": _json(_ref("JobDocument"))},
        "responses": {"2XX": {"description": "Acknowledged"}},
    }}}


def build_document(public_base_url: str, url_map: Map) -> dict[str, Any]:
    schemas = component_schemas()
    try:
        version = metadata.version("soundreel")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "soundreel",
            "version": version,
            "summary": "Audio into video (audiograms), as a service.",
            "description": "Upload audio, submit a job, poll it (or take a signed webhook) "
                           "and download the video. Every /v1 call takes `Authorization: "
                           "Bearer <api key>`; a tenant sees only its own uploads and jobs. "
                           "Errors are always JSON `{\"error\": {\"code\", \"message\", "
                           "\"field\"?}}`. Send `X-Request-ID` to have your id in our logs.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": public_base_url.rstrip("/") or "/"}],
        "tags": [
            {"name": "uploads", "description": "Files for jobs: audio, images, captions"},
            {"name": "jobs", "description": "Submit, poll, list and cancel"},
            {"name": "webhooks", "description": "Signed notifications when a job ends"},
            {"name": "operations", "description": "For load balancers and monitoring"},
        ],
        "paths": paths(schemas, url_map),
        "webhooks": webhooks(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "An API key from API_KEYS; each belongs to one tenant.",
            }},
        },
    }


def document() -> dict[str, Any]:
    """The current app's document, built on first use."""
    extensions = current_app.extensions
    if _DOCUMENT_KEY not in extensions:
        settings = extensions["soundreel"].settings
        extensions[_DOCUMENT_KEY] = build_document(settings.public_base_url,
                                                   current_app.url_map)
    return extensions[_DOCUMENT_KEY]


# --- the docs page --------------------------------------------------------------------

_CONSTRAINTS = (
    ("minimum", ">= {}"), ("exclusiveMinimum", "> {}"), ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"), ("pattern", "matches `{}`"), ("format", "{}"),
)


def type_of(schema: dict[str, Any]) -> str:
    """A schema in a few words: ``integer``, ``Job``, ``array of Job``, ``string | null``."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(type_of(branch) for branch in schema["anyOf"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if isinstance(kind, list):
        return " | ".join(kind)
    return kind


def notes_of(schema: dict[str, Any]) -> str:
    """Constraints and default of a schema (and of its non-null branch), in words."""
    parts = []
    for branch in [schema, *schema.get("anyOf", [])]:
        shortest, longest = branch.get("minLength"), branch.get("maxLength")
        if shortest is not None and longest is not None:
            parts.append(f"{shortest} to {longest} characters")
        elif longest is not None:
            parts.append(f"at most {longest} characters")
        elif shortest is not None:
            parts.append(f"at least {shortest} characters")
        parts += [text.format(branch[key]) for key, text in _CONSTRAINTS if key in branch]
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    described = schema.get("description", "").rstrip(".")
    return ". ".join(filter(None, [described, "; ".join(parts)]))


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [
        {"name": name, "type": type_of(prop), "required": name in required,
         "notes": notes_of(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def docs_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The document digested for the template: operations by tag, then every schema."""
    tags = {tag["name"]: {**tag, "operations": []} for tag in doc["tags"]}
    items = [*doc["paths"].items(),
             *((f"(your webhookUrl: {name})", item) for name, item in doc["webhooks"].items())]
    for path, item in items:
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            parameters = [
                {"name": p["name"], "in": p["in"], "required": p.get("required", False),
                 "type": type_of(p["schema"]),
                 "notes": notes_of({**p["schema"], "description": p.get("description", "")})}
                for p in [*shared, *op.get("parameters", [])]
            ]
            body = None
            if "requestBody" in op:
                media, content = next(iter(op["requestBody"]["content"].items()))
                schema = content["schema"]
                body = {"media": media, "type": type_of(schema),
                        "fields": [] if "$ref" in schema else _fields(schema)}
            responses = []
            for status, answer in op["responses"].items():
                media, content = next(iter(answer.get("content", {}).items()), (None, {}))
                responses.append({
                    "status": status, "description": answer["description"], "media": media,
                    "type": type_of(content.get("schema", {})) if media else "",
                    "headers": [name for name in answer.get("headers", {})
                                if name != "X-Request-ID"],
                })
            tags[op["tags"][0]]["operations"].append({
                "id": op["operationId"], "method": method.upper(), "path": path,
                "summary": op.get("summary", ""), "description": op.get("description", ""),
                "auth": bool(op.get("security")), "parameters": parameters, "body": body,
                "responses": responses,
            })
    schemas = [
        {"name": name, "description": schema.get("description", ""), "fields": _fields(schema),
         "open": schema.get("additionalProperties", True) is not False}
        for name, schema in doc["components"]["schemas"].items()
    ]
    return {"info": doc["info"], "servers": doc["servers"], "tags": list(tags.values()),
            "schemas": schemas}


_BACKTICKED = re.compile(r"`([^`]+)`")
_WORD = re.compile(r"[A-Za-z]+")


@bp.app_template_filter("openapi_text")
def openapi_text(text: str) -> Markup:
    """Text with its `backticked` parts as code, everything escaped."""
    return Markup(_BACKTICKED.sub(r"<code>\1</code>", str(escape(text))))  # noqa: S704


@bp.app_template_filter("openapi_type")
def openapi_type(text: str, schemas: list[dict[str, Any]]) -> Markup:
    """A type in words, each schema name in it a link to the schema."""
    names = {schema["name"] for schema in schemas}

    def link(match: re.Match[str]) -> str:
        word = match.group(0)
        return f'<a href="#schema-{word}">{word}</a>' if word in names else word

    return Markup(_WORD.sub(link, str(escape(text))))  # noqa: S704


# --- routes ---------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi_json() -> Response:
    response = jsonify(document())
    response.headers["Access-Control-Allow-Origin"] = "*"  # public, no credentials
    return response


@bp.get("/docs")
def docs() -> Response:
    extensions = current_app.extensions
    if _DOCS_KEY not in extensions:
        extensions[_DOCS_KEY] = render_template("openapi/docs.html", **docs_view(document()))
    response = current_app.response_class(extensions[_DOCS_KEY], mimetype="text/html")
    return _secure(response)


@bp.get("/docs/docs.css")
def docs_css() -> Response:
    response = current_app.response_class(render_template("openapi/docs.css"),
                                          mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return _secure(response)


def _secure(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response
