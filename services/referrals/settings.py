from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ReferralsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_REFERRALS_", extra="ignore")
