"""Open-loop load at a fixed rate: send `i` starts at start + i / rate whether or not earlier sends
have finished, so a slow system cannot slow the load down and hide its own queueing.

No fixed-rate generator (wrk2, vegeta, oha) is packaged for Debian or PyPI, so this small asyncio one
drives the HTTP load and the bus round trip alike.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

# A send that starts this much after its scheduled time means the generator itself fell behind.
LATE_AFTER_S = 0.005

Send = Callable[[int, float], Coroutine[Any, Any, bool]]
"""Called as send(index, due) with `due` on the event loop's clock; returns True on success."""


@dataclass(frozen=True)
class OpenLoopResult:
    scheduled: int
    succeeded: int
    failed: int
    late_starts: int
    elapsed_s: float
    errors: dict[str, int] = field(default_factory=dict)
    """Why sends failed: exception type names, "unsuccessful" for a False result, "unfinished"."""


async def run_open_loop(send: Send, *, rate: float, count: int, finish_timeout_s: float) -> OpenLoopResult:
    """Schedule `count` sends at `rate` per second; wait at most `finish_timeout_s` for the last ones."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[bool]] = []
    late = 0
    for index in range(count):
        due = start + index / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > LATE_AFTER_S:
            late += 1
        tasks.append(asyncio.create_task(send(index, due)))
    errors: Counter[str] = Counter()
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=finish_timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        errors["unfinished"] = len(pending)
        for task in done:
            if (error := task.exception()) is not None:
                errors[type(error).__name__] += 1
            elif not task.result():
                errors["unsuccessful"] += 1
    failed = errors.total()
    return OpenLoopResult(
        scheduled=count,
        succeeded=count - failed,
        failed=failed,
        late_starts=late,
        elapsed_s=loop.time() - start,
        errors={kind: n for kind, n in errors.items() if n},
    )
