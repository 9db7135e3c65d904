from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ReferralsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_REFERRALS_", extra="ignore")

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
