"""DELETE /v1/jobs/<id>: a running job's worker stops within seconds and cleans up,
a queued job never starts, `canceled` is sticky, and ended jobs answer 409.
Against the real stack (gunicorn, redis-server, a Celery worker)."""

from __future__ import annotations

import subprocess

import requests

from tests.helpers.e2e import attempt_of, poll, submit, upload, wait_for, wait_for_line
from tests.helpers.samples import SAMPLE
from tests.helpers.stacks import SLOW


def job_of(stack, job_id: str) -> dict:  # noqa: ANN001
    return stack.client().get(stack.url(f"/v1/jobs/{job_id}"), timeout=10).json()


def cancel(stack, job_id: str, key: str | None = None) -> requests.Response:  # noqa: ANN001
    return stack.client(key).delete(stack.url(f"/v1/jobs/{job_id}"), timeout=10)


def ffmpeg_in(workdir) -> list[str]:  # noqa: ANN001
    """ffmpeg processes working on files under the stack's temp dir."""
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines()
            if "ffmpeg" in line and str(workdir / "tmp") in line]


def test_cancel_stops_a_running_render_and_cleans_up(local_stack):
    job = submit(local_stack, {**SLOW, "audioKey": upload(local_stack, SAMPLE)})
    job_id = job["jobId"]
    wait_for(lambda: job_of(local_stack, job_id)["progress"] >= 0.1, 60, "rendering")
    attempt = attempt_of(local_stack, job_id)
    response = cancel(local_stack, job_id)
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert response.json()["error"]["code"] == "canceled"
    log = local_stack.workdir / "worker.log"
    wait_for_line(log, f"job {job_id}: stopped, the API said this attempt is over", 30)
    final = job_of(local_stack, job_id)
    assert final["status"] == "canceled" and final["downloadUrl"] is None
    assert not (local_stack.workdir / "storage" / f"renders/{job_id}/output.mp4").exists()
    assert list((local_stack.workdir / "tmp").glob("soundreel-*")) == []
    assert ffmpeg_in(local_stack.workdir) == []  # the encoder was killed, not left running
    # the stopped attempt's late progress and failure are accepted and ignored:
    # canceled is sticky
    worker = local_stack.worker_client()
    late_progress = worker.patch(local_stack.url(f"/internal/jobs/{job_id}"), timeout=10,
                                 json={"progress": 0.9, "stage": "rendering", "attempt": attempt})
    late_failure = worker.post(local_stack.url("/internal/webhooks/worker"), timeout=10, json={
        "jobId": job_id, "status": "failed", "attempt": attempt,
        "error": {"code": "render_failed", "message": "ffmpeg was killed"}})
    assert late_progress.status_code == 200 and late_failure.status_code == 200
    after = job_of(local_stack, job_id)
    assert after["status"] == "canceled" and after["error"]["code"] == "canceled"
    assert after["progress"] < 0.9


def test_a_queued_job_that_is_canceled_never_starts(local_stack):
    audio = upload(local_stack, SAMPLE)
    # two slow renders fill the worker's two children; the third waits in Redis
    busy = [submit(local_stack, {**SLOW, "audioKey": audio})["jobId"] for _ in range(2)]
    for job_id in busy:
        wait_for(lambda j=job_id: job_of(local_stack, j)["status"] == "running", 60, "start")
    queued = submit(local_stack, {"kind": "render", "audioKey": audio})["jobId"]
    assert job_of(local_stack, queued)["status"] == "queued"
    assert cancel(local_stack, queued).status_code == 200
    for job_id in busy:
        assert cancel(local_stack, job_id).status_code == 200
    log = local_stack.workdir / "worker.log"

    def dropped() -> bool:
        text = log.read_text()
        # Celery drops it on the revoke broadcast; a worker that missed the
        # broadcast (restarted since) learns it from its first report instead
        return (f"Discarding revoked task: soundreel.render_job[{queued}]" in text
                or f"job {queued} is canceled: this delivery does nothing" in text)

    wait_for(dropped, 30, "the queued job being dropped")
    assert f"job {queued}: render of" not in log.read_text()  # no work began
    assert job_of(local_stack, queued)["status"] == "canceled"
    assert not (local_stack.workdir / "storage" / f"renders/{queued}").exists()


def test_cancel_of_an_ended_job_is_409_and_of_another_tenants_is_404(local_stack):
    job = submit(local_stack, {"kind": "prepare", "audioKey": upload(local_stack, SAMPLE)})
    assert cancel(local_stack, job["jobId"], local_stack.other_api_key).status_code == 404
    done, _ = poll(local_stack, job["jobId"])
    assert done["status"] == "complete"
    response = cancel(local_stack, job["jobId"])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_finished"
    assert job_of(local_stack, job["jobId"])["status"] == "complete"
