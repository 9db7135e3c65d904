"""Whom a conversion credits, and the explanation kept with it.

In order, the first that credits someone wins:
1. the click the postback names: among the same visitor's non-bot clicks in that click's program inside
   the window [occurred_at - window_days, occurred_at], the latest (`last_click`) or the earliest
   (`first_click`), as the program says;
2. a referral code: that link's affiliate, with no click;
3. the customer id: the affiliate of the customer's earliest attributed conversion in the program;
   failing that, or without one, the contact id the same way (a known customer buying again, as a
   postback or as a purchase the journeys service reported).
Nothing crediting is no error: the conversion is kept unattributed with the first reason met
(`unknown_click`, `click_expired`, `bot_click`, `unknown_code`, `no_click`). A winner whose program is
archived, whose affiliate is suspended or whose link is archived credits no one either
(`archived_program`, `inactive_affiliate`, `archived_link`); nor does another affiliate's click when an
affiliate's own key posted the conversion (`not_own_click`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.referrals.affiliates.models import Affiliate
from services.referrals.clicks.models import Click
from services.referrals.conversions.repository import ConversionRepository
from services.referrals.conversions.schemas import PostbackIn
from services.referrals.links.models import Link
from services.referrals.programs.models import Program
from shared.errors import InvalidValue

# Clicks shortly after the conversion are listed in the explanation (clocks differ), never credited.
_LISTED_AFTER = timedelta(days=1)


@dataclass
class Decision:
    program: Program
    rule: str = "none"
    affiliate: Affiliate | None = None
    link_id: uuid.UUID | None = None
    click: Click | None = None
    reason: str | None = None
    explanation: dict[str, Any] = field(default_factory=dict)

    @property
    def attributed(self) -> bool:
        return self.affiliate is not None


@dataclass
class _Winner:
    rule: str
    affiliate_id: uuid.UUID
    link_id: uuid.UUID | None
    click: Click | None = None
    conversion_id: uuid.UUID | None = None


async def program_of(repository: ConversionRepository, data: PostbackIn) -> Program:
    """The conversion's program: the known click's, the known code's, the one named, or the only one."""
    click = await repository.click(data.click_id) if data.click_id is not None else None
    if click is not None and (program := await repository.program(click.program_id)) is not None:
        return program
    link = await repository.link_by_code(data.code) if data.code is not None else None
    if link is not None and (program := await repository.program(link.program_id)) is not None:
        return program
    if data.program is not None:
        named = await repository.program_named(data.program)
        if named is None:
            raise InvalidValue("program", f"No program with the key or id {data.program!r}.")
        return named
    only = await repository.only_program()
    if only is None:
        raise InvalidValue(
            "program",
            "The postback names no known click or code, so name its program (its key or id) with `program`.",
        )
    return only


def _json_click(click: Click, starts_at: datetime, ends_at: datetime) -> dict[str, Any]:
    return {
        "click_id": click.id,
        "clicked_at": click.clicked_at.isoformat(),
        "affiliate_id": str(click.affiliate_id),
        "link_id": str(click.link_id),
        "is_bot": click.is_bot,
        "in_window": starts_at <= click.clicked_at <= ends_at,
    }


async def attribute(
    repository: ConversionRepository,
    data: PostbackIn,
    program: Program,
    occurred_at: datetime,
    *,
    caller_affiliate: uuid.UUID | None,
) -> Decision:
    decision = Decision(program=program)
    explanation: dict[str, Any] = {
        "rule": "none",
        "named_click_id": data.click_id,
        "code": data.code,
        "customer_id": data.customer_id,
        "window": None,
        "candidates": [],
        "winner": None,
        "reason": None,
    }
    reasons: list[str] = []
    winner = await _by_click(repository, data, program, occurred_at, explanation, reasons)
    if winner is None and data.code is not None:
        link = await repository.link_by_code(data.code)
        if link is None or link.program_id != program.id:
            reasons.append("unknown_code")
        else:
            winner = _Winner("code", link.affiliate_id, link.id)
    if winner is None and (data.customer_id is not None or data.contact_id is not None):
        earlier = await repository.earliest_attributed(
            program.id, customer_id=data.customer_id, contact_id=data.contact_id
        )
        if earlier is None and data.customer_id is not None and data.contact_id is not None:
            earlier = await repository.earliest_attributed(program.id, contact_id=data.contact_id)
        if earlier is not None and earlier.affiliate_id is not None:
            winner = _Winner("customer", earlier.affiliate_id, earlier.link_id, conversion_id=earlier.id)
    if winner is None:
        decision.reason = reasons[0] if reasons else "no_click"
    else:
        explanation["rule"] = decision.rule = winner.rule
        affiliate = await repository.affiliate(winner.affiliate_id)
        link = await repository.link(winner.link_id) if winner.link_id is not None else None
        decision.reason = _refusal(program, affiliate, link, caller_affiliate)
        if decision.reason is None and affiliate is not None:
            decision.affiliate, decision.link_id, decision.click = affiliate, winner.link_id, winner.click
            explanation["winner"] = {
                "affiliate_id": str(affiliate.id),
                "link_id": str(winner.link_id) if winner.link_id is not None else None,
                "click_id": winner.click.id if winner.click is not None else None,
                "conversion_id": str(winner.conversion_id) if winner.conversion_id is not None else None,
            }
    explanation["reason"] = decision.reason
    decision.explanation = explanation
    return decision


async def _by_click(
    repository: ConversionRepository,
    data: PostbackIn,
    program: Program,
    occurred_at: datetime,
    explanation: dict[str, Any],
    reasons: list[str],
) -> _Winner | None:
    if data.click_id is None:
        return None
    named = await repository.click(data.click_id)
    if named is None or named.program_id != program.id:
        reasons.append("unknown_click")
        return None
    starts_at = occurred_at - timedelta(days=program.window_days)
    explanation["rule"] = program.attribution_model
    explanation["window"] = {
        "days": program.window_days,
        "starts_at": starts_at.isoformat(),
        "ends_at": occurred_at.isoformat(),
    }
    candidates = await repository.visitor_clicks(named.visitor_id, program.id, occurred_at + _LISTED_AFTER)
    explanation["candidates"] = [_json_click(click, starts_at, occurred_at) for click in candidates]
    eligible = [
        click for click in candidates if not click.is_bot and starts_at <= click.clicked_at <= occurred_at
    ]
    if not eligible:
        reasons.append("bot_click" if named.is_bot else "click_expired")
        return None
    # Candidates come newest first.
    crediting = eligible[-1] if program.attribution_model == "first_click" else eligible[0]
    return _Winner(program.attribution_model, crediting.affiliate_id, crediting.link_id, click=crediting)


def _refusal(
    program: Program, affiliate: Affiliate | None, link: Link | None, caller_affiliate: uuid.UUID | None
) -> str | None:
    if program.status != "active":
        return "archived_program"
    if affiliate is None or affiliate.status != "active":
        return "inactive_affiliate"
    if link is not None and link.archived_at is not None:
        return "archived_link"
    if caller_affiliate is not None and affiliate.id != caller_affiliate:
        return "not_own_click"
    return None
