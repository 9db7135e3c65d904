"""The people referrals hears of from contacts: who an email hash belongs to, merges, erasures."""
