"""Companies (B2B accounts) and their contacts; every change is announced on `crm.contacts`."""
