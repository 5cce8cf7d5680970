"""The OpenAPI document and the live API keeping to it (issue 6).

- ``/openapi.json`` is a valid OpenAPI 3.1 document whose request schemas are the
  validating pydantic models' own, and ``/docs`` shows every operation of it with
  no script and nothing from another origin.
- A real job walked through every operation answers only what the document says.
- schemathesis generates requests for every documented operation (valid and invalid
  ones, including its coverage phase's edge cases) against the live stack, with the
  first tenant's key, and checks that none answers 5xx and every answer has a
  documented status, content type, headers and body.
"""

from __future__ import annotations

import json
import math
import struct
import time
import uuid
import wave
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import requests
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from api import observability, openapi
from api import v1 as v1_routes
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.schemas import JobListQuery, JobRequest
from devstack import Stack
from tests.helpers.e2e import poll, submit, upload, wait_for
from tests.helpers.samples import SAMPLE

ARTIFACTS = Path(__file__).resolve().parent.parent / "var" / "artifacts" / "openapi"
#: Per operation, for the fuzzing phase; the examples and coverage phases add their own.
MAX_EXAMPLES = 100
#: Generated uploads are cut to this size (hypothesis may draw up to 1 MiB).
MAX_GENERATED_UPLOAD = 64 * 1024
#: A public name that does not resolve here: passes the SSRF guard at submission, and
#: its deliveries fail (and are recorded) without leaving the machine.
WEBHOOK_URL = "https://hooks.example.com/soundreel"

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]


