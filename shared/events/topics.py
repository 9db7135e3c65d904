"""Topic names are a public contract: analytics consumers subscribe to them."""

from typing import Final

CONTACTS: Final = "crm.contacts"
DEALS: Final = "crm.deals"
TOUCHPOINTS: Final = "crm.touchpoints"
REFERRALS: Final = "crm.referrals"
KPI: Final = "crm.kpi"

ALL: Final = (CONTACTS, DEALS, TOUCHPOINTS, REFERRALS, KPI)


def dead_letter(topic: str) -> str:
    return f"{topic}.dlq"
