"""The contact counters the touchpoint stream feeds. Flushes, never commits.

From each `crm.touchpoint.recorded` resolved to a contact:

- `last_activity_at` is the latest `occurred_at` of any touchpoint;
- a `web` touchpoint of type `page_view` counts a visit when it occurred 30 minutes or more after the
  contact's previous web activity (any `web` touchpoint, kept in `last_web_activity_at`), or when there
  was none. Page views that arrive late, older than the latest web activity, count no visit: the order
  in which they arrive is the order they are counted in;
- a `purchase` touchpoint counts a purchase, and adds its `revenue` to `revenue_minor` when it is in the
  reporting currency (`CRM_REPORTING_CURRENCY`), else to that currency's sum in `revenue_by_currency`.

A touchpoint of a merged contact counts for the survivor. One for a contact this service never had, or
for an erased one, is skipped: no counter changes and nothing is dead-lettered.

The counters are not a view this consumer could rebuild: merges sum them and erased contacts keep them,
so `crm replay` refuses this consumer rather than count every touchpoint a second time (see
`handlers.ACTIVITY_CONSUMER`). Each event is counted once: the consumer's positions and event ids commit
with the counters.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.contacts.activity.repository import ActivityRepository
from shared.events.touchpoints import TouchpointRecorded, TouchpointResolved

VISIT_GAP = timedelta(minutes=30)
WEB, PAGE_VIEW, PURCHASE = "web", "page_view", "purchase"


async def count(
    session: AsyncSession, touchpoint: TouchpointRecorded | TouchpointResolved, reporting_currency: str
) -> None:
    """Count the touchpoint on its contact's counters; a change bumps the contact's version (its ETag)."""
    if touchpoint.contact_id is None:
        return  # not resolved when it was recorded: it counts when `crm.touchpoint.resolved` comes
    contact = await ActivityRepository(session).contact_for_update(touchpoint.contact_id)
    if contact is None or contact.erased_at is not None:
        return
    at = touchpoint.occurred_at
    if contact.last_activity_at is None or at > contact.last_activity_at:
        contact.last_activity_at = at
    if touchpoint.channel == WEB:
        previous = contact.last_web_activity_at
        if touchpoint.touchpoint_type == PAGE_VIEW and (previous is None or at - previous >= VISIT_GAP):
            contact.visits += 1
        if previous is None or at > previous:
            contact.last_web_activity_at = at
    if touchpoint.channel == PURCHASE:
        contact.purchases += 1
        if touchpoint.revenue and touchpoint.currency == reporting_currency:
            contact.revenue_minor += touchpoint.revenue
        elif touchpoint.revenue and touchpoint.currency is not None:
            sums = dict(contact.revenue_by_currency)
            sums[touchpoint.currency] = sums.get(touchpoint.currency, 0) + touchpoint.revenue
            contact.revenue_by_currency = sums
    # Now, not at the batch's end: the next touchpoint of this contact in the batch reads these values.
    await session.flush()
