"""Fraud checks, run once when an attributed conversion is recorded. Any flag holds the conversion for a
review (`review = "held"`); its commissions wait for the decision.

- `self_referral`: the credited affiliate is the buyer: the same contact, or the same keyed email hash.
- `click_to_conversion_too_fast`: the conversion came less than `min_click_to_conversion_s` after its
  click (a script, or an affiliate buying through their own link to earn on it).
- `click_burst`: the crediting click's address made at least `burst_clicks` clicks in the
  `burst_minutes` up to it (click farms, cookie stuffing).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.referrals.conversions.attribution import Decision
from services.referrals.conversions.repository import ConversionRepository


@dataclass(frozen=True)
class FraudRules:
    min_click_to_conversion_s: int = 10
    burst_clicks: int = 20
    burst_minutes: int = 5


async def flags(
    repository: ConversionRepository,
    decision: Decision,
    rules: FraudRules,
    *,
    occurred_at: datetime,
    contact_id: uuid.UUID | None,
    email_hash: str | None,
) -> list[dict[str, Any]]:
    affiliate = decision.affiliate
    if affiliate is None:
        return []  # nobody is paid, so nobody can cheat
    found: list[dict[str, Any]] = []
    if contact_id is not None and affiliate.contact_id == contact_id:
        found.append({"check": "self_referral", "detail": "The buyer is the credited affiliate's contact."})
    elif email_hash is not None and affiliate.email_hash == email_hash:
        found.append({"check": "self_referral", "detail": "The buyer's email is the credited affiliate's."})
    click = decision.click
    if click is None:
        return found
    seconds = (occurred_at - click.clicked_at).total_seconds()
    if seconds < rules.min_click_to_conversion_s:
        found.append(
            {
                "check": "click_to_conversion_too_fast",
                "detail": f"{seconds:.1f} s after its click (at least {rules.min_click_to_conversion_s} s).",
            }
        )
    if click.ip_hash is not None and rules.burst_clicks > 0:
        since = click.clicked_at - timedelta(minutes=rules.burst_minutes)
        count = await repository.clicks_from_address(click.ip_hash, since, click.clicked_at)
        if count >= rules.burst_clicks:
            found.append(
                {
                    "check": "click_burst",
                    "detail": f"{count} clicks from the click's address in the {rules.burst_minutes} "
                    f"minutes up to it (a burst is {rules.burst_clicks}).",
                }
            )
    return found
