"""The state tables as Markdown: ``python -m jobs.tables`` writes ``docs/state-machine.md``.

The tables are the code's own (``jobs.store.RULES``, ``jobs.deliveries.DELIVERY_RULES``),
so the page cannot drift from what the API does: ``tests/test_state_machine.py``
fails when the committed page differs from this rendering.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jobs.constants import STAGES, STATES, TERMINAL_STATES
from jobs.deliveries import DELIVERY_RULES
from jobs.store import RULES

PAGE = Path(__file__).resolve().parent.parent / "docs" / "state-machine.md"


def markdown() -> str:
    lines = [
        "# State machines",
        "",
        "Rendered from the code by `python -m jobs.tables`; do not edit by hand.",
        "",
        "## Jobs (`jobs.store.RULES`)",
        "",
        f"States: {', '.join(f'`{s}`' for s in STATES)}; "
        f"{', '.join(f'`{s}`' for s in STATES if s in TERMINAL_STATES)} are final (no rule "
        "leaves them). Stages, in order: " + ", ".join(f"`{s}`" for s in STAGES) + ".",
        "",
        "For a report on a job, the first row that matches its state, the event and the "
        "condition decides; a report no row matches is ignored (never an error).",
        "",
        "| state | event | when | then | the record | the lease |",
        "|---|---|---|---|---|---|",
    ]
    for rule in RULES:
        lines.append(
            f"| {' or '.join(f'`{s}`' for s in rule.states)} | `{rule.event}` "
            f"| {rule.when.text if rule.when else 'otherwise'} "
            f"| {f'`{rule.then}`' if rule.then else 'ignored'} "
            f"| {rule.change.text if rule.change else '—'} | {rule.lease or '—'} |"
        )
    lines += [
        "",
        "## Client webhook deliveries (`jobs.deliveries.DELIVERY_RULES`)",
        "",
        "Every outcome is added to the delivery's attempts; the first matching row decides.",
        "",
        "| state | event | when | then | and |",
        "|---|---|---|---|---|",
    ]
    for rule in DELIVERY_RULES:
        lines.append(
            f"| {' or '.join(f'`{s}`' for s in rule.states)} | `{rule.event}` "
            f"| {rule.when or 'otherwise'} | {f'`{rule.then}`' if rule.then else 'unchanged'} "
            f"| {rule.effect} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    PAGE.write_text(markdown(), encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
