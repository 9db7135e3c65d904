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
