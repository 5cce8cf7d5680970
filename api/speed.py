"""How fast this deployment works, per job kind: moving averages of the seconds of
work per second of audio and per job, updated as jobs complete. They give queued
and just-started jobs an ``eta``.

Work grows with the canvas and the frame rate, so both averages are kept per
*reference frame size* (1280x720 at 30 fps): a job's own size scales them back up
(a 1080p60 render is 4.5 times the work of a 720p30 one per second of audio).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from pydantic import ValidationError

from jobs.constants import PREPARE, PREVIEW, SPEED_REDIS_KEY
from jobs.store import Job, epoch_of
from render.spec import RenderSpec

#: Weight of the newest job in the averages.
ALPHA = 0.3
#: Pixels per second of video the averages are kept for.
REFERENCE_RATE = 1280 * 720 * 30


def work_scale(job: Job) -> float:
    """How many times the reference frame rate of pixels the job draws (1 for a
    prepare job, which draws none)."""
    if job.kind == PREPARE:
        return 1.0
    try:
        spec = RenderSpec.model_validate(job.options or {})
    except ValidationError:
        return 1.0
    if job.kind == PREVIEW:
        spec = spec.for_preview()
    return spec.width * spec.height * spec.fps / REFERENCE_RATE


@dataclass(frozen=True)
class Speed:
    per_audio_second: float | None = None
    per_job: float | None = None


class SpeedStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, kind: str, scale: float = 1.0) -> Speed:
        """The kind's averages, scaled to a job ``scale`` times the reference size."""
        try:
            rate, job = self.redis.hmget(SPEED_REDIS_KEY, f"{kind}:rate", f"{kind}:job")
        except redis.RedisError:
            return Speed()  # an estimate is not worth an error
        return Speed(float(rate) * scale if rate else None, float(job) * scale if job else None)

    def record(self, job: Job) -> None:
        """Fold a completed job into its kind's averages (a statistic: a lost race
        between two completions only loses one sample)."""
        if not job.started_at or not job.result:
            return
        seconds = epoch_of(job.updated_at) - epoch_of(job.started_at)
        audio = job.result.get("duration") or job.audio_seconds
        if seconds <= 0:
            return
        scale = work_scale(job)
        current = self.get(job.kind)
        update = {f"{job.kind}:job": _blend(current.per_job, seconds / scale)}
        if audio:
            update[f"{job.kind}:rate"] = _blend(current.per_audio_second, seconds / audio / scale)
        try:
            self.redis.hset(SPEED_REDIS_KEY, mapping=update)
        except redis.RedisError:
            pass


def _blend(average: float | None, sample: float) -> float:
    return sample if average is None else (1 - ALPHA) * average + ALPHA * sample
