"""The application factory: one Flask app wired to its stores, Celery and blueprints."""

from __future__ import annotations

from flask import Flask

from api import files, headers, internal, observability, openapi, pages, v1
from api.auth import KeyRing
from api.errors import register_error_handlers
from api.service import Service
from config import logs
from config.settings import Settings
from jobs.store import JobStore
from storage.objects import object_store
from tasks import create_celery

#: Room for the multipart framing around a file of exactly MAX_UPLOAD_BYTES.
MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.require_api_keys()
    logs.setup(settings.log_level)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + MULTIPART_OVERHEAD
    app.json.sort_keys = False
    app.extensions["soundreel"] = Service(
        settings,
        JobStore.from_url(settings.redis_url, settings.lease_seconds, settings.handoff_seconds),
        object_store(settings),
        create_celery(settings),
    )
    app.extensions["soundreel.keys"] = KeyRing(settings.api_keys)
    # "/files//a" is no file: 404, never a redirect (Werkzeug builds its Location from
    # the request's Host header; only PUBLIC_BASE_URL makes absolute URLs here)
    app.url_map.merge_slashes = False
    register_error_handlers(app)
    app.register_blueprint(v1.bp)
    app.register_blueprint(internal.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(pages.bp)

    app.register_blueprint(observability.bp)
    app.register_blueprint(openapi.bp)
    observability.install(app)
    headers.install(app)
    return app
