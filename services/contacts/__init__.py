"""Contacts: people, companies, deals and pipelines, consent, segments, identities."""
