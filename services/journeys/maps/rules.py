"""Whether an event about a contact matches a rule of a journey.

An event is first reduced to a `Fact`: what kind it is and the values rules may test. The same rules
are used for a stage's entry and for its goal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.journeys.maps.schemas import ContactCreatedRule, LifecycleRule, Rule, TouchpointRule
from shared.events.catalog import ContactCreated, ContactLifecycleChanged, ContactUpdated
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved

# The touchpoint fields a rule tests by name, as the event names them (the rule says `type`).
_TOUCHPOINT_FIELDS = ("channel", "stage", "team", "campaign", "content_id")


@dataclass(frozen=True)
class Fact:
    """An event about a contact, as rules see it."""

    touchpoint: Mapping[str, object] | None = None
    created_in: str | None = None
    """For `crm.contact.created`: the lifecycle stage it was created in."""
    lifecycle_to: str | None = None
    """The lifecycle stage the contact is in after this event, when the event set it."""


def touchpoint_fact(event: TouchpointRecorded | TouchpointResolved) -> Fact:
    return Fact(touchpoint=event.model_dump(exclude={"type", "schema_version"}))


def contact_created_fact(event: ContactCreated) -> Fact:
    return Fact(created_in=event.lifecycle_stage, lifecycle_to=event.lifecycle_stage)


def lifecycle_changed_fact(event: ContactLifecycleChanged) -> Fact:
    return Fact(lifecycle_to=event.to_stage)


def contact_updated_fact(event: ContactUpdated) -> Fact | None:
    change = event.changes.get("lifecycle_stage")
    if change is None or not isinstance(change.new, str):
        return None
    return Fact(lifecycle_to=change.new)


def _touchpoint_matches(rule: TouchpointRule, touchpoint: Mapping[str, object]) -> bool:
    if rule.type is not None and touchpoint.get("touchpoint_type") != rule.type:
        return False
    for name in _TOUCHPOINT_FIELDS:
        wanted = getattr(rule, name)
        if wanted is not None and touchpoint.get(name) != wanted:
            return False
    if rule.where is not None:
        return all(touchpoint.get(name) == value for name, value in rule.where.conditions().items())
    return True


def matches(rule: Rule, fact: Fact) -> bool:
    if isinstance(rule, TouchpointRule):
        return fact.touchpoint is not None and _touchpoint_matches(rule, fact.touchpoint)
    if isinstance(rule, ContactCreatedRule):
        return fact.created_in is not None and rule.lifecycle_stage in (None, fact.created_in)
    assert isinstance(rule, LifecycleRule)
    return fact.lifecycle_to == rule.to


def any_matches(rules: Iterable[Rule], fact: Fact) -> bool:
    return any(matches(rule, fact) for rule in rules)
