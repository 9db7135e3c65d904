"""The click redirect `GET /r/{code}` against a bare FastAPI 302 in the same kind of process: throughput
under wrk, then p99 at a fixed rate of half the redirect's measured maximum, the same rate for both."""

from __future__ import annotations

import asyncio
import time

import httpx

from services.bench.load.http import JsonPoster
from services.bench.load.open_loop import OpenLoopResult, run_open_loop
from services.bench.model import Figure, Target
from services.bench.scenarios import throughput
from services.bench.scenarios.base import ModeContext, Scenario
from services.bench.servers import BENCH_AUTHORIZATION, ServerProcess, crm_command, free_port
from services.bench.stats import summary_ms
from shared.bus.factory import create_bus
from shared.events import topics
from shared.settings import PlatformSettings

NAME = "click_redirect"
THROUGHPUT_TARGET = Target("ratio_at_least", 0.6)
P99_TARGET = Target("ratio_at_most", 2.0)
# Used when the wrk phase measured nothing to halve.
FALLBACK_RATE = 100.0
LOAD_FINISH_TIMEOUT_S = 30.0
# The topic's end unchanged over this many polls a quarter second apart: the relay is idle.
_STEADY_POLLS = 3


async def _referrals(ctx: ModeContext) -> tuple[list[ServerProcess], str, PlatformSettings]:
    """The product's servers for the referrals service, its base URL, and its bus settings."""
    product = await ctx.deployment.product(NAME)
    if ctx.mode == "embedded":
        base = product.contacts_url.removesuffix("/contacts") + "/referrals"
        return product.servers_for("referrals"), base, product.platform
    # Distributed: the product's processes are contacts and journeys; referrals runs beside them alike.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **product.servers[0].env,
        "CRM_REFERRALS_DATABASE_URL": await ctx.deployment.fresh_database_url("referrals", NAME),
    }
    server = ServerProcess(
        "crm serve referrals",
        [crm_command(), "serve", "referrals", "--port", str(port)],
        env=env,
        log_path=ctx.deployment.log_dir / f"{ctx.mode}-{NAME}-referrals.log",
        health_url=f"{base}/healthz",
    )
    return [server], base, product.platform


async def _link(base: str) -> str:
    """A program, an affiliate and a link with UTM tags; the link's code."""
    async with httpx.AsyncClient(base_url=base, headers=BENCH_AUTHORIZATION, timeout=30) as client:
        program = await client.post("/v1/programs", json={"key": "bench", "name": "Bench", "currency": "EUR"})
        program.raise_for_status()
        affiliate = await client.post("/v1/affiliates", json={"name": "Bench partner"})
        affiliate.raise_for_status()
        link = await client.post(
            "/v1/links",
            json={
                "program_id": program.json()["id"],
                "affiliate_id": affiliate.json()["id"],
                "destination_url": "https://shop.example.com/pricing?plan=team",
                "utm_source": "bench",
                "utm_medium": "affiliate",
            },
        )
        link.raise_for_status()
        code: str = link.json()["code"]
        return code


async def _published(ctx: ModeContext, platform: PlatformSettings) -> None:
    """Wait until `crm.referrals` stops growing: the relay has published the clicks' events."""
    bus = create_bus(platform, client_id="crm-bench")
    await bus.start()
    try:
        last, steady = -1, 0
        deadline = time.monotonic() + ctx.settings.settle_timeout_s
        while steady < _STEADY_POLLS and time.monotonic() < deadline:
            end = sum((await bus.end_offsets([topics.REFERRALS.name])).values())
            steady = steady + 1 if end == last else 0
            last = end
            await asyncio.sleep(0.25)
    finally:
        await bus.stop()


