"""Each topic is defined once, and that definition agrees with the event catalog."""

from __future__ import annotations

from shared.events import topics
from shared.events.catalog import REGISTRY


def test_every_event_type_travels_on_a_defined_topic_that_lists_it() -> None:
    for cls in REGISTRY.event_classes:
        assert cls.event_type() in topics.by_name(cls.topic).event_types, cls


def test_every_listed_event_type_is_in_the_catalog_on_that_topic() -> None:
    for topic in topics.ALL:
        for event_type in topic.event_types:
            assert REGISTRY.class_for(event_type).topic == topic.name


def test_domain_topics_and_dead_letters_keep_every_record() -> None:
    for topic in topics.ALL:
        main, dead = topic.bus_topics()
        assert dead.name == f"{topic.name}.dlq"
        assert dead.config["retention.ms"] == "-1"
        if topic.compacted:
            assert main.config["cleanup.policy"] == "compact"
        else:
            assert (main.config["cleanup.policy"], main.config["retention.ms"]) == ("delete", "-1")
    assert [t.name for t in topics.ALL if not t.compacted] == [
        "crm.contacts",
        "crm.deals",
        "crm.touchpoints",
        "crm.journeys",
        "crm.referrals",
        "crm.privacy",
    ]