@pytest.fixture(scope="module")
def document(local_stack: Stack) -> dict[str, Any]:
    response = requests.get(local_stack.url("/openapi.json"), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


@pytest.fixture(scope="module")
def loaded(local_stack: Stack) -> schemathesis.openapi.OpenApiSchema:
    """The live document as schemathesis reads it (it refuses an invalid one)."""
    return schemathesis.openapi.from_url(local_stack.url("/openapi.json"))


# --- the document ----------------------------------------------------------------------


def test_document_is_openapi_3_1(document: dict[str, Any], loaded: Any) -> None:
    assert document["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(document)  # the OpenAPI 3.1 meta-schema
    for schema in document["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)  # each a valid JSON Schema 2020-12
    labels = {op.ok().label for op in loaded.get_all_operations()}
    assert labels == {
        "POST /v1/uploads", "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{jobId}",
        "DELETE /v1/jobs/{jobId}", "GET /v1/jobs/{jobId}/deliveries",
        "POST /v1/jobs/{jobId}/deliveries/redeliver", "GET /v1/webhooks/secret",
        "GET /healthz", "GET /readyz", "GET /metrics",
    }


def test_request_schemas_are_the_validating_models(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    own = JobRequest.model_json_schema(by_alias=True, ref_template=openapi.REF_TEMPLATE)
    nested = own.pop("$defs")
    assert components["JobRequest"] == own
    assert nested.keys() == {"RenderSpec"}
    assert components["RenderSpec"] == nested["RenderSpec"]
    body = document["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/JobRequest"}

    query = JobListQuery.model_json_schema(by_alias=True, ref_template=openapi.REF_TEMPLATE)
    parameters = document["paths"]["/v1/jobs"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == list(query["properties"])
    limit = next(p["schema"] for p in parameters if p["name"] == "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 100)


def test_every_v1_route_is_documented_and_internal_is_not(
    local_stack: Stack, document: dict[str, Any]
) -> None:
    from flask import Flask

    from api import v1

    app = Flask("routes")
    app.register_blueprint(v1.bp)
    routes = {
        (rule.rule.replace("<job_id>", "{jobId}"), method)
        for rule in app.url_map.iter_rules() if rule.endpoint.startswith("v1.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method.upper()) for path, item in document["paths"].items()
                  for method in item if method != "parameters"}
    assert routes and routes <= documented
    assert not [path for path, _ in documented if path.startswith(("/internal", "/files"))]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["servers"] == [{"url": local_stack.base_url}]


def test_docs_page_shows_every_operation_without_scripts(
    local_stack: Stack, document: dict[str, Any]
) -> None:
    response = requests.get(local_stack.url("/docs"), timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script" not in csp
    page = response.text
    assert "<script" not in page and "http://" not in page.replace(local_stack.base_url, "")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert f'id="op-{operation["operationId"]}"' in page
        assert f"<code>{path}</code>" in page
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    css = requests.get(local_stack.url("/docs/docs.css"), timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")


# --- a real job through every operation --------------------------------------------------


def test_a_real_job_answers_as_documented(local_stack: Stack, loaded: Any) -> None:
    client = local_stack.client()

    def conforms(response: requests.Response, path: str, method: str) -> dict[str, Any]:
        operation = loaded[path][method]
        responses = loaded[path][method].definition.raw["responses"]
        assert str(response.status_code) in responses, (path, method, response.status_code)
        operation.validate_response(response)
        json_answer = response.headers.get("Content-Type", "").startswith("application/json")
        return response.json() if json_answer else {}

    key = upload(local_stack, SAMPLE)
    with open(SAMPLE, "rb") as file:
        again = client.post(local_stack.url("/v1/uploads"), files={"file": ("a.mp3", file)},
                            headers={"Idempotency-Key": "openapi-upload-1"}, timeout=60)
    conforms(again, "/v1/uploads", "POST")
    body = {"kind": "preview", "audioKey": key, "options": {"width": 320, "height": 180},
            "webhookUrl": WEBHOOK_URL}
    submitted = client.post(local_stack.url("/v1/jobs"), json=body, timeout=30,
                            headers={"Idempotency-Key": "openapi-job-1"})
    job = conforms(submitted, "/v1/jobs", "POST")
    replayed = client.post(local_stack.url("/v1/jobs"), json=body, timeout=30,
                           headers={"Idempotency-Key": "openapi-job-1"})
    assert conforms(replayed, "/v1/jobs", "POST")["jobId"] == job["jobId"]
    job_path = f"/v1/jobs/{job['jobId']}"

    # queued, running and complete views all conform
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = conforms(client.get(local_stack.url(job_path), timeout=30),
                        "/v1/jobs/{jobId}", "GET")
        if seen["status"] == "complete":
            break
        time.sleep(0.1)
    assert seen["status"] == "complete", seen
    assert seen["timings"] and seen["thumbnailUrl"] and seen["downloadUrl"]

    page = conforms(client.get(local_stack.url("/v1/jobs?limit=1&kind=preview"), timeout=30),
                    "/v1/jobs", "GET")
    assert page["jobs"][0]["jobId"] == job["jobId"]
    conforms(client.get(local_stack.url("/v1/jobs?status=complete&limit=100"), timeout=30),
             "/v1/jobs", "GET")

    # its webhook cannot be delivered here: attempts are recorded, then redelivered
    deliveries = wait_for(
        lambda: (d := client.get(local_stack.url(job_path + "/deliveries"), timeout=30)).json()
        ["attempts"] and d, 30, "a delivery attempt")
    conforms(deliveries, "/v1/jobs/{jobId}/deliveries", "GET")
    conforms(client.post(local_stack.url(job_path + "/deliveries/redeliver"), timeout=30),
             "/v1/jobs/{jobId}/deliveries/redeliver", "POST")
    finished = client.delete(local_stack.url(job_path), timeout=30)
    assert finished.status_code == 409
    conforms(finished, "/v1/jobs/{jobId}", "DELETE")

    # a job canceled while queued, without a webhook
    other = client.post(local_stack.url("/v1/jobs"), timeout=30,
                        json={"kind": "render", "audioKey": key}).json()
    canceled = client.delete(local_stack.url(f"/v1/jobs/{other['jobId']}"), timeout=30)
    assert conforms(canceled, "/v1/jobs/{jobId}", "DELETE")["status"] == "canceled"
    none = client.get(local_stack.url(f"/v1/jobs/{other['jobId']}/deliveries"), timeout=30)
    assert conforms(none, "/v1/jobs/{jobId}/deliveries", "GET")["state"] == "none"
    refused = client.post(local_stack.url(f"/v1/jobs/{other['jobId']}/deliveries/redeliver"),
                          timeout=30)
    assert refused.status_code == 409
    conforms(refused, "/v1/jobs/{jobId}/deliveries/redeliver", "POST")

    conforms(client.get(local_stack.url("/v1/webhooks/secret"), timeout=30),
             "/v1/webhooks/secret", "GET")
    for path in ("/healthz", "/readyz", "/metrics"):
        conforms(requests.get(local_stack.url(path), timeout=30), path, "GET")
    assert conforms(requests.get(local_stack.url("/v1/jobs"), timeout=30),
                    "/v1/jobs", "GET")["error"]["code"] == "unauthorized"


# --- schemathesis against the live API -------------------------------------------------------

#: (operation, status) of every generated request, printed and saved at the end.
CALLS: Counter[tuple[str, int]] = Counter()


def _tiny_wav(path: Path, seconds: float = 0.5, rate: int = 22050) -> Path:
    """A short tone: what generated jobs render, so none keeps the worker busy for long."""
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


@pytest.fixture(scope="module")
def real_ids(local_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Real ids for the generated requests to use half of the time: a completed job with
    a webhook, a fresh one, another tenant's job (404 for us) and a small upload."""
    wav = _tiny_wav(tmp_path_factory.mktemp("openapi") / "tone.wav")
    key = upload(local_stack, wav)
    done = submit(local_stack, {"kind": "preview", "audioKey": key, "webhookUrl": WEBHOOK_URL,
                                "options": {"width": 160, "height": 90}})
    poll(local_stack, done["jobId"], timeout=120)
    fresh = submit(local_stack, {"kind": "prepare", "audioKey": key})
    other = local_stack.client(local_stack.other_api_key)
    with open(wav, "rb") as file:
        other_key = other.post(local_stack.url("/v1/uploads"), files={"file": ("t.wav", file)},
                               timeout=30).json()["audioKey"]
    foreign = other.post(local_stack.url("/v1/jobs"), json={"kind": "prepare",
                                                            "audioKey": other_key}, timeout=30)
    yield {"jobs": [done["jobId"], fresh["jobId"], foreign.json()["jobId"]], "uploads": [key]}
    # generated jobs are small, but none is left running for the tests after this one
    client = local_stack.client()
    for status in ("queued", "running"):
        listed = client.get(local_stack.url(f"/v1/jobs?status={status}&limit=100"), timeout=30)
        for job in listed.json()["jobs"]:
            client.delete(local_stack.url(f"/v1/jobs/{job['jobId']}"), timeout=30)


@pytest.fixture(scope="module")
def api_schema(local_stack: Stack, real_ids: dict[str, list[str]]) -> Iterator[Any]:
    config = schemathesis.Config.from_dict({
        "seed": 6,
        "base-url": local_stack.base_url,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True,
                       "no-shrink": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "auth": {"openapi": {"bearerAuth": {"bearer": local_stack.api_key}}},
        "dictionaries": {"jobs": {"values": real_ids["jobs"]},
                         "uploads": {"values": real_ids["uploads"]}},
        "parameters": {"path.jobId": {"dictionary": "jobs", "probability": 0.5},
                       "body.audioKey": {"dictionary": "uploads", "probability": 0.5}},
        "request-timeout": 30,
    })
    yield schemathesis.openapi.from_url(local_stack.url("/openapi.json"), config=config)
    _summarize()


def _summarize() -> None:
    operations = sorted({operation for operation, _ in CALLS})
    tested = {operation.split(" (")[0] for operation in operations}
    lines = [f"schemathesis: {len(tested)} operations, {sum(CALLS.values())} requests"]
    for operation in operations:
        statuses = {s: n for (o, s), n in sorted(CALLS.items()) if o == operation}
        lines.append(f"  {operation:58} {sum(statuses.values()):4}  {statuses}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "schemathesis.txt").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


def _small_uploads(case: Any) -> None:
    """Keep generated upload files small (the API takes up to MAX_UPLOAD_BYTES)."""
    if isinstance(case.body, dict) and "file" in case.body:
        file = case.body["file"]
        data = getattr(file, "data", file)
        if isinstance(data, bytes | str) and len(data) > MAX_GENERATED_UPLOAD:
            if hasattr(file, "data"):
                file.data = data[:MAX_GENERATED_UPLOAD]
            else:
                case.body["file"] = data[:MAX_GENERATED_UPLOAD]


def _fresh_idempotency_key(case: Any) -> None:
    """Make each valid generated Idempotency-Key unique: generation repeats a few short
    keys, and a reused key answers 422 before the body is even read (replays are
    pinned by the walk above). Invalid keys are sent as generated."""
    headers = case.headers or {}
    key = headers.get(IDEMPOTENCY_HEADER)
    if isinstance(key, str) and 0 < len(key) <= 200 and key.isprintable() and key.isascii():
        headers[IDEMPOTENCY_HEADER] = f"{key}-{uuid.uuid4().hex}"


api = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas read and write ``node._nodeid``, which pytest 9.2
    no longer has (nodes keep a structured ``_id``); give it the plain attribute."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@api.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_live_api_keeps_to_its_document(case: Any) -> None:
    _small_uploads(case)
    _fresh_idempotency_key(case)
    response = case.call()
    sent = response.request.method
    other = sent != case.operation.method.upper()  # the coverage phase tries other methods
    CALLS[(case.operation.label + (" (other methods)" if other else ""),
           response.status_code)] += 1
    case.validate_response(response, checks=CHECKS)


def routes_app() -> Flask:
    """An app with the documented blueprints' routes, as create_app registers them."""
    app = Flask("routes")
    app.register_blueprint(v1_routes.bp)
    app.register_blueprint(observability.bp)
    return app


def test_served_document_is_the_generated_one(document: dict[str, Any]) -> None:
    """/openapi.json is `build_document`'s output (made once per app), nothing edited."""
    built = openapi.build_document(document["servers"][0]["url"], routes_app().url_map)
    assert json.loads(json.dumps(built)) == document


def test_the_paths_are_the_apps_routes_and_a_new_route_cannot_go_undocumented() -> None:
    app = routes_app()
    routes = {(rule.rule.replace("<job_id>", "{jobId}"), method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    built = openapi.paths(openapi.component_schemas(), app.url_map)
    documented = {(path, method) for path, item in built.items()
                  for method in item if method != "parameters"}
    assert documented == routes
    app.add_url_rule("/v1/jobs/<job_id>/retry", "v1.retry", lambda job_id: "", methods=["POST"])
    with pytest.raises(RuntimeError, match="POST /v1/jobs/<job_id>/retry .* is not documented"):
        openapi.paths(openapi.component_schemas(), app.url_map)
