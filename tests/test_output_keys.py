"""A client-chosen ``outputKey`` belongs to the first tenant that names it, for as long
as the object may live; a key that no store could hold (a file and a folder of one
name, a name between slashes longer than a disk allows) is refused at submission,
not after the render. Against the live stack (gunicorn API, redis-server, a worker)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from devstack import Stack
from jobs.constants import (
    OUTPUT_FOLDERS_REDIS_KEY,
    RECORD_TTL_SECONDS,
    TERMINAL_STATES,
    output_redis_key,
)
from tests.helpers.e2e import poll, upload, wait_for
from tests.helpers.samples import SAMPLE

JOB = "/v1/jobs"


def error_of(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
    return response.json()["error"]


def fresh(prefix: str) -> str:
    """A folder no other test (the stacks live for the session) has written to."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def prepare_into(stack: Stack, output_key: str, key: str | None = None,
                 **extra: object) -> requests.Response:
    """Submit a prepare job (quick) writing to ``output_key``, as the stack's first
    tenant, or the other one when ``key`` is its API key."""
    client = stack.client(key)
    with open(SAMPLE, "rb") as file:
        audio = client.post(stack.url("/v1/uploads"), files={"file": ("a.mp3", file)},
                            timeout=60).json()["audioKey"]
    return client.post(stack.url(JOB), timeout=30,
                       json={"kind": "prepare", "audioKey": audio, "outputKey": output_key,
                             **extra})


