"""Settings for a distributed deployment under test: a fresh database per service, topics on Kafka."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from shared.testing.apps import TEST_BOOTSTRAP_KEY

SERVICE_NAMES = ("contacts", "journeys", "referrals", "kpi")


def distributed_env(postgres_url: str, kafka_bootstrap: str, data_dir: Path) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "CRM_BUS": "kafka",
        "CRM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        # The test broker is a single node.
        "CRM_KAFKA_REPLICATION_FACTOR": "1",
        "CRM_DATA_DIR": str(data_dir),
        "CRM_LOG_LEVEL": "INFO",
        "CRM_BOOTSTRAP_API_KEY": TEST_BOOTSTRAP_KEY,
    }
    for name in SERVICE_NAMES:
        database = make_url(postgres_url).set(database=f"e2e_{name}_{suffix}")
        env[f"CRM_{name.upper()}_DATABASE_URL"] = database.render_as_string(hide_password=False)
    return env
