"""What every scenario gets: the mode's deployment, the run's settings, progress output, the memory
sampler, and facts earlier scenarios of the same mode left for later ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from services.bench.deployment import Deployment
from services.bench.memory import RssSampler
from services.bench.model import Figure
from services.bench.progress import Steps
from services.bench.servers import ServerProcess, start_all, stop_all


@dataclass(frozen=True)
class BenchSettings:
    duration_s: float = 15.0
    """Length of each measured load phase (wrk run, fixed-rate run)."""
    warmup_s: float = 2.0
    """Load before each measured wrk run, not counted."""
    events: int = 10_000
    """Events pre-published or staged by the consumer and relay scenarios."""
    connections: int = 32
    """wrk connections."""
    settle_timeout_s: float = 120.0
    """Longest wait for events to reach their destination after a load phase."""


@dataclass
class ModeContext:
    deployment: Deployment
    settings: BenchSettings
    steps: Steps
    memory: RssSampler
    facts: dict[str, float] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.deployment.mode

    @asynccontextmanager
    async def serving(self, scenario: str, servers: Sequence[ServerProcess]) -> AsyncIterator[None]:
        """Run `servers` with their memory sampled; they are stopped on the way out, whatever happened."""
        try:
            with self.steps.step(f"{scenario}: start {', '.join(server.label for server in servers)}"):
                await start_all(servers)
            for server in servers:
                self.memory.watch(server.label, server.pid)
            yield
        finally:
            for server in servers:
                self.memory.unwatch(server.label)
            await stop_all(servers)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    measures: str
    """One sentence for the report: what is measured, against which baseline, and the target."""
    run: Callable[[ModeContext], Awaitable[list[Figure]]]
