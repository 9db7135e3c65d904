"""A key created or revoked through one service reaches every other, in embedded mode (one process,
the embedded bus), within a second. The distributed case, on Kafka, is in tests/e2e."""

from __future__ import annotations

import time
from pathlib import Path

from shared.testing.access import KeyProbe
from tests.services.support import embedded_client


async def test_a_key_revoked_through_one_service_is_refused_by_every_other_within_a_second(
    tmp_path: Path,
) -> None:
    async with embedded_client(tmp_path) as client:
        bases = {name: f"/{name}" for name in ("contacts", "journeys", "referrals", "kpi")}
        probe = KeyProbe(client, bases)
        key_id, token = await probe.create(through="contacts")
        await probe.until(token, accepted=True, timeout_s=5)

        revoked_at = time.monotonic()
        await probe.revoke(key_id, through="journeys")
        took = await probe.until(token, accepted=False, timeout_s=5)
    assert took - revoked_at < 1.0, f"revocation took {took - revoked_at:.2f} s to reach every service"
