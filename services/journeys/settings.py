from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class JourneysSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_JOURNEYS_", extra="ignore")
