"""What a contact search may filter and sort on (see `services.contacts.search`)."""

from services.contacts.contacts.models import Contact, ContactIdentity, ContactTag
from services.contacts.contacts.schemas import EMAIL, LifecycleStage
from services.contacts.properties.schemas import ObjectType
from services.contacts.search.compiler import ColumnField, FieldCatalog, Kind, SetField

_TEXT = (
    "first_name",
    "last_name",
    "phone",
    "mobile_phone",
    "street",
    "city",
    "postal_code",
    "state",
    "country",
    "job_title",
    "company_name",
    "owner",
    "region",
    "source",
)

CONTACT_FIELDS = FieldCatalog(
    object_type=ObjectType.CONTACT,
    id_column=Contact.id,
    columns={
        **{name: ColumnField(getattr(Contact, name), Kind.TEXT) for name in _TEXT},
        "email": ColumnField(Contact.email, Kind.TEXT, lower=True),
        "lifecycle_stage": ColumnField(
            Contact.lifecycle_stage, Kind.TEXT, choices=tuple(stage.value for stage in LifecycleStage)
        ),
        "birthday": ColumnField(Contact.birthday, Kind.DATE),
        "visits": ColumnField(Contact.visits, Kind.NUMBER),
        "purchases": ColumnField(Contact.purchases, Kind.NUMBER),
        "revenue_minor": ColumnField(Contact.revenue_minor, Kind.NUMBER),
        "last_activity_at": ColumnField(Contact.last_activity_at, Kind.DATETIME),
        "created_at": ColumnField(Contact.created_at, Kind.DATETIME),
        "updated_at": ColumnField(Contact.updated_at, Kind.DATETIME),
    },
    sets={
        "tags": SetField(ContactTag.tag, ContactTag.contact_id, lower=True),
        "emails": SetField(
            ContactIdentity.value,
            ContactIdentity.contact_id,
            (ContactIdentity.namespace == EMAIL,),
            lower=True,
        ),
    },
)
