"""Small asyncio helpers for the background workers."""

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep for `seconds`, waking early when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def unless_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, T], *, default: T) -> T:
    """`work`'s result, or `default` once `stop` is set before `work` finished (it is then cancelled).

    For waits that only read, such as a consumer's poll: shutting down then does not wait out the poll's
    timeout (up to half a second per consumer, for every service stopped).
    """
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # Cancelled from outside: the work ends with us, as it would have had we awaited it directly.
        task.cancel()
        await asyncio.wait((task,))
        raise
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        try:
            return await task  # it may have finished after all
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the cancellation was also ours: pass it on
            return default
    return task.result()
