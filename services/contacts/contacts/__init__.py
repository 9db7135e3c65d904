"""People: create and read contacts; every change is announced on `crm.contacts`."""
