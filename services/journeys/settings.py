from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class JourneysSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_JOURNEYS_", extra="ignore")

    tracking_user_system: str = Field(
        "app",
        pattern=r"^[a-z0-9][a-z0-9_\-.]{0,63}$",
        description="The system a tracking call's `userId` is an external id of: the app that sends them.",
    )
