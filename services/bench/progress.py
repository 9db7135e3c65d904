"""Progress while the benchmark runs: a spinner with elapsed time per step on a terminal, one line per
step otherwise (so a log file shows where a run is), and a closing line with each step's duration."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Steps:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)
        self._started = time.monotonic()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )

    def __enter__(self) -> Steps:
        self._progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._progress.stop()

    def _clock(self) -> str:
        total = int(time.monotonic() - self._started)
        return f"[{total // 60:d}:{total % 60:02d}]"

    def say(self, text: str) -> None:
        self._progress.console.print(f"{self._clock()} {text}")

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        started = time.monotonic()
        if self._progress.disable:
            self.say(f"{text} …")
        task = self._progress.add_task(text, total=None)
        outcome = "failed"
        try:
            yield
            outcome = "done"
        finally:
            self._progress.remove_task(task)
            self.say(f"{text}: {outcome} in {time.monotonic() - started:.1f}s")


class SeedProgress:
    """Progress of bulk seeding: a line at each tenth of `total`, with the rate so far."""

    def __init__(self, steps: Steps, scenario: str, total: int, noun: str) -> None:
        self.steps, self.scenario, self.total, self.noun = steps, scenario, total, noun
        self.done, self.started = 0, time.perf_counter()
        self._next_report = total // 10

    def add(self, count: int) -> None:
        self.done += count
        if self.done >= self._next_report and self.done < self.total:
            self._next_report += self.total // 10
            rate = self.done / (time.perf_counter() - self.started)
            self.steps.say(
                f"{self.scenario}: seeded {self.done:,} of {self.total:,} {self.noun} ({rate:,.0f}/s)"
            )
