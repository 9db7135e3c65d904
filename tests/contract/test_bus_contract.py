"""The bus contract: every test runs against the embedded bus and against a real Kafka broker."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest

from shared.bus.base import Consumer, EventBus, Message, MessageRefused, Record
from shared.events.topics import dead_letter
from shared.testing.bus import drain, poll_quietly


def _messages(topic: str, keys: list[str], per_key: int) -> list[Message]:
    # Interleave keys so per-key order is not just a side effect of publishing one key at a time.
    return [
        Message(topic=topic, key=key, value=f"{key}:{n}".encode(), headers={"ce_id": f"{key}-{n}".encode()})
        for n in range(per_key)
        for key in keys
    ]


def _group() -> str:
    return f"group-{uuid.uuid4().hex[:8]}"


async def test_ping_reports_a_reachable_bus(bus: EventBus) -> None:
    assert await bus.ping() is True


async def test_records_arrive_with_key_value_and_headers_intact(bus: EventBus, topic: str) -> None:
    await bus.publish(
        [Message(topic=topic, key="contact-1", value=b'{"a": 1}', headers={"ce_type": b"crm.x"})]
    )
    async with bus.consumer(_group(), [topic]) as consumer:
        [record] = await drain(consumer, count=1)
    assert (record.topic, record.key, record.value) == (topic, "contact-1", b'{"a": 1}')
    assert record.headers["ce_type"] == b"crm.x"


async def test_order_is_kept_per_key(bus: EventBus, topic: str) -> None:
    keys = [f"k{n}" for n in range(6)]
    await bus.publish(_messages(topic, keys, per_key=20))
    async with bus.consumer(_group(), [topic]) as consumer:
        records = await drain(consumer, count=120)
    seen: dict[str, list[int]] = defaultdict(list)
    for record in records:
        assert record.key is not None
        seen[record.key].append(int(record.value.decode().split(":")[1]))
    assert len(records) == 120
    assert all(seen[key] == list(range(20)) for key in keys), seen


async def test_a_group_resumes_after_its_committed_position(bus: EventBus, topic: str) -> None:
    await bus.publish(_messages(topic, ["a"], per_key=10))
    group = _group()
    async with bus.consumer(group, [topic]) as first:
        records = await drain(first, count=10)
        await first.commit([r for r in records if int(r.value.decode().split(":")[1]) < 4])
    async with bus.consumer(group, [topic]) as second:
        rest = await drain(second, count=6)
        extra = await poll_quietly(second, seconds=1)
    assert [r.value for r in rest] == [f"a:{n}".encode() for n in range(4, 10)]
    assert extra == []


async def test_uncommitted_records_are_delivered_again(bus: EventBus, topic: str) -> None:
    """At-least-once: a member that stops before committing leaves its records to the next one."""
    await bus.publish(_messages(topic, ["a", "b"], per_key=3))
    group = _group()
    async with bus.consumer(group, [topic]) as first:
        assert len(await drain(first, count=6)) == 6
    async with bus.consumer(group, [topic]) as second:
        again = await drain(second, count=6)
    assert sorted(r.value for r in again) == sorted(m.value for m in _messages(topic, ["a", "b"], per_key=3))


async def test_groups_are_independent_and_new_groups_start_from_the_beginning(
    bus: EventBus, topic: str
) -> None:
    await bus.publish(_messages(topic, ["a"], per_key=5))
    async with bus.consumer(_group(), [topic]) as one:
        await one.commit(await drain(one, count=5))
    async with bus.consumer(_group(), [topic]) as other:
        assert len(await drain(other, count=5)) == 5


async def test_replay_from_the_start_after_everything_was_committed(bus: EventBus, topic: str) -> None:
    await bus.publish(_messages(topic, ["a", "b"], per_key=4))
    group = _group()
    async with bus.consumer(group, [topic]) as consumer:
        await consumer.commit(await drain(consumer, count=8))
        await consumer.seek_to_beginning()
        replayed = await drain(consumer, count=8)
    assert sorted(r.value for r in replayed) == sorted(
        m.value for m in _messages(topic, ["a", "b"], per_key=4)
    )


async def test_a_topic_and_its_dead_letter_topic_are_both_usable(bus: EventBus, topic: str) -> None:
    await bus.ensure_topics([topic, dead_letter(topic)])
    await bus.publish(
        [Message(topic=dead_letter(topic), key="k", value=b"poison", headers={"crm_error": b"boom"})]
    )
    async with bus.consumer(_group(), [dead_letter(topic)]) as consumer:
        [record] = await drain(consumer, count=1)
    assert record.value == b"poison"
    assert record.headers["crm_error"] == b"boom"


async def test_consuming_several_topics_at_once(bus: EventBus, topic: str) -> None:
    other = f"{topic}.other"
    await bus.publish([Message(topic=topic, key="a", value=b"1"), Message(topic=other, key="a", value=b"2")])
    async with bus.consumer(_group(), [topic, other]) as consumer:
        records = await drain(consumer, count=2)
    assert {(r.topic, r.value) for r in records} == {(topic, b"1"), (other, b"2")}


async def test_a_record_the_bus_can_never_take_is_refused_and_what_came_before_is_kept(
    bus: EventBus, topic: str
) -> None:
    """A record above the size limit raises `MessageRefused` naming it; the record before it is written."""
    huge = b"x" * (2 * 1024 * 1024)
    batch = [
        Message(topic=topic, key="k", value=b"small"),
        Message(topic=topic, key="k", value=huge),
        Message(topic=topic, key="k", value=b"small2"),
    ]
    with pytest.raises(MessageRefused) as refusal:
        await bus.publish(batch)
    assert refusal.value.index == 1
    async with bus.consumer(_group(), [topic]) as consumer:
        first = await drain(consumer, count=1)
    assert [record.value for record in first] == [b"small"]


async def test_end_offsets_count_the_records_of_every_partition(bus: EventBus, topic: str) -> None:
    """After N records the end offsets sum to N; a topic without records ends at 0 in every partition."""
    empty = f"{topic}.empty"
    await bus.ensure_topics([topic, empty])
    await bus.publish(_messages(topic, [f"k{n}" for n in range(5)], per_key=3))

    ends = await bus.end_offsets([topic])
    assert ends, "a topic has at least one partition"
    assert {name for name, _partition in ends} == {topic}
    assert sum(ends.values()) == 15

    empty_ends = await bus.end_offsets([empty])
    assert empty_ends, "a topic has at least one partition"
    assert {name for name, _partition in empty_ends} == {empty}
    assert set(empty_ends.values()) == {0}


async def _poll_until(
    consumer: Consumer, arrived: Callable[[Record], bool], timeout_s: float = 30
) -> list[Record]:
    """Poll until a record for which `arrived` is true comes; returns everything polled up to then."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while not any(arrived(record) for record in records):
        assert time.monotonic() < deadline, f"nothing arrived that was awaited; got {records}"
        records.extend(await consumer.poll(timeout_s=0.5))
    return records


