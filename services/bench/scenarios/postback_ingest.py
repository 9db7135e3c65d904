"""Throughput of conversion postbacks on `POST /v1/postbacks` against a bare FastAPI endpoint validating the
same body with the same model, both loaded by the same wrk.

Each request is a new transaction (a new conversion) crediting the link `bench` by its code, so every one
is attributed, fraud-checked, recorded with its postback row and announced through the outbox."""

from __future__ import annotations

from services.bench.deployment import Product
from services.bench.model import Figure, Target
from services.bench.scenarios import throughput
from services.bench.scenarios.base import ModeContext, Scenario
from services.referrals.affiliates.models import Affiliate
from services.referrals.links.models import Link
from services.referrals.programs.models import Program
from shared.db import Database, session_scope

NAME = "postback_ingest"
TARGET = Target("ratio_at_least", 0.5)
CODE = "bench"


async def _seed(product: Product) -> None:
    """The program, affiliate and link the postbacks credit, written to the served database (migrated by
    the server as it started)."""
    database = Database(product.referrals_database_url)
    try:
        async with session_scope(database) as session:
            program = Program(
                key="bench",
                name="Benchmark program",
                currency="EUR",
                attribution_model="last_click",
                window_days=30,
                hold_days=30,
                commission_rules=[{"goal": "sale", "type": "percent", "percent": "10"}],
            )
            affiliate = Affiliate(kind="partner", name="Benchmark partner")
            session.add_all([program, affiliate])
            await session.flush()
            session.add(
                Link(
                    code=CODE,
                    destination_url="https://shop.example.com/",
                    program_id=program.id,
                    affiliate_id=affiliate.id,
                )
            )
    finally:
        await database.dispose()


async def run(ctx: ModeContext) -> list[Figure]:
    bare_server, bare_base = throughput.bare_endpoint(ctx, NAME)
    async with ctx.serving(NAME, [bare_server]):
        baseline = await throughput.load(ctx, NAME, f"{bare_base}/v1/postbacks", "bare FastAPI", "postback")

    product = await ctx.deployment.product(NAME)
    async with ctx.serving(NAME, product.servers_for("referrals")):
        with ctx.steps.step(f"{NAME}: seed a program, an affiliate and the link `{CODE}`"):
            await _seed(product)
        subject = await throughput.load(
            ctx, NAME, f"{product.referrals_url}/v1/postbacks", "POST /v1/postbacks", "postback"
        )

    return throughput.figures(NAME, "postbacks/s", subject, baseline, TARGET)


SCENARIO = Scenario(
    name=NAME,
    title="postback_ingest throughput",
    measures=(
        "Conversion postbacks (a new transaction id each, credited by referral code) on `POST /v1/postbacks` "
        "under wrk vs a bare FastAPI endpoint validating the same body with the same model; target ratio "
        "≥ 0.5."
    ),
    run=run,
)
