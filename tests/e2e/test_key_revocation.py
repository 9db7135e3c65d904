"""Distributed on Kafka: four processes, four PostgreSQL databases. A key created through one service
is accepted by all, and once revoked through another it is refused by every one within a second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from shared.testing.access import KeyProbe
from shared.testing.apps import ADMIN_HEADERS
from shared.testing.distributed import SERVICE_NAMES, distributed_env
from tests.conftest import Launcher


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.postgres
def test_revocation_reaches_every_service_on_kafka_within_a_second(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path, launch: Launcher
) -> None:
    urls = launch(distributed_env(postgres_url, kafka_bootstrap, tmp_path), *SERVICE_NAMES)

    async def scenario() -> float:
        async with httpx.AsyncClient(headers=ADMIN_HEADERS, timeout=10) as client:
            probe = KeyProbe(client, urls)
            key_id, token = await probe.create(through="referrals")
            # The first record on a fresh topic also waits for the consumers' first assignment.
            await probe.until(token, accepted=True, timeout_s=60)
            revoked_at = time.monotonic()
            await probe.revoke(key_id, through="kpi")
            return await probe.until(token, accepted=False, timeout_s=10) - revoked_at

    took = asyncio.run(scenario())
    assert took < 1.0, f"revocation took {took:.2f} s to reach every service"