def claim_of(stack: Stack, output_key: str) -> tuple[bytes | None, int]:
    """Who owns ``output_key`` in Redis, and the claim's TTL (-1: none; -2: no claim)."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return client.get(output_redis_key(output_key)), client.ttl(output_redis_key(output_key))
    finally:
        client.close()


# --- outputKey ownership ----------------------------------------------------------------


def test_an_output_key_stays_its_first_tenants_for_as_long_as_the_object(local_stack):
    key = f"{fresh('shows')}/episode.wav"
    mine = prepare_into(local_stack, key)
    assert mine.status_code == 202, mine.text
    # the object never expires, and neither does the claim: no day comes when another
    # tenant may write over it
    assert claim_of(local_stack, key) == (b"acme", -1)
    theirs = prepare_into(local_stack, key, local_stack.other_api_key)
    assert theirs.status_code == 409 and error_of(theirs)["code"] == "output_key_taken"
    done, _ = poll(local_stack, mine.json()["jobId"])
    assert done["status"] == "complete" and done["result"]["preparedKey"] == key
    assert claim_of(local_stack, key) == (b"acme", -1)


def test_a_claim_made_with_an_expiry_loses_it_when_its_owner_writes_again(local_stack):
    # claims made before this version expired with the job records (30 days)
    key = f"{fresh('legacy')}/episode.wav"
    client = redis.Redis.from_url(local_stack.redis_url)
    client.set(output_redis_key(key), "acme", ex=RECORD_TTL_SECONDS)
    client.close()
    again = prepare_into(local_stack, key)
    assert again.status_code == 202, again.text
    assert claim_of(local_stack, key) == (b"acme", -1)
    poll(local_stack, again.json()["jobId"])


def test_a_request_refused_for_anything_else_claims_no_output_key(local_stack):
    key = f"{fresh('refused')}/episode.wav"
    forbidden = prepare_into(local_stack, key, webhookUrl="http://169.254.169.254/hook")
    assert forbidden.status_code == 400 and error_of(forbidden)["code"] == "forbidden_url"
    foreign = local_stack.client().post(local_stack.url(JOB), timeout=30, json={
        "kind": "prepare", "outputKey": key,
        "audioKey": upload(local_stack, SAMPLE).replace("uploads/", "uploads/0", 1)})
    assert foreign.status_code == 400 and error_of(foreign)["code"] == "unknown_audio"
    assert claim_of(local_stack, key) == (None, -2)
    # so the key is still free: the other tenant takes it
    theirs = prepare_into(local_stack, key, local_stack.other_api_key)
    assert theirs.status_code == 202, theirs.text
    assert claim_of(local_stack, key)[0] == b"globex"
    mine = prepare_into(local_stack, key)
    assert mine.status_code == 409 and error_of(mine)["code"] == "output_key_taken"
    other = local_stack.client(local_stack.other_api_key)
    done = wait_for(lambda: (job := other.get(local_stack.url(f"{JOB}/{theirs.json()['jobId']}"),
                                              timeout=10).json())["status"] in TERMINAL_STATES
                    and job, 120, "the other tenant's job to end")
    assert done["status"] == "complete" and done["result"]["preparedKey"] == key


def test_a_key_that_is_a_folder_of_another_or_lies_in_one_is_refused_at_submission(
        local_stack):
    base = fresh("nested")
    deep = prepare_into(local_stack, f"{base}/x.wav/y.wav")
    assert deep.status_code == 202, deep.text
    # x.wav is a folder now: no store can also hold a file there (it failed with
    # IsADirectoryError on the local disk after a whole render)
    for key in (local_stack.api_key, local_stack.other_api_key):
        folder = prepare_into(local_stack, f"{base}/x.wav", key)
        assert folder.status_code == 409, folder.text
        assert error_of(folder)["code"] == "output_key_conflict"
        assert error_of(folder)["field"] == "outputKey"
    flat = prepare_into(local_stack, f"{base}/z.wav")
    assert flat.status_code == 202, flat.text
    inside = prepare_into(local_stack, f"{base}/z.wav/w.wav")
    assert inside.status_code == 409 and error_of(inside)["code"] == "output_key_conflict"
    assert claim_of(local_stack, f"{base}/x.wav") == (None, -2)
    assert claim_of(local_stack, f"{base}/z.wav/w.wav") == (None, -2)
    client = redis.Redis.from_url(local_stack.redis_url)
    assert client.sismember(OUTPUT_FOLDERS_REDIS_KEY, f"{base}/x.wav")
    client.close()
    for job in (deep, flat):
        done, _ = poll(local_stack, job.json()["jobId"])
        assert done["status"] == "complete", done["error"]
    storage = Path(local_stack.env["STORAGE_DIR"])
    assert (storage / base / "x.wav" / "y.wav").is_file()
    assert (storage / base / "z.wav").is_file()


def test_a_file_and_a_folder_of_one_name_racing_cannot_both_be_claimed(local_stack):
    base = fresh("race")
    keys = [f"{base}/a.wav", f"{base}/a.wav/b.wav"] * 4
    with ThreadPoolExecutor(len(keys)) as pool:
        answers = list(pool.map(lambda key: (key, prepare_into(local_stack, key)), keys))
    won = {key for key, response in answers if response.status_code == 202}
    refused = [response for _, response in answers if response.status_code != 202]
    assert len(won) == 1, [(key, r.status_code) for key, r in answers]
    assert refused and all(error_of(r)["code"] == "output_key_conflict" for r in refused)
    for _, response in answers:
        if response.status_code == 202:
            assert poll(local_stack, response.json()["jobId"])[0]["status"] == "complete"


def test_a_name_longer_than_a_disk_allows_is_refused_at_submission_not_after_the_render(
        local_stack):
    base = fresh("long")
    too_long = prepare_into(local_stack, f"{base}/{'a' * 252}.wav")  # 256 bytes
    assert too_long.status_code == 400
    assert error_of(too_long)["code"] == "output_key_too_long"
    assert error_of(too_long)["field"] == "outputKey"
    assert claim_of(local_stack, f"{base}/{'a' * 252}.wav") == (None, -2)
    longest = f"{base}/{'b' * 251}.wav"  # 255 bytes: the store holds it
    fits = prepare_into(local_stack, longest)
    assert fits.status_code == 202, fits.text
    done, _ = poll(local_stack, fits.json()["jobId"])
    assert done["status"] == "complete", done["error"]
    assert (Path(local_stack.env["STORAGE_DIR"]) / longest).is_file()
