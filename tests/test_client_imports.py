"""The client package stays light: importing it (or running ``soundreel --help``)
loads none of the server's heavy dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

#: What a client never needs: the web framework, the queue, the renderer's numerics,
#: the object store's SDK, the job store's driver.
SERVER_ONLY = {"flask", "werkzeug", "celery", "kombu", "numpy", "PIL", "boto3", "botocore",
               "redis", "gunicorn"}


def loaded_after(code: str) -> set[str]:
    names = "sorted({m.split('.')[0] for m in sys.modules})"
    probe = f"{code}\nimport json, sys\nprint(json.dumps({names}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    return set(json.loads(out.splitlines()[-1]))


def test_importing_the_client_and_the_cli_loads_nothing_of_the_server():
    loaded = loaded_after("import client, client.cli, client.roles")
    assert not loaded & SERVER_ONLY, sorted(loaded & SERVER_ONLY)
    assert {"requests", "rich"} <= loaded


def test_the_help_of_the_cli_loads_nothing_of_the_server():
    code = ("import sys\nfrom client.cli import main\nsys.argv = ['soundreel', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    assert not loaded_after(code) & SERVER_ONLY


def test_the_server_still_loads_its_own():
    # the lazy package doors open on first use: create_app and render_video are there
    loaded = loaded_after("import api, render\napi.create_app\nrender.render_video")
    assert {"flask", "numpy", "celery"} <= loaded
