"""The four services by name: what `crm serve`, `crm migrate` and embedded mode iterate over."""

from services.contacts.app import DEFINITION as CONTACTS
from services.journeys.app import DEFINITION as JOURNEYS
from services.kpi.app import DEFINITION as KPI
from services.referrals.app import DEFINITION as REFERRALS
from shared.runtime import ServiceDefinition

SERVICES: dict[str, ServiceDefinition] = {
    definition.name: definition for definition in (CONTACTS, JOURNEYS, REFERRALS, KPI)
}
