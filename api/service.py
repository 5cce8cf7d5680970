"""What the API does, behind thin handlers, as a few cohesive units over one set of
stores: uploads (``api.uploads``), submissions and cancels (``api.submission``) within
the tenant's limits (``api.limits``), when work goes to the broker (fair share,
``api.fairshare``, over the task sends of ``api.dispatch``), the job as clients see
it (``api.views``), worker reports (``api.reports``), client webhook deliveries
(``api.deliveries``), the render cache (``api.cache``), split renders' windows
(``api.splits``) and the reaper (``api.reaper``).

One `Service` per app, kept in ``app.extensions["soundreel"]``: it builds the stores
once and wires the units together; a handler calls one unit's method.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app

from api.cache import RenderCache
from api.deliveries import Deliveries
from api.dispatch import Dispatch
from api.fairshare import FairShare
from api.limits import Limits
from api.reaper import Reaper
from api.reports import Reports
from api.speed import SpeedStore
from api.splits import Splits
from api.submission import Submissions
from api.uploads import Uploads
from api.views import JobViews
from config.settings import Settings
from jobs.cache import CacheStore
from jobs.deliveries import DeliveryStore
from jobs.idempotency import IdempotencyStore
from jobs.store import JobStore
from storage.objects import ObjectStore


@dataclass(frozen=True)
class Stores:
    """What every unit works on: the settings and the stores, made once per app."""

    settings: Settings
    jobs: JobStore
    objects: ObjectStore
    celery: Celery
    deliveries: DeliveryStore
    speed: SpeedStore
    cache: CacheStore


class Service:
    def __init__(
        self, settings: Settings, jobs: JobStore, objects: ObjectStore, celery: Celery
    ) -> None:
        stores = Stores(settings, jobs, objects, celery, DeliveryStore(jobs.redis),
                        SpeedStore(jobs.redis), CacheStore(jobs.redis))
        self.settings, self.jobs, self.objects = settings, jobs, objects
        self.idempotency = IdempotencyStore(jobs.redis)
        self.uploads = Uploads(stores)
        self.dispatch = Dispatch(stores)
        self.fair = FairShare(stores, self.dispatch)
        self.limits = Limits(stores)
        self.views = JobViews(stores, self.fair)
        self.deliveries = Deliveries(stores, self.views)
        self.cache = RenderCache(stores)
        self.reports = Reports(stores, self.deliveries, self.cache, self.fair)
        self.submissions = Submissions(stores, self.views, self.reports, self.cache,
                                       self.fair, self.limits)
        self.splits = Splits(stores, self.reports, self.fair)
        self.reaper = Reaper(stores, self.reports, self.fair, self.dispatch, self.deliveries)


def service() -> Service:
    """The current app's `Service`."""
    return current_app.extensions["soundreel"]
