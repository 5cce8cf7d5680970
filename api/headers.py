"""Headers every answer carries, whatever route made it (errors included).

- ``X-Content-Type-Options: nosniff``: a browser takes each answer for the type it
  says, never for a page it guesses (an upload, an error, a metrics dump).
- ``Cache-Control: no-store`` on the client and worker APIs: their answers carry
  presigned links, share URLs and the webhook secret, which no shared or browser
  cache may keep. The pages set their own (``api.pages``), as ``/files/`` does.
"""

from __future__ import annotations

from flask import Flask, Response, request

#: Blueprints whose every answer is private to its caller.
NO_STORE_BLUEPRINTS = frozenset({"v1", "internal"})


def install(app: Flask) -> None:
    @app.after_request
    def secure(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.blueprint in NO_STORE_BLUEPRINTS:
            response.headers["Cache-Control"] = "no-store"
        return response
