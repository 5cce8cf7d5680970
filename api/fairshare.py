"""Fair share: when each unit of work (a job's task, a split job's window or join) goes
to the broker, so that one tenant's backlog never stands in front of another's work.

Each tenant has, per queue, a pending list and at most TENANT_MAX_INFLIGHT units in
flight (sent and not ended); ``jobs.fairshare`` keeps both and moves units between
them atomically. Units go to the broker:

- at submission, when the tenant is under its limit (``admit``);
- when a unit ends: a job's end (``Reports.apply`` of a terminal event) frees its
  units, a split hands the job's place to its windows, a window stored frees its own
  place (the last one passes it to the join, first in line); each time the tenant's
  next units take the places freed (``ended``, ``split``, ``window_stored``);
- from the reaper, as a safety net: units of ended jobs still counted in flight are
  dropped, units in flight whose message the broker lost are sent again, and every
  tenant under its limit gets its turn (``Reaper.run``).

Previews and prepares have their own queue, and each queue its own fair share: a
tenant's renders never hold back its previews, nor anyone else's. The render cache
completes some jobs at submission: they never enter a queue. TENANT_MAX_INFLIGHT
set very large turns fair share off (everything is sent at once, first in first out).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from api.dispatch import Dispatch
from jobs.constants import (
    QUEUE_BY_KIND,
    QUEUED,
    RENDER_QUEUE,
    RUNNING,
    join_task_id,
    segment_task_id,
    unit_parts,
)
from jobs.errors import JobNotFound
from jobs.fairshare import FairShareStore
from jobs.store import Job, joinable

if TYPE_CHECKING:
    from api.service import Stores

log = logging.getLogger(__name__)

#: The queues fair share serves (each its own share).
QUEUES = tuple(dict.fromkeys(QUEUE_BY_KIND.values()))


def units_of(job: Job) -> list[str]:
    """Every unit a job may have: its own task, its windows, its join."""
    windows = len(job.split["windows"]) if job.split else 0
    return [job.job_id, *(segment_task_id(job.job_id, i) for i in range(windows)),
            join_task_id(job.job_id)]


class FairShare:
    def __init__(self, stores: Stores, dispatch: Dispatch) -> None:
        self.stores = stores
        self.dispatch = dispatch
        self.store = FairShareStore(stores.jobs.redis)
        self._turn = 0  # where the reaper's round of tenants starts (it rotates)

    @property
    def limit(self) -> int:
        return self.stores.settings.tenant_max_inflight

    def admit(self, job: Job) -> None:
        """A new job: in line behind its tenant's pending units; sent now if the tenant
        is under its limit."""
        self._send(QUEUE_BY_KIND[job.kind], job.tenant, self.store.step(
            QUEUE_BY_KIND[job.kind], job.tenant, self.limit, added=[job.job_id]))

    def readmit(self, queue: str, tenant: str, units: list[str]) -> None:
        """Units of unfinished work found in no line and not in flight (the process
        that was to admit them died): back at the end of their tenant's line."""
        self._send(queue, tenant, self.store.step(queue, tenant, self.limit, added=units))

    def withdraw(self, job: Job) -> None:
        """Undo ``admit`` of a job whose send failed (the submission answers 503)."""
        self.store.step(QUEUE_BY_KIND[job.kind], job.tenant, 0, ended=[job.job_id])

    def ended(self, job: Job) -> None:
        """The job ended: its units leave, the tenant's next ones take their places."""
        queue = QUEUE_BY_KIND[job.kind]
        self._send(queue, job.tenant, self.store.step(queue, job.tenant, self.limit,
                                                      ended=units_of(job)))

    def split(self, job: Job) -> None:
        """The job's task planned its windows: they queue in its place."""
        count = len(job.split["windows"]) if job.split else 0
        windows = [segment_task_id(job.job_id, i) for i in range(count)]
        self._send(RENDER_QUEUE, job.tenant, self.store.step(
            RENDER_QUEUE, job.tenant, self.limit, ended=[job.job_id], added=windows))

    def window_stored(self, job: Job, index: int) -> None:
        """A window is stored: its place goes to the tenant's next unit, or, for the
        last window, to the job's join (first in line: the job is nearly done)."""
        ended = [segment_task_id(job.job_id, index)]
        if joinable(job):
            moved = self.store.step(RENDER_QUEUE, job.tenant, self.limit, ended=ended,
                                    added=[join_task_id(job.job_id)], front=True)
        else:
            moved = self.store.step(RENDER_QUEUE, job.tenant, self.limit, ended=ended)
        self._send(RENDER_QUEUE, job.tenant, moved)

    def position(self, job: Job) -> int:
        """How many units start before this queued job (``queuePosition``)."""
        return self.store.position(QUEUE_BY_KIND[job.kind], job.tenant, job.job_id)

    def turn(self) -> int:
        """Every tenant under its limit sends its next units, each tenant in turn (the
        first of the round rotates); units of ended jobs left in flight are dropped.
        The reaper's safety net for a release that a dying process did not make.
        Returns how many units were sent."""
        sent = 0
        for queue in QUEUES:
            tenants = self.store.tenants(queue)
            if not tenants:
                continue
            start = self._turn % len(tenants)
            for tenant in tenants[start:] + tenants[:start]:
                stale = self._stale(list(self.store.inflight(queue, tenant)))
                moved = self.store.step(queue, tenant, self.limit, ended=stale)
                if stale:
                    log.warning("fair share: %d unit(s) of ended work freed for tenant %s",
                                len(stale), tenant)
                sent += self._send(queue, tenant, moved)
        self._turn += 1
        return sent

    def _stale(self, units: list[str]) -> list[str]:
        """The in-flight units whose work is over (their job ended or is gone, their
        window stored, the job's own task done planning its windows): they hold a
        place for nothing."""
        parts = [unit_parts(unit) for unit in units]
        jobs = self.stores.jobs.get_many([job_id for job_id, _, _ in parts])
        stale = []
        for unit, (_, index, join), job in zip(units, parts, jobs, strict=True):
            if job is None or job.terminal:
                stale.append(unit)
            elif index is not None:
                windows = (job.split or {}).get("windows", [])
                if index >= len(windows) or windows[index]["done"]:
                    stale.append(unit)
            elif not join and job.split is not None:
                stale.append(unit)
        return stale

    def _send(self, queue: str, tenant: str, units: list[str]) -> int:
        """Send the units just moved into flight. One whose work is over (a job
        canceled while it waited) is not sent: its place goes to the next unit."""
        sent = 0
        while units:
            unit = units.pop(0)
            if self.send(unit):
                sent += 1
            else:
                units += self.store.step(queue, tenant, self.limit, ended=[unit])
        return sent

    def send(self, unit: str) -> bool:
        """Send a unit's task, if its work is still to do; whether the unit keeps its
        place (sent, or its job already started)."""
        job_id, index, join = unit_parts(unit)
        try:
            job = self.stores.jobs.get(job_id)
        except JobNotFound:
            return False
        if job.terminal:
            return False
        if join:
            if job.status == RUNNING and joinable(job) and job.attempt_id is None:
                self.dispatch.join(job)
                return True
            return False
        if index is not None:
            windows = (job.split or {}).get("windows", [])
            if job.status == RUNNING and index < len(windows) and not windows[index]["done"]:
                self.dispatch.segment(job, index)
                return True
            return False
        if job.status == QUEUED:
            self.dispatch.job(job)
            return True
        return job.status == RUNNING and job.split is None  # started: in flight, not sent
