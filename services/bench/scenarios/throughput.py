"""A closed-loop throughput comparison under wrk: an endpoint of the product against the same endpoint
of the bare FastAPI app (`services.bench.baseline_app`), loaded the same way, one after the other."""

from __future__ import annotations

import sys
import uuid
from typing import Literal

from services.bench.load.wrk import WrkResult, run_wrk
from services.bench.model import Figure, Target
from services.bench.scenarios.base import ModeContext
from services.bench.servers import ServerProcess, child_environment, free_port

Body = Literal["contact", "track", "redirect", "postback"]


def _listen(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]


def bare_endpoint(ctx: ModeContext, scenario: str) -> tuple[ServerProcess, str]:
    """The bare FastAPI app in a uvicorn process of its own; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Same uvicorn settings as `crm dev` / `crm serve`: defaults, log level INFO (access log on).
    server = ServerProcess(
        "bare FastAPI",
        [sys.executable, "-m", "uvicorn", "services.bench.baseline_app:app", *_listen(port)],
        env=child_environment({}),
        log_path=ctx.deployment.log_dir / f"{ctx.mode}-{scenario}-bare-fastapi.log",
        health_url=f"{base}/healthz",
    )
    return server, base


async def load(ctx: ModeContext, scenario: str, url: str, who: str, body: Body) -> WrkResult:
    """wrk on `url` with the run's settings: a warm-up, then the measured phase."""
    settings = ctx.settings
    prefix = uuid.uuid4().hex[:12]
    if settings.warmup_s > 0:
        with ctx.steps.step(f"{scenario}: warm-up {who} ({settings.warmup_s:g}s)"):
            await run_wrk(
                url,
                duration_s=settings.warmup_s,
                connections=settings.connections,
                email_prefix=f"{prefix}-warmup",
                body=body,
            )
    with ctx.steps.step(f"{scenario}: wrk on {who} ({settings.duration_s:g}s, {settings.connections} conns)"):
        return await run_wrk(
            url,
            duration_s=settings.duration_s,
            connections=settings.connections,
            email_prefix=prefix,
            body=body,
        )


def _details(result: WrkResult) -> dict[str, float | int | str]:
    return {
        "requests": result.requests,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "p50_ms": round(result.p50_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "max_ms": round(result.max_ms, 2),
    }


def figures(
    scenario: str, unit: str, subject: WrkResult, baseline: WrkResult, target: Target
) -> list[Figure]:
    """Throughput (against `target`) and wrk's p50 and p99, each with the bare endpoint's as baseline."""
    notes = []
    if subject.non_2xx or subject.socket_errors:
        notes.append(f"{subject.non_2xx} non-2xx responses, {subject.socket_errors} socket errors")
    details = {f"subject_{k}": v for k, v in _details(subject).items()}
    details.update({f"baseline_{k}": v for k, v in _details(baseline).items()})
    return [
        Figure(
            scenario,
            "throughput",
            unit,
            subject.ok_per_s,
            baseline.ok_per_s,
            target,
            details=details,
            note="; ".join(notes),
        ),
        Figure(scenario, "p50 latency (wrk)", "ms", subject.p50_ms, baseline.p50_ms),
        Figure(scenario, "p99 latency (wrk)", "ms", subject.p99_ms, baseline.p99_ms),
    ]
