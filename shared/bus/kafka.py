"""Kafka bus on aiokafka: idempotent producer with acks=all; consumer groups with manual commits.

The producer starts lazily and is rebuilt after a failure, so a service starts (and keeps taking writes
into its outbox) while the broker is away; publishing resumes when it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
)

from shared.bus.base import (
    BusUnavailable,
    Consumer,
    EventBus,
    Message,
    MessageRefused,
    PartitionOffsets,
    Record,
    StartPositions,
    TopicConfig,
)

log = logging.getLogger(__name__)

# Errors that refuse one record for good: retrying the same bytes can never succeed. Anything else
# (timeouts, leader changes, a broker away) is an outage, waited out.
_REFUSALS = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidTopicError)
# A record's timestamp type as the broker reports it: 0 CreateTime (the producer's), 1 LogAppendTime.
_LOG_APPEND_TIME = 1


class KafkaBus(EventBus):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "crm",
        partitions: int = 3,
        replication_factor: int = 1,
        min_insync_replicas: int = 1,
        request_timeout_ms: int = 15_000,
        max_message_bytes: int = 1_048_576,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.min_insync_replicas = min_insync_replicas
        self.request_timeout_ms = request_timeout_ms
        self.max_message_bytes = max_message_bytes
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._known_topics: set[str] = set()
        # One admin client kept for probes and topic creation; rebuilt after a failure.
        self._admin_client: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()
        self._offsets_client: AIOKafkaConsumer | None = None
        self._offsets_lock = asyncio.Lock()

    async def start(self) -> None:
        """Nothing to connect yet: the producer connects on first publish."""

    async def stop(self) -> None:
        async with self._producer_lock:
            await self._drop_producer()
        async with self._admin_lock:
            await self._drop_admin()
        async with self._offsets_lock:
            await self._drop_offsets_reader()

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
                max_request_size=self.max_message_bytes,
                linger_ms=5,
            )
            try:
                await producer.start()
            except BaseException as exc:  # also on cancellation: an unclosed client leaks sockets
                await producer.stop()
                if isinstance(exc, Exception):
                    raise BusUnavailable(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
                raise
            self._producer = producer
        return self._producer

    async def _drop_admin(self) -> None:
        if self._admin_client is not None:
            admin, self._admin_client = self._admin_client, None
            await admin.close()

    async def _admin(self) -> AIOKafkaAdminClient:
        if self._admin_client is not None:
            return self._admin_client
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-admin",
            request_timeout_ms=self.request_timeout_ms,
        )
        try:
            await admin.start()
        except BaseException as exc:
            # Also on cancellation (a timed-out probe): an unclosed client leaks a socket.
            await admin.close()
            if isinstance(exc, Exception):
                raise BusUnavailable(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
            raise
        self._admin_client = admin
        return admin

    async def ping(self, timeout_s: float = 3.0) -> bool:
        """One metadata round trip on a kept connection, bounded by `timeout_s`."""
        async with self._admin_lock:
            try:
                admin = await asyncio.wait_for(self._admin(), timeout=timeout_s)
                await asyncio.wait_for(admin.describe_cluster(), timeout=timeout_s)
                return True
            except Exception:
                await self._drop_admin()
                return False

    def _new_topic(self, topic: TopicConfig) -> NewTopic:
        config = {"min.insync.replicas": str(self.min_insync_replicas), **topic.config}
        return NewTopic(
            name=topic.name,
            num_partitions=self.partitions,
            replication_factor=self.replication_factor,
            topic_configs=config,
        )

    async def ensure_topics(self, topics: Sequence[TopicConfig | str]) -> None:
        wanted = [TopicConfig(topic) if isinstance(topic, str) else topic for topic in topics]
        missing = [topic for topic in wanted if topic.name not in self._known_topics]
        if not missing:
            return
        async with self._admin_lock:
            try:
                admin = await self._admin()
                existing = set(await admin.list_topics())
                new = [self._new_topic(topic) for topic in missing if topic.name not in existing]
                if new:
                    response = await admin.create_topics(new)
                    # Errors come back per topic rather than raised. "Already exists" means another
                    # replica was first, which is fine; anything else (say, too high a replication
                    # factor) is not. Each entry is (topic, error code) plus, in newer protocol
                    # versions, a message.
                    failures = [
                        " ".join(str(part) for part in error if part)
                        for error in response.topic_errors
                        if error[1] not in (0, TopicAlreadyExistsError.errno)
                    ]
                    if failures:
                        raise RuntimeError("cannot create Kafka topics: " + "; ".join(failures))
            except KafkaError as exc:
                await self._drop_admin()
                raise BusUnavailable(f"cannot create topics on Kafka: {exc}") from exc
        self._known_topics.update(topic.name for topic in missing)

    async def end_offsets(self, topics: Sequence[str]) -> PartitionOffsets:
        try:
            async with self._admin_lock:
                described = await (await self._admin()).describe_topics(list(topics))
        except KafkaError as exc:
            raise BusUnavailable(f"cannot describe topics on Kafka: {exc!r}") from exc
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            if topic["error_code"] == 0
            for partition in topic["partitions"]
        ]
        missing = set(topics) - {partition.topic for partition in partitions}
        if missing:
            raise BusUnavailable(f"Kafka does not know topics {sorted(missing)}")
        async with self._offsets_lock:
            try:
                reader = await self._offsets_reader()
                ends = await reader.end_offsets(partitions)
            except KafkaError as exc:
                await self._drop_offsets_reader()
                raise BusUnavailable(f"cannot read end offsets from Kafka: {exc!r}") from exc
        return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}

    async def _offsets_reader(self) -> AIOKafkaConsumer:
        """A group-less client kept for end offsets: consumers ask for them every few seconds."""
        if self._offsets_client is not None:
            return self._offsets_client
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-offsets",
            request_timeout_ms=self.request_timeout_ms,
        )
        try:
            await reader.start()
        except BaseException as exc:  # also on cancellation: an unclosed client leaks sockets
            await reader.stop()
            if isinstance(exc, Exception):
                raise BusUnavailable(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
            raise
        self._offsets_client = reader
        return reader

    async def _drop_offsets_reader(self) -> None:
        if self._offsets_client is not None:
            reader, self._offsets_client = self._offsets_client, None
            try:
                await reader.stop()
            except Exception:  # a broken client may fail to stop cleanly; it is discarded anyway
                log.debug("offsets reader stop failed", exc_info=True)

    async def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        async with self._producer_lock:
            producer = await self._ensure_producer()
            pending: list[asyncio.Future[object]] = []
            try:
                # Sends are queued in order; the idempotent producer keeps that order per partition
                # even with several requests in flight. A record refused before it is queued (too
                # large) stops the queueing, so nothing after it is sent.
                for index, message in enumerate(messages):
                    try:
                        pending.append(
                            await producer.send(
                                message.topic,
                                value=message.value,
                                key=message.key.encode(),
                                headers=list(message.headers.items()),
                            )
                        )
                    except _REFUSALS as exc:
                        await self._settle(pending)
                        raise MessageRefused(index, repr(exc)) from exc
                await self._settle(pending)
            except MessageRefused:
                raise
            except Exception as exc:
                # The producer's sequence state is unknown after a failure; start over with a new one.
                await self._drop_producer()
                raise BusUnavailable(f"publish to Kafka failed: {exc!r}") from exc

    @staticmethod
    async def _settle(pending: Sequence[asyncio.Future[object]]) -> None:
        """Wait for every queued send; the first that the broker refused for good is reported as such."""
        results = await asyncio.gather(*pending, return_exceptions=True)
        for index, result in enumerate(results):
            if isinstance(result, _REFUSALS):
                raise MessageRefused(index, repr(result)) from result
            if isinstance(result, BaseException):
                raise result

    def consumer(
        self, group: str, topics: Sequence[str], *, start_at: StartPositions | None = None
    ) -> Consumer:
        return KafkaConsumer(self, group, topics, start_at)


class _StartWhereTheStoreSays(ConsumerRebalanceListener):  # type: ignore[misc]
    """On each assignment, moves the member to the positions its store keeps, where it keeps one."""

    def __init__(self, consumer: AIOKafkaConsumer, start_at: StartPositions) -> None:
        self.consumer = consumer
        self.start_at = start_at

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        positions = await self.start_at()
        for partition in assigned:
            offset = positions.get((partition.topic, partition.partition))
            if offset is not None:
                self.consumer.seek(partition, offset)


class KafkaConsumer(Consumer):
    def __init__(
        self, bus: KafkaBus, group: str, topics: Sequence[str], start_at: StartPositions | None = None
    ) -> None:
        self.bus = bus
        self.group = group
        self.topics = list(topics)
        self.start_at = start_at
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        await self.bus.ensure_topics(self.topics)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bus.bootstrap_servers,
            client_id=f"{self.bus.client_id}-{self.group}",
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=max(self.bus.request_timeout_ms, 40_000),
            metadata_max_age_ms=5_000,
        )
        if self.start_at is None:
            consumer.subscribe(self.topics)
        else:
            consumer.subscribe(self.topics, listener=_StartWhereTheStoreSays(consumer, self.start_at))
        try:
            await consumer.start()
        except BaseException as exc:  # also on cancellation: an unclosed client leaks sockets
            await consumer.stop()
            if isinstance(exc, Exception):
                raise BusUnavailable(f"Kafka at {self.bus.bootstrap_servers} unreachable: {exc}") from exc
            raise
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
                        log_append_time=item.timestamp_type == _LOG_APPEND_TIME,
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

    async def hold(self, record: Record) -> None:
        partition = TopicPartition(record.topic, record.partition)
        self._client.seek(partition, record.offset)
        self._client.pause(partition)

    async def seek_to_beginning(self) -> None:
        client = self._client
        # Partitions are assigned once the group is joined; wait for that before seeking.
        for _ in range(300):
            if client.assignment():
                break
            await client.getmany(timeout_ms=100)
        await client.seek_to_beginning()
