"""The event bus interface every service codes against.

Both implementations give: named topics; a key per record and order per key; consumer groups with
committed positions; at-least-once delivery; replay from the start; a dead-letter topic per topic.
A new consumer group starts from the beginning of its topics.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


@dataclass(frozen=True)
class Message:
    """A record to publish."""

    topic: str
    key: str
    value: bytes
    headers: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    """A record as a consumer receives it."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: Mapping[str, bytes]
    timestamp_ms: int
    log_append_time: bool = False
    """True when `timestamp_ms` is when the bus appended the record to its partition (Kafka's
    `LogAppendTime`, the embedded log's write time), so it does not decrease along a partition; False
    when it is the time its producer gave it (Kafka's `CreateTime`), which may."""


@dataclass(frozen=True)
class TopicConfig:
    """A topic as the bus creates it; partitions and replication come from the bus's settings."""

    name: str
    config: Mapping[str, str] = field(default_factory=dict)


class BusUnavailable(ConnectionError):
    """The bus cannot be reached right now; retrying later is the right response."""


class MessageRefused(Exception):
    """The bus will never take message `index` as it is (too large, say): retrying cannot help.

    The messages before it were durably acknowledged; those after it may or may not have been written.
    """

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"message {index} refused: {reason}")
        self.index = index
        self.reason = reason


PartitionOffsets = dict[tuple[str, int], int]


StartPositions = Callable[[], Awaitable[Mapping[tuple[str, int], int]]]
"""The positions a member starts from, (topic, partition) → next offset, read when it needs them."""


class Consumer(abc.ABC):
    """A member of a consumer group."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def poll(self, *, timeout_s: float = 1.0, max_records: int = 100) -> list[Record]:
        """Next records after this member's position, in offset order per partition."""

    @abc.abstractmethod
    async def commit(self, records: Sequence[Record]) -> None:
        """Commit the group's position past these records (call only after their effects committed)."""

    @abc.abstractmethod
    async def seek_to_beginning(self) -> None:
        """Replay: move this member's position to the start of every assigned partition."""

    @abc.abstractmethod
    async def hold(self, record: Record) -> None:
        """Deliver nothing more from `record`'s partition, starting with `record` itself.

        The partition stays held until this member stops; the next member starts again at the
        committed position, so `record` is delivered again then.
        """

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class EventBus(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the bus is reachable (readiness)."""

    @abc.abstractmethod
    async def ensure_topics(self, topics: Sequence[TopicConfig | str]) -> None:
        """Create these topics (and nothing else) if they do not exist; a bare name gets the defaults."""

    @abc.abstractmethod
    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish and wait until every message is durably acknowledged.

        Messages with the same key land in the order given. Raises `BusUnavailable` when the bus
        cannot take them; then some may have been written, and the caller retries (at-least-once).
        Raises `MessageRefused` when one message can never be taken as it is.
        """

    @abc.abstractmethod
    async def end_offsets(self, topics: Sequence[str]) -> PartitionOffsets:
        """The offset the next record of each partition of `topics` will get (for progress and lag)."""

    @abc.abstractmethod
    def consumer(
        self, group: str, topics: Sequence[str], *, start_at: StartPositions | None = None
    ) -> Consumer:
        """A new member of `group` reading `topics`. Where `start_at` names a partition's position, the
        member reads from there whenever the partition becomes its own, not from the group's committed
        offset: a consumer whose own store keeps its positions (and may have been restored to an
        earlier state) reads again what that store has not seen."""
