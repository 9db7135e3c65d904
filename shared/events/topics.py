"""Topics are a public contract: analytics consumers subscribe to them.

Each topic is defined once, here: its name, what its record key is, how long it keeps records, its
dead-letter topic, and the event types it carries. That one definition drives topic creation (with the
partitions, replication and min ISR from settings), consumer subscriptions and the event contract
document. Domain topics keep every event, because any view may be rebuilt by replaying from the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.bus.base import TopicConfig


def dead_letter(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class TopicDefinition:
    name: str
    description: str
    key: str
    """What the record key is: the aggregate id that keeps one aggregate's events in order."""
    event_types: tuple[str, ...]
    """CloudEvents types this topic carries (checked against the catalog by `tests/shared/test_topics.py`)."""
    producers: tuple[str, ...] = ()
    """Names of the services that publish to it: the senders in the event contract document. The
    receivers are not listed here; they follow from the services' consumers."""
    compacted: bool = False
    """Keep only the latest record per key. Only for derived data: a domain topic keeps every event."""

    @property
    def dead_letter(self) -> str:
        return dead_letter(self.name)

    def bus_topics(self) -> list[TopicConfig]:
        """The topic and its dead-letter topic as the bus creates them."""
        # retention.ms=-1 keeps records for ever: replay from the start is a promise, and a dead letter
        # must still be there when its cause is fixed and it is driven again.
        kept = {"retention.ms": "-1", "retention.bytes": "-1"}
        main = {"cleanup.policy": "compact"} if self.compacted else {"cleanup.policy": "delete", **kept}
        # Record timestamps are the broker's append times, which do not go back along a partition
        # (the producer's clocks may): consumers' completeness watermarks lean on that.
        main["message.timestamp.type"] = "LogAppendTime"
        return [
            TopicConfig(self.name, config=main),
            TopicConfig(self.dead_letter, config={"cleanup.policy": "delete", **kept}),
        ]


CONTACTS: Final = TopicDefinition(
    name="crm.contacts",
    description=(
        "People and companies: created, updated, merged, erased or deleted; consent and lifecycle changes; "
        "the scores people give (feedback)."
    ),
    key="contact id (the merged, losing one for `crm.contact.merged`); company id for `crm.company.*` events",
    event_types=(
        "crm.contact.created",
        "crm.contact.updated",
        "crm.contact.lifecycle_changed",
        "crm.contact.consent_changed",
        "crm.contact.merged",
        "crm.contact.erased",
        "crm.contact.feedback_recorded",
        "crm.contact.feedback_removed",
        "crm.company.created",
        "crm.company.updated",
        "crm.company.contact_added",
        "crm.company.contact_removed",
        "crm.company.deleted",
    ),
    producers=("contacts",),
)
DEALS: Final = TopicDefinition(
    name="crm.deals",
    description=(
        "Deals and pipelines: created, moved between stages, won, lost, deleted; contacts associated "
        "with them or removed."
    ),
    key="deal id",
    event_types=(
        "crm.deal.created",
        "crm.deal.updated",
        "crm.deal.stage_changed",
        "crm.deal.won",
        "crm.deal.lost",
        "crm.deal.deleted",
        "crm.deal.contact_added",
        "crm.deal.contact_removed",
    ),
    producers=("contacts",),
)
TOUCHPOINTS: Final = TopicDefinition(
    name="crm.touchpoints",
    description="Every touchpoint on a prospect's journey: ads, content, email, calls, support, purchases.",
    key=(
        "contact id, or the anonymous visitor id before identification (the touchpoint id when the "
        "touchpoint names neither)"
    ),
    event_types=("crm.touchpoint.recorded", "crm.touchpoint.resolved"),
    producers=("journeys",),
)
JOURNEYS: Final = TopicDefinition(
    name="crm.journeys",
    description=(
        "Where contacts stand on the journeys defined in the journeys service: each stage a contact "
        "enters. Derived from the other topics, and kept whole: each event is a fact with its time."
    ),
    key="contact id",
    event_types=("crm.journey.stage_entered",),
    producers=("journeys",),
)
REFERRALS: Final = TopicDefinition(
    name="crm.referrals",
    description=(
        "Clicks on affiliate and referral links, the conversions partners and trackers report, and the "
        "commissions and referral rewards they earn."
    ),
    key="click id for a click; conversion id for a conversion and the commissions and rewards it earns",
    event_types=(
        "crm.click.recorded",
        "crm.conversion.recorded",
        "crm.conversion.duplicate",
        "crm.conversion.status_changed",
        "crm.commission.created",
        "crm.commission.approved",
        "crm.commission.paid",
        "crm.commission.reversed",
        "crm.referral_reward.granted",
    ),
    producers=("referrals",),
)
KPI: Final = TopicDefinition(
    name="crm.kpi",
    description="The latest value of each KPI per bucket; derived, so only the latest per key is kept.",
    key="KPI key and bucket",
    event_types=(),
    producers=("kpi",),
    compacted=True,
)

PRIVACY: Final = TopicDefinition(
    name="crm.privacy",
    description=(
        "Each service's confirmation that it erased a person's data, so the erasure receipt in the "
        "contacts service can show who has confirmed. Carries ids only."
    ),
    key="erasure receipt id",
    event_types=("crm.erasure.confirmed",),
    producers=("contacts", "journeys", "referrals", "kpi"),
)

ACCESS: Final = TopicDefinition(
    name="crm.access",
    description=(
        "API keys created and revoked, as hashes, so that every service knows every key without a call. "
        "Only the latest record per key matters, so the topic is compacted."
    ),
    key="API key id",
    event_types=("crm.api_key.created", "crm.api_key.revoked"),
    producers=("contacts", "journeys", "referrals", "kpi"),
    compacted=True,
)

ALL: Final = (CONTACTS, DEALS, TOUCHPOINTS, JOURNEYS, REFERRALS, KPI, PRIVACY, ACCESS)


def by_name(name: str) -> TopicDefinition:
    for topic in ALL:
        if topic.name == name:
            return topic
    raise KeyError(f"no topic named {name}")


def all_bus_topics() -> list[TopicConfig]:
    return [config for topic in ALL for config in topic.bus_topics()]
