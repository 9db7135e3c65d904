"""The four services, their embedded composition, and the `crm` command."""
