from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class KpiSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_KPI_", extra="ignore")
