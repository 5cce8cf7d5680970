"""Object storage that answers 500 or hangs while a worker uploads a job's output.

The API and the worker run as real processes against moto's S3 server, but through
`tests.helpers.faulty_s3.FaultyS3`, a proxy whose mode the test switches while they run.
The proxy faults only writes under the output prefixes (renders/, previews/,
prepared/), so the input upload still goes through. The S3 client's timeouts and
tries are shortened with S3_READ_TIMEOUT / S3_MAX_ATTEMPTS so a hang fails in
seconds. What must hold: the upload is tried S3_MAX_ATTEMPTS times with backoff,
the job ends ``failed`` / ``upload_failed`` with no result and no link, no object
is left at the output key, and once storage is back the same worker completes the
next job.

Figures from one run are printed (``pytest -s``): tries seen, the gaps between them
and the time from the first try to the job showing ``failed``. They are not
asserted, except that a hung store is given the whole read timeout on every try.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

import devstack as st
from config.settings import SettingsError
from jobs.constants import PREPARE, default_output_key, peaks_key
from storage.errors import StorageUnavailable
from storage.objects import S3ObjectStore, object_store
from tests.helpers.e2e import poll, submit, upload
from tests.helpers.faulty_s3 import ERROR500, HANG, PASSTHROUGH, FaultyS3
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import settings_for

ATTEMPTS = 3
READ_TIMEOUT = 2.0
#: Short timeouts and few tries, so a hung store fails a job in seconds, not minutes.
FAULT_ENV = {
    "S3_CONNECT_TIMEOUT": "2",
    "S3_READ_TIMEOUT": str(READ_TIMEOUT),
    "S3_MAX_ATTEMPTS": str(ATTEMPTS),
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory, s3_env: dict[str, str]) -> Iterator[
    tuple[st.Stack, FaultyS3]
]:
    """redis-server, the API and one worker, all talking to S3 through the proxy."""
    workdir = tmp_path_factory.mktemp("storage-faults")
    with ExitStack() as stack:
        proxy = stack.enter_context(FaultyS3(s3_env["S3_ENDPOINT_URL"]))
        redis_url = stack.enter_context(st.redis_server(workdir))
        port = st.free_port()
        base_url = f"http://127.0.0.1:{port}"
        storage = {**s3_env, "S3_ENDPOINT_URL": proxy.url, **FAULT_ENV}
        env = st.base_env(redis_url, base_url, workdir, storage)
        running = st.Stack.of(base_url, redis_url, env, workdir)
        running.procs["api"] = stack.enter_context(st.api_server(env, port, workdir / "api.log"))
        running.procs["worker"] = stack.enter_context(st.worker(env, workdir / "worker.log"))
        yield running, proxy


def moto(s3_env: dict[str, str]) -> Any:  # noqa: ANN401 - boto3 clients are untyped
    """A client straight to moto, around the proxy: what the bucket really holds."""
    return boto3.client(
        "s3", endpoint_url=s3_env["S3_ENDPOINT_URL"], region_name=s3_env["AWS_REGION"],
        aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
    )


def objects_under(s3_env: dict[str, str], prefix: str) -> list[str]:
    listing = moto(s3_env).list_objects_v2(Bucket=s3_env["S3_BUCKET"], Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def incomplete_uploads_under(s3_env: dict[str, str], prefix: str) -> list[str]:
    listing = moto(s3_env).list_multipart_uploads(Bucket=s3_env["S3_BUCKET"], Prefix=prefix)
    return [item["Key"] for item in listing.get("Uploads", [])]


@pytest.mark.parametrize("fault", [ERROR500, HANG])
def test_an_output_upload_the_store_fails_is_retried_then_the_job_fails_upload_failed(
    faulty: tuple[st.Stack, FaultyS3], s3_env: dict[str, str], fault: str
) -> None:
    running, proxy = faulty
    proxy.mode = PASSTHROUGH
    audio = upload(running, SAMPLE)  # through the proxy: inputs are not faulted
    proxy.forget()
    proxy.mode = fault
    try:
        job_id = submit(running, {"kind": PREPARE, "audioKey": audio})["jobId"]
        done, _ = poll(running, job_id, timeout=120)
        ended = time.monotonic()
    finally:
        proxy.mode = PASSTHROUGH

    assert done["status"] == "failed", done
    assert done["error"]["code"] == "upload_failed"
    assert "could not be stored" in done["error"]["message"]
    assert "resubmit" in done["error"]["message"]
    assert "StorageUnavailable" in done["error"]["message"]  # a store fault, not a bug
    assert done["result"] is None
    assert done["downloadUrl"] is None and done.get("peaksUrl") is None
    # the first output was tried S3_MAX_ATTEMPTS times, then the job gave up:
    # the second output (the peaks) was never attempted
    output = default_output_key(PREPARE, job_id)
    tries = proxy.seen(key=output, writes_only=True)
    assert [(t.operation, t.outcome) for t in tries] == [("PutObject", fault)] * ATTEMPTS
    assert proxy.seen(key=peaks_key(job_id)) == []
    gaps = [round(b.at - a.at, 3) for a, b in zip(tries, tries[1:], strict=False)]
    if fault == HANG:  # each try waited out the read timeout before the next
        assert all(gap >= READ_TIMEOUT * 0.95 for gap in gaps), gaps
    # nothing partial or whole is left where the result would have been
    assert objects_under(s3_env, f"prepared/{job_id}/") == []
    assert incomplete_uploads_under(s3_env, f"prepared/{job_id}/") == []
    log = (running.workdir / "worker.log").read_text()
    assert f"upload of {output} failed" in log
    print(f"\n[{fault}] tries={len(tries)} gaps between tries={gaps} s "
          f"first try to job failed={ended - tries[0].at:.2f} s")

    # storage is back: the same worker completes the next job and its link works
    again, _ = poll(running, submit(running, {"kind": PREPARE, "audioKey": audio})["jobId"])
    assert again["status"] == "complete", again["error"]
    stored = objects_under(s3_env, f"prepared/{again['jobId']}/")
    assert sorted(stored) == [default_output_key(PREPARE, again["jobId"]),
                              peaks_key(again["jobId"])]
    got = requests.get(again["downloadUrl"], timeout=30)
    assert got.status_code == 200 and got.content[:4] == b"RIFF"


def test_a_multipart_upload_failing_part_way_is_aborted_and_leaves_nothing(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    """Renders over 8 MiB go up in parts: a part the store keeps refusing must not
    leave an object, nor (when the abort gets through) the parts already stored."""
    key = f"renders/{uuid.uuid4().hex}/output.mp4"
    video = tmp_path / "output.mp4"
    video.write_bytes(os.urandom(9 * 1024 * 1024))  # boto3 goes multipart from 8 MiB
    only_parts = frozenset({"UploadPart"})
    with FaultyS3(s3_env["S3_ENDPOINT_URL"], mode=ERROR500, fault_operations=only_parts) as proxy:
        store = object_store(settings_for({**s3_env, "S3_ENDPOINT_URL": proxy.url, **FAULT_ENV}))
        with pytest.raises(StorageUnavailable):
            store.put_file(key, video, "video/mp4")
        operations = [row.operation for row in proxy.seen(key=key)]
    assert operations.count("CreateMultipartUpload") == 1
    assert operations.count("UploadPart") >= ATTEMPTS  # each part is tried ATTEMPTS times
    assert "CompleteMultipartUpload" not in operations
    assert "AbortMultipartUpload" in operations
    assert objects_under(s3_env, key) == []
    assert incomplete_uploads_under(s3_env, key) == []


def test_s3_timeouts_and_tries_come_from_the_environment(s3_env: dict[str, str]) -> None:
    default = object_store(settings_for(s3_env))
    tuned = object_store(settings_for({**s3_env, **FAULT_ENV}))
    assert isinstance(default, S3ObjectStore) and isinstance(tuned, S3ObjectStore)
    config = default._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (10, 60)
    assert config.retries == {"total_max_attempts": 5, "mode": "standard"}
    config = tuned._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, READ_TIMEOUT)
    assert config.retries["total_max_attempts"] == ATTEMPTS
    for name, bad in [("S3_MAX_ATTEMPTS", "0"), ("S3_MAX_ATTEMPTS", "two"),
                      ("S3_READ_TIMEOUT", "-1"), ("S3_CONNECT_TIMEOUT", "soon")]:
        with pytest.raises(SettingsError, match=name):
            settings_for({**s3_env, name: bad})
    r2 = settings_for({"R2_ACCOUNT_ID": "acct", "R2_ACCESS_KEY_ID": "key",
                       "R2_SECRET_ACCESS_KEY": "secret", "R2_BUCKET_NAME": "bucket",
                       "S3_READ_TIMEOUT": "5"})
    assert r2.storage.read_timeout == 5  # R2 goes through the same S3 client
