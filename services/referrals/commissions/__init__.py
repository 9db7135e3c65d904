"""Commissions: computed from the program's rules, approved after the hold, paid, reversed; the ledger."""
