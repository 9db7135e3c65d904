"""ISO 4217 currency codes and ISO 3166-1 alpha-2 country codes, checked against pycountry's lists.

As Pydantic types: a value is accepted in any case and kept upper-case (`eur` → `EUR`), and a code
that is not in the standard is a validation error naming the field. The lists come from pycountry,
which follows the ISO tables, rather than from a copy here that nobody would keep up to date.
"""

from __future__ import annotations

from typing import Annotated

import pycountry
from pydantic import AfterValidator, Field

# In ISO 4217, but not money a deal or a revenue can be in: "testing" and "no currency".
_NOT_MONEY = frozenset({"XTS", "XXX"})


def _currency(value: str) -> str:
    code = value.upper()
    if code in _NOT_MONEY or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return code


def _country(value: str) -> str:
    code = value.upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return code


CurrencyCode = Annotated[
    str,
    Field(
        min_length=3,
        max_length=3,
        pattern="^[A-Za-z]{3}$",
        description="ISO 4217 currency code, e.g. `EUR`.",
        examples=["EUR"],
    ),
    AfterValidator(_currency),
]
CountryCode = Annotated[
    str,
    Field(
        min_length=2,
        max_length=2,
        pattern="^[A-Za-z]{2}$",
        description="ISO 3166-1 alpha-2 country code, e.g. `DE`.",
        examples=["DE"],
    ),
    AfterValidator(_country),
]
