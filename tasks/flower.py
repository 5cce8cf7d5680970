"""``python -m tasks.flower``: Flower for operators, never open to anyone.

Flower shows task arguments and results, the workers' configuration and the
broker's address, and can revoke tasks and shut workers down. Run bare, it asks
for no password and listens on every interface, so this refuses to start it
without ``FLOWER_BASIC_AUTH`` (``user:password``, read by Flower itself from the
environment, so it stays off the command line) and binds it to ``FLOWER_ADDRESS``,
loopback unless the operator says otherwise (the compose file opens it inside its
container and publishes it on the host's loopback only). Flower serves its own
``/metrics`` and ``/healthcheck`` without the password either way.
"""

from __future__ import annotations

import os
import sys

from config.settings import Settings, SettingsError


def command(settings: Settings) -> list[str]:
    """The Flower command line these settings ask for."""
    return [sys.executable, "-m", "celery", "-A", "tasks", "flower",
            f"--address={settings.flower_address}", f"--port={settings.flower_port}"]


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"flower: {exc}", file=sys.stderr)
        return 2
    if not settings.flower_basic_auth:
        print("flower: FLOWER_BASIC_AUTH is required (user:password): Flower can revoke "
              "tasks and stop workers, and shows their arguments and the broker's "
              "address; it does not start without a password.", file=sys.stderr)
        return 2
    argv = command(settings)
    os.execv(argv[0], argv)  # noqa: S606 - Flower in this process, signals and all
    return 1  # not reached: exec replaces this process


if __name__ == "__main__":
    sys.exit(main())