async def _settled(ctx: ModeContext, base: str, code: str, platform: PlatformSettings) -> float:
    """Wait until every click so far is in the database (the journal behind the redirect drained) and
    its event published, so the next phase does not measure the drain and the relay catching up with
    wrk's load; the seconds it took."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, headers=BENCH_AUTHORIZATION, timeout=30) as client:
        last = (await client.get(f"/r/{code}")).cookies["crm_click_id"]
        with ctx.steps.step(f"{NAME}: wait for the click journal to drain"):
            while time.monotonic() - started < ctx.settings.settle_timeout_s:
                newest = (await client.get("/v1/clicks", params={"limit": 1})).json()["items"]
                if newest and newest[0]["id"] == last:
                    break
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError(f"the click journal did not drain in {ctx.settings.settle_timeout_s:g}s")
        with ctx.steps.step(f"{NAME}: wait for the relay to publish the clicks' events"):
            await _published(ctx, platform)
    return time.monotonic() - started


async def _fixed_rate(
    ctx: ModeContext, url: str, who: str, rate: float
) -> tuple[list[float], OpenLoopResult]:
    """Response times (from each request's scheduled start) of GETs at `rate` for the run's duration."""
    getter = JsonPoster(url, method="GET")
    loop = asyncio.get_running_loop()
    times_ms: list[float] = []

    async def send(_index: int, due: float) -> bool:
        status = await getter.post(b"")
        times_ms.append((loop.time() - due) * 1000)
        return status == 302

    count = max(1, int(rate * ctx.settings.duration_s))
    try:
        with ctx.steps.step(f"{NAME}: {count} GETs on {who} at {rate:.0f}/s, open loop"):
            result = await run_open_loop(send, rate=rate, count=count, finish_timeout_s=LOAD_FINISH_TIMEOUT_S)
    finally:
        await getter.close()
    return times_ms or [0.0], result


async def run(ctx: ModeContext) -> list[Figure]:
    servers, base, platform = await _referrals(ctx)
    async with ctx.serving(NAME, servers):
        code = await _link(base)
        url = f"{base}/r/{code}"
        subject = await throughput.load(ctx, NAME, url, "GET /r/{code}", "redirect")
        catch_up_s = await _settled(ctx, base, code, platform)
        rate = subject.ok_per_s / 2 or FALLBACK_RATE
        ours, our_load = await _fixed_rate(ctx, url, "GET /r/{code}", rate)
        settle_after_fixed_s = await _settled(ctx, base, code, platform)

    bare_server, bare_base = throughput.bare_endpoint(ctx, NAME)
    async with ctx.serving(NAME, [bare_server]):
        bare_url = f"{bare_base}/r/{code}"
        baseline = await throughput.load(ctx, NAME, bare_url, "bare 302", "redirect")
        theirs, their_load = await _fixed_rate(ctx, bare_url, "bare 302", rate)

    figures = throughput.figures(NAME, "redirects/s", subject, baseline, THROUGHPUT_TARGET)
    mine, bare = summary_ms(ours), summary_ms(theirs)
    notes = [
        f"{name}: {load.failed} failed ({load.errors}), {load.late_starts} late starts"
        for name, load in (("redirect", our_load), ("bare", their_load))
        if load.failed or load.late_starts
    ]
    details: dict[str, float | int | str] = {
        "rate_per_s": round(rate, 1),
        # How long the clicks took to reach the database and the bus after each phase: the redirect's
        # speed is bought by applying them behind it, and under wrk's saturation they wait in the
        # journal and the outbox.
        "drain_after_wrk_s": round(catch_up_s, 2),
        "drain_after_fixed_rate_s": round(settle_after_fixed_s, 2),
    }
    details.update({f"subject_{k}": v for k, v in mine.items()})
    details.update({f"baseline_{k}": v for k, v in bare.items()})
    figures.append(
        Figure(
            NAME,
            "p99 at half the redirect's max load",
            "ms",
            mine["p99_ms"],
            bare["p99_ms"],
            P99_TARGET,
            details=details,
            note="; ".join(notes),
        )
    )
    return figures


SCENARIO = Scenario(
    name=NAME,
    title="click_redirect throughput and p99 at half load",
    measures=(
        "`GET /r/{code}` (looks the link up in its cache, journals the click, sets cookies, 302) vs a bare "
        "FastAPI 302: throughput under wrk, target ratio ≥ 0.6; then both at a fixed rate of half the "
        "redirect's maximum, p99 ratio ≤ 2."
    ),
    run=run,
)
