"""Throughput of `POST /v1/contacts` against a bare FastAPI endpoint, both loaded by the same wrk."""

from __future__ import annotations

from services.bench.model import Figure, Target
from services.bench.scenarios import throughput
from services.bench.scenarios.base import ModeContext, Scenario

NAME = "create_contact"
MAX_RPS_FACT = "create_contact.max_rps"
TARGET = Target("ratio_at_least", 0.35)


async def run(ctx: ModeContext) -> list[Figure]:
    bare_server, bare_base = throughput.bare_endpoint(ctx, NAME)
    async with ctx.serving(NAME, [bare_server]):
        baseline = await throughput.load(ctx, NAME, f"{bare_base}/v1/contacts", "bare FastAPI", "contact")

    product = await ctx.deployment.product(NAME)
    async with ctx.serving(NAME, product.servers):
        url = f"{product.contacts_url}/v1/contacts"
        subject = await throughput.load(ctx, NAME, url, "POST /v1/contacts", "contact")

    ctx.facts[MAX_RPS_FACT] = subject.ok_per_s
    return throughput.figures(NAME, "req/s", subject, baseline, TARGET)


SCENARIO = Scenario(
    name=NAME,
    title="create_contact throughput",
    measures=(
        "`POST /v1/contacts` with unique emails under wrk (1 thread, 32 connections) vs a bare FastAPI "
        "endpoint validating the same body in its own uvicorn process; target ratio ≥ 0.35."
    ),
    run=run,
)