async def test_a_held_partition_delivers_nothing_more_and_the_next_member_starts_at_the_held_record(
    bus: EventBus, topic: str
) -> None:
    """`hold` stops a partition at a record; another topic still flows, and the group resumes there."""
    marker_topic = f"{topic}.marker"
    await bus.ensure_topics([topic, marker_topic])
    await bus.publish([Message(topic=topic, key="k", value=f"k:{n}".encode()) for n in range(5)])
    group = _group()
    async with bus.consumer(group, [topic, marker_topic]) as first:
        delivered = await drain(first, count=5)
        assert [record.value for record in delivered] == [f"k:{n}".encode() for n in range(5)]
        held = delivered[2]
        await first.hold(held)

        # Something new for the held partition, then a marker on a partition that still flows: once
        # the marker is here, the member has fetched past the point where k:5 would have come.
        await bus.publish([Message(topic=topic, key="k", value=b"k:5")])
        await bus.publish([Message(topic=marker_topic, key="m", value=b"marker")])
        after_hold = await _poll_until(first, lambda record: record.topic == marker_topic)
        from_held_partition = [
            record for record in after_hold if (record.topic, record.partition) == (topic, held.partition)
        ]
        assert from_held_partition == []

        await first.commit([*delivered[:2], *after_hold])

    async with bus.consumer(group, [topic, marker_topic]) as second:
        resumed = await drain(second, count=4)
    assert [(record.offset, record.value) for record in resumed] == [
        (held.offset, b"k:2"),
        (held.offset + 1, b"k:3"),
        (held.offset + 2, b"k:4"),
        (held.offset + 3, b"k:5"),
    ]
