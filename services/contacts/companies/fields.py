"""What a company search may filter and sort on (see `services.contacts.search`)."""

from services.contacts.companies.models import Company, CompanyContact
from services.contacts.deals.models import DealCompany
from services.contacts.properties.schemas import ObjectType
from services.contacts.search.compiler import ColumnField, FieldCatalog, Kind, SetField

_TEXT = ("name", "industry", "currency", "country", "region", "owner", "phone")

COMPANY_FIELDS = FieldCatalog(
    object_type=ObjectType.COMPANY,
    id_column=Company.id,
    columns={
        **{name: ColumnField(getattr(Company, name), Kind.TEXT) for name in _TEXT},
        # Stored normalised and lower-cased: a value given in capitals still matches.
        "domain": ColumnField(Company.domain, Kind.TEXT, lower=True),
        "employee_count": ColumnField(Company.employee_count, Kind.NUMBER),
        "annual_revenue": ColumnField(Company.annual_revenue, Kind.NUMBER),
        "created_at": ColumnField(Company.created_at, Kind.DATETIME),
        "updated_at": ColumnField(Company.updated_at, Kind.DATETIME),
    },
    sets={
        "contact_ids": SetField(CompanyContact.contact_id, CompanyContact.company_id, kind=Kind.ID),
        "deal_ids": SetField(DealCompany.deal_id, DealCompany.company_id, kind=Kind.ID),
    },
)
