"""What a deal search may filter and sort on (see `services.contacts.search`)."""

from services.contacts.deals.models import Deal, DealCompany, DealContact
from services.contacts.properties.schemas import ObjectType
from services.contacts.search.compiler import ColumnField, FieldCatalog, Kind, SetField

_TEXT = ("name", "stage", "currency", "owner", "external_id", "close_reason")

DEAL_FIELDS = FieldCatalog(
    object_type=ObjectType.DEAL,
    id_column=Deal.id,
    columns={
        **{name: ColumnField(getattr(Deal, name), Kind.TEXT) for name in _TEXT},
        "pipeline_id": ColumnField(Deal.pipeline_id, Kind.ID),
        "amount": ColumnField(Deal.amount, Kind.NUMBER),
        "expected_close_date": ColumnField(Deal.expected_close_date, Kind.DATE),
        "closed_at": ColumnField(Deal.closed_at, Kind.DATETIME),
        "created_at": ColumnField(Deal.created_at, Kind.DATETIME),
        "updated_at": ColumnField(Deal.updated_at, Kind.DATETIME),
    },
    sets={
        "contact_ids": SetField(DealContact.contact_id, DealContact.deal_id, kind=Kind.ID),
        "company_ids": SetField(DealCompany.company_id, DealCompany.deal_id, kind=Kind.ID),
    },
)
