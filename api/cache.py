"""The render cache: a render or preview job with the same audio bytes, the same
options (as they change the picture) and the same renderer version as a finished job
of its tenant is served by copies of that job's outputs, made in the store, instead
of a render (docs/cache.md).

- The key (`cache_digest`) is the SHA-256 of the job's kind, ``RENDERER_VERSION``,
  the audio's SHA-256 and the validated options with every default filled in, each
  file named by its bytes' SHA-256 rather than its upload key, in one sorted JSON.
  The tenant is part of the entry's Redis key: no entry serves another tenant.
- An upload's hash is taken as it streams in (`api.uploads`); an ``audioUrl``'s once
  its worker has fetched it, which then asks here (`check`) before rendering.
- A hit copies the entry's video and thumbnail to the job's own keys (deleting one
  job's output never breaks another's); a source that is gone drops the entry and the
  job renders. A completed job that missed fills the entry (`remember`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from api import metrics
from jobs.cache import Entry
from jobs.constants import (
    CACHED_KINDS,
    COMPLETE,
    PREVIEW,
    RESULT_KEY_FIELD_BY_KIND,
    RUNNING,
    default_output_key,
    thumbnail_key,
    upload_id_of,
)
from jobs.store import Job
from render.spec import RENDERER_VERSION, RenderSpec, parse_color
from storage.errors import ObjectNotFound

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)

#: Options that do not change the picture: ``cache`` itself, ``preset`` (the width and
#: height it sets are in the key) and ``split`` (a split render has the same frames).
NOT_IN_KEY = frozenset({"cache", "preset", "split"})
#: Colour options, written in the key as ``#rrggbb`` (``#FFF`` and ``#ffffff`` are one).
COLOR_OPTIONS = ("color", "color2", "background", "background2", "textColor",
                 "captionsHighlight")
#: The option naming each file a job reads besides its audio, by `RenderSpec.asset_keys` role.
ASSET_OPTIONS = {"background": "backgroundKey", "artwork": "artworkKey",
                 "captions": "captionsKey", "backgroundVideo": "backgroundVideoKey",
                 "intro": "introKey", "outro": "outroKey"}
#: What a cache entry keeps of a result (and a hit's result gets, plus ``cached``).
ENTRY_FIELDS = ("videoKey", "previewKey", "thumbnailKey", "format", "duration")


def cache_digest(kind: str, spec: RenderSpec, audio_sha256: str,
                 asset_sha256: dict[str, str]) -> str:
    """The render cache key of a job: equal exactly when the output would be.

    ``asset_sha256``: the content hash of each file ``spec`` names, by role. A preview
    is keyed by the spec it renders (`RenderSpec.for_preview`), so previews of canvases
    of one shape share their entry.
    """
    if kind == PREVIEW:
        spec = spec.for_preview()
    options = spec.model_dump(by_alias=True)
    picture: dict[str, Any] = {name: value for name, value in options.items()
                               if name not in NOT_IN_KEY and name not in ASSET_OPTIONS.values()}
    for name in COLOR_OPTIONS:
        if picture.get(name):
            picture[name] = "#{:02x}{:02x}{:02x}".format(*parse_color(picture[name]))
    for role in spec.asset_keys:
        picture[f"{role}Sha256"] = asset_sha256[role]
    material = {"kind": kind, "renderer": RENDERER_VERSION, "audioSha256": audio_sha256,
                "options": picture}
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class RenderCache:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.records = stores.cache

    def digest_for(self, kind: str, spec: RenderSpec, *, audio_key: str | None = None,
                   audio_sha256: str | None = None) -> str | None:
        """The job's cache key, or None when the cache does not serve it: turned off
        (``RENDER_CACHE``, ``options.cache``), a kind it does not keep, or a file
        whose hash is unknown (uploaded before hashing)."""
        if not (self.stores.settings.render_cache and spec.cache and kind in CACHED_KINDS):
            return None
        uploads = {role: upload_id_of(key) for role, key in spec.asset_keys.items()}
        if audio_key is not None:
            uploads["audio"] = upload_id_of(audio_key)
        if None in uploads.values():
            return None
        hashes = dict(zip(uploads, self.records.sha256s(list(uploads.values())), strict=True))
        audio = hashes.pop("audio", None) or audio_sha256
        if audio is None or None in hashes.values():
            return None
        return cache_digest(kind, spec, audio, hashes)  # type: ignore[arg-type]

    def reuse(self, tenant: str, digest: str, job_id: str, kind: str,
              output_key: str) -> dict[str, Any] | None:
        """The job's result made of copies of the entry's outputs at the job's own keys,
        or None: no entry, or its objects are gone (the entry is then dropped)."""
        entry = self.records.entry(tenant, digest)
        if entry is None:
            metrics.CACHE_LOOKUPS.labels(kind=kind, outcome="miss").inc()
            return None
        field = RESULT_KEY_FIELD_BY_KIND[kind]
        copies = {field: (entry.result.get(field), output_key),
                  "thumbnailKey": (entry.result.get("thumbnailKey"), thumbnail_key(kind, job_id))}
        made: list[str] = []
        try:
            for source, dest in copies.values():
                if not source:
                    raise ObjectNotFound(f"{field} or thumbnailKey of job {entry.job_id}")
                self.stores.objects.copy(source, dest)
                made.append(dest)
        except ObjectNotFound:
            self._undo(made)
            self.records.drop(tenant, digest, entry)
            metrics.CACHE_LOOKUPS.labels(kind=kind, outcome="stale").inc()
            log.info("cache entry of job %s dropped: its output is gone", entry.job_id)
            return None
        except Exception:  # noqa: BLE001 - an optimisation: any store trouble renders instead
            self._undo(made)
            metrics.CACHE_LOOKUPS.labels(kind=kind, outcome="error").inc()
            log.warning("cache copy from job %s failed; rendering instead", entry.job_id,
                        exc_info=True)
            return None
        result = {**{name: entry.result[name] for name in ("format", "duration")
                     if name in entry.result},
                  **{name: dest for name, (_, dest) in copies.items()}}
        if output_key == default_output_key(kind, job_id):
            # the newest copy serves from now on: an entry lives as long as it is used
            self.records.put(tenant, digest, Entry(job_id, result))
        metrics.CACHE_LOOKUPS.labels(kind=kind, outcome="hit").inc()
        log.info("job %s reuses the output of job %s", job_id, entry.job_id)
        return {**result, "cached": True}

    def expect(self, job_id: str, kind: str, output_key: str, digest: str) -> None:
        """The job missed: its outputs fill the entry when it completes. Not when it
        writes to an ``outputKey``: a later job naming the same key replaces the object,
        and an entry must never point at another input's video."""
        if output_key == default_output_key(kind, job_id):
            self.records.expect(job_id, digest)

    def remember(self, job: Job) -> None:
        """An ended job: if it completed after a miss, its outputs are the entry now."""
        if job.kind not in CACHED_KINDS:
            return
        digest = self.records.take_fill(job.job_id)
        if digest is None or job.status != COMPLETE or not job.result:
            return
        result = {name: job.result[name] for name in ENTRY_FIELDS if name in job.result}
        self.records.put(job.tenant, digest, Entry(job.job_id, result))

    def check(self, job_id: str, attempt: str, audio_sha256: str) -> dict[str, Any] | None:
        """A worker fetched a job's ``audioUrl`` and hashed it: the job's result from the
        cache (its outputs already copied), or None (render; the job fills the entry)."""
        job = self.stores.jobs.get(job_id)
        if job.status != RUNNING or job.attempt_id != attempt or not job.audio_url:
            return None
        spec = RenderSpec.model_validate(job.options)
        digest = self.digest_for(job.kind, spec, audio_sha256=audio_sha256)
        if digest is None:
            return None
        result = self.reuse(job.tenant, digest, job_id, job.kind, job.output_key)
        if result is None:
            self.expect(job_id, job.kind, job.output_key, digest)
        return result

    def _undo(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.stores.objects.delete(key)
            except Exception:  # noqa: BLE001 - best effort; the job renders over it anyway
                log.warning("could not remove the partial cache copy %s", key)
