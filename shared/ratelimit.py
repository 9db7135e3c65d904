"""A rate per API key and scope: one token bucket each, refilled continuously (429 when empty).

Buckets live in each process's memory: with N replicas behind a load balancer a key may get up to N
times its rate in all. That keeps a request free of a shared counter's round trip; the README says so.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from shared.settings import RateLimit


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """One token bucket per (key, scope), refilled continuously."""

    def __init__(self, limits: Mapping[str, RateLimit]) -> None:
        self._limits = dict(limits)
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def limit_for(self, scope: str) -> RateLimit:
        return self._limits.get(scope) or self._limits["default"]

    def take(self, key_id: str, scope: str) -> float:
        """Take a token; 0 when the request may go ahead, else the seconds until one is available."""
        wait = self.wait(key_id, scope)
        if not wait:
            self._buckets[(key_id, scope)].tokens -= 1
        return wait

    def wait(self, key_id: str, scope: str) -> float:
        """Seconds until the bucket holds a token (0: it holds one now); takes nothing."""
        limit = self.limit_for(scope)
        now = time.monotonic()
        bucket = self._buckets.get((key_id, scope))
        if bucket is None:
            if len(self._buckets) > 100_000:  # idle buckets are full ones; forgetting them loses nothing
                self._buckets.clear()
            bucket = self._buckets[(key_id, scope)] = _Bucket(tokens=limit.burst, updated=now)
        bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.updated) * limit.per_second)
        bucket.updated = now
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / limit.per_second
