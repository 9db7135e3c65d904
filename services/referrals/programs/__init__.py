"""Programs: commission rules, attribution model and window, hold period, referral rewards."""
