import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from shared.iso_codes import CountryCode, CurrencyCode

# A host name of two or more labels (RFC 1035 letters, digits and hyphens; IDNs as punycode).
_HOST = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
# Postgres `integer` and `bigint`: larger values must be a 422, not a failed INSERT.
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


def normalise_domain(value: str) -> str:
    """`https://www.Example.com/about` → `example.com`: the host alone, lower case, without `www.`.

    So that the same company entered twice by different people is found as one (uniqueness, upserts).
    """
    text = value.strip()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.rstrip(".").removeprefix("www.")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{value!r} is not a domain name") from None
    if not _HOST.match(host):
        raise ValueError(f"{value!r} is not a domain name, e.g. `example.com`")
    return host


Domain = Annotated[
    str,
    Field(
        max_length=2000,
        description="The company's web domain; stored as the host alone, lower-cased and without `www.` "
        "(`https://www.Example.com/about` is `example.com`). Unique among companies.",
        examples=["example.com"],
    ),
    AfterValidator(normalise_domain),
]
Name = Annotated[str, Field(min_length=1, max_length=300)]
EmployeeCount = Annotated[int, Field(ge=0, le=_INT32)]
Revenue = Annotated[
    int, Field(ge=0, le=_INT64, description="Annual revenue in minor units of `currency` (cents for EUR).")
]


class CompanyFields(BaseModel):
    """What a company holds besides its name; shared by create, patch and upsert."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    industry: str | None = Field(None, max_length=100, examples=["software"])
    employee_count: EmployeeCount | None = None
    annual_revenue: Revenue | None = None
    currency: CurrencyCode | None = Field(None, description="ISO 4217 currency of `annual_revenue`.")
    country: CountryCode | None = None
    region: str | None = Field(None, max_length=100, description="Sales region, free text, e.g. `EMEA`.")
    owner: str | None = Field(None, max_length=100, description="Id of the account manager.")
    phone: str | None = Field(None, max_length=50)
    properties: dict[str, Any] | None = Field(
        None,
        description="Custom property values by key, as defined in `/v1/properties` for `company`; merged "
        "key by key, and `null` clears one.",
        examples=[{"tier": "gold", "seats": 250}],
    )

    # For the bodies where `name` may be left out (upsert, patch): left out keeps it, null is refused.
    # Each subclass declares `name`; `check_fields=False` lets the base hold the one rule for all.
    @field_validator("name", check_fields=False)
    @classmethod
    def _name_is_not_cleared(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null; leave it out to keep it")
        return value

    def given(self) -> dict[str, Any]:
        """The fields the body sets, as they are stored."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class CompanyCreate(CompanyFields):
    """`annual_revenue` needs a `currency` (checked by the service, which sees a patch merged too)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme GmbH",
                    "domain": "acme.example",
                    "industry": "manufacturing",
                    "employee_count": 250,
                    "annual_revenue": 4_200_000_00,
                    "currency": "EUR",
                    "country": "DE",
                    "region": "EMEA",
                    "owner": "am-17",
                    "properties": {"tier": "gold", "seats": 250},
                }
            ]
        }
    )

    name: Name
    domain: Domain | None = None


class CompanyUpsert(CompanyFields):
    """A record of `POST /v1/companies/batch/upsert`, matched to a company by its domain. As a merge
    patch for a company that exists; `name` is then optional, and needed only to create one."""

    domain: Domain
    name: Name | None = None


class CompanyPatch(CompanyFields):
    """A JSON merge patch (RFC 7396): a field left out stays as it is, `null` clears it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"employee_count": 300, "owner": "am-4", "phone": None, "properties": {"tier": None}}
            ]
        }
    )

    name: Name | None = Field(None, description="Cannot be cleared.")
    domain: Domain | None = None


class CompanyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    domain: str | None
    industry: str | None
    employee_count: int | None
    annual_revenue: int | None
    currency: str | None
    country: str | None
    region: str | None
    owner: str | None
    phone: str | None
    properties: dict[str, Any] = Field(description="Custom property values by key.")
    created_at: datetime
    updated_at: datetime


class CompanyContactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    contact_id: uuid.UUID
    associated_at: datetime = Field(validation_alias="created_at")
