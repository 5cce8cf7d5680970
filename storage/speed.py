"""How fast this deployment works, per job kind: moving averages of the seconds of
work per second of audio and per job, updated as jobs complete. They give queued
and just-started jobs an ``eta``."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from storage.constants import SPEED_REDIS_KEY
from storage.jobs import Job, epoch_of

#: Weight of the newest job in the averages.
ALPHA = 0.3


@dataclass(frozen=True)
class Speed:
    per_audio_second: float | None = None
    per_job: float | None = None


class SpeedStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get(self, kind: str) -> Speed:
        try:
            rate, job = self.redis.hmget(SPEED_REDIS_KEY, f"{kind}:rate", f"{kind}:job")
        except redis.RedisError:
            return Speed()  # an estimate is not worth an error
        return Speed(float(rate) if rate else None, float(job) if job else None)

    def record(self, job: Job) -> None:
        """Fold a completed job into its kind's averages (a statistic: a lost race
        between two completions only loses one sample)."""
        if not job.started_at or not job.result:
            return
        seconds = epoch_of(job.updated_at) - epoch_of(job.started_at)
        audio = job.result.get("duration") or job.audio_seconds
        if seconds <= 0:
            return
        current = self.get(job.kind)
        update = {f"{job.kind}:job": _blend(current.per_job, seconds)}
        if audio:
            update[f"{job.kind}:rate"] = _blend(current.per_audio_second, seconds / audio)
        try:
            self.redis.hset(SPEED_REDIS_KEY, mapping=update)
        except redis.RedisError:
            pass


def _blend(average: float | None, sample: float) -> float:
    return sample if average is None else (1 - ALPHA) * average + ALPHA * sample
