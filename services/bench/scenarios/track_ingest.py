"""Throughput of Segment `track` calls on `POST /v1/track` against a bare FastAPI endpoint validating the
same payload with the same model, both loaded by the same wrk."""

from __future__ import annotations

from services.bench.model import Figure, Target
from services.bench.scenarios import throughput
from services.bench.scenarios.base import ModeContext, Scenario

NAME = "track_ingest"
TARGET = Target("ratio_at_least", 0.5)


async def run(ctx: ModeContext) -> list[Figure]:
    bare_server, bare_base = throughput.bare_endpoint(ctx, NAME)
    async with ctx.serving(NAME, [bare_server]):
        baseline = await throughput.load(ctx, NAME, f"{bare_base}/v1/track", "bare FastAPI", "track")

    product = await ctx.deployment.product(NAME)
    async with ctx.serving(NAME, product.servers_for("journeys")):
        subject = await throughput.load(
            ctx, NAME, f"{product.journeys_url}/v1/track", "POST /v1/track", "track"
        )

    return throughput.figures(NAME, "calls/s", subject, baseline, TARGET)


SCENARIO = Scenario(
    name=NAME,
    title="track_ingest throughput",
    measures=(
        "Segment `track` calls (unique messageId, write key as Basic user) on `POST /v1/track` under wrk "
        "vs a bare FastAPI endpoint validating the same payload with the same model; target ratio ≥ 0.5."
    ),
    run=run,
)
