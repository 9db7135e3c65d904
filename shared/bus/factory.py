"""Choose the bus implementation from settings; nothing else knows which one runs."""

from __future__ import annotations

from shared.bus.base import EventBus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.settings import PlatformSettings


def create_bus(platform: PlatformSettings, *, client_id: str = "crm") -> EventBus:
    if platform.bus == "kafka":
        assert platform.kafka_bootstrap_servers is not None  # checked by the settings validator
        return KafkaBus(
            platform.kafka_bootstrap_servers,
            client_id=client_id,
            partitions=platform.kafka_partitions,
            replication_factor=platform.kafka_replication_factor,
            min_insync_replicas=platform.kafka_min_insync_replicas or 1,
        )
    return EmbeddedBus(platform.embedded_log_path)
