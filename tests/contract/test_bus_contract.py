"""The bus contract: every test runs against the embedded bus and against a real Kafka broker."""

from __future__ import annotations

import uuid
from collections import defaultdict

from shared.bus.base import EventBus, Message
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
