from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ContactsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_CONTACTS_", extra="ignore")
