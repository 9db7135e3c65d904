"""Throughput of Segment `track` calls on `POST /v1/track` against a bare FastAPI endpoint validating the
same payload with the same model, both loaded by the same wrk."""

from __future__ import annotations

import uuid

from services.bench.load.wrk import WrkResult, run_wrk
from services.bench.model import Figure, Target
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.scenarios.create_contact import bare_endpoint, wrk_details

NAME = "track_ingest"
TARGET = Target("ratio_at_least", 0.5)


async def _load(ctx: ModeContext, url: str, who: str) -> WrkResult:
    settings = ctx.settings
    prefix = uuid.uuid4().hex[:12]
    if settings.warmup_s > 0:
        with ctx.steps.step(f"{NAME}: warm-up {who} ({settings.warmup_s:g}s)"):
            await run_wrk(
                url,
                duration_s=settings.warmup_s,
                connections=settings.connections,
                email_prefix=f"{prefix}-warmup",
                body="track",
            )
    with ctx.steps.step(f"{NAME}: wrk on {who} ({settings.duration_s:g}s, {settings.connections} conns)"):
        return await run_wrk(
            url,
            duration_s=settings.duration_s,
            connections=settings.connections,
            email_prefix=prefix,
            body="track",
        )


async def run(ctx: ModeContext) -> list[Figure]:
    bare_server, bare_base = bare_endpoint(ctx, NAME)
    async with ctx.serving(NAME, [bare_server]):
        baseline = await _load(ctx, f"{bare_base}/v1/track", "bare FastAPI")

    product = await ctx.deployment.product(NAME)
    async with ctx.serving(NAME, product.servers_for("journeys")):
        subject = await _load(ctx, f"{product.journeys_url}/v1/track", "POST /v1/track")

    notes = []
    if subject.non_2xx or subject.socket_errors:
        notes.append(f"{subject.non_2xx} non-2xx responses, {subject.socket_errors} socket errors")
    details = {f"subject_{k}": v for k, v in wrk_details(subject).items()}
    details.update({f"baseline_{k}": v for k, v in wrk_details(baseline).items()})
    return [
        Figure(
            NAME,
            "throughput",
            "calls/s",
            subject.ok_per_s,
            baseline.ok_per_s,
            TARGET,
            details=details,
            note="; ".join(notes),
        ),
        Figure(NAME, "p50 latency (wrk)", "ms", subject.p50_ms, baseline.p50_ms),
        Figure(NAME, "p99 latency (wrk)", "ms", subject.p99_ms, baseline.p99_ms),
    ]


SCENARIO = Scenario(
    name=NAME,
    title="track_ingest throughput",
    measures=(
        "Segment `track` calls (unique messageId, write key as Basic user) on `POST /v1/track` under wrk "
        "vs a bare FastAPI endpoint validating the same payload with the same model; target ratio ≥ 0.5."
    ),
    run=run,
)
