"""Kafka bus on aiokafka: idempotent producer with acks=all; consumer groups with manual commits.

The producer starts lazily and is rebuilt after a failure, so a service starts (and keeps taking writes
into its outbox) while the broker is away; publishing resumes when it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.bus.base import BusUnavailable, Consumer, EventBus, Message, Record

log = logging.getLogger(__name__)


class KafkaBus(EventBus):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "crm",
        partitions: int = 3,
        replication_factor: int = 1,
        request_timeout_ms: int = 15_000,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._known_topics: set[str] = set()

    async def start(self) -> None:
        """Nothing to connect yet: the producer connects on first publish."""

    async def stop(self) -> None:
        async with self._producer_lock:
            await self._drop_producer()

    async def _drop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except Exception:  # a broken producer may fail to stop cleanly; it is discarded anyway
                log.debug("producer stop failed", exc_info=True)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id,
                enable_idempotence=True,
                acks="all",
                request_timeout_ms=self.request_timeout_ms,
                linger_ms=5,
            )
            try:
                await producer.start()
            except Exception as exc:
                await producer.stop()
                raise BusUnavailable(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
            self._producer = producer
        return self._producer

    async def _admin(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-admin",
            request_timeout_ms=self.request_timeout_ms,
        )
        try:
            await admin.start()
        except BaseException as exc:
            # Also on cancellation (a timed-out readiness probe): an unclosed client leaks a socket.
            await admin.close()
            if isinstance(exc, Exception):
                raise BusUnavailable(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
            raise
        return admin

    async def ping(self) -> bool:
        try:
            admin = await asyncio.wait_for(self._admin(), timeout=5)
        except (TimeoutError, BusUnavailable):
            return False
        try:
            await asyncio.wait_for(admin.describe_cluster(), timeout=5)
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        missing = [topic for topic in topics if topic not in self._known_topics]
        if not missing:
            return
        admin = await self._admin()
        try:
            existing = set(await admin.list_topics())
            new = [
                NewTopic(
                    name=topic, num_partitions=self.partitions, replication_factor=self.replication_factor
                )
                for topic in missing
                if topic not in existing
            ]
            if new:
                response = await admin.create_topics(new)
                # Errors come back per topic rather than raised. "Already exists" means another replica
                # was first, which is fine; anything else (say, too high a replication factor) is not.
                # Each entry is (topic, error code) plus, in newer protocol versions, a message.
                failures = [
                    " ".join(str(part) for part in error if part)
                    for error in response.topic_errors
                    if error[1] not in (0, TopicAlreadyExistsError.errno)
                ]
                if failures:
                    raise RuntimeError("cannot create Kafka topics: " + "; ".join(failures))
        except KafkaError as exc:
            raise BusUnavailable(f"cannot create topics on Kafka: {exc}") from exc
        finally:
            await admin.close()
        self._known_topics.update(missing)

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        async with self._producer_lock:
            producer = await self._ensure_producer()
            try:
                # Sends are queued in order; the idempotent producer keeps that order per partition
                # even with several requests in flight.
                pending = [
                    await producer.send(
                        message.topic,
                        value=message.value,
                        key=message.key.encode(),
                        headers=list(message.headers.items()),
                    )
                    for message in messages
                ]
                await asyncio.gather(*pending)
            except Exception as exc:
                # The producer's sequence state is unknown after a failure; start over with a new one.
                await self._drop_producer()
                raise BusUnavailable(f"publish to Kafka failed: {exc!r}") from exc

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        return KafkaConsumer(self, group, topics)


class KafkaConsumer(Consumer):
    def __init__(self, bus: KafkaBus, group: str, topics: Sequence[str]) -> None:
        self.bus = bus
        self.group = group
        self.topics = list(topics)
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        await self.bus.ensure_topics(self.topics)
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bus.bootstrap_servers,
            client_id=f"{self.bus.client_id}-{self.group}",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=max(self.bus.request_timeout_ms, 40_000),
            metadata_max_age_ms=5_000,
        )
        try:
            await consumer.start()
        except Exception as exc:
            await consumer.stop()
            raise BusUnavailable(f"Kafka at {self.bus.bootstrap_servers} unreachable: {exc}") from exc
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    @property
    def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise BusUnavailable("consumer is not started")
        return self._consumer

    async def poll(self, *, timeout_s: float = 1.0, max_records: int = 100) -> list[Record]:
        try:
            batches = await self._client.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka fetch failed: {exc!r}") from exc
        records: list[Record] = []
        for partition in sorted(batches, key=lambda tp: (tp.topic, tp.partition)):
            for item in batches[partition]:
                records.append(
                    Record(
                        topic=item.topic,
                        partition=item.partition,
                        offset=item.offset,
                        key=item.key.decode() if item.key is not None else None,
                        value=item.value if item.value is not None else b"",
                        headers=dict(item.headers),
                        timestamp_ms=item.timestamp,
                    )
                )
        return records

    async def commit(self, records: Sequence[Record]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
        if not offsets:
            return
        try:
            await self._client.commit(offsets)
        except KafkaError as exc:
            raise BusUnavailable(f"Kafka commit failed: {exc!r}") from exc

    async def seek_to_beginning(self) -> None:
        client = self._client
        # Partitions are assigned once the group is joined; wait for that before seeking.
        for _ in range(300):
            if client.assignment():
                break
            await client.getmany(timeout_ms=100)
        await client.seek_to_beginning()
