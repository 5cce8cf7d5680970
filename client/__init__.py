"""The soundreel Python client and the ``soundreel`` CLI.

It imports only what it needs: requests, rich, pydantic, and the pure modules that
define the API's contract (``api.schemas``, ``render.spec``, ``jobs.constants``),
so the CLI checks a job exactly as the API will before it uploads anything. Never
Flask, Celery, numpy, Pillow, boto3 or Redis (``tests/test_client_imports.py``), so
``soundreel --help`` starts fast.

    from client import Client
    client = Client("http://127.0.0.1:8000", api_key)
"""

from client.sdk import ApiError, Client, ClientError, Unreachable

__all__ = ["ApiError", "Client", "ClientError", "Unreachable"]
