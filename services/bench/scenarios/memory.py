"""Peak resident memory of each server process while the HTTP scenarios ran."""

from __future__ import annotations

from services.bench.model import Figure, Target
from services.bench.scenarios.base import ModeContext, Scenario

NAME = "memory"
TARGET = Target("below", 150)
BASELINE_LABEL = "bare FastAPI"
MB = 1_000_000  # decimal megabytes, as the target is stated


async def run(ctx: ModeContext) -> list[Figure]:
    peaks = ctx.memory.peaks()
    baseline = peaks.pop(BASELINE_LABEL, None)
    if not peaks:
        raise RuntimeError(
            "no product server ran in this mode (create_contact and commit_to_view did not run)"
        )
    return [
        Figure(
            NAME,
            f"peak RSS {label}",
            "MB",
            round(rss / MB, 1),
            round(baseline / MB, 1) if baseline else None,
            TARGET,
        )
        for label, rss in sorted(peaks.items())
    ]


SCENARIO = Scenario(
    name=NAME,
    title="memory",
    measures=(
        "peak VmRSS of each product server process, sampled every 0.2 s during create_contact and "
        "commit_to_view; shown next to the bare FastAPI process; target < 150 MB per process."
    ),
    run=run,
)
