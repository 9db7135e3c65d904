"""Watch a key from every service at once: is it accepted (known, not revoked) or refused (401)?

A key with `contacts:read` only is enough: a service that knows it answers a route needing another
scope with 403, and one that refuses it answers 401. So every service, whatever its routes, can say.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import httpx


class KeyProbe:
    def __init__(self, client: httpx.AsyncClient, bases: Mapping[str, str]) -> None:
        self.client = client
        self.bases = dict(bases)

    async def create(self, *, through: str) -> tuple[str, str]:
        response = await self.client.post(
            f"{self.bases[through]}/v1/keys", json={"scopes": ["contacts:read"], "name": "probe"}
        )
        assert response.status_code == 201, response.text
        return response.json()["key_id"], response.json()["key"]

    async def revoke(self, key_id: str, *, through: str) -> None:
        response = await self.client.delete(f"{self.bases[through]}/v1/keys/{key_id}")
        assert response.status_code == 200, response.text

    async def answers(self, token: str) -> dict[str, int]:
        """Each service's answer to the key on its admin-only key list: 403 known, 401 refused."""
        headers = {"Authorization": f"Bearer {token}"}
        statuses = await asyncio.gather(
            *(self.client.get(f"{base}/v1/keys", headers=headers) for base in self.bases.values())
        )
        return {name: response.status_code for name, response in zip(self.bases, statuses, strict=True)}

    async def until(self, token: str, *, accepted: bool, timeout_s: float) -> float:
        """Poll until every service accepts (or refuses) the key; returns the monotonic time it did."""
        wanted = 403 if accepted else 401
        deadline = time.monotonic() + timeout_s
        answers: dict[str, int] = {}
        while time.monotonic() < deadline:
            answers = await self.answers(token)
            if set(answers.values()) == {wanted}:
                return time.monotonic()
            await asyncio.sleep(0.02)
        raise AssertionError(f"not every service {'accepts' if accepted else 'refuses'} the key: {answers}")
