from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ReferralsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_REFERRALS_", extra="ignore")

    approval_sweep_seconds: float = Field(
        60.0,
        ge=0,
        description="How often pending commissions whose hold has ended are approved; 0 turns the "
        "background sweep off (`POST /v1/commissions/approve-due` still runs it).",
    )
    click_journal_fsync: bool = Field(
        False,
        description="Sync the click journal to disk after every click: a power loss then loses no click, "
        "at the cost of a disk flush per redirect. Without it a killed process still loses nothing.",
    )
    click_link_cache_seconds: float = Field(
        10.0,
        ge=0,
        description="How long the redirect trusts its cached copy of a link; a change made through "
        "another replica reaches this one within this time.",
    )
