"""The affiliate-scoped API, `/v1/me/...`: a key bound to an affiliate reads its own links, clicks,
conversions, commissions, payouts and stats."""
