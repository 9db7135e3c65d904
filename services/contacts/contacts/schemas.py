"""What the contacts API reads and writes.

One set of fields (`ContactFields`) serves creation, the merge patch and each record of a batch upsert,
so a field is validated the same way whichever way it arrives.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

import phonenumbers
import pycountry
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError


class LifecycleStage(StrEnum):
    """Where a person stands in the funnel, in the order they usually pass through; `churned` after."""

    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MARKETING_QUALIFIED_LEAD = "marketing_qualified_lead"
    SALES_QUALIFIED_LEAD = "sales_qualified_lead"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    EVANGELIST = "evangelist"
    CHURNED = "churned"
    OTHER = "other"


Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-:. ]{0,63}$"),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ExternalId(BaseModel):
    """The contact's id in another system; unique per system."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    system: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-.]{0,63}$", examples=["shopify"])
    id: str = Field(min_length=1, max_length=200, examples=["gid://shopify/Customer/42"])


class ContactFields(BaseModel):
    """Every writable field of a contact. Which are required, and what `null` means, is up to the
    subclass; each validator here runs only for a value given."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailStr | None = Field(
        None, description="The primary email. Unique across all contacts' emails, compared lower-cased."
    )
    emails: list[EmailStr] | None = Field(
        None, max_length=20, description="Further emails of the contact, each unique like `email`."
    )
    first_name: Name | None = None
    last_name: Name | None = None
    # Before the phones: a national number is read in this country.
    country: str | None = Field(
        None, description="ISO 3166-1 alpha-2, e.g. `DE`. Phones without `+` are read as this country's."
    )
    phone: str | None = Field(
        None, max_length=40, description="Stored as E.164 (`+4930…`); a national number needs `country`."
    )
    mobile_phone: str | None = Field(None, max_length=40, description="As `phone`.")
    street: str | None = Field(None, max_length=300)
    city: str | None = Field(None, max_length=200)
    postal_code: str | None = Field(None, max_length=20)
    state: str | None = Field(None, max_length=200)
    birthday: date | None = None
    job_title: str | None = Field(None, max_length=200)
    company_name: str | None = Field(
        None, max_length=200, description="As the person gave it; associate a company for the account."
    )
    owner: str | None = Field(None, max_length=200, description="Id of the account manager.")
    region: str | None = Field(None, max_length=100, description="Sales region, e.g. `EMEA`.")
    lifecycle_stage: LifecycleStage | None = None
    source: str | None = Field(
        None, max_length=200, description="Where the contact came from, e.g. `webinar`."
    )
    tags: list[Tag] | None = Field(None, max_length=50)
    external_ids: list[ExternalId] | None = Field(None, max_length=20)
    anonymous_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None = Field(
        None, max_length=50, description="Anonymous visitor ids (tracking cookies) known to be this person."
    )
    properties: dict[str, Any] | None = Field(
        None, description="Custom property values by key, as defined in `/v1/properties`; `null` clears one."
    )

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if pycountry.countries.get(alpha_2=value.upper()) is None:
            raise ValueError("not an ISO 3166-1 alpha-2 country code")
        return value.upper()

    @field_validator("phone", "mobile_phone")
    @classmethod
    def _e164(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            number = phonenumbers.parse(value, info.data.get("country"))
        except phonenumbers.NumberParseException as exc:
            raise ValueError("not a phone number; give it as +<country code><number>") from exc
        if not phonenumbers.is_possible_number(number):
            raise ValueError("not a possible phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("birthday")
    @classmethod
    def _born_in_the_past(cls, value: date | None) -> date | None:
        if value is not None and value > date.today():
            raise ValueError("a birthday cannot be in the future")
        return value

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @field_validator("emails")
    @classmethod
    def _lower_emails(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(email.lower() for email in value)) if value is not None else None

    @field_validator("tags")
    @classmethod
    def _tag_set(cls, value: list[str] | None) -> list[str] | None:
        # A set, kept sorted: the order it was given in carries no meaning.
        return sorted(set(value)) if value is not None else None

    @field_validator("anonymous_ids", "external_ids")
    @classmethod
    def _unique(cls, value: list[Any] | None) -> list[Any] | None:
        return list(dict.fromkeys(value)) if value is not None else None

    def given(self) -> dict[str, Any]:
        """The fields this body sets, as plain values (the lists and `properties` included)."""
        return {
            name: value.value if isinstance(value, LifecycleStage) else value
            for name, value in self.model_dump(include=self.model_fields_set).items()
        }


CONTACT_EXAMPLE: dict[str, Any] = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "country": "GB",
    "phone": "020 7183 8750",
    "job_title": "Head of Engineering",
    "company_name": "Analytical Engines Ltd",
    "owner": "user_17",
    "region": "EMEA",
    "lifecycle_stage": "lead",
    "source": "webinar",
    "tags": ["newsletter"],
    "external_ids": [{"system": "shopify", "id": "42"}],
    "properties": {"plan": "pro"},
}


def _reraised(error: ErrorDetails) -> InitErrorDetails:
    # As a custom error of the same type and message: rebuilding a built-in type from its context
    # fails for errors whose context lacks what the type's template needs (an email's `reason`).
    return {
        "type": PydanticCustomError(error["type"], error["msg"].replace("{", "{{").replace("}", "}}")),
        "loc": error["loc"],
        "input": error["input"],
    }


class ContactCreate(ContactFields):
    """A new contact: it needs an email or an external id, so it can be found and matched again."""

    model_config = ConfigDict(json_schema_extra={"examples": [CONTACT_EXAMPLE]})

    lifecycle_stage: LifecycleStage | None = LifecycleStage.SUBSCRIBER

    @model_validator(mode="wrap")
    @classmethod
    def _can_be_matched(
        cls, data: Any, handler: ModelWrapValidatorHandler["ContactCreate"]
    ) -> "ContactCreate":
        # A wrap validator, so that a missing email is named beside the other fields' errors: an
        # "after" validator runs only once every field is valid.
        unmatchable = isinstance(data, dict) and not data.get("email") and not data.get("external_ids")
        missing: InitErrorDetails = {"type": "missing", "loc": ("email",), "input": data}
        try:
            model = handler(data)
        except ValidationError as exc:
            if not unmatchable:
                raise
            errors = [_reraised(error) for error in exc.errors()]
            raise ValidationError.from_exception_data(exc.title, [*errors, missing]) from None
        if unmatchable:
            raise ValidationError.from_exception_data(cls.__name__, [missing])
        return model


class ContactPatch(ContactFields):
    """A JSON merge patch (RFC 7396): a field left out stays as it is, `null` clears it, a list given
    replaces the list, and `properties` is merged key by key."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"lifecycle_stage": "customer", "phone": None}]}
    )

    @field_validator("lifecycle_stage")
    @classmethod
    def _stage_is_not_cleared(cls, value: LifecycleStage | None) -> LifecycleStage:
        # Runs only for a value the patch gives, so leaving the field out stays allowed.
        if value is None:
            raise ValueError("lifecycle_stage cannot be null; leave it out to keep it")
        return value


class LifecycleChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"stage": "sales_qualified_lead", "reason": "Asked for a demo"}]},
    )

    stage: LifecycleStage
    reason: str | None = Field(None, max_length=500, description="Kept with the transition; not published.")


class LifecycleTransitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    from_stage: LifecycleStage | None
    to_stage: LifecycleStage
    changed_at: datetime
    actor: str = Field(description="The API key id, or the consumer that made the change.")
    reason: str | None


class PropertyChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    property: str = Field(description="A standard field, or `properties.<key>` for a custom one.")
    old_value: Any
    new_value: Any
    changed_at: datetime
    actor: str
    source: str = Field(description="`api`, `batch`, `import`, `merge`, or the consumer that wrote it.")


class ContactRead(BaseModel):
    id: uuid.UUID
    email: str | None
    emails: list[str] = Field(description="Every email of the contact, the primary one first.")
    first_name: str | None
    last_name: str | None
    phone: str | None
    mobile_phone: str | None
    street: str | None
    city: str | None
    postal_code: str | None
    state: str | None
    country: str | None
    birthday: date | None
    job_title: str | None
    company_name: str | None
    owner: str | None
    region: str | None
    lifecycle_stage: LifecycleStage
    source: str | None
    tags: list[str]
    external_ids: list[ExternalId]
    anonymous_ids: list[str]
    properties: dict[str, Any]
    marketing_allowed: bool = Field(
        description="Whether marketing may reach this person: email marketing granted, processing not "
        "withdrawn (see `/v1/contacts/{id}/consents`)."
    )
    consents: dict[str, Any] = Field(description="The latest status per purpose, with time and source.")
    subscriptions: dict[str, Any] = Field(description="The latest status per mailing list.")
    visits: int = Field(
        description="Web visits, counted from the touchpoint stream: a page view 30 minutes or more after "
        "the contact's previous web activity."
    )
    purchases: int = Field(description="Purchases, counted from the touchpoint stream.")
    revenue_minor: int = Field(
        description="Revenue from those purchases in the reporting currency (`CRM_REPORTING_CURRENCY`), "
        "in minor units."
    )
    revenue_by_currency: dict[str, int] = Field(
        description="Revenue from purchases in other currencies, per ISO 4217 code, in minor units; never "
        "converted.",
        examples=[{"USD": 4900}],
    )
    last_activity_at: datetime | None = Field(description="When the latest touchpoint occurred.")
    created_at: datetime
    updated_at: datetime


# Identity namespaces (see `ContactIdentity`).
EMAIL = "email"
ANONYMOUS = "anonymous"
EXTERNAL_PREFIX = "external:"
