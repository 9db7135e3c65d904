import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Purpose(StrEnum):
    """What personal data may be used for, each consented to (or not) on its own."""

    PROCESSING = "processing"
    EMAIL_MARKETING = "email_marketing"
    SMS_MARKETING = "sms_marketing"
    PHONE_MARKETING = "phone_marketing"
    PROFILING = "profiling"
    ANALYTICS = "analytics"
    THIRD_PARTY_SHARING = "third_party_sharing"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"


class SubscriptionStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"


Source = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-.:]*$", examples=["signup_form"])


class Proof(BaseModel):
    """How consent was given, to show it later. Kept in the contacts service only, never published."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    method: str = Field(
        max_length=100, description="e.g. `checkbox`, `double_opt_in`, `verbal`, `signed_form`."
    )
    wording: str | None = Field(None, max_length=2000, description="The text the person agreed to.")
    url: str | None = Field(None, max_length=2000, description="The page or document where it was given.")
    document_id: str | None = Field(None, max_length=200, description="A form, contract or recording id.")
    ip_address: str | None = Field(None, max_length=45)


class ConsentChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "purpose": "email_marketing",
                    "status": "granted",
                    "source": "signup_form",
                    "proof": {
                        "method": "double_opt_in",
                        "wording": "Send me product news by email.",
                        "url": "https://example.com/signup",
                    },
                }
            ]
        },
    )

    purpose: Purpose
    status: ConsentStatus
    source: str = Source
    proof: Proof


class SubscriptionChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "subscribed", "source": "preference_center"}]},
    )

    status: SubscriptionStatus
    source: str = Source
    proof: Proof | None = None


class ConsentState(BaseModel):
    status: ConsentStatus
    changed_at: datetime
    source: str


class SubscriptionState(BaseModel):
    status: SubscriptionStatus
    changed_at: datetime
    source: str


class ConsentSummary(BaseModel):
    """Where a contact stands: per purpose, per list, and whether marketing may reach them."""

    marketing_allowed: bool = Field(
        description="True only when email marketing is granted and processing is not withdrawn (and the "
        "contact is not erased). A purpose never stated counts as not granted."
    )
    consents: dict[Purpose, ConsentState]
    subscriptions: dict[str, SubscriptionState]


class ConsentRecordRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str = Field(description="`consent` or `subscription`.")
    subject: str = Field(description="The purpose, or the list's key.")
    status: str
    recorded_at: datetime
    source: str
    proof: dict[str, object]
    actor: str
