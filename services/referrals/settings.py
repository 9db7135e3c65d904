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
    # Postbacks and their fraud checks (`conversions`).
    postback_signature_tolerance_s: int = Field(
        300, ge=1, description="How old a signed postback's timestamp may be, either way (replay window)."
    )
    fraud_min_click_to_conversion_s: int = Field(
        10, ge=0, description="A conversion this soon after its click is held for review (0: no check)."
    )
    fraud_burst_clicks: int = Field(
        20, ge=0, description="This many clicks from one address within `fraud_burst_minutes` is a burst."
    )
    fraud_burst_minutes: int = Field(
        5, ge=1, description="The burst check's span, before the crediting click."
    )
