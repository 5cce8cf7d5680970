"""Object storage (local disk, S3/R2), the Redis job store and the settings object."""

from storage.errors import (
    InvalidKey,
    JobNotFound,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from storage.jobs import Event, Job, JobStore
from storage.objects import LocalObjectStore, ObjectStore, S3ObjectStore, object_store
from storage.settings import Settings, SettingsError

__all__ = [
    "Event",
    "InvalidKey",
    "Job",
    "JobNotFound",
    "JobStore",
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "S3ObjectStore",
    "Settings",
    "SettingsError",
    "StorageError",
    "StorageUnavailable",
    "object_store",
]
